//! Our quantized matrix multiply for the GGUF block formats small models ship in (Q4_0, Q4_1,
//! Q8_0). It follows ggml's arithmetic to the bit (activations quantized to Q8 blocks with
//! round-to-even, exact integer dots over groups of four values, one f32 accumulator per group
//! summed in ggml's order), so our logits are llama.cpp's; and it runs up to eight activation
//! rows per pass over each weight tile, so prefill and batched decoding read the weights once
//! per step instead of once per row (candle's CPU kernel loops over rows).
//!
//! Weights are repacked at load into tiles of sixteen rows: for each block, the scales of the
//! sixteen rows sit side by side, and so does each 4-byte group of their quants. One integer dot
//! of a quant group with four broadcast activation bytes then gives one lane per weight row: no
//! horizontal sums, and each scale multiply-add serves every row of the tile at once.

use half::f16;
use rayon::prelude::*;

/// Values per quantization block.
pub const QK: usize = 32;
/// Weight rows interleaved in one tile (one i32 lane of a 512-bit vector each).
const TILE: usize = 16;
/// Activation rows handled per pass over a tile, which stays in L1 meanwhile.
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

/// A quantized weight matrix `rows x cols` (output features x input features), repacked into
/// tiles of `TILE` rows (the last one padded with zero rows).
#[derive(Clone)]
pub struct QWeight {
    pub rows: usize,
    pub cols: usize,
    kind: QKind,
    /// Block scales, `[tile][block][row in tile]`.
    d: Vec<f16>,
    /// Block minimums (Q4_1 only), laid out like `d`.
    m: Vec<f16>,
    /// Quants, `[tile][block][group of 4 bytes][row in tile][4]`. A Q4 block is 16 bytes of
    /// nibbles (low nibble = value j, high = value j + 16); a Q8 block 32 i8.
    qs: Vec<u8>,
}

/// Activation rows quantized to Q8 blocks, scales as f32 (rounded through f16 as ggml stores
/// them).
struct Acts {
    cols: usize,
    d: Vec<f32>,
    /// `d * sum(q)` per block (Q8_1, for Q4_1's minimum term).
    s: Vec<f32>,
    /// `sum(q)` over each group of 4 values per block, exact (for the offsets of Q4_0 and
    /// Q8_0, which the kernels take per group).
    groups: Vec<[i32; 8]>,
    qs: Vec<i8>,
}

impl Acts {
    fn row(&self, i: usize) -> ActRow<'_> {
        let nb = self.cols / QK;
        let b = i * nb..(i + 1) * nb;
        ActRow {
            d: &self.d[b.clone()],
            s: self.s.get(b.clone()).unwrap_or(&[]),
            groups: &self.groups[b.clone()],
            qs: &self.qs[b.start * QK..b.end * QK],
        }
    }
}

/// One activation row's blocks.
#[derive(Clone, Copy)]
pub struct ActRow<'a> {
    d: &'a [f32],
    s: &'a [f32],
    groups: &'a [[i32; 8]],
    qs: &'a [i8],
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
        let nb = cols / QK;
        if !cols.is_multiple_of(QK) || bytes.len() != rows * nb * kind.gguf_block() {
            return None;
        }
        let slots = rows.div_ceil(TILE) * nb * TILE;
        let mut w = QWeight {
            rows,
            cols,
            kind,
            d: vec![f16::ZERO; slots],
            m: if kind == QKind::Q4_1 {
                vec![f16::ZERO; slots]
            } else {
                Vec::new()
            },
            qs: vec![0; slots * kind.qs_len()],
        };
        let half = |b: &[u8]| f16::from_le_bytes([b[0], b[1]]);
        for (n, block) in bytes.chunks_exact(kind.gguf_block()).enumerate() {
            let (r, b) = (n / nb, n % nb);
            let slot = w.slot(r, b);
            w.d[slot] = half(block);
            let quants = if kind == QKind::Q4_1 {
                w.m[slot] = half(&block[2..]);
                &block[4..]
            } else {
                &block[2..]
            };
            for (j, &q) in quants.iter().enumerate() {
                let at = w.quant_index(r, b, j);
                w.qs[at] = q;
            }
        }
        Some(w)
    }

    /// Stack weights with the same type and width into one (rows concatenated), so that the
    /// Q, K and V projections (or gate and up) run as one matrix multiply. `None` when a part
    /// other than the last does not fill whole tiles.
    pub fn stack(parts: &[&QWeight]) -> Option<QWeight> {
        let (last, init) = parts.split_last()?;
        if parts
            .iter()
            .any(|p| p.cols != last.cols || p.kind != last.kind)
            || init.iter().any(|p| !p.rows.is_multiple_of(TILE))
        {
            return None;
        }
        Some(QWeight {
            rows: parts.iter().map(|p| p.rows).sum(),
            cols: last.cols,
            kind: last.kind,
            d: parts.iter().flat_map(|p| p.d.iter().copied()).collect(),
            m: parts.iter().flat_map(|p| p.m.iter().copied()).collect(),
            qs: parts.iter().flat_map(|p| p.qs.iter().copied()).collect(),
        })
    }

    pub fn bytes(&self) -> usize {
        (self.d.len() + self.m.len()) * 2 + self.qs.len()
    }

    fn blocks(&self) -> usize {
        self.cols / QK
    }

    /// Index of row `r`, block `b` in `d` and `m`.
    fn slot(&self, r: usize, b: usize) -> usize {
        ((r / TILE) * self.blocks() + b) * TILE + r % TILE
    }

    /// Index of quant byte `j` of row `r`, block `b` in `qs`.
    fn quant_index(&self, r: usize, b: usize, j: usize) -> usize {
        let tile_block = (r / TILE) * self.blocks() + b;
        tile_block * TILE * self.kind.qs_len() + (j / 4) * 4 * TILE + (r % TILE) * 4 + j % 4
    }

    /// Value `j` of row `r`, block `b` as stored: a nibble 0..=15 (Q4) or an i8 (Q8_0).
    fn quant(&self, r: usize, b: usize, j: usize) -> i32 {
        match self.kind {
            QKind::Q8_0 => self.qs[self.quant_index(r, b, j)] as i8 as i32,
            QKind::Q4_0 | QKind::Q4_1 => {
                let byte = self.qs[self.quant_index(r, b, j % (QK / 2))];
                (if j < QK / 2 { byte & 0x0F } else { byte >> 4 }) as i32
            }
        }
    }

    /// One weight row as f32 (the embedding lookup).
    pub fn row(&self, r: usize, out: &mut [f32]) {
        for (b, o) in out.chunks_exact_mut(QK).enumerate() {
            let slot = self.slot(r, b);
            let d = self.d[slot].to_f32();
            for (j, o) in o.iter_mut().enumerate() {
                let q = self.quant(r, b, j);
                *o = match self.kind {
                    QKind::Q8_0 => q as f32 * d,
                    QKind::Q4_0 => (q - 8) as f32 * d,
                    QKind::Q4_1 => q as f32 * d + self.m[slot].to_f32(),
                };
            }
        }
    }

    /// `out[m x rows] = x[m x cols] * self^T`, on the current rayon pool.
    pub fn matmul(&self, x: &[f32], m: usize, out: &mut [f32]) {
        assert_eq!(x.len(), m * self.cols, "activation shape");
        assert_eq!(out.len(), m * self.rows, "output shape");
        let acts = quantize(x, self.cols, self.kind == QKind::Q4_1);
        // Enough chunks for every thread to take several (a busy core then just takes fewer).
        // Each tile (a few KiB) stays in L1 while every activation row passes over it.
        let tiles = self.rows.div_ceil(TILE);
        let threads = rayon::current_num_threads().max(1);
        let chunk = tiles.div_ceil(threads * 8).clamp(1, 8);
        let out_ptr = SendPtr(out.as_mut_ptr());
        let kernel = kernels::select();
        (0..tiles.div_ceil(chunk)).into_par_iter().for_each(|c| {
            for t in c * chunk..((c + 1) * chunk).min(tiles) {
                for first in (0..m).step_by(ROWS_PER_PASS) {
                    let take = (m - first).min(ROWS_PER_PASS);
                    let ys: [ActRow<'_>; ROWS_PER_PASS] =
                        std::array::from_fn(|j| acts.row(first + j.min(take - 1)));
                    let dots = kernel(self, t, &ys[..take]);
                    for (j, lanes) in dots.iter().take(take).enumerate() {
                        let rows = t * TILE..(t * TILE + TILE).min(self.rows);
                        for (r, v) in rows.zip(lanes) {
                            // SAFETY: each (row first + j, column r) is written by one task.
                            unsafe { *out_ptr.at((first + j) * self.rows + r) = *v };
                        }
                    }
                }
            }
        });
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
fn quantize(x: &[f32], cols: usize, with_s: bool) -> Acts {
    let n = x.len() / QK;
    let mut acts = Acts {
        cols,
        d: Vec::with_capacity(n),
        s: Vec::with_capacity(if with_s { n } else { 0 }),
        groups: Vec::with_capacity(n),
        qs: Vec::with_capacity(x.len()),
    };
    let mut q = [0i8; QK];
    for block in x.chunks_exact(QK) {
        let (amax, sum) = kernels::quantize_block(block.try_into().expect("block of QK"), &mut q);
        acts.qs.extend_from_slice(&q);
        acts.groups.push(std::array::from_fn(|k| {
            q[4 * k..4 * k + 4].iter().map(|&v| v as i32).sum()
        }));
        let d = amax / 127.0;
        acts.d.push(f16::from_f32(d).to_f32());
        if with_s {
            acts.s.push(f16::from_f32(d * sum as f32).to_f32());
        }
    }
    acts
}

/// Dot products of one weight tile (sixteen rows) with up to `ROWS_PER_PASS` activation rows,
/// `[activation row][row in tile]`. The SIMD kernels take an exact integer dot per block, one
/// lane per weight row, then one f32 multiply-add per block for all the tile's rows: AVX2 in two
/// halves of eight lanes, AVX-512 VNNI in one 512-bit register, where each 4-byte group is one
/// instruction. The portable kernel gives the same integer sums and serves other CPUs, and the
/// tests as the oracle.
pub mod kernels {
    use super::*;

    pub type Dots = [[f32; TILE]; ROWS_PER_PASS];
    pub type Kernel = fn(&QWeight, usize, &[ActRow<'_>]) -> Dots;

    /// The fastest kernel this CPU runs.
    pub fn select() -> Kernel {
        #[cfg(all(
            target_arch = "x86_64",
            target_feature = "avx2",
            target_feature = "fma",
            target_feature = "f16c"
        ))]
        {
            if avx512::detected() {
                return avx512::dot;
            }
            avx2::dot
        }
        #[cfg(not(all(
            target_arch = "x86_64",
            target_feature = "avx2",
            target_feature = "fma",
            target_feature = "f16c"
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
            target_feature = "fma",
            target_feature = "f16c"
        ))]
        {
            all.push(("avx2", avx2::dot));
            if avx512::detected() {
                all.push(("avx512-vnni", avx512::dot));
            }
        }
        all
    }

    /// Quantizes one block to `q` (multiplier 127/amax, round half to even); returns amax and
    /// the sum of `q`.
    pub fn quantize_block(x: &[f32; QK], q: &mut [i8; QK]) -> (f32, i32) {
        #[cfg(all(
            target_arch = "x86_64",
            target_feature = "avx2",
            target_feature = "fma",
            target_feature = "f16c"
        ))]
        {
            // SAFETY: AVX2 is compiled in (checked by the cfg above).
            unsafe { avx2::quantize_block(x, q) }
        }
        #[cfg(not(all(
            target_arch = "x86_64",
            target_feature = "avx2",
            target_feature = "fma",
            target_feature = "f16c"
        )))]
        quantize_block_portable(x, q)
    }

    pub fn quantize_block_portable(x: &[f32; QK], q: &mut [i8; QK]) -> (f32, i32) {
        let amax = x.iter().fold(0f32, |a, v| a.max(v.abs()));
        let id = if amax != 0.0 { 127.0 / amax } else { 0.0 };
        let mut sum = 0;
        for (q, &v) in q.iter_mut().zip(x) {
            *q = (v * id).round_ties_even() as i8;
            sum += *q as i32;
        }
        (amax, sum)
    }

    /// The reference every SIMD kernel equals bit for bit. Each block's dot is split into eight
    /// lanes of four values, each lane keeps its own f32 sum over the blocks (one fused
    /// multiply-add per block), and the lanes are added in a fixed tree at the end: exactly the
    /// rounding of ggml's AVX2 `vec_dot`, so our logits are llama.cpp's.
    pub fn portable(w: &QWeight, t: usize, ys: &[ActRow<'_>]) -> Dots {
        let offset = portable_offset(w.kind);
        let mut out = [[0f32; TILE]; ROWS_PER_PASS];
        for (o, y) in out.iter_mut().zip(ys) {
            for (i, o) in o.iter_mut().enumerate() {
                let r = t * TILE + i;
                let mut lanes = [0f32; 8];
                let mut minimums = 0f32;
                for b in 0..w.blocks() {
                    let slot = w.slot(r, b);
                    let scale = w.d[slot].to_f32() * y.d[b];
                    for (k, lane) in lanes.iter_mut().enumerate() {
                        let dot: i32 = (4 * k..4 * k + 4)
                            .map(|j| (w.quant(r, b, j) - offset) * y.qs[b * QK + j] as i32)
                            .sum();
                        *lane = scale.mul_add(dot as f32, *lane);
                    }
                    if w.kind == QKind::Q4_1 {
                        minimums += w.m[slot].to_f32() * y.s[b];
                    }
                }
                *o = lane_tree(lanes) + minimums;
            }
        }
        out
    }

    /// Q4_0 stores `x + 8`.
    fn portable_offset(kind: QKind) -> i32 {
        if kind == QKind::Q4_0 { 8 } else { 0 }
    }

    /// ggml's `hsum_float_8`: halves added, then pairs, then the last two (the SIMD kernels
    /// add their lane vectors in the same tree).
    fn lane_tree(a: [f32; 8]) -> f32 {
        ((a[0] + a[4]) + (a[2] + a[6])) + ((a[1] + a[5]) + (a[3] + a[7]))
    }

    /// Where a tile block starts in `qs`, and in `d` and `m`.
    fn tile_block(w: &QWeight, t: usize, b: usize) -> (usize, usize) {
        let tb = t * w.blocks() + b;
        (tb * TILE * w.kind.qs_len(), tb * TILE)
    }

    /// What the integer dot of stored quants overcounts per unit of an activation group's sum:
    /// Q4_0 stores `x + 8`; Q8_0 goes to VNNI's unsigned operand as `x + 128`.
    fn offset(kind: QKind, vnni: bool) -> i32 {
        match kind {
            QKind::Q4_0 => 8,
            QKind::Q8_0 if vnni => 128,
            _ => 0,
        }
    }

    #[cfg(all(
        target_arch = "x86_64",
        target_feature = "avx2",
        target_feature = "fma",
        target_feature = "f16c"
    ))]
    mod avx2 {
        use super::super::*;
        use super::{Dots, offset, tile_block};
        use std::arch::x86_64::*;

        /// Each half of the tile (eight weight rows), one activation row at a time.
        pub fn dot(w: &QWeight, t: usize, ys: &[ActRow<'_>]) -> Dots {
            let mut out = [[0f32; TILE]; ROWS_PER_PASS];
            for (o, y) in out.iter_mut().zip(ys) {
                for half in 0..2 {
                    // SAFETY: AVX2, FMA and F16C are compiled in (checked by the cfg above).
                    let v = unsafe { eight(w, t, half, y) };
                    // SAFETY: as above; `o` has room for both halves.
                    unsafe { _mm256_storeu_ps(o.as_mut_ptr().add(half * 8), v) };
                }
            }
            out
        }

        /// One activation row with eight weight rows: eight lane accumulators (one per group
        /// of four values), as in `portable`.
        #[inline(always)]
        unsafe fn eight(w: &QWeight, t: usize, half: usize, y: &ActRow<'_>) -> __m256 {
            unsafe {
                let offset = offset(w.kind, false);
                let mut acc = [_mm256_setzero_ps(); 8];
                for b in 0..w.blocks() {
                    let (q, s) = tile_block(w, t, b);
                    let q = w.qs.as_ptr().add(q + half * 32);
                    let wd = _mm256_cvtph_ps(_mm_loadu_si128(
                        w.d.as_ptr().add(s + half * 8) as *const __m128i
                    ));
                    let scale = _mm256_mul_ps(wd, _mm256_set1_ps(y.d[b]));
                    let yq = y.qs.as_ptr().add(b * QK);
                    for (k, acc) in acc.iter_mut().enumerate() {
                        let mut dot = group_dot(w.kind, q, k, yq);
                        if offset != 0 {
                            let o = _mm256_set1_epi32(offset * y.groups[b][k]);
                            dot = _mm256_sub_epi32(dot, o);
                        }
                        *acc = _mm256_fmadd_ps(scale, _mm256_cvtepi32_ps(dot), *acc);
                    }
                }
                let tree = _mm256_add_ps(
                    _mm256_add_ps(_mm256_add_ps(acc[0], acc[4]), _mm256_add_ps(acc[2], acc[6])),
                    _mm256_add_ps(_mm256_add_ps(acc[1], acc[5]), _mm256_add_ps(acc[3], acc[7])),
                );
                if w.kind != QKind::Q4_1 {
                    return tree;
                }
                // Q4_1's minimum term, the sum over blocks of `m * s`, added after the lanes in
                // block order as ggml does: the terms are large and cancel, so the order shows.
                let mut minimums = _mm256_setzero_ps();
                for b in 0..w.blocks() {
                    let m = w.m.as_ptr().add(tile_block(w, t, b).1 + half * 8);
                    let m = _mm256_cvtph_ps(_mm_loadu_si128(m as *const __m128i));
                    minimums = _mm256_add_ps(minimums, _mm256_mul_ps(m, _mm256_set1_ps(y.s[b])));
                }
                _mm256_add_ps(tree, minimums)
            }
        }

        /// Group `k` (values 4k..4k+4) of eight weight rows dotted with the same group of the
        /// activation block: one exact i32 per row.
        #[inline(always)]
        unsafe fn group_dot(kind: QKind, q: *const u8, k: usize, y: *const i8) -> __m256i {
            const GROUP: usize = 4 * TILE;
            unsafe {
                let y = _mm256_set1_epi32(std::ptr::read_unaligned(y.add(4 * k) as *const i32));
                let ones = _mm256_set1_epi16(1);
                match kind {
                    QKind::Q4_0 | QKind::Q4_1 => {
                        // Groups 4..8 are the high nibbles of groups 0..4.
                        let p = _mm256_loadu_si256(q.add((k % 4) * GROUP) as *const __m256i);
                        let p = if k < 4 { p } else { _mm256_srli_epi16(p, 4) };
                        let x = _mm256_and_si256(p, _mm256_set1_epi8(0x0F));
                        _mm256_madd_epi16(_mm256_maddubs_epi16(x, y), ones)
                    }
                    // Signed x signed: |x| as unsigned, x's sign moved onto y.
                    QKind::Q8_0 => {
                        let x = _mm256_loadu_si256(q.add(k * GROUP) as *const __m256i);
                        let pairs =
                            _mm256_maddubs_epi16(_mm256_sign_epi8(x, x), _mm256_sign_epi8(y, x));
                        _mm256_madd_epi16(pairs, ones)
                    }
                }
            }
        }

        /// `quantize_block_portable` eight lanes at a time (the same products and rounding).
        #[inline(always)]
        pub unsafe fn quantize_block(x: &[f32; QK], q: &mut [i8; QK]) -> (f32, i32) {
            unsafe {
                let v: [__m256; 4] =
                    std::array::from_fn(|k| _mm256_loadu_ps(x.as_ptr().add(8 * k)));
                let sign = _mm256_set1_ps(-0.0);
                let mut max = _mm256_andnot_ps(sign, v[0]);
                for v in &v[1..] {
                    max = _mm256_max_ps(max, _mm256_andnot_ps(sign, *v));
                }
                let mut lanes = [0f32; 8];
                _mm256_storeu_ps(lanes.as_mut_ptr(), max);
                let amax = lanes.iter().fold(0f32, |a, &v| a.max(v));
                let id = _mm256_set1_ps(if amax != 0.0 { 127.0 / amax } else { 0.0 });
                const ROUND: i32 = _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC;
                let i: [__m256i; 4] = std::array::from_fn(|k| {
                    _mm256_cvtps_epi32(_mm256_round_ps::<ROUND>(_mm256_mul_ps(v[k], id)))
                });
                let total =
                    _mm256_add_epi32(_mm256_add_epi32(i[0], i[1]), _mm256_add_epi32(i[2], i[3]));
                let mut sums = [0i32; 8];
                _mm256_storeu_si256(sums.as_mut_ptr() as *mut __m256i, total);
                // The packs interleave 128-bit halves; the permute puts the values back in order.
                let packed = _mm256_packs_epi16(
                    _mm256_packs_epi32(i[0], i[1]),
                    _mm256_packs_epi32(i[2], i[3]),
                );
                let order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
                let packed = _mm256_permutevar8x32_epi32(packed, order);
                _mm256_storeu_si256(q.as_mut_ptr() as *mut __m256i, packed);
                (amax, sums.iter().sum())
            }
        }
    }

    #[cfg(all(
        target_arch = "x86_64",
        target_feature = "avx2",
        target_feature = "fma",
        target_feature = "f16c"
    ))]
    mod avx512 {
        use super::super::*;
        use super::{Dots, offset, tile_block};
        use std::arch::x86_64::*;

        pub fn detected() -> bool {
            std::arch::is_x86_feature_detected!("avx512f")
                && std::arch::is_x86_feature_detected!("avx512bw")
                && std::arch::is_x86_feature_detected!("avx512vnni")
        }

        pub fn dot(w: &QWeight, t: usize, ys: &[ActRow<'_>]) -> Dots {
            // SAFETY: `select` and `available` offer this only when `detected()`.
            unsafe { dispatch(w, t, ys) }
        }

        #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
        unsafe fn dispatch(w: &QWeight, t: usize, ys: &[ActRow<'_>]) -> Dots {
            let mut out = [[0f32; TILE]; ROWS_PER_PASS];
            // Two activation rows per pass: sixteen lane accumulators and eight weight vectors
            // fill the 32 registers.
            for (o, ys) in out.chunks_mut(2).zip(ys.chunks(2)) {
                match ys {
                    [a] => o[0] = unsafe { sixteen::<1>(w, t, [a]) }[0],
                    [a, b] => o.copy_from_slice(&unsafe { sixteen::<2>(w, t, [a, b]) }),
                    _ => unreachable!("chunks of two"),
                }
            }
            out
        }

        /// `R` activation rows with sixteen weight rows: eight lane accumulators per activation
        /// row (one per group of four values), as in `portable`.
        #[allow(clippy::needless_range_loop)]
        #[inline(always)]
        unsafe fn sixteen<const R: usize>(
            w: &QWeight,
            t: usize,
            ys: [&ActRow<'_>; R],
        ) -> [[f32; TILE]; R] {
            unsafe {
                let offset = offset(w.kind, true);
                let mut acc = [[_mm512_setzero_ps(); 8]; R];
                for b in 0..w.blocks() {
                    let (q, s) = tile_block(w, t, b);
                    prefetch(w, q, s);
                    let x = unpack(w.kind, w.qs.as_ptr().add(q));
                    let wd =
                        _mm512_cvtph_ps(_mm256_loadu_si256(w.d.as_ptr().add(s) as *const __m256i));
                    for r in 0..R {
                        let y = ys[r];
                        let yq = y.qs.as_ptr().add(b * QK);
                        let scale = _mm512_mul_ps(wd, _mm512_set1_ps(y.d[b]));
                        for k in 0..8 {
                            let mut dot =
                                _mm512_dpbusd_epi32(_mm512_setzero_si512(), x[k], group(yq, k));
                            if offset != 0 {
                                let o = _mm512_set1_epi32(offset * y.groups[b][k]);
                                dot = _mm512_sub_epi32(dot, o);
                            }
                            acc[r][k] = _mm512_fmadd_ps(scale, _mm512_cvtepi32_ps(dot), acc[r][k]);
                        }
                    }
                }
                let mut out = [[0f32; TILE]; R];
                for r in 0..R {
                    let a = &acc[r];
                    let mut v = _mm512_add_ps(
                        _mm512_add_ps(_mm512_add_ps(a[0], a[4]), _mm512_add_ps(a[2], a[6])),
                        _mm512_add_ps(_mm512_add_ps(a[1], a[5]), _mm512_add_ps(a[3], a[7])),
                    );
                    if w.kind == QKind::Q4_1 {
                        // As in the AVX2 kernel: the minimum term in block order, after the lanes.
                        let mut minimums = _mm512_setzero_ps();
                        for b in 0..w.blocks() {
                            let m = w.m.as_ptr().add(tile_block(w, t, b).1);
                            let m = _mm512_cvtph_ps(_mm256_loadu_si256(m as *const __m256i));
                            let s = _mm512_set1_ps(ys[r].s[b]);
                            minimums = _mm512_add_ps(minimums, _mm512_mul_ps(m, s));
                        }
                        v = _mm512_add_ps(v, minimums);
                    }
                    _mm512_storeu_ps(out[r].as_mut_ptr(), v);
                }
                out
            }
        }

        /// Asks for the weights a few tile blocks ahead (and into the next tile): the hardware
        /// prefetcher alone leaves the dots waiting on memory.
        #[inline(always)]
        unsafe fn prefetch(w: &QWeight, q: usize, s: usize) {
            const AHEAD: usize = 32;
            let bytes = TILE * w.kind.qs_len();
            // Addresses past the end are fine: a prefetch never faults.
            let qs = w.qs.as_ptr().wrapping_add(q + AHEAD * bytes);
            let d = w.d.as_ptr().wrapping_add(s + AHEAD * TILE);
            let m = w.m.as_ptr().wrapping_add(s + AHEAD * TILE);
            unsafe {
                for line in (0..bytes).step_by(64) {
                    _mm_prefetch::<_MM_HINT_T0>(qs.wrapping_add(line) as *const i8);
                }
                _mm_prefetch::<_MM_HINT_T0>(d as *const i8);
                if w.kind == QKind::Q4_1 {
                    _mm_prefetch::<_MM_HINT_T0>(m as *const i8);
                }
            }
        }

        /// Activation bytes 4k..4k+4 in every lane.
        #[inline(always)]
        unsafe fn group(y: *const i8, k: usize) -> __m512i {
            unsafe { _mm512_set1_epi32(std::ptr::read_unaligned(y.add(4 * k) as *const i32)) }
        }

        /// A tile block's quants as eight vectors, vector k holding values 4k..4k+4 of each row,
        /// as unsigned bytes (Q8_0 moved up by 128).
        #[inline(always)]
        unsafe fn unpack(kind: QKind, q: *const u8) -> [__m512i; 8] {
            const GROUP: usize = 4 * TILE;
            unsafe {
                let mut x = [_mm512_setzero_si512(); 8];
                match kind {
                    QKind::Q8_0 => {
                        for (k, x) in x.iter_mut().enumerate() {
                            let v = _mm512_loadu_si512(q.add(k * GROUP) as *const __m512i);
                            *x = _mm512_xor_si512(v, _mm512_set1_epi8(-128));
                        }
                    }
                    QKind::Q4_0 | QKind::Q4_1 => {
                        let low = _mm512_set1_epi8(0x0F);
                        for k in 0..4 {
                            let p = _mm512_loadu_si512(q.add(k * GROUP) as *const __m512i);
                            x[k] = _mm512_and_si512(p, low);
                            x[k + 4] = _mm512_and_si512(_mm512_srli_epi16::<4>(p), low);
                        }
                    }
                }
                x
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

    /// The SIMD kernels equal the portable one for every row count of a pass, on a full
    /// tile and on the padded last one, and the matmul agrees with a float dot of the
    /// dequantized weights (which are candle's, so the repacking is checked too).
    #[test]
    fn kernels_agree_with_portable_and_dequantized_reference() {
        use candle_core::quantized::GgmlDType as T;
        for dtype in [T::Q4_0, T::Q4_1, T::Q8_0] {
            // 37 rows: four full tiles and one of five rows.
            let (rows, cols, m) = (37, 13 * QK, 11);
            let w = weights(dtype, rows, cols);
            let x = rand_vec(m * cols, 7);
            let mut out = vec![f32::NAN; m * rows];
            w.matmul(&x, m, &mut out);
            let t = candle_core::Tensor::from_vec(
                rand_vec(rows * cols, rows as u64 ^ 0x5eed),
                (rows, cols),
                &candle_core::Device::Cpu,
            )
            .unwrap();
            let dequantized: Vec<f32> = candle_core::quantized::QTensor::quantize(&t, dtype)
                .unwrap()
                .dequantize(&candle_core::Device::Cpu)
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1()
                .unwrap();
            let mut wr = vec![0f32; cols];
            for r in 0..rows {
                w.row(r, &mut wr);
                assert_eq!(
                    wr,
                    dequantized[r * cols..(r + 1) * cols],
                    "{dtype:?} row {r}"
                );
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
                for t in [0, rows / TILE] {
                    let slow = kernels::portable(&w, t, &ys);
                    for (name, kernel) in kernels::available() {
                        let fast = kernel(&w, t, &ys);
                        // Bit for bit: the kernels share the portable one's rounding.
                        assert_eq!(fast, slow, "{name} {dtype:?} take {take} tile {t}");
                    }
                }
            }
        }
    }

    #[test]
    fn simd_quantization_equals_portable() {
        let x = rand_vec(64 * QK, 11);
        for (n, block) in x.chunks_exact(QK).enumerate() {
            // Some blocks scaled so that products land on exact halves, one all zero.
            let scale = [1.0, 127.0, 0.0, 1e-6][n % 4];
            let block: Vec<f32> = block
                .iter()
                .map(|v| (v * 8.0).round() / 8.0 * scale)
                .collect();
            let block: &[f32; QK] = block.as_slice().try_into().unwrap();
            let (mut a, mut b) = ([0i8; QK], [0i8; QK]);
            let fast = kernels::quantize_block(block, &mut a);
            let slow = kernels::quantize_block_portable(block, &mut b);
            assert_eq!((fast, a), (slow, b), "block {n}");
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
        assert_eq!(acts.groups[0][0], 131);
    }
}
