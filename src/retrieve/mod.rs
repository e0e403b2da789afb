//! Retrieval: a question in, ranked chunks out, in one of four modes:
//! `bm25` (keywords), `vector` (embeddings), `hybrid` (both fused by Reciprocal Rank Fusion) and
//! `hybrid+rerank` (the fused top N re-scored by a cross-encoder). Every search records a
//! [`SearchTrace`].

pub mod eval;
pub mod fusion;
pub mod trace;

use crate::catalog::ChunkRecord;
use crate::error::{Error, Result};
use crate::index::Snippet;
use crate::ingest::decode::nfc;
use crate::library::Library;
use std::time::Instant;
pub use trace::{SearchTrace, StageHit, Timings};

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Mode {
    #[serde(rename = "bm25")]
    Bm25,
    #[serde(rename = "vector")]
    Vector,
    #[serde(rename = "hybrid")]
    Hybrid,
    #[serde(rename = "hybrid+rerank")]
    HybridRerank,
}

impl Mode {
    pub const ALL: [Mode; 4] = [Mode::Bm25, Mode::Vector, Mode::Hybrid, Mode::HybridRerank];

    pub fn name(self) -> &'static str {
        match self {
            Mode::Bm25 => "bm25",
            Mode::Vector => "vector",
            Mode::Hybrid => "hybrid",
            Mode::HybridRerank => "hybrid+rerank",
        }
    }

    fn uses_bm25(self) -> bool {
        self != Mode::Vector
    }

    fn uses_vectors(self) -> bool {
        self != Mode::Bm25
    }
}

impl std::str::FromStr for Mode {
    type Err = Error;
    fn from_str(s: &str) -> Result<Mode> {
        Mode::ALL
            .into_iter()
            .find(|m| m.name() == s)
            .ok_or_else(|| {
                Error::Invalid(format!(
                    "unknown search mode {s:?}; use bm25, vector, hybrid or hybrid+rerank"
                ))
            })
    }
}

#[derive(Debug, Clone, Copy)]
pub struct SearchOptions {
    pub k: usize,
    /// `None`: the best the library can do: hybrid+rerank with a reranker, hybrid with an
    /// embedder, else bm25.
    pub mode: Option<Mode>,
    /// How many entries each first-stage list contributes to fusion.
    pub depth: usize,
    /// RRF's k: larger values flatten the difference between ranks.
    pub rrf_k: f32,
    /// Weights of the BM25 and vector lists in fusion.
    pub weights: (f32, f32),
    /// How many fused candidates the cross-encoder re-scores.
    pub rerank_top: usize,
    /// Length of the highlighted snippet, in characters.
    pub snippet_chars: usize,
}

impl Default for SearchOptions {
    fn default() -> Self {
        SearchOptions {
            k: 10,
            mode: None,
            depth: 50,
            rrf_k: 60.0,
            weights: (1.0, 1.0),
            rerank_top: 30,
            snippet_chars: 160,
        }
    }
}

/// One ranked chunk; with `rank`, `score` and `snippet` this is the `--json` schema of
/// `glassbox search` (README).
#[derive(Debug, Clone, serde::Serialize)]
pub struct SearchResult {
    pub rank: usize,
    /// The score of the last stage: BM25, cosine, RRF or cross-encoder logit.
    pub score: f32,
    #[serde(flatten)]
    pub chunk: ChunkRecord,
    pub snippet: Snippet,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct SearchResponse {
    pub results: Vec<SearchResult>,
    pub trace: SearchTrace,
}

impl Library {
    /// The mode a search without an explicit one uses.
    pub fn default_mode(&self) -> Mode {
        match (self.embedder().is_some(), self.reranker().is_some()) {
            (true, true) => Mode::HybridRerank,
            (true, false) => Mode::Hybrid,
            _ => Mode::Bm25,
        }
    }

    /// Searches the library. The query is normalised to NFC like the documents.
    pub async fn search(&self, query: &str, opts: &SearchOptions) -> Result<SearchResponse> {
        let started = Instant::now();
        let query = nfc(query);
        let mode = opts.mode.unwrap_or_else(|| self.default_mode());
        let mut timings = Timings::default();
        let depth = if mode == Mode::Bm25 || mode == Mode::Vector {
            opts.k
        } else {
            opts.depth.max(opts.k)
        };

        let clock = Instant::now();
        let bm25 = if mode.uses_bm25() {
            self.bm25_list(&query, depth)?
        } else {
            Vec::new()
        };
        timings.bm25_ms = ms(clock);
        let vector = if mode.uses_vectors() {
            self.vector_list(&query, depth, &mut timings).await?
        } else {
            Vec::new()
        };

        let clock = Instant::now();
        let fused = match mode {
            Mode::Hybrid | Mode::HybridRerank => {
                fusion::rrf(&bm25, &vector, opts.weights, opts.rrf_k)
            }
            _ => Vec::new(),
        };
        timings.fusion_ms = ms(clock);
        let mut ranked: Vec<(i64, f32)> = match mode {
            Mode::Bm25 => bm25.clone(),
            Mode::Vector => vector.clone(),
            Mode::Hybrid | Mode::HybridRerank => {
                fused.iter().map(|f| (f.chunk_id, f.score)).collect()
            }
        };
        let mut reranked = Vec::new();
        if mode == Mode::HybridRerank {
            let clock = Instant::now();
            reranked = self.rerank(&query, &ranked, opts.rerank_top).await?;
            // Candidates beyond the re-ranked top N keep their fused order after them.
            let tail = ranked.split_off(reranked.len().min(ranked.len()));
            ranked = reranked.iter().copied().chain(tail).collect();
            timings.rerank_ms = ms(clock);
        }
        ranked.truncate(opts.k);

        let clock = Instant::now();
        let results = self.results(&query, &ranked, opts).await?;
        timings.fetch_ms = ms(clock);
        timings.total_ms = ms(started);
        let trace = SearchTrace {
            query,
            mode,
            bm25: trace::stage(&bm25),
            vector: trace::stage(&vector),
            fused,
            rrf_k: opts.rrf_k,
            reranked: trace::stage(&reranked),
            timings,
        };
        Ok(SearchResponse { results, trace })
    }

    fn bm25_list(&self, query: &str, depth: usize) -> Result<Vec<(i64, f32)>> {
        Ok(self
            .search_index()
            .search(query, depth)?
            .into_iter()
            .map(|h| (h.chunk_id, h.score))
            .collect())
    }

    async fn vector_list(
        &self,
        query: &str,
        depth: usize,
        timings: &mut Timings,
    ) -> Result<Vec<(i64, f32)>> {
        let active = self.embedder().cloned().ok_or_else(|| {
            Error::Invalid("vector search needs an embedding model: pass --embedder PATH|ID or set one with `glassbox models use`".into())
        })?;
        let clock = Instant::now();
        let text = query.to_owned();
        let model = active.model.clone();
        let vector = tokio::task::spawn_blocking(move || model.embed_query(&text))
            .await
            .map_err(|e| Error::Invalid(format!("query embedding failed: {e}")))??;
        timings.embed_query_ms = ms(clock);
        let clock = Instant::now();
        let hits = match self.vector_index().await? {
            Some(index) => {
                let query = crate::library::unit(vector);
                tokio::task::spawn_blocking(move || index.search(&query, depth))
                    .await
                    .map_err(|e| Error::Invalid(format!("vector search failed: {e}")))?
            }
            None => Vec::new(),
        };
        timings.vector_ms = ms(clock);
        Ok(hits.into_iter().map(|h| (h.chunk_id, h.score)).collect())
    }

    /// Cross-encoder scores for the top `n` candidates, best first.
    async fn rerank(
        &self,
        query: &str,
        ranked: &[(i64, f32)],
        n: usize,
    ) -> Result<Vec<(i64, f32)>> {
        let reranker = self.reranker().cloned().ok_or_else(|| {
            Error::Invalid("hybrid+rerank needs a reranker: pass --reranker PATH|ID".into())
        })?;
        let ids: Vec<i64> = ranked.iter().take(n).map(|(id, _)| *id).collect();
        let records = self.catalog().chunks(&ids).await?;
        let query = query.to_owned();
        let scored = tokio::task::spawn_blocking(move || {
            let texts: Vec<&str> = records.iter().map(|r| r.text.as_str()).collect();
            reranker.score(&query, &texts).map(|scores| {
                records
                    .iter()
                    .map(|r| r.chunk_id)
                    .zip(scores)
                    .collect::<Vec<(i64, f32)>>()
            })
        })
        .await
        .map_err(|e| Error::Invalid(format!("re-ranking failed: {e}")))??;
        let mut scored = scored;
        scored.sort_by(|a, b| b.1.total_cmp(&a.1));
        Ok(scored)
    }

    async fn results(
        &self,
        query: &str,
        ranked: &[(i64, f32)],
        opts: &SearchOptions,
    ) -> Result<Vec<SearchResult>> {
        let ids: Vec<i64> = ranked.iter().map(|(id, _)| *id).collect();
        let mut records: std::collections::HashMap<i64, ChunkRecord> = self
            .catalog()
            .chunks(&ids)
            .await?
            .into_iter()
            .map(|r| (r.chunk_id, r))
            .collect();
        let mut results = Vec::with_capacity(ranked.len());
        for &(chunk_id, score) in ranked {
            // The journal keeps index and catalog in agreement; should a hit still lack its
            // catalog row, it is dropped rather than shown without text.
            let Some(chunk) = records.remove(&chunk_id) else {
                continue;
            };
            let snippet = self
                .search_index()
                .snippet(query, &chunk.text, opts.snippet_chars)?;
            results.push(SearchResult {
                rank: results.len() + 1,
                score,
                chunk,
                snippet,
            });
        }
        Ok(results)
    }
}

fn ms(since: Instant) -> f64 {
    since.elapsed().as_secs_f64() * 1e3
}
