//! The k-quant super-blocks of 256 values (Q4_K, Q5_K, Q6_K) as ggml's reference quantizers
//! (`quantize_row_q*_K_ref`, no importance matrix) write them. Q4_K/Q5_K fit a scale and a
//! minimum to each 32-value sub-block by a weighted least-squares search (`fit_with_min`); Q6_K
//! fits a signed scale to each 16-value sub-block (`fit_symmetric`). The sub-block scales are then
//! quantized to 6 or 8 bits against one f16 super-block scale, and every value is rounded again
//! against the scale it will really be read with.

use super::blocks::{fp16, fp16_value, nearest_int, signed_absmax};

const QK_K: usize = 256;

/// A parameter search of `fit_with_min`: `steps + 1` trial inverse scales
/// `(nmax + rmin + rdelta·i) / (max - min)`.
struct Search {
    rmin: f32,
    rdelta: f32,
    steps: i32,
}

/// Q4_K: d, dmin (f16), twelve bytes of 6-bit scales and minimums, 128 bytes of nibbles.
pub fn q4_k(x: &[f32], out: &mut [u8]) {
    let search = Search {
        rmin: -1.0,
        rdelta: 0.1,
        steps: 20,
    };
    let levels = scaled_with_min(x, out, 15, &search);
    // Values 32 apart share a byte: the first 32 of each 64 in the low nibbles.
    let qs = &mut out[16..144];
    for (half, q) in qs.chunks_mut(32).enumerate() {
        let base = half * 64;
        for (l, byte) in q.iter_mut().enumerate() {
            *byte = levels[base + l] | (levels[base + l + 32] << 4);
        }
    }
}

/// Q5_K: as Q4_K with 5-bit levels; the fifth bits go to 32 bytes of `qh`, two bits per 64 values.
pub fn q5_k(x: &[f32], out: &mut [u8]) {
    let search = Search {
        rmin: -0.5,
        rdelta: 0.1,
        steps: 15,
    };
    let levels = scaled_with_min(x, out, 31, &search);
    let (qh, qs) = out[16..176].split_at_mut(32);
    qh.fill(0);
    for (pair, q) in qs.chunks_mut(32).enumerate() {
        let base = pair * 64;
        let (m1, m2) = (1u8 << (2 * pair), 2u8 << (2 * pair));
        for (j, byte) in q.iter_mut().enumerate() {
            let (mut l1, mut l2) = (levels[base + j], levels[base + j + 32]);
            if l1 > 15 {
                l1 -= 16;
                qh[j] |= m1;
            }
            if l2 > 15 {
                l2 -= 16;
                qh[j] |= m2;
            }
            *byte = l1 | (l2 << 4);
        }
    }
}

/// The part Q4_K and Q5_K share: fit each 32-value sub-block, write d, dmin and the packed 6-bit
/// scales and minimums into `out[..16]`, and return every value's level (0..=nmax) against the
/// scale and minimum as stored.
fn scaled_with_min(x: &[f32], out: &mut [u8], nmax: i32, search: &Search) -> [u8; QK_K] {
    let mut levels = [0u8; QK_K];
    let mut scales = [0f32; 8];
    let mut mins = [0f32; 8];
    let (mut max_scale, mut max_min) = (0f32, 0f32);
    for j in 0..8 {
        let sub = &x[32 * j..32 * (j + 1)];
        let sum_x2 = sub.iter().fold(0f32, |s, v| s + v * v);
        let av_x = (sum_x2 / 32.0).sqrt();
        let weights: [f32; 32] = std::array::from_fn(|l| av_x + sub[l].abs());
        let levels_j = &mut levels[32 * j..32 * (j + 1)];
        (scales[j], mins[j]) = fit_with_min(sub, &weights, nmax, levels_j, search);
        if scales[j] > max_scale {
            max_scale = scales[j];
        }
        if mins[j] > max_min {
            max_min = mins[j];
        }
    }
    let inv_scale = if max_scale > 0.0 {
        63.0 / max_scale
    } else {
        0.0
    };
    let inv_min = if max_min > 0.0 { 63.0 / max_min } else { 0.0 };
    let packed = &mut out[4..16];
    for j in 0..8 {
        // ggml stores nearest_int's result in a uint8_t (modulo 256), then caps it at 63.
        let ls = (nearest_int(inv_scale * scales[j]) as u8).min(63);
        let lm = (nearest_int(inv_min * mins[j]) as u8).min(63);
        pack_scale_min(packed, j, ls, lm);
    }
    out[0..2].copy_from_slice(&fp16(max_scale / 63.0));
    out[2..4].copy_from_slice(&fp16(max_min / 63.0));
    let d_all = fp16_value([out[0], out[1]]);
    let dmin_all = fp16_value([out[2], out[3]]);
    for j in 0..8 {
        let (sc, m) = scale_min(&out[4..16], j);
        let d = d_all * f32::from(sc);
        if d == 0.0 {
            continue;
        }
        let dm = dmin_all * f32::from(m);
        for i in 32 * j..32 * (j + 1) {
            levels[i] = nearest_int((x[i] + dm) / d).clamp(0, nmax) as u8;
        }
    }
    levels
}

/// The 12-byte layout of eight 6-bit scales and minimums: sub-blocks 0..4 in the low six bits of
/// bytes 0..4 (scales) and 4..8 (minimums); sub-blocks 4..8 in the nibbles of bytes 8..12 with
/// their top two bits in the spare high bits of bytes 0..8. Sub-blocks are written in order, so
/// the bytes OR-ed into are already set.
fn pack_scale_min(packed: &mut [u8], j: usize, ls: u8, lm: u8) {
    if j < 4 {
        packed[j] = ls;
        packed[j + 4] = lm;
    } else {
        packed[j + 4] = (ls & 0x0f) | ((lm & 0x0f) << 4);
        packed[j - 4] |= (ls >> 4) << 6;
        packed[j] |= (lm >> 4) << 6;
    }
}

/// Sub-block j's 6-bit scale and minimum back from the packed layout (ggml's get_scale_min_k4).
fn scale_min(packed: &[u8], j: usize) -> (u8, u8) {
    if j < 4 {
        (packed[j] & 63, packed[j + 4] & 63)
    } else {
        (
            (packed[j + 4] & 0x0f) | ((packed[j - 4] >> 6) << 4),
            (packed[j + 4] >> 4) | ((packed[j] >> 6) << 4),
        )
    }
}

/// ggml's make_qkx2_quants with squared error: levels 0..=nmax for `x ≈ scale·level - min_out`
/// minimising the weighted squared error over a small search of scales, each refined by weighted
/// least squares for scale and minimum together. Returns (scale, min_out), min_out >= 0. The
/// minimum found so far feeds the next trial's range, as in ggml.
fn fit_with_min(
    x: &[f32],
    weights: &[f32],
    nmax: i32,
    levels: &mut [u8],
    search: &Search,
) -> (f32, f32) {
    let (mut min, mut max) = (x[0], x[0]);
    let mut sum_w = weights[0];
    let mut sum_x = sum_w * x[0];
    for (&v, &w) in x.iter().zip(weights).skip(1) {
        if v < min {
            min = v;
        }
        if v > max {
            max = v;
        }
        sum_w += w;
        sum_x += w * v;
    }
    if min > 0.0 {
        min = 0.0;
    }
    if max == min {
        levels.fill(0);
        return (0.0, -min);
    }
    let nmax_f = nmax as f32;
    let mut iscale = nmax_f / (max - min);
    let mut scale = 1.0 / iscale;
    let mut best_error = 0f32;
    for ((level, &v), &w) in levels.iter_mut().zip(x).zip(weights) {
        *level = nearest_int(iscale * (v - min)).clamp(0, nmax) as u8;
        let diff = scale * f32::from(*level) + min - v;
        best_error += w * (diff * diff);
    }
    let mut trial = [0u8; 32];
    let trial = &mut trial[..x.len()];
    for step in 0..=search.steps {
        iscale = (search.rmin + search.rdelta * step as f32 + nmax_f) / (max - min);
        let (mut sum_l, mut sum_l2, mut sum_xl) = (0f32, 0f32, 0f32);
        for ((level, &v), &w) in trial.iter_mut().zip(x).zip(weights) {
            let l = nearest_int(iscale * (v - min)).clamp(0, nmax);
            *level = l as u8;
            let l = l as f32;
            sum_l += w * l;
            sum_l2 += w * l * l;
            sum_xl += w * l * v;
        }
        let det = sum_w * sum_l2 - sum_l * sum_l;
        if det > 0.0 {
            let mut this_scale = (sum_w * sum_xl - sum_x * sum_l) / det;
            let mut this_min = (sum_l2 * sum_x - sum_l * sum_xl) / det;
            if this_min > 0.0 {
                this_min = 0.0;
                this_scale = sum_xl / sum_l2;
            }
            let mut error = 0f32;
            for ((&level, &v), &w) in trial.iter().zip(x).zip(weights) {
                let diff = this_scale * f32::from(level) + this_min - v;
                error += w * (diff * diff);
            }
            if error < best_error {
                levels.copy_from_slice(trial);
                best_error = error;
                scale = this_scale;
                min = this_min;
            }
        }
    }
    (scale, -min)
}

/// Q6_K: 128 bytes of low nibbles, 64 of high bit pairs, sixteen signed 8-bit scales, then d.
pub fn q6_k(x: &[f32], out: &mut [u8]) {
    let mut levels = [0u8; QK_K];
    let mut scales = [0f32; 16];
    let (mut max_abs_scale, mut max_scale) = (0f32, 0f32);
    for (ib, scale) in scales.iter_mut().enumerate() {
        let range = 16 * ib..16 * (ib + 1);
        *scale = fit_symmetric(&x[range.clone()], 32, &mut levels[range]);
        if scale.abs() > max_abs_scale {
            max_abs_scale = scale.abs();
            max_scale = *scale;
        }
    }
    if max_abs_scale < GROUP_MAX_EPS {
        out.fill(0);
        return;
    }
    let iscale = -128.0 / max_scale;
    out[208..210].copy_from_slice(&fp16(1.0 / iscale));
    let d_all = fp16_value([out[208], out[209]]);
    for (ib, &scale) in scales.iter().enumerate() {
        // Capped above only, then stored as int8_t as ggml does.
        let stored = nearest_int(iscale * scale).min(127) as i8;
        out[192 + ib] = stored as u8;
        let d = d_all * f32::from(stored);
        if d == 0.0 {
            continue;
        }
        for i in 16 * ib..16 * (ib + 1) {
            levels[i] = (nearest_int(x[i] / d).clamp(-32, 31) + 32) as u8;
        }
    }
    let (ql, rest) = out.split_at_mut(128);
    let qh = &mut rest[..64];
    for half in 0..2 {
        let (l0, ql, qh) = (
            &levels[128 * half..],
            &mut ql[64 * half..],
            &mut qh[32 * half..],
        );
        for l in 0..32 {
            let (a, b, c, d) = (l0[l], l0[l + 32], l0[l + 64], l0[l + 96]);
            ql[l] = (a & 0x0f) | ((c & 0x0f) << 4);
            ql[l + 32] = (b & 0x0f) | ((d & 0x0f) << 4);
            qh[l] = (a >> 4) | ((b >> 4) << 2) | ((c >> 4) << 4) | ((d >> 4) << 6);
        }
    }
}

/// Below this every value of a group counts as zero (ggml's GROUP_MAX_EPS).
const GROUP_MAX_EPS: f32 = 1e-15;

/// ggml's make_qx_quants with weights x² (rmse_type 1): signed levels -nmax..nmax-1, stored
/// offset by nmax, for `x ≈ scale·level`, trying nineteen inverse scales around -nmax/max and
/// keeping the one whose least-squares scale explains the most weighted energy.
fn fit_symmetric(x: &[f32], nmax: i32, levels: &mut [u8]) -> f32 {
    let (amax, max) = signed_absmax(x);
    if amax < GROUP_MAX_EPS {
        levels.fill(0);
        return 0.0;
    }
    let nmax_f = nmax as f32;
    let level_of = |iscale: f32, v: f32| nearest_int(iscale * v).clamp(-nmax, nmax - 1);
    let sums = |iscale: f32| {
        x.iter().fold((0f32, 0f32), |(sumlx, suml2), &v| {
            let l = level_of(iscale, v) as f32;
            let w = v * v;
            (sumlx + w * v * l, suml2 + w * l * l)
        })
    };
    let mut iscale = -nmax_f / max;
    let set_levels = |levels: &mut [u8], iscale: f32| {
        for (level, &v) in levels.iter_mut().zip(x) {
            *level = (level_of(iscale, v) + nmax) as u8;
        }
    };
    set_levels(levels, iscale);
    let (sumlx, suml2) = sums(iscale);
    let mut scale = if suml2 != 0.0 { sumlx / suml2 } else { 0.0 };
    let mut best = scale * sumlx;
    for is in (-9..=9).filter(|&is| is != 0) {
        iscale = -(nmax_f + 0.1 * is as f32) / max;
        let (sumlx, suml2) = sums(iscale);
        if suml2 > 0.0 && sumlx * sumlx > best * suml2 {
            set_levels(levels, iscale);
            scale = sumlx / suml2;
            best = scale * sumlx;
        }
    }
    scale
}
