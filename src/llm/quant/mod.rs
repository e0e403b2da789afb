//! Our quantized matrix multiply for the GGUF block formats models ship in: Q4_0, Q4_1, Q5_0,
//! Q5_1, Q8_0 and the K-quants Q4_K, Q5_K, Q6_K (the types of every `_K_M` file). It follows
//! ggml's arithmetic to the bit (activations quantized as ggml quantizes them, exact integer
//! dots over groups of four values, one f32 accumulator per group summed in ggml's order), so
//! our logits are llama.cpp's; and it runs up to eight activation rows per pass over each
//! weight tile, so prefill and batched decoding read the weights once per step instead of once
//! per row (candle's CPU kernel loops over rows).
//!
//! Weights are repacked at load into tiles of sixteen rows: for each block, the scales of the
//! sixteen rows sit side by side, and so does each 4-byte group of their quants. One integer dot
//! of a quant group with four broadcast activation bytes then gives one lane per weight row: no
//! horizontal sums, and each scale multiply-add serves every row of the tile at once.

mod acts;
mod format;
pub mod kernels;

use half::f16;
use rayon::prelude::*;

use acts::{ActRow, quantize};
pub use format::{QK, QK_K, QKind, Storage};

/// Weight rows interleaved in one tile (one i32 lane of a 512-bit vector each).
const TILE: usize = 16;
/// Activation rows handled per pass over a tile, which stays in L1 meanwhile.
const ROWS_PER_PASS: usize = 8;

/// A quantized weight matrix `rows x cols` (output features x input features), repacked into
/// tiles of `TILE` rows (the last one padded with zero rows).
#[derive(Clone)]
pub struct QWeight {
    pub rows: usize,
    pub cols: usize,
    kind: QKind,
    /// Super-block scales, `[tile][super-block][row in tile]`.
    d: Vec<f16>,
    /// Minimums (Q4_1/Q5_1) or `dmin` (Q4_K/Q5_K), laid out like `d`.
    m: Vec<f16>,
    /// K-quant integer scales, `[tile][super-block][scale][row in tile]` (Q6_K: i8 bits).
    sc: Vec<u8>,
    /// Q4_K/Q5_K integer mins, laid out like `sc`.
    mn: Vec<u8>,
    /// Quants per 32-value sub-block, `[tile][sub-block][group of 4 bytes][row in tile][4]`
    /// (see `Storage`).
    qs: Vec<u8>,
    /// Fifth bits of Q5 types, `[tile][sub-block][row in tile][4 bytes]`.
    qh: Vec<u8>,
}

impl QWeight {
    /// From the raw GGUF bytes; `None` for a type these kernels do not cover.
    pub fn from_bytes(
        dtype: candle_core::quantized::GgmlDType,
        rows: usize,
        cols: usize,
        bytes: &[u8],
    ) -> Option<Self> {
        let kind = QKind::from_ggml(dtype)?;
        let per = kind.super_block();
        let nsb = cols / per;
        if !cols.is_multiple_of(per) || bytes.len() != rows * nsb * kind.gguf_block() {
            return None;
        }
        let slots = rows.div_ceil(TILE) * nsb * TILE;
        let subs = slots * (per / QK);
        let mut w = QWeight {
            rows,
            cols,
            kind,
            d: vec![f16::ZERO; slots],
            m: vec![f16::ZERO; if kind.has_min() { slots } else { 0 }],
            sc: vec![0; slots * kind.scales()],
            mn: vec![
                0;
                if kind.k_quant() && kind.has_min() {
                    slots * 8
                } else {
                    0
                }
            ],
            qs: vec![0; subs * kind.qs_len()],
            qh: vec![
                0;
                if kind.storage() == Storage::NibblesHigh {
                    subs * 4
                } else {
                    0
                }
            ],
        };
        let mut block = format::Decoded::default();
        for (n, raw) in bytes.chunks_exact(kind.gguf_block()).enumerate() {
            format::decode(kind, raw, &mut block);
            w.store(n / nsb, n % nsb, &block);
        }
        Some(w)
    }

    /// Puts one decoded super-block of row `r` in its tile.
    fn store(&mut self, r: usize, sb: usize, block: &format::Decoded) {
        let slot = self.slot(r, sb);
        self.d[slot] = block.d;
        if self.kind.has_min() {
            self.m[slot] = block.m;
        }
        for i in 0..self.kind.scales() {
            let at = self.scale_index(r, sb, i);
            self.sc[at] = block.scales[i];
            if !self.mn.is_empty() {
                self.mn[at] = block.mins[i];
            }
        }
        let subs = self.kind.super_block() / QK;
        for s in 0..subs {
            let b = sb * subs + s;
            let values = &block.values[s * QK..(s + 1) * QK];
            for (j, &v) in values.iter().enumerate() {
                match self.kind.storage() {
                    Storage::Bytes => {
                        let at = self.quant_index(r, b, j);
                        self.qs[at] = v;
                    }
                    Storage::Nibbles | Storage::NibblesHigh => {
                        let at = self.quant_index(r, b, j % 16);
                        self.qs[at] |= (v & 0x0F) << (4 * (j / 16));
                        if self.kind.storage() == Storage::NibblesHigh {
                            let at = self.qh_index(r, b) + j % 4;
                            self.qh[at] |= ((v >> 4) & 1) << (j / 4);
                        }
                    }
                }
            }
        }
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
        let cat = |f: fn(&QWeight) -> &Vec<u8>| parts.iter().flat_map(|p| f(p).clone()).collect();
        Some(QWeight {
            rows: parts.iter().map(|p| p.rows).sum(),
            cols: last.cols,
            kind: last.kind,
            d: parts.iter().flat_map(|p| p.d.iter().copied()).collect(),
            m: parts.iter().flat_map(|p| p.m.iter().copied()).collect(),
            sc: cat(|p| &p.sc),
            mn: cat(|p| &p.mn),
            qs: cat(|p| &p.qs),
            qh: cat(|p| &p.qh),
        })
    }

    pub fn kind(&self) -> QKind {
        self.kind
    }

    pub fn bytes(&self) -> usize {
        (self.d.len() + self.m.len()) * 2
            + self.sc.len()
            + self.mn.len()
            + self.qs.len()
            + self.qh.len()
    }

    /// 32-value sub-blocks per row.
    fn blocks(&self) -> usize {
        self.cols / QK
    }

    /// Super-blocks per row.
    fn super_blocks(&self) -> usize {
        self.cols / self.kind.super_block()
    }

    /// Index of row `r`, super-block `sb` in `d` and `m`.
    fn slot(&self, r: usize, sb: usize) -> usize {
        ((r / TILE) * self.super_blocks() + sb) * TILE + r % TILE
    }

    /// Index of integer scale `i` of row `r`, super-block `sb` in `sc` and `mn`.
    fn scale_index(&self, r: usize, sb: usize, i: usize) -> usize {
        (((r / TILE) * self.super_blocks() + sb) * self.kind.scales() + i) * TILE + r % TILE
    }

    /// Index of quant byte `j` of row `r`, sub-block `b` in `qs`.
    fn quant_index(&self, r: usize, b: usize, j: usize) -> usize {
        let tile_block = (r / TILE) * self.blocks() + b;
        tile_block * TILE * self.kind.qs_len() + (j / 4) * 4 * TILE + (r % TILE) * 4 + j % 4
    }

    /// Index of row `r`'s four fifth-bit bytes of sub-block `b` in `qh`.
    fn qh_index(&self, r: usize, b: usize) -> usize {
        ((r / TILE) * self.blocks() + b) * TILE * 4 + (r % TILE) * 4
    }

    /// Value `j` of row `r`, sub-block `b` as stored (Q8_0: signed).
    fn quant(&self, r: usize, b: usize, j: usize) -> i32 {
        match self.kind.storage() {
            Storage::Bytes if self.kind == QKind::Q8_0 => {
                self.qs[self.quant_index(r, b, j)] as i8 as i32
            }
            Storage::Bytes => self.qs[self.quant_index(r, b, j)] as i32,
            Storage::Nibbles | Storage::NibblesHigh => {
                let byte = self.qs[self.quant_index(r, b, j % 16)];
                let low = (byte >> (4 * (j / 16))) & 0x0F;
                let high = if self.kind.storage() == Storage::NibblesHigh {
                    (self.qh[self.qh_index(r, b) + j % 4] >> (j / 4)) & 1
                } else {
                    0
                };
                (low | (high << 4)) as i32
            }
        }
    }

    /// Integer scale `i` of row `r`, super-block `sb` (Q6_K's are signed).
    fn scale(&self, r: usize, sb: usize, i: usize) -> i32 {
        let v = self.sc[self.scale_index(r, sb, i)];
        if self.kind == QKind::Q6K {
            v as i8 as i32
        } else {
            v as i32
        }
    }

    /// Integer min `i` of row `r`, super-block `sb` (Q4_K/Q5_K).
    fn min(&self, r: usize, sb: usize, i: usize) -> i32 {
        self.mn[self.scale_index(r, sb, i)] as i32
    }

    /// One weight row as f32 (the embedding lookup), as ggml's `dequantize_row_*` computes it.
    pub fn row(&self, r: usize, out: &mut [f32]) {
        let per = self.kind.super_block();
        for (sb, o) in out.chunks_exact_mut(per).enumerate() {
            let slot = self.slot(r, sb);
            let d = self.d[slot].to_f32();
            let m = self.m.get(slot).map_or(0.0, |m| m.to_f32());
            for (v, o) in o.iter_mut().enumerate() {
                let q = self.quant(r, sb * per / QK + v / QK, v % QK);
                *o = match self.kind {
                    QKind::Q4_1 | QKind::Q5_1 => q as f32 * d + m,
                    QKind::Q4_0 | QKind::Q5_0 | QKind::Q8_0 => (q - self.kind.offset()) as f32 * d,
                    QKind::Q4K | QKind::Q5K => {
                        let (sc, mn) = (self.scale(r, sb, v / QK), self.min(r, sb, v / QK));
                        (d * sc as f32) * q as f32 - m * mn as f32
                    }
                    QKind::Q6K => d * self.scale(r, sb, v / 16) as f32 * (q - 32) as f32,
                };
            }
        }
    }

    /// `out[m x rows] = x[m x cols] * self^T`, on the current rayon pool.
    pub fn matmul(&self, x: &[f32], m: usize, out: &mut [f32]) {
        assert_eq!(x.len(), m * self.cols, "activation shape");
        assert_eq!(out.len(), m * self.rows, "output shape");
        let acts = quantize(x, self.cols, self.kind.act());
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

#[cfg(test)]
mod tests;
