//! Where an answer's attention went. The engine captures, for chosen layers and heads, each
//! answer token's softmax weights over every earlier position; these functions turn them into
//! what the attention panel shows: the share each numbered source received, rows binned to a
//! drawable width for long prompts, and which query heads share a KV head (GQA).

use std::ops::Range;

use serde::Serialize;

/// The prompt tokens that quote source [n].
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SourceSpan {
    pub n: usize,
    pub tokens: Range<usize>,
}

/// The token ranges that spell each `(n, text)` piece, found in order in the text the tokens
/// spell (`token_bytes` per token). A piece not found (the template changed it) has no span.
pub fn spans_of(token_bytes: &[&[u8]], pieces: &[(usize, &str)]) -> Vec<SourceSpan> {
    let mut text = Vec::new();
    let mut starts = Vec::with_capacity(token_bytes.len());
    for b in token_bytes {
        starts.push(text.len());
        text.extend_from_slice(b);
    }
    let mut from = 0;
    let mut spans = Vec::new();
    for &(n, piece) in pieces {
        let Some(at) = find(&text[from..], piece.as_bytes()).map(|i| i + from) else {
            continue;
        };
        let end = at + piece.len();
        // Tokens overlapping the bytes at..end.
        let first = starts.partition_point(|&s| s <= at).saturating_sub(1);
        let last = starts.partition_point(|&s| s < end);
        spans.push(SourceSpan {
            n,
            tokens: first..last,
        });
        from = end;
    }
    spans
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() {
        return None;
    }
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// One answer token's attention, summed per region of the context.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Rollup {
    /// `(n, share)` for each source, in the order of the spans.
    pub sources: Vec<(usize, f32)>,
    /// The rest of the prompt: instructions, template tokens, the question, earlier turns.
    pub other_prompt: f32,
    /// The answer's own earlier tokens.
    pub answer: f32,
}

/// Sums `probs` (weights over positions `0..probs.len()`) per source span, the rest of the
/// first `prompt_len` positions, and the answer after them.
pub fn rollup(probs: &[f32], prompt_len: usize, spans: &[SourceSpan]) -> Rollup {
    let sum = |r: Range<usize>| -> f32 {
        probs[r.start.min(probs.len())..r.end.min(probs.len())]
            .iter()
            .sum()
    };
    let sources: Vec<(usize, f32)> = spans.iter().map(|s| (s.n, sum(s.tokens.clone()))).collect();
    let in_sources: f32 = sources.iter().map(|s| s.1).sum();
    Rollup {
        other_prompt: sum(0..prompt_len) - in_sources,
        answer: sum(prompt_len..probs.len()),
        sources,
    }
}

/// The mean of several rollups over the same spans (answer tokens, heads); `None` for none.
pub fn average(rollups: &[Rollup]) -> Option<Rollup> {
    let first = rollups.first()?;
    let n = rollups.len() as f32;
    let mean_of = |f: &dyn Fn(&Rollup) -> f32| rollups.iter().map(f).sum::<f32>() / n;
    Some(Rollup {
        sources: first
            .sources
            .iter()
            .enumerate()
            .map(|(i, &(source, _))| (source, mean_of(&|r| r.sources[i].1)))
            .collect(),
        other_prompt: mean_of(&|r| r.other_prompt),
        answer: mean_of(&|r| r.answer),
    })
}

/// The element-wise mean of rows of equal length (heads of one layer, or layers).
pub fn mean(rows: &[&[f32]]) -> Vec<f32> {
    let Some(first) = rows.first() else {
        return Vec::new();
    };
    let mut out = vec![0f32; first.len()];
    for r in rows {
        out.iter_mut().zip(r.iter()).for_each(|(o, v)| *o += v);
    }
    out.iter_mut().for_each(|o| *o /= rows.len() as f32);
    out
}

/// `row` summed into at most `bins` equal spans of positions, so a heatmap of a long prompt
/// draws a few hundred cells per row, not thousands; the total weight is kept.
pub fn bin(row: &[f32], bins: usize) -> Vec<f32> {
    if row.len() <= bins || bins == 0 {
        return row.to_vec();
    }
    let width = row.len().div_ceil(bins);
    row.chunks(width).map(|c| c.iter().sum()).collect()
}

/// The query heads that read each KV head: with grouped-query attention, query head h uses KV
/// head h / (n_head / n_kv_head).
pub fn gqa_groups(n_head: usize, n_kv_head: usize) -> Vec<Vec<usize>> {
    let per = n_head / n_kv_head.max(1);
    (0..n_kv_head)
        .map(|g| (g * per..(g + 1) * per).collect())
        .collect()
}

/// One captured layer's attention for the answer: for each captured head, one row per answer
/// token (as the query) over every position up to it.
#[derive(Clone, Debug, Default)]
pub struct Heatmap {
    pub layer: usize,
    pub heads: Vec<usize>,
    pub prompt_len: usize,
    /// `rows[h][t]`: head `heads[h]`, answer token `t`.
    rows: Vec<Vec<Vec<f32>>>,
}

impl Heatmap {
    /// From captured `(head, query position, weights)` rows of one layer; rows of prompt
    /// positions are left out.
    pub fn new<'a>(
        layer: usize,
        prompt_len: usize,
        records: impl IntoIterator<Item = (usize, usize, &'a [f32])>,
    ) -> Heatmap {
        let mut map = Heatmap {
            layer,
            prompt_len,
            ..Heatmap::default()
        };
        for (head, pos, probs) in records {
            let Some(t) = pos.checked_sub(prompt_len) else {
                continue;
            };
            let h = match map.heads.iter().position(|&x| x == head) {
                Some(h) => h,
                None => {
                    map.heads.push(head);
                    map.rows.push(Vec::new());
                    map.heads.len() - 1
                }
            };
            let rows = &mut map.rows[h];
            if rows.len() <= t {
                rows.resize(t + 1, Vec::new());
            }
            rows[t] = probs.to_vec();
        }
        map
    }

    pub fn answer_len(&self) -> usize {
        self.rows.iter().map(Vec::len).max().unwrap_or(0)
    }

    /// Answer token `t`'s weights over positions, for captured head `head` (an index into
    /// `heads`) or the mean over the captured heads.
    pub fn row(&self, head: Option<usize>, t: usize) -> Vec<f32> {
        let pick = |h: usize| self.rows[h].get(t).map(Vec::as_slice).unwrap_or(&[]);
        match head {
            Some(h) if h < self.rows.len() => pick(h).to_vec(),
            Some(_) => Vec::new(),
            None => mean(&(0..self.rows.len()).map(pick).collect::<Vec<_>>()),
        }
    }

    /// The picture: one row per answer token, positions summed into cells of equal width so
    /// that there are at most `bins` columns; returns the rows and the positions per cell.
    pub fn grid(&self, head: Option<usize>, bins: usize) -> (Vec<Vec<f32>>, usize) {
        let positions = self.prompt_len + self.answer_len();
        let width = positions.div_ceil(bins.max(1)).max(1);
        let columns = positions.div_ceil(width);
        let rows = (0..self.answer_len())
            .map(|t| {
                let mut cells: Vec<f32> = self
                    .row(head, t)
                    .chunks(width)
                    .map(|c| c.iter().sum())
                    .collect();
                cells.resize(columns, 0.0);
                cells
            })
            .collect();
        (rows, width)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_cover_the_tokens_that_spell_each_piece() {
        let tokens: Vec<&[u8]> = vec![
            b"<s>",
            b"Sources:",
            b"\n[1",
            b"] BM25",
            b" ranks",
            b"\n[2] V",
            b"ec",
            b"tors",
            b".",
        ];
        let spans = spans_of(
            &tokens,
            &[(1, "[1] BM25 ranks"), (2, "[2] Vectors"), (3, "absent")],
        );
        assert_eq!(
            spans,
            vec![
                SourceSpan { n: 1, tokens: 2..5 },
                SourceSpan { n: 2, tokens: 5..8 }
            ]
        );
    }

    #[test]
    fn rollup_and_bins_keep_the_total() {
        let probs = [0.1, 0.2, 0.3, 0.1, 0.05, 0.05, 0.2];
        let spans = [
            SourceSpan { n: 1, tokens: 1..3 },
            SourceSpan { n: 2, tokens: 3..4 },
        ];
        let r = rollup(&probs, 5, &spans);
        let total: f32 = r.sources.iter().map(|s| s.1).sum::<f32>() + r.other_prompt + r.answer;
        assert!((total - 1.0).abs() < 1e-6);
        assert!((r.sources[0].1 - 0.5).abs() < 1e-6 && (r.answer - 0.25).abs() < 1e-6);
        let twice = average(&[r.clone(), r.clone()]).unwrap();
        assert_eq!(twice, r);
        assert!(average(&[]).is_none());
        let b = bin(&probs, 3);
        assert_eq!(b.len(), 3);
        assert!((b.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        assert_eq!(
            gqa_groups(9, 3),
            vec![vec![0, 1, 2], vec![3, 4, 5], vec![6, 7, 8]]
        );
    }

    #[test]
    fn heatmap_rows_follow_answer_tokens_and_bins_keep_the_mass() {
        let prompt_len = 5;
        let a: Vec<f32> = vec![0.1, 0.2, 0.3, 0.1, 0.2, 0.1];
        let b: Vec<f32> = vec![0.0, 0.0, 0.5, 0.0, 0.0, 0.25, 0.25];
        let prompt_row = vec![1.0f32; 4];
        let records = vec![
            (3, 3, prompt_row.as_slice()),
            (3, 5, a.as_slice()),
            (1, 5, b[..6].as_ref()),
            (3, 6, b.as_slice()),
        ];
        let map = Heatmap::new(7, prompt_len, records);
        assert_eq!(map.heads, vec![3, 1]);
        assert_eq!(map.answer_len(), 2);
        assert_eq!(map.row(Some(0), 0), a);
        let mean0 = map.row(None, 0);
        assert!((mean0[2] - 0.4).abs() < 1e-6, "{mean0:?}");
        let (grid, width) = map.grid(Some(0), 3);
        assert_eq!(width, 3);
        assert!(grid.iter().all(|r| r.len() == 3));
        for (row, t) in grid.iter().zip(0..) {
            let total: f32 = map.row(Some(0), t).iter().sum();
            assert!((row.iter().sum::<f32>() - total).abs() < 1e-6);
        }
        // A causal row has nothing after its own position.
        assert_eq!(grid[0][2], 0.0);
    }
}
