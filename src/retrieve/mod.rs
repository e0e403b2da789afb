//! Retrieval: turning a question into ranked chunks. For now keyword search (BM25); the vector,
//! hybrid and re-ranking modes plug in here.

use crate::catalog::ChunkRecord;
use crate::error::{Error, Result};
use crate::index::Snippet;
use crate::ingest::decode::nfc;
use crate::library::Library;

/// How to rank chunks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    #[default]
    Bm25,
}

impl std::str::FromStr for Mode {
    type Err = Error;
    fn from_str(s: &str) -> Result<Mode> {
        match s {
            "bm25" => Ok(Mode::Bm25),
            other => Err(Error::Invalid(format!(
                "unknown search mode {other:?}; available: bm25"
            ))),
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub struct SearchOptions {
    pub k: usize,
    pub mode: Mode,
    /// Length of the highlighted snippet, in characters.
    pub snippet_chars: usize,
}

impl Default for SearchOptions {
    fn default() -> Self {
        SearchOptions {
            k: 10,
            mode: Mode::Bm25,
            snippet_chars: 160,
        }
    }
}

/// One ranked chunk; this is also the `--json` schema of `glassbox search` (see README).
#[derive(Debug, Clone, serde::Serialize)]
pub struct SearchResult {
    pub rank: usize,
    pub score: f32,
    #[serde(flatten)]
    pub chunk: ChunkRecord,
    pub snippet: Snippet,
}

impl Library {
    /// Searches the library. The query is normalised to NFC like the documents.
    pub async fn search(&self, query: &str, opts: &SearchOptions) -> Result<Vec<SearchResult>> {
        let query = nfc(query);
        let Mode::Bm25 = opts.mode;
        let hits = self.search_index().search(&query, opts.k)?;
        let ids: Vec<i64> = hits.iter().map(|h| h.chunk_id).collect();
        let mut records: std::collections::HashMap<i64, _> = self
            .catalog()
            .chunks(&ids)
            .await?
            .into_iter()
            .map(|r| (r.chunk_id, r))
            .collect();
        let mut results = Vec::with_capacity(hits.len());
        for hit in &hits {
            // The journal keeps index and catalog in agreement; should a hit still lack its
            // catalog row, it is dropped rather than shown without text.
            let Some(record) = records.remove(&hit.chunk_id) else {
                continue;
            };
            let snippet = self
                .search_index()
                .snippet(&query, &record.text, opts.snippet_chars)?;
            results.push(SearchResult {
                rank: results.len() + 1,
                score: hit.score,
                chunk: record,
                snippet,
            });
        }
        Ok(results)
    }
}
