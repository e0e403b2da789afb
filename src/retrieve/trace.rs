//! What happened during one search, stage by stage: the lists each stage produced with their
//! ranks and scores, how fusion combined them, and how long each stage took. The CLI prints it
//! (`--explain`), `--json` carries it, and the GUI's retrieval panel draws it.

use super::Mode;
use super::fusion::Fused;

/// One entry of a stage's ranked list.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct StageHit {
    pub rank: usize,
    pub chunk_id: i64,
    pub score: f32,
}

/// Wall-clock milliseconds per stage (0 for stages that did not run).
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize)]
pub struct Timings {
    pub bm25_ms: f64,
    pub embed_query_ms: f64,
    pub vector_ms: f64,
    pub fusion_ms: f64,
    pub rerank_ms: f64,
    pub fetch_ms: f64,
    pub total_ms: f64,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct SearchTrace {
    pub query: String,
    pub mode: Mode,
    /// BM25 list (score: BM25).
    pub bm25: Vec<StageHit>,
    /// Vector list (score: cosine similarity).
    pub vector: Vec<StageHit>,
    /// RRF list with each list's rank, score and contribution.
    pub fused: Vec<Fused>,
    pub rrf_k: f32,
    /// Re-ranked candidates (score: cross-encoder logit), best first.
    pub reranked: Vec<StageHit>,
    pub timings: Timings,
}

pub(super) fn stage(list: &[(i64, f32)]) -> Vec<StageHit> {
    list.iter()
        .enumerate()
        .map(|(i, &(chunk_id, score))| StageHit {
            rank: i + 1,
            chunk_id,
            score,
        })
        .collect()
}
