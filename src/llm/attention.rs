//! The attention step, behind a trait so that backends (CPU reference, fused CPU, our wgpu
//! kernels) plug into the same model. Queries arrive already rotated; keys and values are read
//! from the paged cache through the sequence's block table. Query head `h` reads KV head
//! `h / group` (GQA): repeated K/V are never materialised.

use std::ops::Range;

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
    /// A local layer's window: query `i` sees only the last `window` of those keys.
    pub window: Option<usize>,
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

    /// For query `row` and `head`: its KV head (GQA), the keys it sees (causal, and within
    /// the window), and the query as the f16 cache would hold it (both backends multiply in the
    /// cache's precision).
    fn query(&self, row: usize, head: usize) -> (usize, Range<usize>, Vec<f32>) {
        let hd = self.kv.shape.head_dim;
        let q = self.q[(row * self.n_head + head) * hd..][..hd]
            .iter()
            .map(|&x| f16::from_f32(x).to_f32())
            .collect();
        let end = self.start + row + 1;
        let first = self.window.map_or(0, |w| end.saturating_sub(w));
        (head / self.group(), first..end, q)
    }

    /// The key/value offset of position `pos` for KV head `kvh`.
    #[inline]
    fn at(&self, kvh: usize, pos: usize) -> usize {
        let bs = self.kv.shape.block_size;
        self.kv.offset(self.table[pos / bs], kvh, pos % bs)
    }
}

/// Softmax probabilities of one query row for one head, over keys `0..probs.len()` (zero
/// before a local layer's window).
#[derive(Clone, Debug)]
pub struct ProbRow {
    pub head: usize,
    /// Position of the query token.
    pub pos: usize,
    pub probs: Vec<f32>,
}

pub trait AttentionBackend: Send + Sync {
    fn name(&self) -> &'static str;

    /// Why the backend stopped computing where it was asked to, if it did during the session.
    fn notice(&self) -> Option<String> {
        None
    }

    /// Write `n_q x n_head x head_dim` outputs to `out`; return the captured probability rows.
    fn attend(&self, input: &AttnInput<'_>, out: &mut [f32]) -> Vec<ProbRow>;

    /// One layer of every sequence of a step, their outputs back to back in `out`. A backend
    /// that pays per call (the GPU's round trip) makes one call of them all.
    fn attend_all(&self, inputs: &[AttnInput<'_>], out: &mut [f32]) -> Vec<Vec<ProbRow>> {
        let mut rest = out;
        inputs
            .iter()
            .map(|input| {
                let (mine, tail) = std::mem::take(&mut rest).split_at_mut(input.q.len());
                rest = tail;
                self.attend(input, mine)
            })
            .collect()
    }
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
            let (kvh, keys, q) = input.query(row, head);
            let mut p: Vec<f32> = keys
                .clone()
                .map(|j| dot_f16(&input.kv.k[input.at(kvh, j)..][..hd], &q) * scale)
                .collect();
            softmax(&mut p);
            o.fill(0.0);
            for (j, &pj) in keys.clone().zip(&p) {
                let pj = f16::from_f32(pj).to_f32();
                axpy_f16(o, pj, &input.kv.v[input.at(kvh, j)..][..hd]);
            }
            input.capture.contains(&head).then(|| {
                let mut row = vec![0f32; keys.start];
                row.extend(p);
                row
            })
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
            let (kvh, keys, q) = input.query(row, head);
            let q = q.as_slice();
            let (mut m, mut l) = (f32::MIN, 0f32);
            o.fill(0.0);
            let mut s = vec![0f32; bs];
            // Whole blocks from the one holding the first key seen; within a block, the slots
            // `from..n` are the keys in view.
            for block_start in (keys.start / bs * bs..keys.end).step_by(bs) {
                let from = keys.start.saturating_sub(block_start);
                let n = bs.min(keys.end - block_start);
                let base = input.at(kvh, block_start);
                for (j, sj) in s[..n].iter_mut().enumerate().skip(from) {
                    *sj = dot_f16_lanes(&input.kv.k[base + j * hd..][..hd], q) * scale;
                }
                let m_new = s[from..n].iter().fold(m, |a, &b| a.max(b));
                let correction = (m - m_new).exp();
                l *= correction;
                o.iter_mut().for_each(|x| *x *= correction);
                for (j, &sj) in s[..n].iter().enumerate().skip(from) {
                    // Rounded like the reference's f16 probabilities, so both agree closely.
                    let p = f16::from_f32((sj - m_new).exp()).to_f32();
                    l += p;
                    axpy_f16(o, p, &input.kv.v[base + j * hd..][..hd]);
                }
                m = m_new;
            }
            let inv = if l > 0.0 { 1.0 / l } else { 0.0 };
            o.iter_mut().for_each(|x| *x *= inv);
            input.capture.contains(&head).then(|| {
                (0..keys.end)
                    .map(|j| {
                        if j < keys.start {
                            return 0.0;
                        }
                        let k = &input.kv.k[input.at(kvh, j)..][..hd];
                        (dot_f16_lanes(k, q) * scale - m).exp() * inv
                    })
                    .collect()
            })
        })
    }
}

/// `k . q` with the keys in f16, summed in f32 one product after another. (Tree orders were
/// tried, ggml's AVX-512 order among them: llama.cpp's greedy texts followed this one longest.)
#[inline]
fn dot_f16(k: &[f16], q: &[f32]) -> f32 {
    k.iter().zip(q).map(|(k, q)| k.to_f32() * q).sum()
}

/// `k . q` in eight f32 lanes (a different summation order from `dot_f16`, and faster).
#[inline]
fn dot_f16_lanes(k: &[f16], q: &[f32]) -> f32 {
    #[cfg(all(
        target_arch = "x86_64",
        target_feature = "avx2",
        target_feature = "fma",
        target_feature = "f16c"
    ))]
    if k.len().is_multiple_of(8) {
        // SAFETY: the features are compiled in; lengths are equal multiples of 8.
        return unsafe { simd::dot_f16(k, q) };
    }
    dot_f16(k, q)
}

/// `o += p * v` with `v` in f16.
#[inline]
fn axpy_f16(o: &mut [f32], p: f32, v: &[f16]) {
    #[cfg(all(
        target_arch = "x86_64",
        target_feature = "avx2",
        target_feature = "fma",
        target_feature = "f16c"
    ))]
    if v.len().is_multiple_of(8) {
        // SAFETY: the features are compiled in; lengths are equal multiples of 8.
        return unsafe { simd::axpy_f16(o, p, v) };
    }
    o.iter_mut().zip(v).for_each(|(o, v)| *o += p * v.to_f32());
}

#[cfg(all(
    target_arch = "x86_64",
    target_feature = "avx2",
    target_feature = "fma",
    target_feature = "f16c"
))]
mod simd {
    use half::f16;
    use std::arch::x86_64::*;

    /// # Safety
    /// `k` and `q` have the same length, a multiple of 8.
    pub unsafe fn dot_f16(k: &[f16], q: &[f32]) -> f32 {
        debug_assert_eq!(k.len(), q.len());
        unsafe {
            let mut acc = _mm256_setzero_ps();
            for i in (0..k.len()).step_by(8) {
                let kv = _mm256_cvtph_ps(_mm_loadu_si128(k.as_ptr().add(i) as *const __m128i));
                acc = _mm256_fmadd_ps(kv, _mm256_loadu_ps(q.as_ptr().add(i)), acc);
            }
            let mut r = _mm_add_ps(_mm256_extractf128_ps(acc, 1), _mm256_castps256_ps128(acc));
            r = _mm_add_ps(r, _mm_movehl_ps(r, r));
            r = _mm_add_ss(r, _mm_movehdup_ps(r));
            _mm_cvtss_f32(r)
        }
    }

    /// # Safety
    /// `o` and `v` have the same length, a multiple of 8.
    pub unsafe fn axpy_f16(o: &mut [f32], p: f32, v: &[f16]) {
        debug_assert_eq!(o.len(), v.len());
        unsafe {
            let pv = _mm256_set1_ps(p);
            for i in (0..v.len()).step_by(8) {
                let vv = _mm256_cvtph_ps(_mm_loadu_si128(v.as_ptr().add(i) as *const __m128i));
                let at = o.as_mut_ptr().add(i);
                // Multiply, then add (no fused multiply-add): bit for bit the scalar loop.
                _mm256_storeu_ps(
                    at,
                    _mm256_add_ps(_mm256_loadu_ps(at), _mm256_mul_ps(pv, vv)),
                );
            }
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::llm::kv::{KvCache, KvShape};

    fn rand(n: usize, seed: &mut u64) -> Vec<f32> {
        (0..n)
            .map(|_| {
                *seed = seed
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                ((*seed >> 33) as f32 / (1u64 << 31) as f32) * 4.0 - 2.0
            })
            .collect()
    }

    /// Both backends against an f64 reference computed from the f16-rounded cache, for GQA
    /// with a cached prefix, lengths that are not multiples of the block size, sliding windows
    /// that start inside a block, and capture.
    #[test]
    fn backends_match_an_f64_reference_with_gqa_and_cached_prefix() {
        let (n_head, n_kv, hd, bs) = (6, 2, 64, 16);
        let shape = KvShape {
            n_layer: 1,
            n_kv_head: n_kv,
            head_dim: hd,
            block_size: bs,
        };
        let mut seed = 11;
        let cases = [
            (0, 1, None),
            (0, 37, None),
            (45, 1, None),
            (45, 20, None),
            (0, 37, Some(16)),
            (45, 1, Some(7)),
            (45, 20, Some(33)),
        ];
        for (cached, n_q, window) in cases {
            let total = cached + n_q;
            let mut cache = KvCache::new(shape, 16);
            let (seq, _) = cache.begin(&[]);
            cache.reserve(seq, total).unwrap();
            let k = rand(total * n_kv * hd, &mut seed);
            let v = rand(total * n_kv * hd, &mut seed);
            for p in 0..total {
                let at = p * n_kv * hd..(p + 1) * n_kv * hd;
                cache.write(0, cache.slot(seq, p), &k[at.clone()], &v[at]);
            }
            let q = rand(n_q * n_head * hd, &mut seed);
            let r16 = |x: f32| f16::from_f32(x).to_f32() as f64;
            let mut expected = vec![0f64; q.len()];
            for i in 0..n_q {
                for h in 0..n_head {
                    let kvh = h / (n_head / n_kv);
                    let qi = &q[(i * n_head + h) * hd..][..hd];
                    let keys = cached + i + 1;
                    let first = window.map_or(0, |w: usize| keys.saturating_sub(w));
                    let s: Vec<f64> = (first..keys)
                        .map(|j| {
                            let kj = &k[(j * n_kv + kvh) * hd..][..hd];
                            qi.iter()
                                .zip(kj)
                                .map(|(a, b)| *a as f64 * r16(*b))
                                .sum::<f64>()
                                / (hd as f64).sqrt()
                        })
                        .collect();
                    let max = s.iter().cloned().fold(f64::MIN, f64::max);
                    let sum: f64 = s.iter().map(|x| (x - max).exp()).sum();
                    for (j, sj) in (first..keys).zip(&s) {
                        let p = (sj - max).exp() / sum;
                        let vj = &v[(j * n_kv + kvh) * hd..][..hd];
                        for d in 0..hd {
                            expected[(i * n_head + h) * hd + d] += p * r16(vj[d]);
                        }
                    }
                }
            }
            let backends: [&dyn AttentionBackend; 2] = [&CpuAttention, &FusedCpuAttention];
            for backend in backends {
                let input = AttnInput {
                    kv: cache.layer(0),
                    table: cache.table(seq),
                    q: &q,
                    n_head,
                    start: cached,
                    window,
                    capture: &[1],
                };
                let mut out = vec![f32::NAN; q.len()];
                let probs = backend.attend(&input, &mut out);
                let err: f64 = out
                    .iter()
                    .zip(&expected)
                    .map(|(a, b)| (*a as f64 - b).powi(2))
                    .sum::<f64>()
                    .sqrt();
                let norm: f64 = expected.iter().map(|b| b * b).sum::<f64>().sqrt();
                assert!(
                    err / norm < 2e-3,
                    "{}: relative error {} (cached {cached}, {n_q} queries, window {window:?})",
                    backend.name(),
                    err / norm
                );
                assert_eq!(probs.len(), n_q, "one captured row per query for head 1");
                for row in &probs {
                    assert_eq!(row.probs.len(), row.pos + 1);
                    assert!((row.probs.iter().sum::<f32>() - 1.0).abs() < 1e-3);
                    let outside = window.map_or(0, |w| (row.pos + 1).saturating_sub(w));
                    assert!(row.probs[..outside].iter().all(|&p| p == 0.0));
                }
            }
        }
    }
}
