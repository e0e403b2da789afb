//! Reciprocal Rank Fusion: each list votes `weight / (k + rank)` for its items; votes add up.
//! Ranks, not scores, are fused, so BM25 scores and cosines need no common scale.

use std::collections::HashMap;

/// One list's vote for a fused item.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Contribution {
    pub rank: usize,
    pub score: f32,
    pub rrf: f32,
}

/// A fused item with what each list contributed (`None`: the list did not have it).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Fused {
    pub chunk_id: i64,
    pub score: f32,
    pub bm25: Option<Contribution>,
    pub vector: Option<Contribution>,
}

/// Fuses the BM25 and vector lists (each `(chunk_id, score)`, best first).
pub fn rrf(bm25: &[(i64, f32)], vector: &[(i64, f32)], weights: (f32, f32), k: f32) -> Vec<Fused> {
    let mut fused: HashMap<i64, Fused> = HashMap::new();
    let mut vote = |list: &[(i64, f32)], weight: f32, is_bm25: bool| {
        for (i, &(chunk_id, score)) in list.iter().enumerate() {
            let rank = i + 1;
            let rrf = weight / (k + rank as f32);
            let entry = fused.entry(chunk_id).or_insert(Fused {
                chunk_id,
                score: 0.0,
                bm25: None,
                vector: None,
            });
            entry.score += rrf;
            let contribution = Some(Contribution { rank, score, rrf });
            if is_bm25 {
                entry.bm25 = contribution;
            } else {
                entry.vector = contribution;
            }
        }
    };
    vote(bm25, weights.0, true);
    vote(vector, weights.1, false);
    let mut out: Vec<Fused> = fused.into_values().collect();
    // Ties (same votes) keep the better BM25 rank first, then the lower id: deterministic output.
    out.sort_by(|a, b| {
        b.score
            .total_cmp(&a.score)
            .then(rank_of(&a.bm25).cmp(&rank_of(&b.bm25)))
            .then(a.chunk_id.cmp(&b.chunk_id))
    });
    out
}

fn rank_of(c: &Option<Contribution>) -> usize {
    c.map_or(usize::MAX, |c| c.rank)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn items_in_both_lists_win_and_contributions_add_up() {
        let bm25 = [(1, 9.0), (2, 5.0), (3, 1.0)];
        let vector = [(3, 0.9), (4, 0.8), (1, 0.1)];
        let fused = rrf(&bm25, &vector, (1.0, 1.0), 60.0);
        assert_eq!(fused[0].chunk_id, 1); // ranks 1 and 3
        assert_eq!(fused[1].chunk_id, 3); // ranks 3 and 1, tie broken by BM25 rank
        let top = &fused[0];
        let expected = 1.0 / 61.0 + 1.0 / 63.0;
        assert!((top.score - expected).abs() < 1e-7);
        assert_eq!(top.bm25.unwrap().rank, 1);
        assert_eq!(top.vector.unwrap().rank, 3);
        assert_eq!(fused.iter().find(|f| f.chunk_id == 4).unwrap().bm25, None);
    }

    #[test]
    fn weights_shift_the_balance() {
        let fused = rrf(&[(1, 1.0)], &[(2, 1.0)], (1.0, 2.0), 60.0);
        assert_eq!(fused[0].chunk_id, 2);
    }
}
