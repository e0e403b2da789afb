//! Dot products of one weight tile (sixteen rows) with up to `ROWS_PER_PASS` activation rows,
//! `[activation row][row in tile]`. Every kernel keeps ggml's eight f32 lanes per dot (lane k
//! sums values 4k..4k+4 of every 32), each fed once per block (legacy types) or super-block
//! (K-quants, whose sub-block scales multiply exact integer sums first), and adds them in
//! ggml's `hsum_float_8` tree, then the minimum terms as ggml adds them. The SIMD kernels give
//! one lane per weight row: AVX2 in two halves of eight, AVX-512 VNNI in one 512-bit register
//! (`dpbusd` for each 4-byte group, `dpwssd` for a K-quant scale). The portable kernel gives
//! the same integers and roundings; it serves other CPUs, and the tests as the oracle.

#[cfg(all(
    target_arch = "x86_64",
    target_feature = "avx2",
    target_feature = "fma",
    target_feature = "f16c"
))]
mod avx2;
#[cfg(all(
    target_arch = "x86_64",
    target_feature = "avx2",
    target_feature = "fma",
    target_feature = "f16c"
))]
mod avx512;

use super::acts::ActRow;
use super::format::{QK, QKind};
use super::{QWeight, ROWS_PER_PASS, TILE};

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

/// The reference every SIMD kernel equals bit for bit.
pub fn portable(w: &QWeight, t: usize, ys: &[ActRow<'_>]) -> Dots {
    let mut out = [[0f32; TILE]; ROWS_PER_PASS];
    for (o, y) in out.iter_mut().zip(ys) {
        for (i, o) in o.iter_mut().enumerate() {
            let r = t * TILE + i;
            *o = if w.kind.k_quant() {
                portable_k(w, r, y)
            } else {
                portable_legacy(w, r, y)
            };
        }
    }
    out
}

/// Exact dot of group `k` (values 4k..4k+4) of sub-block `b`, stored values less `offset`.
fn group_dot(w: &QWeight, r: usize, b: usize, k: usize, y: &ActRow<'_>, offset: i32) -> i32 {
    (4 * k..4 * k + 4)
        .map(|j| w.quant(r, b, j) * y.qs[b * QK + j] as i32)
        .sum::<i32>()
        - offset * y.groups[b][k]
}

/// Legacy types: per block, each lane's integer dot times `d_w * d_y` added by one fused
/// multiply-add; a minimum's `m * s` summed in block order after the lanes.
fn portable_legacy(w: &QWeight, r: usize, y: &ActRow<'_>) -> f32 {
    let offset = w.kind.offset();
    let mut lanes = [0f32; 8];
    let mut minimums = 0f32;
    for b in 0..w.blocks() {
        let slot = w.slot(r, b);
        let scale = w.d[slot].to_f32() * y.d[b];
        for (k, lane) in lanes.iter_mut().enumerate() {
            *lane = scale.mul_add(group_dot(w, r, b, k, y, offset) as f32, *lane);
        }
        if w.kind.has_min() {
            minimums += w.m[slot].to_f32() * y.s[b];
        }
    }
    lane_tree(lanes) + minimums
}

/// K-quants: per super-block, each lane's integer sum over the sub-blocks of scale times dot,
/// then one fused multiply-add by `d_y * d_w`. Q4_K's minimum term runs in four lanes of
/// `dmin * (mins · sums)` over pairs of sub-blocks, Q5_K's in one sum, as ggml's AVX2 code.
fn portable_k(w: &QWeight, r: usize, y: &ActRow<'_>) -> f32 {
    let offset = w.kind.offset();
    let subs = QK_K_SUBS;
    let mut lanes = [0f32; 8];
    let mut mins4 = [0f32; 4];
    let mut summs = 0f32;
    for sb in 0..w.super_blocks() {
        let mut isum = [0i32; 8];
        for s in 0..subs {
            let b = sb * subs + s;
            for (k, isum) in isum.iter_mut().enumerate() {
                let scale = match w.kind {
                    QKind::Q6K => w.scale(r, sb, 2 * s + k / 4),
                    _ => w.scale(r, sb, s),
                };
                *isum += scale * group_dot(w, r, b, k, y, offset);
            }
        }
        let slot = w.slot(r, sb);
        let d = y.d[sb] * w.d[slot].to_f32();
        for (lane, isum) in lanes.iter_mut().zip(isum) {
            *lane = d.mul_add(isum as f32, *lane);
        }
        if w.kind.has_min() {
            let dmin = -y.d[sb] * w.m[slot].to_f32();
            let prod = |s: usize| w.min(r, sb, s) * y.sub_sum(sb * subs + s);
            match w.kind {
                QKind::Q4K => {
                    for (p, m) in mins4.iter_mut().enumerate() {
                        *m = dmin.mul_add((prod(2 * p) + prod(2 * p + 1)) as f32, *m);
                    }
                }
                // ggml's compiler contracts this one into a fused multiply-add (checked
                // against its vec_dot in tests/it/kquant.rs).
                _ => summs = dmin.mul_add((0..subs).map(prod).sum::<i32>() as f32, summs),
            }
        }
    }
    lane_tree(lanes) + ((mins4[0] + mins4[2]) + (mins4[1] + mins4[3])) + summs
}

/// Sub-blocks of 32 in a K-quant super-block.
const QK_K_SUBS: usize = super::QK_K / QK;

/// ggml's `hsum_float_8`: halves added, then pairs, then the last two (the SIMD kernels add
/// their lane vectors in the same tree).
fn lane_tree(a: [f32; 8]) -> f32 {
    ((a[0] + a[4]) + (a[2] + a[6])) + ((a[1] + a[5]) + (a[3] + a[7]))
}
