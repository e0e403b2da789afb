//! Text extraction: one function per format, all producing an [`Extracted`].

use super::decode::decode;
use super::document::{Extracted, FileKind};
use super::error::ExtractError;
use super::{html, markdown, office, pdf};

/// Extracts the text and structure of a file's bytes. Never panics: the PDF parser, the one
/// dependency known to panic on hostile input, is isolated inside [`pdf::extract`].
pub fn extract(kind: FileKind, bytes: &[u8]) -> Result<Extracted, ExtractError> {
    if bytes.is_empty() {
        return Err(ExtractError::Empty);
    }
    let extracted = match kind {
        FileKind::Pdf => pdf::extract(bytes)?,
        FileKind::Docx => office::docx(bytes)?,
        FileKind::Hwpx => office::hwpx(bytes)?,
        FileKind::Markdown => {
            let decoded = decode(bytes)?;
            markdown::extract(decoded.text, decoded.encoding)
        }
        FileKind::Html => {
            let decoded = decode(bytes)?;
            html::extract(&decoded.text, decoded.encoding)
        }
        FileKind::Text | FileKind::Csv | FileKind::Json | FileKind::Code => {
            let decoded = decode(bytes)?;
            Extracted::plain(decoded.text, Some(decoded.encoding))
        }
    };
    if extracted.text.trim().is_empty() {
        return Err(ExtractError::NoText);
    }
    Ok(extracted)
}
