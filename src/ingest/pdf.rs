//! PDF: text page by page with pdf-extract (on lopdf), so every chunk knows its page.

use super::document::{Extracted, TextBuilder};
use super::error::ExtractError;

pub fn extract(bytes: &[u8]) -> Result<Extracted, ExtractError> {
    if !bytes.starts_with(b"%PDF") {
        return Err(ExtractError::corrupt("PDF", "missing %PDF header"));
    }
    // pdf-extract panics on some malformed files; a panic there must become a per-file error,
    // not take down an indexing run.
    let pages = std::panic::catch_unwind(|| pdf_extract::extract_text_from_mem_by_pages(bytes))
        .map_err(|_| ExtractError::corrupt("PDF", "the PDF parser gave up on this file"))?;
    let pages = pages.map_err(|err| {
        if is_encrypted(bytes) {
            ExtractError::Encrypted
        } else {
            ExtractError::corrupt("PDF", err)
        }
    })?;
    let mut out = TextBuilder::default();
    for (n, page) in pages.iter().enumerate() {
        let page_no = Some(n as u32 + 1);
        for paragraph in page.split("\n\n") {
            out.paragraph(paragraph, page_no);
        }
    }
    if out.is_empty() {
        return Err(if is_encrypted(bytes) {
            ExtractError::Encrypted
        } else {
            ExtractError::NoText
        });
    }
    Ok(out.finish())
}

fn is_encrypted(bytes: &[u8]) -> bool {
    std::panic::catch_unwind(|| {
        lopdf::Document::load_mem(bytes).map(|d| d.is_encrypted() || d.was_encrypted())
    })
    .ok()
    .and_then(Result::ok)
    .unwrap_or(false)
}
