//! How each passage moved through the retrieval stages of one question: its rank in the BM25
//! list, the vector list, the RRF fusion and the re-ranking, and what became of it: quoted to the
//! model as source [n], left out to fit the context window, or below the cut-off.

use serde::Serialize;

use crate::answer::PromptPlan;
use crate::retrieve::trace::{SearchTrace, StageHit};

/// One passage's ranks (1 = best) in each stage it appeared in.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Journey {
    pub chunk_id: i64,
    pub bm25: Option<usize>,
    pub vector: Option<usize>,
    pub fused: Option<usize>,
    pub reranked: Option<usize>,
    /// Its fused RRF score, as the BM25 list's part and the vector list's part.
    pub rrf_parts: Option<(f32, f32)>,
    /// The cross-encoder's score.
    pub rerank_score: Option<f32>,
    /// What became of it in the prompt (`None` for a search without an answer).
    pub fate: Option<Fate>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Fate {
    /// Quoted in the prompt as source [n].
    InPrompt(usize),
    /// Retrieved, then left out so that the prompt fits the model's context window.
    DroppedForContext,
    /// Ranked below the number of passages asked for.
    BelowCutoff,
}

/// Every passage any stage listed, ordered by the last stage that ran (best first), then by the
/// earlier stages.
pub fn journeys(trace: &SearchTrace, plan: Option<&PromptPlan>) -> Vec<Journey> {
    let rank = |list: &[StageHit], id: i64| list.iter().find(|h| h.chunk_id == id).map(|h| h.rank);
    let fused_rank = |id: i64| {
        trace
            .fused
            .iter()
            .position(|f| f.chunk_id == id)
            .map(|p| p + 1)
    };
    let mut ids: Vec<i64> = Vec::new();
    let stages = [
        trace
            .reranked
            .iter()
            .map(|h| h.chunk_id)
            .collect::<Vec<_>>(),
        trace.fused.iter().map(|f| f.chunk_id).collect(),
        trace.bm25.iter().map(|h| h.chunk_id).collect(),
        trace.vector.iter().map(|h| h.chunk_id).collect(),
    ];
    for id in stages.iter().flatten() {
        if !ids.contains(id) {
            ids.push(*id);
        }
    }
    ids.into_iter()
        .map(|id| Journey {
            chunk_id: id,
            bm25: rank(&trace.bm25, id),
            vector: rank(&trace.vector, id),
            fused: fused_rank(id),
            reranked: rank(&trace.reranked, id),
            rrf_parts: trace.fused.iter().find(|f| f.chunk_id == id).map(|f| {
                let part = |c: &Option<crate::retrieve::fusion::Contribution>| {
                    c.as_ref().map_or(0.0, |c| c.rrf)
                };
                (part(&f.bm25), part(&f.vector))
            }),
            rerank_score: trace
                .reranked
                .iter()
                .find(|h| h.chunk_id == id)
                .map(|h| h.score),
            fate: plan.map(|p| fate(p, id)),
        })
        .collect()
}

fn fate(plan: &PromptPlan, id: i64) -> Fate {
    if let Some(s) = plan.sources.iter().find(|s| s.chunk.chunk_id == id) {
        Fate::InPrompt(s.n)
    } else if plan.dropped_sources.iter().any(|s| s.chunk.chunk_id == id) {
        Fate::DroppedForContext
    } else {
        Fate::BelowCutoff
    }
}
