//! The GGUF block formats our kernels run, and how each block's stored values are read out of
//! the file (ggml's layouts, decoded once at load into the tiles of `QWeight`).

use candle_core::quantized::GgmlDType;
use half::f16;

/// Values in a sub-block: the unit of one activation scale for legacy types, and of one
/// integer scale inside a K-quant super-block.
pub const QK: usize = 32;
/// Values in a K-quant super-block.
pub const QK_K: usize = 256;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QKind {
    Q4_0,
    Q4_1,
    Q5_0,
    Q5_1,
    Q8_0,
    Q4K,
    Q5K,
    Q6K,
}

/// How a sub-block's values are kept in a tile.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Storage {
    /// 16 bytes: value j in the low nibble of byte j, value j + 16 in its high nibble.
    Nibbles,
    /// As `Nibbles`, plus 4 bytes of fifth bits: bit k of byte i is value 4k + i's.
    NibblesHigh,
    /// 32 bytes, one value each.
    Bytes,
}

/// How the activations are quantized for a weight kind (ggml's `vec_dot_type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ActKind {
    /// Blocks of 32, scale through f16.
    Q8_0,
    /// Q8_0 plus `d * sum(q)` per block, for weights with a minimum.
    Q8_1,
    /// Blocks of 256, scale in f32 (K-quants).
    Q8K,
}

impl QKind {
    pub fn from_ggml(dtype: GgmlDType) -> Option<Self> {
        Some(match dtype {
            GgmlDType::Q4_0 => QKind::Q4_0,
            GgmlDType::Q4_1 => QKind::Q4_1,
            GgmlDType::Q5_0 => QKind::Q5_0,
            GgmlDType::Q5_1 => QKind::Q5_1,
            GgmlDType::Q8_0 => QKind::Q8_0,
            GgmlDType::Q4K => QKind::Q4K,
            GgmlDType::Q5K => QKind::Q5K,
            GgmlDType::Q6K => QKind::Q6K,
            _ => return None,
        })
    }

    pub fn storage(self) -> Storage {
        match self {
            QKind::Q4_0 | QKind::Q4_1 | QKind::Q4K => Storage::Nibbles,
            QKind::Q5_0 | QKind::Q5_1 | QKind::Q5K => Storage::NibblesHigh,
            QKind::Q8_0 | QKind::Q6K => Storage::Bytes,
        }
    }

    pub fn k_quant(self) -> bool {
        matches!(self, QKind::Q4K | QKind::Q5K | QKind::Q6K)
    }

    /// Values sharing one float scale (and one activation scale).
    pub fn super_block(self) -> usize {
        if self.k_quant() { QK_K } else { QK }
    }

    /// Bytes of one super-block in a GGUF file.
    pub fn gguf_block(self) -> usize {
        match self {
            QKind::Q4_0 => 18,
            QKind::Q4_1 => 20,
            QKind::Q5_0 => 22,
            QKind::Q5_1 => 24,
            QKind::Q8_0 => 34,
            QKind::Q4K => 144,
            QKind::Q5K => 176,
            QKind::Q6K => 210,
        }
    }

    /// Integer scales per super-block (K-quants): one per 32 values, Q6_K one per 16.
    pub fn scales(self) -> usize {
        match self {
            QKind::Q4K | QKind::Q5K => 8,
            QKind::Q6K => 16,
            _ => 0,
        }
    }

    /// Whether a float minimum (Q4_1/Q5_1: `m`; Q4_K/Q5_K: `dmin` with per-sub-block mins)
    /// is added to each value.
    pub fn has_min(self) -> bool {
        matches!(self, QKind::Q4_1 | QKind::Q5_1 | QKind::Q4K | QKind::Q5K)
    }

    /// What a stored value is above the value it means.
    pub fn offset(self) -> i32 {
        match self {
            QKind::Q4_0 => 8,
            QKind::Q5_0 => 16,
            QKind::Q6K => 32,
            _ => 0,
        }
    }

    /// Bytes of one row's sub-block in `qs`.
    pub fn qs_len(self) -> usize {
        match self.storage() {
            Storage::Nibbles | Storage::NibblesHigh => QK / 2,
            Storage::Bytes => QK,
        }
    }

    pub fn act(self) -> ActKind {
        match self {
            QKind::Q4_1 | QKind::Q5_1 => ActKind::Q8_1,
            k if k.k_quant() => ActKind::Q8K,
            _ => ActKind::Q8_0,
        }
    }
}

/// One super-block as stored values: `values` are the stored integers (Q8_0: i8 bits), the
/// integer `scales` (Q6_K: i8 bits) and `mins` of K-quants, `d` and `m` (`dmin`).
pub struct Decoded {
    pub d: f16,
    pub m: f16,
    pub scales: [u8; 16],
    pub mins: [u8; 8],
    pub values: [u8; QK_K],
}

impl Default for Decoded {
    fn default() -> Self {
        Decoded {
            d: f16::ZERO,
            m: f16::ZERO,
            scales: [0; 16],
            mins: [0; 8],
            values: [0; QK_K],
        }
    }
}

fn half(b: &[u8]) -> f16 {
    f16::from_le_bytes([b[0], b[1]])
}

/// Reads one super-block of `kind` from its GGUF bytes (`kind.gguf_block()` of them).
pub fn decode(kind: QKind, b: &[u8], out: &mut Decoded) {
    match kind {
        QKind::Q4_0 | QKind::Q4_1 => {
            out.d = half(b);
            let qs = if kind == QKind::Q4_1 {
                out.m = half(&b[2..]);
                &b[4..20]
            } else {
                &b[2..18]
            };
            nibbles(qs, &mut out.values[..QK]);
        }
        QKind::Q5_0 | QKind::Q5_1 => {
            out.d = half(b);
            let rest = if kind == QKind::Q5_1 {
                out.m = half(&b[2..]);
                &b[4..]
            } else {
                &b[2..]
            };
            let qh = u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]);
            nibbles(&rest[4..20], &mut out.values[..QK]);
            for (j, v) in out.values[..QK].iter_mut().enumerate() {
                *v |= (((qh >> j) & 1) as u8) << 4;
            }
        }
        QKind::Q8_0 => {
            out.d = half(b);
            out.values[..QK].copy_from_slice(&b[2..34]);
        }
        QKind::Q4K | QKind::Q5K => {
            out.d = half(b);
            out.m = half(&b[2..]);
            k4_scales(&b[4..16], &mut out.scales, &mut out.mins);
            let (qh, qs) = if kind == QKind::Q5K {
                (Some(&b[16..48]), &b[48..176])
            } else {
                (None, &b[16..144])
            };
            // Each 64 values: 32 bytes, low nibbles the first 32 values, high the next.
            for j in 0..4 {
                for l in 0..32 {
                    let byte = qs[j * 32 + l];
                    let (lo, hi) = (byte & 0x0F, byte >> 4);
                    let (h0, h1) = qh.map_or((0, 0), |qh| {
                        ((qh[l] >> (2 * j)) & 1, (qh[l] >> (2 * j + 1)) & 1)
                    });
                    out.values[j * 64 + l] = lo | (h0 << 4);
                    out.values[j * 64 + 32 + l] = hi | (h1 << 4);
                }
            }
        }
        QKind::Q6K => {
            let (ql, qh) = (&b[..128], &b[128..192]);
            out.scales.copy_from_slice(&b[192..208]);
            out.d = half(&b[208..]);
            for n in 0..2 {
                let (ql, qh) = (&ql[n * 64..], &qh[n * 32..]);
                let v = &mut out.values[n * 128..];
                for l in 0..32 {
                    let h = qh[l];
                    v[l] = (ql[l] & 0x0F) | ((h & 3) << 4);
                    v[l + 32] = (ql[l + 32] & 0x0F) | (((h >> 2) & 3) << 4);
                    v[l + 64] = (ql[l] >> 4) | (((h >> 4) & 3) << 4);
                    v[l + 96] = (ql[l + 32] >> 4) | (((h >> 6) & 3) << 4);
                }
            }
        }
    }
}

/// 16 bytes of nibbles: value j low nibble of byte j, value j + 16 its high nibble.
fn nibbles(qs: &[u8], out: &mut [u8]) {
    for (j, &q) in qs.iter().enumerate() {
        out[j] = q & 0x0F;
        out[j + 16] = q >> 4;
    }
}

/// The eight 6-bit scales and mins of a Q4_K/Q5_K super-block (ggml's `get_scale_min_k4`).
fn k4_scales(q: &[u8], scales: &mut [u8; 16], mins: &mut [u8; 8]) {
    for j in 0..8 {
        let (sc, m) = if j < 4 {
            (q[j] & 63, q[j + 4] & 63)
        } else {
            (
                (q[j + 4] & 0x0F) | ((q[j - 4] >> 6) << 4),
                (q[j + 4] >> 4) | ((q[j] >> 6) << 4),
            )
        };
        scales[j] = sc;
        mins[j] = m;
    }
}
