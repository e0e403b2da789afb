//! Our quantized matrix multiply for the GGUF block formats small models ship in (Q4_0, Q4_1,
//! Q8_0). It follows ggml's arithmetic (activations quantized to Q8 blocks with round-to-even,
//! integer block dots, per-block f32 scales) so our logits agree with llama.cpp's, and it runs
//! several activation rows per pass over each weight block, so prefill and batched decoding
//! read the weights once per step instead of once per row (candle's CPU kernel loops rows).

use half::f16;
use rayon::prelude::*;

pub const QK: usize = 32;

#[derive(Clone, Copy, Debug)]
#[repr(C)]
pub struct BlockQ4_0 {
    d: f16,
    qs: [u8; QK / 2],
}

#[derive(Clone, Copy, Debug)]
#[repr(C)]
pub struct BlockQ4_1 {
    d: f16,
    m: f16,
    qs: [u8; QK / 2],
}

#[derive(Clone, Copy, Debug)]
#[repr(C)]
pub struct BlockQ8_0 {
    d: f16,
    qs: [i8; QK],
}

#[derive(Clone, Copy, Debug)]
#[repr(C)]
pub struct BlockQ8_1 {
    d: f16,
    s: f16,
    qs: [i8; QK],
}

const _: () = assert!(std::mem::size_of::<BlockQ4_0>() == 18);
const _: () = assert!(std::mem::size_of::<BlockQ4_1>() == 20);
const _: () = assert!(std::mem::size_of::<BlockQ8_0>() == 34);
const _: () = assert!(std::mem::size_of::<BlockQ8_1>() == 36);

/// Weight blocks, row-major: `rows` rows of `cols / 32` blocks.
#[derive(Clone)]
pub enum Blocks {
    Q4_0(Vec<BlockQ4_0>),
    Q4_1(Vec<BlockQ4_1>),
    Q8_0(Vec<BlockQ8_0>),
}

/// A quantized weight matrix `rows x cols` (output features x input features).
#[derive(Clone)]
pub struct QWeight {
    pub rows: usize,
    pub cols: usize,
    blocks: Blocks,
}

/// Activations quantized for one weight type.
enum Acts {
    Q8_0(Vec<BlockQ8_0>),
    Q8_1(Vec<BlockQ8_1>),
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
        if !cols.is_multiple_of(QK) {
            return None;
        }
        let n = rows * cols / QK;
        let blocks = match dtype {
            T::Q4_0 => Blocks::Q4_0(cast_blocks(bytes, n)?),
            T::Q4_1 => Blocks::Q4_1(cast_blocks(bytes, n)?),
            T::Q8_0 => Blocks::Q8_0(cast_blocks(bytes, n)?),
            _ => return None,
        };
        Some(Self { rows, cols, blocks })
    }

    /// Stack weights with the same type and width into one (rows concatenated), so that the
    /// Q, K and V projections (or gate and up) run as one matrix multiply.
    pub fn stack(parts: &[&QWeight]) -> Option<QWeight> {
        let first = parts.first()?;
        let mut blocks = first.blocks.clone();
        for p in &parts[1..] {
            if p.cols != first.cols {
                return None;
            }
            match (&mut blocks, &p.blocks) {
                (Blocks::Q4_0(a), Blocks::Q4_0(b)) => a.extend_from_slice(b),
                (Blocks::Q4_1(a), Blocks::Q4_1(b)) => a.extend_from_slice(b),
                (Blocks::Q8_0(a), Blocks::Q8_0(b)) => a.extend_from_slice(b),
                _ => return None,
            }
        }
        Some(QWeight {
            rows: parts.iter().map(|p| p.rows).sum(),
            cols: first.cols,
            blocks,
        })
    }

    pub fn bytes(&self) -> usize {
        match &self.blocks {
            Blocks::Q4_0(b) => std::mem::size_of_val(b.as_slice()),
            Blocks::Q4_1(b) => std::mem::size_of_val(b.as_slice()),
            Blocks::Q8_0(b) => std::mem::size_of_val(b.as_slice()),
        }
    }

    /// One weight row as f32 (the embedding lookup).
    pub fn row(&self, r: usize, out: &mut [f32]) {
        let nb = self.cols / QK;
        let range = r * nb..(r + 1) * nb;
        for (i, o) in out.chunks_exact_mut(QK).enumerate() {
            let b = range.start + i;
            match &self.blocks {
                Blocks::Q4_0(w) => dequant_q4_0(&w[b], o),
                Blocks::Q4_1(w) => dequant_q4_1(&w[b], o),
                Blocks::Q8_0(w) => {
                    let d = w[b].d.to_f32();
                    o.iter_mut()
                        .zip(w[b].qs)
                        .for_each(|(o, q)| *o = q as f32 * d);
                }
            }
        }
    }

    /// `out[m x rows] = x[m x cols] * self^T`, on the current rayon pool.
    pub fn matmul(&self, x: &[f32], m: usize, out: &mut [f32]) {
        assert_eq!(x.len(), m * self.cols, "activation shape");
        assert_eq!(out.len(), m * self.rows, "output shape");
        let acts = match self.blocks {
            Blocks::Q4_1(_) => Acts::Q8_1(quantize_rows(x, self.cols, quantize_q8_1)),
            _ => Acts::Q8_0(quantize_rows(x, self.cols, quantize_q8_0)),
        };
        let nb = self.cols / QK;
        // Enough chunks for every thread to take several (a busy core then just takes fewer),
        // each a few KiB of weights that stay in L1 while all activation rows pass over them.
        let threads = rayon::current_num_threads().max(1);
        let chunk = self.rows.div_ceil(threads * 8).clamp(8, 64);
        let out_ptr = SendPtr(out.as_mut_ptr());
        (0..self.rows.div_ceil(chunk))
            .into_par_iter()
            .for_each(|c| {
                let rows = c * chunk..((c + 1) * chunk).min(self.rows);
                let mut i = 0;
                while i < m {
                    let take = (m - i).min(4);
                    for r in rows.clone() {
                        let w = r * nb..(r + 1) * nb;
                        let dots = self.dot_rows(w, &acts, i, take, nb);
                        for (j, d) in dots.iter().take(take).enumerate() {
                            // SAFETY: each (row i + j, column r) is written by exactly one task.
                            unsafe { *out_ptr.at((i + j) * self.rows + r) = *d };
                        }
                    }
                    i += take;
                }
            });
    }

    /// Dot products of weight row blocks `w` with activation rows `first..first + take`.
    fn dot_rows(
        &self,
        w: std::ops::Range<usize>,
        acts: &Acts,
        first: usize,
        take: usize,
        nb: usize,
    ) -> [f32; 4] {
        let mut out = [0f32; 4];
        match take {
            1 => out[..1].copy_from_slice(&self.dot_n::<1>(w, acts, first, nb)),
            2 => out[..2].copy_from_slice(&self.dot_n::<2>(w, acts, first, nb)),
            3 => out[..3].copy_from_slice(&self.dot_n::<3>(w, acts, first, nb)),
            _ => out.copy_from_slice(&self.dot_n::<4>(w, acts, first, nb)),
        }
        out
    }

    fn dot_n<const R: usize>(
        &self,
        w: std::ops::Range<usize>,
        acts: &Acts,
        first: usize,
        nb: usize,
    ) -> [f32; R] {
        let at = |j: usize| (first + j) * nb..(first + j + 1) * nb;
        match (&self.blocks, acts) {
            (Blocks::Q4_1(wb), Acts::Q8_1(a)) => {
                kernels::dot_q4_1(&wb[w], std::array::from_fn(|j| &a[at(j)]))
            }
            (Blocks::Q4_0(wb), Acts::Q8_0(a)) => {
                kernels::dot_q4_0(&wb[w], std::array::from_fn(|j| &a[at(j)]))
            }
            (Blocks::Q8_0(wb), Acts::Q8_0(a)) => {
                kernels::dot_q8_0(&wb[w], std::array::from_fn(|j| &a[at(j)]))
            }
            _ => unreachable!("activations are quantized for the weight type"),
        }
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

fn cast_blocks<B: Copy>(bytes: &[u8], n: usize) -> Option<Vec<B>> {
    if bytes.len() != n * std::mem::size_of::<B>() {
        return None;
    }
    let mut v: Vec<B> = Vec::with_capacity(n);
    // SAFETY: the block types are plain old data (f16/u8/i8 fields, no padding, any bit
    // pattern valid) and the length was checked above.
    unsafe {
        std::ptr::copy_nonoverlapping(bytes.as_ptr(), v.as_mut_ptr() as *mut u8, bytes.len());
        v.set_len(n);
    }
    Some(v)
}

fn quantize_rows<B>(x: &[f32], cols: usize, f: fn(&[f32]) -> B) -> Vec<B> {
    x.chunks_exact(cols)
        .flat_map(|row| row.chunks_exact(QK).map(f))
        .collect()
}

/// ggml's `quantize_row_q8_0` (AVX path: multiply by 127/amax, round half to even).
pub fn quantize_q8_0(x: &[f32]) -> BlockQ8_0 {
    let (d, id) = q8_scale(x);
    let mut qs = [0i8; QK];
    qs.iter_mut()
        .zip(x)
        .for_each(|(q, &v)| *q = (v * id).round_ties_even() as i8);
    BlockQ8_0 {
        d: f16::from_f32(d),
        qs,
    }
}

/// ggml's `quantize_row_q8_1`: as Q8_0 plus `s = d * sum(q)`, used by the Q4_1 min term.
pub fn quantize_q8_1(x: &[f32]) -> BlockQ8_1 {
    let b = quantize_q8_0(x);
    let (d, _) = q8_scale(x);
    let sum: i32 = b.qs.iter().map(|&q| q as i32).sum();
    BlockQ8_1 {
        d: b.d,
        s: f16::from_f32(d * sum as f32),
        qs: b.qs,
    }
}

fn q8_scale(x: &[f32]) -> (f32, f32) {
    let amax = x.iter().fold(0f32, |a, v| a.max(v.abs()));
    let id = if amax != 0.0 { 127.0 / amax } else { 0.0 };
    (amax / 127.0, id)
}

fn dequant_q4_0(b: &BlockQ4_0, out: &mut [f32]) {
    let d = b.d.to_f32();
    for (j, &q) in b.qs.iter().enumerate() {
        out[j] = ((q & 0x0F) as i32 - 8) as f32 * d;
        out[j + QK / 2] = ((q >> 4) as i32 - 8) as f32 * d;
    }
}

fn dequant_q4_1(b: &BlockQ4_1, out: &mut [f32]) {
    let (d, m) = (b.d.to_f32(), b.m.to_f32());
    for (j, &q) in b.qs.iter().enumerate() {
        out[j] = (q & 0x0F) as f32 * d + m;
        out[j + QK / 2] = (q >> 4) as f32 * d + m;
    }
}

/// Block dot products of one weight row with four activation rows. The AVX2 versions follow
/// ggml's (integer dot per block, f32 fused multiply-add across blocks); the portable ones give
/// the same integer sums and are used where AVX2 is not compiled in, and in tests as the oracle.
pub mod kernels {
    use super::*;

    pub fn dot_q4_1<const R: usize>(w: &[BlockQ4_1], ys: [&[BlockQ8_1]; R]) -> [f32; R] {
        #[cfg(all(
            target_arch = "x86_64",
            target_feature = "avx2",
            target_feature = "fma"
        ))]
        // SAFETY: the target features are compiled in.
        unsafe {
            avx2::dot_q4_1(w, ys)
        }
        #[cfg(not(all(
            target_arch = "x86_64",
            target_feature = "avx2",
            target_feature = "fma"
        )))]
        portable::dot_q4_1(w, ys)
    }

    pub fn dot_q4_0<const R: usize>(w: &[BlockQ4_0], ys: [&[BlockQ8_0]; R]) -> [f32; R] {
        #[cfg(all(
            target_arch = "x86_64",
            target_feature = "avx2",
            target_feature = "fma"
        ))]
        // SAFETY: the target features are compiled in.
        unsafe {
            avx2::dot_q4_0(w, ys)
        }
        #[cfg(not(all(
            target_arch = "x86_64",
            target_feature = "avx2",
            target_feature = "fma"
        )))]
        portable::dot_q4_0(w, ys)
    }

    pub fn dot_q8_0<const R: usize>(w: &[BlockQ8_0], ys: [&[BlockQ8_0]; R]) -> [f32; R] {
        #[cfg(all(
            target_arch = "x86_64",
            target_feature = "avx2",
            target_feature = "fma"
        ))]
        // SAFETY: the target features are compiled in.
        unsafe {
            avx2::dot_q8_0(w, ys)
        }
        #[cfg(not(all(
            target_arch = "x86_64",
            target_feature = "avx2",
            target_feature = "fma"
        )))]
        portable::dot_q8_0(w, ys)
    }

    pub mod portable {
        use super::super::*;

        fn nibbles(qs: &[u8; QK / 2]) -> [i32; QK] {
            std::array::from_fn(|j| {
                let q = qs[j % (QK / 2)];
                (if j < QK / 2 { q & 0x0F } else { q >> 4 }) as i32
            })
        }

        fn idot(a: &[i32; QK], b: &[i8; QK]) -> i32 {
            a.iter().zip(b).map(|(&x, &y)| x * y as i32).sum()
        }

        pub fn dot_q4_1<const R: usize>(w: &[BlockQ4_1], ys: [&[BlockQ8_1]; R]) -> [f32; R] {
            std::array::from_fn(|r| {
                let mut acc = 0f32;
                for (x, y) in w.iter().zip(ys[r]) {
                    let s = idot(&nibbles(&x.qs), &y.qs) as f32;
                    acc += x.d.to_f32() * y.d.to_f32() * s + x.m.to_f32() * y.s.to_f32();
                }
                acc
            })
        }

        pub fn dot_q4_0<const R: usize>(w: &[BlockQ4_0], ys: [&[BlockQ8_0]; R]) -> [f32; R] {
            std::array::from_fn(|r| {
                let mut acc = 0f32;
                for (x, y) in w.iter().zip(ys[r]) {
                    let q = nibbles(&x.qs).map(|v| v - 8);
                    acc += x.d.to_f32() * y.d.to_f32() * idot(&q, &y.qs) as f32;
                }
                acc
            })
        }

        pub fn dot_q8_0<const R: usize>(w: &[BlockQ8_0], ys: [&[BlockQ8_0]; R]) -> [f32; R] {
            std::array::from_fn(|r| {
                let mut acc = 0f32;
                for (x, y) in w.iter().zip(ys[r]) {
                    let q = x.qs.map(|v| v as i32);
                    acc += x.d.to_f32() * y.d.to_f32() * idot(&q, &y.qs) as f32;
                }
                acc
            })
        }
    }

    #[cfg(all(
        target_arch = "x86_64",
        target_feature = "avx2",
        target_feature = "fma"
    ))]
    mod avx2 {
        use super::super::*;
        use std::arch::x86_64::*;

        #[inline(always)]
        unsafe fn hsum(x: __m256) -> f32 {
            unsafe {
                let mut r = _mm_add_ps(_mm256_extractf128_ps(x, 1), _mm256_castps256_ps128(x));
                r = _mm_add_ps(r, _mm_movehl_ps(r, r));
                r = _mm_add_ss(r, _mm_movehdup_ps(r));
                _mm_cvtss_f32(r)
            }
        }

        /// 32 unsigned 4-bit values: low nibbles first, then high nibbles (ggml's order).
        #[inline(always)]
        unsafe fn nibbles(qs: &[u8; QK / 2]) -> __m256i {
            unsafe {
                let t = _mm_loadu_si128(qs.as_ptr() as *const __m128i);
                let both = _mm256_set_m128i(_mm_srli_epi16(t, 4), t);
                _mm256_and_si256(both, _mm256_set1_epi8(0x0F))
            }
        }

        /// Sum of u8 x i8 products as 8 f32 lanes.
        #[inline(always)]
        unsafe fn dot_u8_i8(x: __m256i, y: __m256i) -> __m256 {
            unsafe {
                let p = _mm256_maddubs_epi16(x, y);
                _mm256_cvtepi32_ps(_mm256_madd_epi16(p, _mm256_set1_epi16(1)))
            }
        }

        /// Sum of i8 x i8 products: move x's sign onto y so maddubs sees |x| as unsigned.
        #[inline(always)]
        unsafe fn dot_i8_i8(x: __m256i, y: __m256i) -> __m256 {
            unsafe { dot_u8_i8(_mm256_sign_epi8(x, x), _mm256_sign_epi8(y, x)) }
        }

        #[inline(always)]
        unsafe fn load(qs: &[i8; QK]) -> __m256i {
            unsafe { _mm256_loadu_si256(qs.as_ptr() as *const __m256i) }
        }

        pub unsafe fn dot_q4_1<const R: usize>(w: &[BlockQ4_1], ys: [&[BlockQ8_1]; R]) -> [f32; R] {
            unsafe {
                let mut acc = [_mm256_setzero_ps(); R];
                let mut mins = [0f32; R];
                for (b, x) in w.iter().enumerate() {
                    let (d, m) = (x.d.to_f32(), x.m.to_f32());
                    let qx = nibbles(&x.qs);
                    for r in 0..R {
                        let y = ys[r].get_unchecked(b);
                        mins[r] += m * y.s.to_f32();
                        let scale = _mm256_set1_ps(d * y.d.to_f32());
                        acc[r] = _mm256_fmadd_ps(scale, dot_u8_i8(qx, load(&y.qs)), acc[r]);
                    }
                }
                std::array::from_fn(|r| hsum(acc[r]) + mins[r])
            }
        }

        pub unsafe fn dot_q4_0<const R: usize>(w: &[BlockQ4_0], ys: [&[BlockQ8_0]; R]) -> [f32; R] {
            unsafe {
                let mut acc = [_mm256_setzero_ps(); R];
                for (b, x) in w.iter().enumerate() {
                    let d = x.d.to_f32();
                    let qx = _mm256_sub_epi8(nibbles(&x.qs), _mm256_set1_epi8(8));
                    for r in 0..R {
                        let y = ys[r].get_unchecked(b);
                        let scale = _mm256_set1_ps(d * y.d.to_f32());
                        acc[r] = _mm256_fmadd_ps(scale, dot_i8_i8(qx, load(&y.qs)), acc[r]);
                    }
                }
                std::array::from_fn(|r| hsum(acc[r]))
            }
        }

        pub unsafe fn dot_q8_0<const R: usize>(w: &[BlockQ8_0], ys: [&[BlockQ8_0]; R]) -> [f32; R] {
            unsafe {
                let mut acc = [_mm256_setzero_ps(); R];
                for (b, x) in w.iter().enumerate() {
                    let d = x.d.to_f32();
                    let qx = load(&x.qs);
                    for r in 0..R {
                        let y = ys[r].get_unchecked(b);
                        let scale = _mm256_set1_ps(d * y.d.to_f32());
                        acc[r] = _mm256_fmadd_ps(scale, dot_i8_i8(qx, load(&y.qs)), acc[r]);
                    }
                }
                std::array::from_fn(|r| hsum(acc[r]))
            }
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

    /// The SIMD kernels and the portable ones agree, for every row count of a 4-row pass,
    /// and the matmul agrees with a float dot of the dequantized weights.
    #[test]
    fn kernels_agree_with_portable_and_dequantized_reference() {
        use candle_core::quantized::GgmlDType as T;
        for dtype in [T::Q4_0, T::Q4_1, T::Q8_0] {
            let (rows, cols, m) = (37, 256, 6);
            let w = weights(dtype, rows, cols);
            let x = rand_vec(m * cols, 7);
            let mut out = vec![f32::NAN; m * rows];
            w.matmul(&x, m, &mut out);
            let mut wr = vec![0f32; cols];
            for r in 0..rows {
                w.row(r, &mut wr);
                for i in 0..m {
                    let exact: f32 = wr.iter().zip(&x[i * cols..]).map(|(a, b)| a * b).sum();
                    let got = out[i * rows + r];
                    assert!(
                        (got - exact).abs() < 0.05 * (1.0 + exact.abs()),
                        "{dtype:?} {got} vs {exact}"
                    );
                }
            }
            let nb = cols / QK;
            let acts_1: Vec<BlockQ8_1> = quantize_rows(&x, cols, quantize_q8_1);
            let acts_0: Vec<BlockQ8_0> = quantize_rows(&x, cols, quantize_q8_0);
            let ys1 = std::array::from_fn(|j| &acts_1[j * nb..(j + 1) * nb]);
            let ys0 = std::array::from_fn(|j| &acts_0[j * nb..(j + 1) * nb]);
            let (fast, slow) = match &w.blocks {
                Blocks::Q4_1(b) => (
                    kernels::dot_q4_1::<4>(&b[..nb], ys1),
                    kernels::portable::dot_q4_1::<4>(&b[..nb], ys1),
                ),
                Blocks::Q4_0(b) => (
                    kernels::dot_q4_0::<4>(&b[..nb], ys0),
                    kernels::portable::dot_q4_0::<4>(&b[..nb], ys0),
                ),
                Blocks::Q8_0(b) => (
                    kernels::dot_q8_0::<4>(&b[..nb], ys0),
                    kernels::portable::dot_q8_0::<4>(&b[..nb], ys0),
                ),
            };
            for (f, s) in fast.iter().zip(slow) {
                assert!(
                    (f - s).abs() <= 1e-4 * (1.0 + s.abs()),
                    "{dtype:?}: {f} vs {s}"
                );
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
        let b = quantize_q8_1(&x);
        assert_eq!(&b.qs[..4], &[127, 2, 4, -2]);
        assert_eq!(b.s.to_f32(), 131.0);
    }
}
