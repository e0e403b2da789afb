//! Our quantized matrix multiply for the GGUF block formats small models ship in (Q4_0, Q4_1,
//! Q8_0). It follows ggml's arithmetic (activations quantized to Q8 blocks with round-to-even,
//! integer block dots, per-block f32 scales) so our logits agree with llama.cpp's, and it runs up
//! to eight activation rows per pass over each weight block, so prefill and batched decoding read
//! the weights once per step instead of once per row (candle's CPU kernel loops over rows).
//!
//! Weights are repacked at load from GGUF's interleaved blocks into separate arrays of scales
//! and quants: eight block scales then convert in one instruction, and the inner loop is only
//! the integer dot and one multiply-add per block.

use half::f16;
use rayon::prelude::*;

/// Values per quantization block.
pub const QK: usize = 32;
/// Activation rows handled per pass over the weights.
const ROWS_PER_PASS: usize = 8;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QKind {
    Q4_0,
    Q4_1,
    Q8_0,
}

impl QKind {
    /// Bytes of quants per block.
    fn qs_len(self) -> usize {
        match self {
            QKind::Q4_0 | QKind::Q4_1 => QK / 2,
            QKind::Q8_0 => QK,
        }
    }

    /// Bytes of one block in a GGUF file.
    fn gguf_block(self) -> usize {
        match self {
            QKind::Q4_0 => 18,
            QKind::Q4_1 => 20,
            QKind::Q8_0 => 34,
        }
    }
}

/// A quantized weight matrix `rows x cols` (output features x input features), repacked.
#[derive(Clone)]
pub struct QWeight {
    pub rows: usize,
    pub cols: usize,
    kind: QKind,
    /// Block scales, row-major.
    d: Vec<f16>,
    /// Block minimums (Q4_1 only).
    m: Vec<f16>,
    /// Quants: 16 bytes of nibbles (low nibble = value j, high = value j + 16) or 32 i8.
    qs: Vec<u8>,
}

/// Activation rows quantized to Q8 blocks, scales as f32 (rounded through f16 as ggml stores
/// them).
struct Acts {
    cols: usize,
    d: Vec<f32>,
    /// `d * sum(q)` per block (Q8_1, for Q4_1's minimum term).
    s: Vec<f32>,
    qs: Vec<i8>,
}

impl Acts {
    fn row(&self, i: usize) -> ActRow<'_> {
        let nb = self.cols / QK;
        let b = i * nb..(i + 1) * nb;
        ActRow {
            d: &self.d[b.clone()],
            s: self.s.get(b.clone()).unwrap_or(&[]),
            qs: &self.qs[b.start * QK..b.end * QK],
        }
    }
}

/// One activation row's blocks.
#[derive(Clone, Copy)]
pub struct ActRow<'a> {
    d: &'a [f32],
    s: &'a [f32],
    qs: &'a [i8],
}

/// One weight row's blocks.
#[derive(Clone, Copy)]
pub struct WeightRow<'a> {
    kind: QKind,
    d: &'a [f16],
    m: &'a [f16],
    qs: &'a [u8],
}

impl QWeight {
    /// From the raw GGUF bytes; `None` for a type these kernels do not cover.
    pub fn from_bytes(
        dtype: candle_core::quantized::GgmlDType,
        rows: usize,
        cols: usize,
        bytes: &[u8],
    ) -> Option<Self> {
        use candle_core::quantized::GgmlDType as T;
        let kind = match dtype {
            T::Q4_0 => QKind::Q4_0,
            T::Q4_1 => QKind::Q4_1,
            T::Q8_0 => QKind::Q8_0,
            _ => return None,
        };
        let n = rows * cols / QK;
        if !cols.is_multiple_of(QK) || bytes.len() != n * kind.gguf_block() {
            return None;
        }
        let half = |b: &[u8]| f16::from_le_bytes([b[0], b[1]]);
        let mut w = QWeight {
            rows,
            cols,
            kind,
            d: Vec::with_capacity(n),
            m: Vec::new(),
            qs: Vec::with_capacity(n * kind.qs_len()),
        };
        for block in bytes.chunks_exact(kind.gguf_block()) {
            w.d.push(half(block));
            let quants = if kind == QKind::Q4_1 {
                w.m.push(half(&block[2..]));
                &block[4..]
            } else {
                &block[2..]
            };
            w.qs.extend_from_slice(quants);
        }
        Some(w)
    }

    /// Stack weights with the same type and width into one (rows concatenated), so that the
    /// Q, K and V projections (or gate and up) run as one matrix multiply.
    pub fn stack(parts: &[&QWeight]) -> Option<QWeight> {
        let first = parts.first()?;
        if parts
            .iter()
            .any(|p| p.cols != first.cols || p.kind != first.kind)
        {
            return None;
        }
        Some(QWeight {
            rows: parts.iter().map(|p| p.rows).sum(),
            cols: first.cols,
            kind: first.kind,
            d: parts.iter().flat_map(|p| p.d.iter().copied()).collect(),
            m: parts.iter().flat_map(|p| p.m.iter().copied()).collect(),
            qs: parts.iter().flat_map(|p| p.qs.iter().copied()).collect(),
        })
    }

    pub fn bytes(&self) -> usize {
        (self.d.len() + self.m.len()) * 2 + self.qs.len()
    }

    fn weight_row(&self, r: usize) -> WeightRow<'_> {
        let nb = self.cols / QK;
        let b = r * nb..(r + 1) * nb;
        WeightRow {
            kind: self.kind,
            d: &self.d[b.clone()],
            m: self.m.get(b.clone()).unwrap_or(&[]),
            qs: &self.qs[b.start * self.kind.qs_len()..b.end * self.kind.qs_len()],
        }
    }

    /// One weight row as f32 (the embedding lookup).
    pub fn row(&self, r: usize, out: &mut [f32]) {
        let w = self.weight_row(r);
        let ql = self.kind.qs_len();
        for (b, o) in out.chunks_exact_mut(QK).enumerate() {
            let d = w.d[b].to_f32();
            let q = &w.qs[b * ql..(b + 1) * ql];
            for (j, o) in o.iter_mut().enumerate() {
                *o = match self.kind {
                    QKind::Q8_0 => q[j] as i8 as f32 * d,
                    QKind::Q4_0 => (nibble(q, j) as i32 - 8) as f32 * d,
                    QKind::Q4_1 => nibble(q, j) as f32 * d + w.m[b].to_f32(),
                };
            }
        }
    }

    /// `out[m x rows] = x[m x cols] * self^T`, on the current rayon pool.
    pub fn matmul(&self, x: &[f32], m: usize, out: &mut [f32]) {
        assert_eq!(x.len(), m * self.cols, "activation shape");
        assert_eq!(out.len(), m * self.rows, "output shape");
        let acts = quantize(x, self.cols, self.kind == QKind::Q4_1);
        // Enough chunks for every thread to take several (a busy core then just takes fewer),
        // each a few KiB of weights that stay in L1 while all activation rows pass over them.
        let threads = rayon::current_num_threads().max(1);
        let chunk = self.rows.div_ceil(threads * 8).clamp(8, 64);
        let out_ptr = SendPtr(out.as_mut_ptr());
        let kernel = kernels::select();
        (0..self.rows.div_ceil(chunk))
            .into_par_iter()
            .for_each(|c| {
                let rows = c * chunk..((c + 1) * chunk).min(self.rows);
                for first in (0..m).step_by(ROWS_PER_PASS) {
                    let take = (m - first).min(ROWS_PER_PASS);
                    let ys: [ActRow<'_>; ROWS_PER_PASS] =
                        std::array::from_fn(|j| acts.row(first + j.min(take - 1)));
                    for r in rows.clone() {
                        let dots = kernel(self.weight_row(r), &ys[..take]);
                        for (j, d) in dots.iter().take(take).enumerate() {
                            // SAFETY: each (row first + j, column r) is written by exactly one task.
                            unsafe { *out_ptr.at((first + j) * self.rows + r) = *d };
                        }
                    }
                }
            });
    }
}

#[inline]
fn nibble(qs: &[u8], j: usize) -> u8 {
    if j < QK / 2 {
        qs[j] & 0x0F
    } else {
        qs[j - QK / 2] >> 4
    }
}

#[derive(Clone, Copy)]
struct SendPtr(*mut f32);
// SAFETY: used only to write disjoint elements from rayon tasks that all end before `matmul` returns.
unsafe impl Send for SendPtr {}
unsafe impl Sync for SendPtr {}
impl SendPtr {
    /// # Safety
    /// `i` must be in bounds and written by one task only.
    unsafe fn at(self, i: usize) -> *mut f32 {
        unsafe { self.0.add(i) }
    }
}

/// ggml's `quantize_row_q8_0` / `_q8_1` (AVX path: multiply by 127/amax, round half to even;
/// `s = d * sum(q)`), for every row of `x`.
fn quantize(x: &[f32], cols: usize, with_sums: bool) -> Acts {
    let n = x.len() / QK;
    let mut acts = Acts {
        cols,
        d: Vec::with_capacity(n),
        s: Vec::with_capacity(if with_sums { n } else { 0 }),
        qs: Vec::with_capacity(x.len()),
    };
    for block in x.chunks_exact(QK) {
        let amax = block.iter().fold(0f32, |a, v| a.max(v.abs()));
        let d = amax / 127.0;
        let id = if amax != 0.0 { 127.0 / amax } else { 0.0 };
        let mut sum = 0i32;
        for &v in block {
            let q = (v * id).round_ties_even() as i8;
            sum += q as i32;
            acts.qs.push(q);
        }
        acts.d.push(f16::from_f32(d).to_f32());
        if with_sums {
            acts.s.push(f16::from_f32(d * sum as f32).to_f32());
        }
    }
    acts
}

/// Block dot products of one weight row with up to eight activation rows. The AVX2 kernels
/// follow ggml's (integer dot per block, f32 multiply-add across blocks); with AVX-512 VNNI the
/// integer dot is one instruction. The portable kernel gives the same integer sums and serves
/// other CPUs, and the tests as the oracle.
pub mod kernels {
    use super::*;

    pub type Kernel = fn(WeightRow<'_>, &[ActRow<'_>]) -> [f32; ROWS_PER_PASS];

    /// The fastest kernel this CPU runs.
    pub fn select() -> Kernel {
        #[cfg(all(
            target_arch = "x86_64",
            target_feature = "avx2",
            target_feature = "fma"
        ))]
        {
            if std::arch::is_x86_feature_detected!("avx512vnni")
                && std::arch::is_x86_feature_detected!("avx512vl")
            {
                return avx2::dot_vnni;
            }
            avx2::dot_avx2
        }
        #[cfg(not(all(
            target_arch = "x86_64",
            target_feature = "avx2",
            target_feature = "fma"
        )))]
        portable
    }

    /// Every kernel this CPU can run, by name (the tests check each against `portable`).
    pub fn available() -> Vec<(&'static str, Kernel)> {
        #[allow(unused_mut)]
        let mut all: Vec<(&'static str, Kernel)> = vec![("portable", portable)];
        #[cfg(all(
            target_arch = "x86_64",
            target_feature = "avx2",
            target_feature = "fma"
        ))]
        {
            all.push(("avx2", avx2::dot_avx2));
            if std::ptr::fn_addr_eq(select(), avx2::dot_vnni as Kernel) {
                all.push(("avx512-vnni", avx2::dot_vnni));
            }
        }
        all
    }

    pub fn portable(w: WeightRow<'_>, ys: &[ActRow<'_>]) -> [f32; ROWS_PER_PASS] {
        let ql = w.kind.qs_len();
        let mut out = [0f32; ROWS_PER_PASS];
        for (o, y) in out.iter_mut().zip(ys) {
            for b in 0..w.d.len() {
                let q = &w.qs[b * ql..(b + 1) * ql];
                let sum: i32 = (0..QK)
                    .map(|j| {
                        let x = match w.kind {
                            QKind::Q8_0 => q[j] as i8 as i32,
                            QKind::Q4_0 => nibble(q, j) as i32 - 8,
                            QKind::Q4_1 => nibble(q, j) as i32,
                        };
                        x * y.qs[b * QK + j] as i32
                    })
                    .sum();
                *o += w.d[b].to_f32() * y.d[b] * sum as f32;
                if w.kind == QKind::Q4_1 {
                    *o += w.m[b].to_f32() * y.s[b];
                }
            }
        }
        out
    }

    #[cfg(all(
        target_arch = "x86_64",
        target_feature = "avx2",
        target_feature = "fma"
    ))]
    mod avx2 {
        use super::super::*;
        use std::arch::x86_64::*;

        pub fn dot_avx2(w: WeightRow<'_>, ys: &[ActRow<'_>]) -> [f32; ROWS_PER_PASS] {
            // SAFETY: AVX2 and FMA are compiled in (checked by the cfg above).
            unsafe { dispatch::<false>(w, ys) }
        }

        pub fn dot_vnni(w: WeightRow<'_>, ys: &[ActRow<'_>]) -> [f32; ROWS_PER_PASS] {
            // SAFETY: `select` returns this only when the CPU has AVX-512 VNNI and VL.
            unsafe { dispatch_vnni(w, ys) }
        }

        #[target_feature(enable = "avx512vnni,avx512vl")]
        unsafe fn dispatch_vnni(w: WeightRow<'_>, ys: &[ActRow<'_>]) -> [f32; ROWS_PER_PASS] {
            unsafe { dispatch::<true>(w, ys) }
        }

        #[inline(always)]
        unsafe fn dispatch<const VNNI: bool>(
            w: WeightRow<'_>,
            ys: &[ActRow<'_>],
        ) -> [f32; ROWS_PER_PASS] {
            let mut out = [0f32; ROWS_PER_PASS];
            unsafe {
                macro_rules! run {
                    ($r:literal) => {
                        out[..$r].copy_from_slice(&dot::<$r, VNNI>(w, ys))
                    };
                }
                match ys.len() {
                    1 => run!(1),
                    2 => run!(2),
                    3 => run!(3),
                    4 => run!(4),
                    5 => run!(5),
                    6 => run!(6),
                    7 => run!(7),
                    _ => run!(8),
                }
            }
            out
        }

        #[inline(always)]
        unsafe fn hsum(x: __m256) -> f32 {
            unsafe {
                let mut r = _mm_add_ps(_mm256_extractf128_ps(x, 1), _mm256_castps256_ps128(x));
                r = _mm_add_ps(r, _mm_movehl_ps(r, r));
                r = _mm_add_ss(r, _mm_movehdup_ps(r));
                _mm_cvtss_f32(r)
            }
        }

        /// Sum of u8 x i8 products as 8 f32 lanes.
        #[inline(always)]
        unsafe fn dot_u8_i8<const VNNI: bool>(x: __m256i, y: __m256i) -> __m256 {
            unsafe {
                let sums = if VNNI {
                    _mm256_dpbusd_epi32(_mm256_setzero_si256(), x, y)
                } else {
                    _mm256_madd_epi16(_mm256_maddubs_epi16(x, y), _mm256_set1_epi16(1))
                };
                _mm256_cvtepi32_ps(sums)
            }
        }

        /// Weight block `b` as 32 bytes; signed kinds come with their sign moved onto `y`.
        #[inline(always)]
        unsafe fn load_weights(w: &WeightRow<'_>, b: usize) -> __m256i {
            unsafe {
                match w.kind {
                    QKind::Q8_0 => _mm256_loadu_si256(w.qs.as_ptr().add(b * QK) as *const __m256i),
                    QKind::Q4_0 | QKind::Q4_1 => {
                        let t = _mm_loadu_si128(w.qs.as_ptr().add(b * QK / 2) as *const __m128i);
                        let both = _mm256_set_m128i(_mm_srli_epi16(t, 4), t);
                        let q = _mm256_and_si256(both, _mm256_set1_epi8(0x0F));
                        if w.kind == QKind::Q4_0 {
                            _mm256_sub_epi8(q, _mm256_set1_epi8(8))
                        } else {
                            q
                        }
                    }
                }
            }
        }

        /// The integer dot of a weight block with an activation block, as f32 lanes.
        #[inline(always)]
        unsafe fn block_dot<const VNNI: bool>(kind: QKind, x: __m256i, y: *const i8) -> __m256 {
            unsafe {
                let y = _mm256_loadu_si256(y as *const __m256i);
                match kind {
                    QKind::Q4_1 => dot_u8_i8::<VNNI>(x, y),
                    // Signed x signed: |x| as unsigned, x's sign moved onto y.
                    _ => dot_u8_i8::<VNNI>(_mm256_sign_epi8(x, x), _mm256_sign_epi8(y, x)),
                }
            }
        }

        // Index loops: `j` and `r` address several arrays at once, and R is a constant the
        // compiler unrolls.
        #[allow(clippy::needless_range_loop)]
        #[inline(always)]
        unsafe fn dot<const R: usize, const VNNI: bool>(
            w: WeightRow<'_>,
            ys: &[ActRow<'_>],
        ) -> [f32; R] {
            unsafe {
                let nb = w.d.len();
                let mut acc = [_mm256_setzero_ps(); R];
                let mut scales = [[0f32; 8]; R];
                let mut b = 0;
                while b + 8 <= nb {
                    // Eight weight scales at once, times each row's eight activation scales.
                    let wd =
                        _mm256_cvtph_ps(_mm_loadu_si128(w.d.as_ptr().add(b) as *const __m128i));
                    for r in 0..R {
                        let yd = _mm256_loadu_ps(ys[r].d.as_ptr().add(b));
                        _mm256_storeu_ps(scales[r].as_mut_ptr(), _mm256_mul_ps(wd, yd));
                    }
                    for j in 0..8 {
                        let x = load_weights(&w, b + j);
                        for r in 0..R {
                            let p =
                                block_dot::<VNNI>(w.kind, x, ys[r].qs.as_ptr().add((b + j) * QK));
                            acc[r] = _mm256_fmadd_ps(_mm256_set1_ps(scales[r][j]), p, acc[r]);
                        }
                    }
                    b += 8;
                }
                for b in b..nb {
                    let x = load_weights(&w, b);
                    let wd = w.d[b].to_f32();
                    for r in 0..R {
                        let p = block_dot::<VNNI>(w.kind, x, ys[r].qs.as_ptr().add(b * QK));
                        acc[r] = _mm256_fmadd_ps(_mm256_set1_ps(wd * ys[r].d[b]), p, acc[r]);
                    }
                }
                std::array::from_fn(|r| hsum(acc[r]) + minimums(&w, &ys[r]))
            }
        }

        /// Q4_1's minimum term: sum over blocks of `m * s` (zero for other kinds), added in
        /// block order as ggml does: the terms are large and cancel, so the order shows.
        #[inline(always)]
        unsafe fn minimums(w: &WeightRow<'_>, y: &ActRow<'_>) -> f32 {
            if w.kind != QKind::Q4_1 {
                return 0.0;
            }
            let nb = w.m.len();
            let mut sum = 0f32;
            let mut m = [0f32; 8];
            let mut b = 0;
            while b + 8 <= nb {
                // SAFETY: b + 8 <= nb keeps the load in bounds.
                unsafe {
                    let v = _mm256_cvtph_ps(_mm_loadu_si128(w.m.as_ptr().add(b) as *const __m128i));
                    _mm256_storeu_ps(m.as_mut_ptr(), v);
                }
                for (j, m) in m.iter().enumerate() {
                    sum += m * y.s[b + j];
                }
                b += 8;
            }
            for b in b..nb {
                sum += w.m[b].to_f32() * y.s[b];
            }
            sum
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rand_vec(n: usize, seed: u64) -> Vec<f32> {
        let mut s = seed;
        (0..n)
            .map(|_| {
                s = s
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                ((s >> 33) as f32 / (1u64 << 31) as f32) * 2.0 - 1.0
            })
            .collect()
    }

    fn weights(dtype: candle_core::quantized::GgmlDType, rows: usize, cols: usize) -> QWeight {
        let t = candle_core::Tensor::from_vec(
            rand_vec(rows * cols, rows as u64 ^ 0x5eed),
            (rows, cols),
            &candle_core::Device::Cpu,
        )
        .unwrap();
        let q = candle_core::quantized::QTensor::quantize(&t, dtype).unwrap();
        QWeight::from_bytes(dtype, rows, cols, &q.data().unwrap()).unwrap()
    }

    /// The SIMD kernels agree with the portable one for every row count of a pass, and the
    /// matmul agrees with a float dot of the dequantized weights.
    #[test]
    fn kernels_agree_with_portable_and_dequantized_reference() {
        use candle_core::quantized::GgmlDType as T;
        for dtype in [T::Q4_0, T::Q4_1, T::Q8_0] {
            // 13 blocks per row: one vector group of 8 and a tail of 5.
            let (rows, cols, m) = (37, 13 * QK, 11);
            let w = weights(dtype, rows, cols);
            let x = rand_vec(m * cols, 7);
            let mut out = vec![f32::NAN; m * rows];
            w.matmul(&x, m, &mut out);
            let mut wr = vec![0f32; cols];
            for r in 0..rows {
                w.row(r, &mut wr);
                for i in 0..m {
                    let xi = &x[i * cols..(i + 1) * cols];
                    let exact: f32 = wr.iter().zip(xi).map(|(a, b)| a * b).sum();
                    let norm = |v: &[f32]| v.iter().map(|a| a * a).sum::<f32>().sqrt();
                    // Q8 activations carry about 1/254 of each block's largest value as error.
                    let tolerance = 0.01 * norm(&wr) * norm(xi);
                    let got = out[i * rows + r];
                    assert!(
                        (got - exact).abs() < tolerance,
                        "{dtype:?} {got} vs {exact}"
                    );
                }
            }
            let acts = quantize(&x, cols, dtype == T::Q4_1);
            for take in 1..=ROWS_PER_PASS {
                let ys: Vec<ActRow<'_>> = (0..take).map(|i| acts.row(i)).collect();
                let slow = kernels::portable(w.weight_row(3), &ys);
                for (name, kernel) in kernels::available() {
                    let fast = kernel(w.weight_row(3), &ys);
                    for (f, s) in fast.iter().zip(slow).take(take) {
                        assert!(
                            (f - s).abs() <= 1e-4 * (1.0 + s.abs()),
                            "{name} {dtype:?}: {f} vs {s}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn q8_quantization_rounds_half_to_even_like_ggml() {
        // amax 127 makes the multiplier exactly 1, so 2.5 must round to 2 and 3.5 to 4.
        let mut x = [0f32; QK];
        x[0] = 127.0;
        x[1] = 2.5;
        x[2] = 3.5;
        x[3] = -2.5;
        let acts = quantize(&x, QK, true);
        assert_eq!(&acts.qs[..4], &[127, 2, 4, -2]);
        assert_eq!(acts.s[0], 131.0);
    }
}
