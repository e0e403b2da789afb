//! Our matrix multiply for float weight matrices (F16, BF16, F32), in llama.cpp's order of
//! operations so that our logits are its logits (build b4748 on an AVX-512 CPU, checked to the
//! bit against its `llamafile_sgemm` and `vec_dot` in tests/data/ggml/float_dots.json).
//!
//! ggml rounds the activations to the weights' type first (F16 and BF16 round to nearest even),
//! then takes one of two orders, and we take the one it would:
//! - with two or more activation rows, a weight row count divisible by 4 and a width divisible
//!   by 16 (BF16: 32), llamafile's tinyBLAS: one 16-lane f32 accumulator per output, fed by a
//!   fused multiply-add per 16 columns (BF16: `dpbf16`, per lane the odd column's product added
//!   before the even one's), then summed in GCC's `_mm512_reduce_add_ps` tree;
//! - otherwise (a single token, as in decoding) `ggml_vec_dot_*`: four such accumulators taking
//!   turns over 64 columns (BF16: two, over 32 each), then the leftover columns one by one.
//!
//! So unlike our quantized kernels, a row's result depends on how many rows are multiplied at
//! once, exactly as llama.cpp's does. Weights keep their type, repacked at load into tiles of
//! four rows whose column chunks sit side by side, so a tile is one sequential stream that stays
//! in L1 while up to eight activation rows pass over it.

pub mod kernels;

use candle_core::quantized::GgmlDType;
use half::{bf16, f16};
use rayon::prelude::*;

/// Weight rows per tile (tinyBLAS's row blocking also needs the row count divisible by 4).
pub const TILE: usize = 4;
/// Activation rows handled per pass over a tile.
pub const ROWS_PER_PASS: usize = 8;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FloatKind {
    F32,
    F16,
    Bf16,
}

impl FloatKind {
    fn from_ggml(dtype: GgmlDType) -> Option<Self> {
        match dtype {
            GgmlDType::F32 => Some(FloatKind::F32),
            GgmlDType::F16 => Some(FloatKind::F16),
            GgmlDType::BF16 => Some(FloatKind::Bf16),
            _ => None,
        }
    }

    pub fn ggml(self) -> GgmlDType {
        match self {
            FloatKind::F32 => GgmlDType::F32,
            FloatKind::F16 => GgmlDType::F16,
            FloatKind::Bf16 => GgmlDType::BF16,
        }
    }

    /// Columns one accumulator step takes (a BF16 lane takes a pair).
    pub fn chunk(self) -> usize {
        match self {
            FloatKind::Bf16 => 32,
            _ => 16,
        }
    }
}

/// Which of ggml's two orders a matrix multiply follows (see the module comment).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Order {
    Gemm,
    Dot,
}

/// The weights in their file type: f16 or bf16 bits, or f32.
#[derive(Clone)]
enum Data {
    Half(Vec<u16>),
    Single(Vec<f32>),
}

/// A float weight matrix `rows x cols`, in tiles of `TILE` rows: `[tile][chunk][row][chunk
/// columns]`, columns padded with zeros to whole chunks and rows with zero rows to whole tiles.
#[derive(Clone)]
pub struct FWeight {
    pub rows: usize,
    pub cols: usize,
    kind: FloatKind,
    data: Data,
}

impl FWeight {
    /// From the raw GGUF bytes; `None` for a type other than F32, F16 and BF16.
    pub fn from_bytes(dtype: GgmlDType, rows: usize, cols: usize, bytes: &[u8]) -> Option<Self> {
        let kind = FloatKind::from_ggml(dtype)?;
        let size = if kind == FloatKind::F32 { 4 } else { 2 };
        if bytes.len() != rows * cols * size {
            return None;
        }
        let mut w = FWeight {
            rows,
            cols,
            kind,
            data: Data::Half(Vec::new()),
        };
        let len = rows.div_ceil(TILE) * TILE * w.padded_cols();
        w.data = match kind {
            FloatKind::F32 => {
                let mut v = vec![0f32; len];
                for (i, b) in bytes.chunks_exact(4).enumerate() {
                    v[w.index(i / cols, i % cols)] = f32::from_le_bytes(b.try_into().unwrap());
                }
                Data::Single(v)
            }
            _ => {
                let mut v = vec![0u16; len];
                for (i, b) in bytes.chunks_exact(2).enumerate() {
                    let bits = u16::from_le_bytes([b[0], b[1]]);
                    v[w.index(i / cols, i % cols)] = if kind == FloatKind::Bf16 {
                        flush_bf16(bits)
                    } else {
                        bits
                    };
                }
                Data::Half(v)
            }
        };
        Some(w)
    }

    /// Stack weights of one type and width (rows concatenated), so that Q, K and V (or gate
    /// and up) run as one multiply. `None` unless every part fills whole tiles: then each
    /// part's rows also meet tinyBLAS's multiple of 4, so the stack takes the order its parts
    /// would.
    pub fn stack(parts: &[&FWeight]) -> Option<FWeight> {
        let first = parts.first()?;
        if parts
            .iter()
            .any(|p| p.cols != first.cols || p.kind != first.kind || !p.rows.is_multiple_of(TILE))
        {
            return None;
        }
        let data = match &first.data {
            Data::Half(_) => Data::Half(
                parts
                    .iter()
                    .flat_map(|p| match &p.data {
                        Data::Half(v) => v.iter().copied(),
                        Data::Single(_) => unreachable!("same kind"),
                    })
                    .collect(),
            ),
            Data::Single(_) => Data::Single(
                parts
                    .iter()
                    .flat_map(|p| match &p.data {
                        Data::Single(v) => v.iter().copied(),
                        Data::Half(_) => unreachable!("same kind"),
                    })
                    .collect(),
            ),
        };
        Some(FWeight {
            rows: parts.iter().map(|p| p.rows).sum(),
            cols: first.cols,
            kind: first.kind,
            data,
        })
    }

    pub fn kind(&self) -> FloatKind {
        self.kind
    }

    pub fn bytes(&self) -> usize {
        match &self.data {
            Data::Half(v) => v.len() * 2,
            Data::Single(v) => v.len() * 4,
        }
    }

    fn padded_cols(&self) -> usize {
        self.cols.next_multiple_of(self.kind.chunk())
    }

    fn chunks(&self) -> usize {
        self.padded_cols() / self.kind.chunk()
    }

    /// Where row `r`, column `c` sits in the tiles.
    fn index(&self, r: usize, c: usize) -> usize {
        let chunk = self.kind.chunk();
        ((r / TILE * self.chunks() + c / chunk) * TILE + r % TILE) * chunk + c % chunk
    }

    /// Weight `(r, c)` as f32.
    fn weight(&self, r: usize, c: usize) -> f32 {
        let i = self.index(r, c);
        match (&self.data, self.kind) {
            (Data::Single(v), _) => v[i],
            (Data::Half(v), FloatKind::Bf16) => bf16::from_bits(v[i]).to_f32(),
            (Data::Half(v), _) => f16::from_bits(v[i]).to_f32(),
        }
    }

    /// One weight row as f32 (the embedding lookup; every value is exact in f32).
    pub fn row(&self, r: usize, out: &mut [f32]) {
        for (c, o) in out.iter_mut().enumerate() {
            *o = self.weight(r, c);
        }
    }

    /// The order ggml takes for `m` activation rows of this matrix.
    pub fn order(&self, m: usize) -> Order {
        if m >= 2 && self.rows.is_multiple_of(4) && self.cols.is_multiple_of(self.kind.chunk()) {
            Order::Gemm
        } else {
            Order::Dot
        }
    }

    /// `out[m x rows] = x[m x cols] * self^T`, on the current rayon pool.
    pub fn matmul(&self, x: &[f32], m: usize, out: &mut [f32]) {
        assert_eq!(x.len(), m * self.cols, "activation shape");
        assert_eq!(out.len(), m * self.rows, "output shape");
        let acts = Acts::new(self, x, m);
        let order = self.order(m);
        let kernel = kernels::select();
        let tiles = self.rows.div_ceil(TILE);
        // Enough chunks for every thread to take several (a busy core then just takes fewer).
        let threads = rayon::current_num_threads().max(1);
        let chunk = tiles.div_ceil(threads * 8).clamp(1, 16);
        // Results tile by tile, `[tile][activation row][row in tile]`, so that each task
        // writes one contiguous piece; spread into `out` afterwards.
        let mut by_tile = vec![0f32; tiles * m * TILE];
        by_tile
            .par_chunks_mut(chunk * m * TILE)
            .enumerate()
            .for_each(|(c, part)| {
                for (i, dst) in part.chunks_mut(m * TILE).enumerate() {
                    let t = c * chunk + i;
                    for first in (0..m).step_by(ROWS_PER_PASS) {
                        let take = (m - first).min(ROWS_PER_PASS);
                        let xs: Vec<&[f32]> = (first..first + take).map(|j| acts.row(j)).collect();
                        let dots = kernel(self, t, &xs, order);
                        for (j, d) in dots.iter().take(take).enumerate() {
                            dst[(first + j) * TILE..(first + j + 1) * TILE].copy_from_slice(d);
                        }
                    }
                }
            });
        for (t, tile) in by_tile.chunks_exact(m * TILE).enumerate() {
            let rows = t * TILE..(t * TILE + TILE).min(self.rows);
            for (j, d) in tile.chunks_exact(TILE).enumerate() {
                out[j * self.rows + rows.start..j * self.rows + rows.end]
                    .copy_from_slice(&d[..rows.len()]);
            }
        }
    }
}

/// Flushes a subnormal bf16 to a zero of its sign, as `dpbf16` treats its inputs.
fn flush_bf16(bits: u16) -> u16 {
    if bits & 0x7F80 == 0 {
        bits & 0x8000
    } else {
        bits
    }
}

/// Activation rows as the kernels read them: rounded to the weights' type (as ggml's
/// `from_float` does) and widened back to f32, padded with zeros to whole chunks; BF16 rows
/// hold each 32-column chunk as its sixteen even columns, then its sixteen odd ones.
pub struct Acts {
    padded: usize,
    data: Vec<f32>,
}

impl Acts {
    pub fn new(w: &FWeight, x: &[f32], m: usize) -> Acts {
        let padded = w.padded_cols();
        let mut data = vec![0f32; m * padded];
        for (src, dst) in x.chunks_exact(w.cols).zip(data.chunks_exact_mut(padded)) {
            for (c, &v) in src.iter().enumerate() {
                match w.kind {
                    FloatKind::F32 => dst[c] = v,
                    FloatKind::F16 => dst[c] = f16::from_f32(v).to_f32(),
                    FloatKind::Bf16 => {
                        // `cvtne2ps2bf16`: subnormal inputs are zeros.
                        let v = if v.is_subnormal() {
                            f32::from_bits(v.to_bits() & 0x8000_0000)
                        } else {
                            v
                        };
                        let b = bf16::from_bits(flush_bf16(bf16::from_f32(v).to_bits()));
                        dst[c - c % 32 + (c % 2) * 16 + (c % 32) / 2] = b.to_f32();
                    }
                }
            }
        }
        Acts { padded, data }
    }

    pub fn row(&self, j: usize) -> &[f32] {
        &self.data[j * self.padded..(j + 1) * self.padded]
    }
}

/// Activation `c` of a row prepared by `Acts` for weights of `kind`.
fn act(kind: FloatKind, x: &[f32], c: usize) -> f32 {
    match kind {
        FloatKind::Bf16 => x[c - c % 32 + (c % 2) * 16 + (c % 32) / 2],
        _ => x[c],
    }
}

#[cfg(test)]
mod tests;
