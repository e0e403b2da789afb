//! The 32-value block types (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0) as ggml's reference quantizers write
//! them: one f16 scale (and an f16 minimum for the `_1` types) per block, values rounded by adding
//! a half and truncating, the low nibble holding the first sixteen values.

use super::blocks::{fp16, signed_absmax};

/// Symmetric 4 bits: d = max / -8 (the largest magnitude maps to -8), quants 0..15 around 8.
pub fn q4_0(x: &[f32], out: &mut [u8]) {
    let (_, max) = signed_absmax(x);
    let d = max / -8.0;
    let id = if d != 0.0 { 1.0 / d } else { 0.0 };
    out[..2].copy_from_slice(&fp16(d));
    let level = |v: f32| (truncate_i8(v * id + 8.5) as i32).min(15) as u8;
    pack_nibbles(x, &mut out[2..18], level);
}

/// 4 bits with a minimum: d = (max - min) / 15, quants 0..15 above min.
pub fn q4_1(x: &[f32], out: &mut [u8]) {
    let (min, max) = min_max(x);
    let d = (max - min) / 15.0;
    let id = if d != 0.0 { 1.0 / d } else { 0.0 };
    out[..2].copy_from_slice(&fp16(d));
    out[2..4].copy_from_slice(&fp16(min));
    let level = |v: f32| (truncate_i8((v - min) * id + 0.5) as i32).min(15) as u8;
    pack_nibbles(x, &mut out[4..20], level);
}

/// Symmetric 5 bits: d = max / -16, the fifth bits of all 32 quants in one u32.
pub fn q5_0(x: &[f32], out: &mut [u8]) {
    let (_, max) = signed_absmax(x);
    let d = max / -16.0;
    let id = if d != 0.0 { 1.0 / d } else { 0.0 };
    out[..2].copy_from_slice(&fp16(d));
    let level = |v: f32| (truncate_i8(v * id + 16.5) as i32).min(31) as u8;
    pack_five_bits(x, &mut out[2..22], level);
}

/// 5 bits with a minimum: d = (max - min) / 31. ggml does not clamp here (the top value lands on
/// 31 exactly).
pub fn q5_1(x: &[f32], out: &mut [u8]) {
    let (min, max) = min_max(x);
    let d = (max - min) / 31.0;
    let id = if d != 0.0 { 1.0 / d } else { 0.0 };
    out[..2].copy_from_slice(&fp16(d));
    out[2..4].copy_from_slice(&fp16(min));
    let level = |v: f32| truncate_i8((v - min) * id + 0.5) as u8;
    pack_five_bits(x, &mut out[4..24], level);
}

/// 8 bits: d = amax / 127, each value rounded half away from zero (C's `roundf`).
pub fn q8_0(x: &[f32], out: &mut [u8]) {
    // MAX(amax, |v|) as ggml writes it: a NaN value wins, as it does there.
    let amax = x
        .iter()
        .fold(0f32, |amax, v| if amax > v.abs() { amax } else { v.abs() });
    let d = amax / 127.0;
    let id = if d != 0.0 { 1.0 / d } else { 0.0 };
    out[..2].copy_from_slice(&fp16(d));
    for (q, &v) in out[2..34].iter_mut().zip(x) {
        *q = truncate_i8((v * id).round()) as u8;
    }
}

/// C's float to int8_t conversion as x86 builds of ggml do it: truncate to 32 bits, where NaN and
/// values out of range become i32::MIN (cvttss2si's "integer indefinite"), and keep the low byte.
/// It matters for blocks of subnormal values, whose inverse scale overflows to infinity: there
/// ggml writes 0 where Rust's saturating cast would write ±127.
fn truncate_i8(v: f32) -> i8 {
    let in_range = (-2_147_483_648.0..2_147_483_648.0).contains(&v);
    (if in_range { v as i32 } else { i32::MIN }) as i8
}

/// The scan of the `_1` types: min from +FLT_MAX down, max from -FLT_MAX up.
fn min_max(x: &[f32]) -> (f32, f32) {
    let (mut min, mut max) = (f32::MAX, -f32::MAX);
    for &v in x {
        if v < min {
            min = v;
        }
        if v > max {
            max = v;
        }
    }
    (min, max)
}

/// Value j in the low nibble of byte j, value j + 16 in its high nibble.
fn pack_nibbles(x: &[f32], qs: &mut [u8], level: impl Fn(f32) -> u8) {
    for (j, q) in qs.iter_mut().enumerate() {
        *q = level(x[j]) | (level(x[j + 16]) << 4);
    }
}

/// Four bytes of fifth bits (value j at bit j, little-endian), then the nibbles as in Q4.
fn pack_five_bits(x: &[f32], out: &mut [u8], level: impl Fn(f32) -> u8) {
    let mut high = 0u32;
    let (qh, qs) = out.split_at_mut(4);
    for (j, q) in qs.iter_mut().enumerate() {
        let (lo, hi) = (level(x[j]), level(x[j + 16]));
        *q = (lo & 0x0f) | ((hi & 0x0f) << 4);
        high |= u32::from((lo & 0x10) >> 4) << j;
        high |= u32::from((hi & 0x10) >> 4) << (j + 16);
    }
    qh.copy_from_slice(&high.to_le_bytes());
}
