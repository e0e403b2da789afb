//! Ingestion: finding files, decoding and extracting their text, and cutting it into chunks.

pub mod chunk;
pub mod decode;
pub mod document;
pub mod error;
pub mod extract;
mod html;
mod markdown;
mod office;
mod pdf;
pub mod reader;
pub mod walk;

pub use chunk::{ApproxTokens, Chunk, ChunkOptions, TokenCounter};
pub use document::{Extracted, FileKind};
pub use error::ExtractError;

/// A document ready for the catalog: its title, source encoding and chunks.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub title: Option<String>,
    pub encoding: Option<&'static str>,
    pub chunks: Vec<Chunk>,
}

/// Extracts and chunks one file's bytes.
pub fn prepare(
    kind: FileKind,
    bytes: &[u8],
    opts: ChunkOptions,
    counter: &dyn TokenCounter,
) -> Result<Prepared, ExtractError> {
    let extracted = extract::extract(kind, bytes)?;
    let chunks = chunk::chunk(&extracted, kind, opts, counter);
    if chunks.is_empty() {
        return Err(ExtractError::NoText);
    }
    Ok(Prepared {
        title: extracted.title,
        encoding: extracted.encoding,
        chunks,
    })
}
