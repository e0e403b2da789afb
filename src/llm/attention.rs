//! The attention step, behind a trait so that backends (CPU reference, fused CPU, our wgpu
//! kernels) plug into the same model. Queries arrive already rotated; keys and values are read
//! from the paged cache through the sequence's block table. Query head `h` reads KV head
//! `h / group` (GQA): repeated K/V are never materialised.

use half::f16;
use rayon::prelude::*;

use super::kv::LayerKv;

/// One sequence's attention call for one layer.
pub struct AttnInput<'a> {
    pub kv: LayerKv<'a>,
    pub table: &'a [u32],
    /// `n_q x n_head x head_dim`, rotated.
    pub q: &'a [f32],
    pub n_head: usize,
    /// Position of the first query; query `i` sees keys `0..=start + i` (causal).
    pub start: usize,
    /// Heads whose softmax probabilities are recorded (empty: none, at no cost).
    pub capture: &'a [usize],
}

impl AttnInput<'_> {
    pub fn n_q(&self) -> usize {
        self.q.len() / (self.n_head * self.kv.shape.head_dim)
    }

    fn group(&self) -> usize {
        self.n_head / self.kv.shape.n_kv_head
    }

    /// The key/value offset of position `pos` for KV head `kvh`.
    #[inline]
    fn at(&self, kvh: usize, pos: usize) -> usize {
        let bs = self.kv.shape.block_size;
        self.kv.offset(self.table[pos / bs], kvh, pos % bs)
    }
}

/// Softmax probabilities of one query row for one head, over keys `0..probs.len()`.
#[derive(Clone, Debug)]
pub struct ProbRow {
    pub head: usize,
    /// Position of the query token.
    pub pos: usize,
    pub probs: Vec<f32>,
}

pub trait AttentionBackend: Send + Sync {
    fn name(&self) -> &'static str;

    /// Write `n_q x n_head x head_dim` outputs to `out`; return the captured probability rows.
    fn attend(&self, input: &AttnInput<'_>, out: &mut [f32]) -> Vec<ProbRow>;
}

/// Runs `f(row, head, out)` for every (query row, head) in parallel.
fn per_row_head<F>(input: &AttnInput<'_>, out: &mut [f32], f: F) -> Vec<ProbRow>
where
    F: Fn(usize, usize, &mut [f32]) -> Option<Vec<f32>> + Sync,
{
    let hd = input.kv.shape.head_dim;
    let n_head = input.n_head;
    out.par_chunks_mut(hd)
        .enumerate()
        .filter_map(|(i, o)| {
            let (row, head) = (i / n_head, i % n_head);
            f(row, head, o).map(|probs| ProbRow {
                head,
                pos: input.start + row,
                probs,
            })
        })
        .collect()
}

/// The reference: scores materialised, softmax, weighted sum, with llama.cpp's rounding (f16
/// cache, query and probabilities rounded to f16 for the two products, f32 sums), so that
/// greedy generation follows llama.cpp token for token.
pub struct CpuAttention;

impl AttentionBackend for CpuAttention {
    fn name(&self) -> &'static str {
        "cpu"
    }

    fn attend(&self, input: &AttnInput<'_>, out: &mut [f32]) -> Vec<ProbRow> {
        let hd = input.kv.shape.head_dim;
        let scale = 1.0 / (hd as f32).sqrt();
        per_row_head(input, out, |row, head, o| {
            let kvh = head / input.group();
            let n_keys = input.start + row + 1;
            let q = rounded_query(input, row, head);
            let mut p: Vec<f32> = (0..n_keys)
                .map(|j| dot_f16(&input.kv.k[input.at(kvh, j)..][..hd], &q) * scale)
                .collect();
            softmax(&mut p);
            o.fill(0.0);
            for (j, &pj) in p.iter().enumerate() {
                let pj = f16::from_f32(pj).to_f32();
                let v = &input.kv.v[input.at(kvh, j)..][..hd];
                o.iter_mut().zip(v).for_each(|(o, v)| *o += pj * v.to_f32());
            }
            input.capture.contains(&head).then_some(p)
        })
    }
}

/// Fused, FlashAttention-style: one pass over the key blocks with a running maximum and sum
/// (online softmax); no score row is stored. Probabilities are recomputed only when captured.
pub struct FusedCpuAttention;

impl AttentionBackend for FusedCpuAttention {
    fn name(&self) -> &'static str {
        "cpu-fused"
    }

    fn attend(&self, input: &AttnInput<'_>, out: &mut [f32]) -> Vec<ProbRow> {
        let hd = input.kv.shape.head_dim;
        let bs = input.kv.shape.block_size;
        let scale = 1.0 / (hd as f32).sqrt();
        per_row_head(input, out, |row, head, o| {
            let kvh = head / input.group();
            let n_keys = input.start + row + 1;
            let q = rounded_query(input, row, head);
            let q = q.as_slice();
            let (mut m, mut l) = (f32::MIN, 0f32);
            o.fill(0.0);
            let mut s = vec![0f32; bs];
            for first in (0..n_keys).step_by(bs) {
                let n = bs.min(n_keys - first);
                let base = input.at(kvh, first);
                for (j, sj) in s[..n].iter_mut().enumerate() {
                    *sj = dot_f16(&input.kv.k[base + j * hd..][..hd], q) * scale;
                }
                let m_new = s[..n].iter().fold(m, |a, &b| a.max(b));
                let correction = (m - m_new).exp();
                l *= correction;
                o.iter_mut().for_each(|x| *x *= correction);
                for (j, &sj) in s[..n].iter().enumerate() {
                    // Rounded like the reference's f16 probabilities, so both agree closely.
                    let p = f16::from_f32((sj - m_new).exp()).to_f32();
                    l += p;
                    let v = &input.kv.v[base + j * hd..][..hd];
                    o.iter_mut().zip(v).for_each(|(o, v)| *o += p * v.to_f32());
                }
                m = m_new;
            }
            let inv = if l > 0.0 { 1.0 / l } else { 0.0 };
            o.iter_mut().for_each(|x| *x *= inv);
            input.capture.contains(&head).then(|| {
                (0..n_keys)
                    .map(|j| {
                        let k = &input.kv.k[input.at(kvh, j)..][..hd];
                        (dot_f16(k, q) * scale - m).exp() * inv
                    })
                    .collect()
            })
        })
    }
}

/// The query as the f16 cache would hold it: both backends multiply in the cache's precision.
fn rounded_query(input: &AttnInput<'_>, row: usize, head: usize) -> Vec<f32> {
    let hd = input.kv.shape.head_dim;
    input.q[(row * input.n_head + head) * hd..][..hd]
        .iter()
        .map(|&x| f16::from_f32(x).to_f32())
        .collect()
}

#[inline]
fn dot_f16(k: &[f16], q: &[f32]) -> f32 {
    k.iter().zip(q).map(|(k, q)| k.to_f32() * q).sum()
}

/// ggml's softmax: subtract the maximum, exponentiate, sum in f64, scale by the inverse.
fn softmax(x: &mut [f32]) {
    let max = x.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b));
    let mut sum = 0f64;
    for v in x.iter_mut() {
        *v = (*v - max).exp();
        sum += *v as f64;
    }
    let inv = (1.0 / sum) as f32;
    x.iter_mut().for_each(|v| *v *= inv);
}
