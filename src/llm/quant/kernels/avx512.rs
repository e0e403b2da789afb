//! AVX-512 VNNI: sixteen weight rows in one register, one lane each; `dpbusd` makes a 4-byte
//! group's dot in one instruction and, for K-quants, `dpwssd` adds it times the row's
//! sub-block scale. Two activation rows per pass share each unpacked weight vector.

use std::arch::x86_64::*;

use super::super::acts::ActRow;
use super::super::format::{QK, QKind, Storage};
use super::super::{QWeight, ROWS_PER_PASS, TILE};
use super::{Dots, QK_K_SUBS};

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
    for (o, ys) in out.chunks_mut(2).zip(ys.chunks(2)) {
        // SAFETY: the features are enabled on this function.
        unsafe {
            match (ys, w.kind.k_quant()) {
                ([a], false) => o[0] = sixteen::<1>(w, t, [a])[0],
                ([a, b], false) => o.copy_from_slice(&sixteen::<2>(w, t, [a, b])),
                ([a], true) => o[0] = sixteen_k::<1>(w, t, [a])[0],
                ([a, b], true) => o.copy_from_slice(&sixteen_k::<2>(w, t, [a, b])),
                _ => unreachable!("chunks of two"),
            }
        }
    }
    out
}

/// Sixteen f16 values of `v` from `at` as f32.
#[inline(always)]
unsafe fn halves(v: &[half::f16], at: usize) -> __m512 {
    unsafe { _mm512_cvtph_ps(_mm256_loadu_si256(v.as_ptr().add(at) as *const __m256i)) }
}

/// Activation bytes 4k..4k+4 in every lane.
#[inline(always)]
unsafe fn group(y: *const i8, k: usize) -> __m512i {
    unsafe { _mm512_set1_epi32(std::ptr::read_unaligned(y.add(4 * k) as *const i32)) }
}

/// The lanes added in ggml's `hsum_float_8` tree.
#[inline(always)]
unsafe fn tree(a: &[__m512; 8]) -> __m512 {
    unsafe {
        _mm512_add_ps(
            _mm512_add_ps(_mm512_add_ps(a[0], a[4]), _mm512_add_ps(a[2], a[6])),
            _mm512_add_ps(_mm512_add_ps(a[1], a[5]), _mm512_add_ps(a[3], a[7])),
        )
    }
}

/// Sub-block `b` of tile `t`: its quants as eight vectors, vector k holding values 4k..4k+4
/// of each row as unsigned bytes (Q8_0 moved up by 128), with a software prefetch ahead.
#[inline(always)]
unsafe fn unpack(w: &QWeight, t: usize, b: usize) -> [__m512i; 8] {
    const GROUP: usize = 4 * TILE;
    let tb = t * w.blocks() + b;
    unsafe {
        let q = w.qs.as_ptr().add(tb * TILE * w.kind.qs_len());
        prefetch(
            q.wrapping_add(AHEAD * TILE * w.kind.qs_len()),
            TILE * w.kind.qs_len(),
        );
        let mut x = [_mm512_setzero_si512(); 8];
        match w.kind.storage() {
            Storage::Bytes => {
                for (k, x) in x.iter_mut().enumerate() {
                    *x = _mm512_loadu_si512(q.add(k * GROUP) as *const __m512i);
                }
                if w.kind == QKind::Q8_0 {
                    for x in &mut x {
                        *x = _mm512_xor_si512(*x, _mm512_set1_epi8(-128));
                    }
                }
            }
            Storage::Nibbles | Storage::NibblesHigh => {
                let low = _mm512_set1_epi8(0x0F);
                for k in 0..4 {
                    let p = _mm512_loadu_si512(q.add(k * GROUP) as *const __m512i);
                    x[k] = _mm512_and_si512(p, low);
                    x[k + 4] = _mm512_and_si512(_mm512_srli_epi16::<4>(p), low);
                }
                if w.kind.storage() == Storage::NibblesHigh {
                    let qh = w.qh.as_ptr().add(tb * TILE * 4);
                    prefetch(qh.wrapping_add(AHEAD * TILE * 4), TILE * 4);
                    let h = _mm512_loadu_si512(qh as *const __m512i);
                    let bit = _mm512_set1_epi8(0x10);
                    for (k, x) in x.iter_mut().enumerate() {
                        // Bit k of each fifth-bit byte moved to bit 4.
                        let s = if k <= 4 {
                            _mm512_sll_epi16(h, _mm_cvtsi32_si128(4 - k as i32))
                        } else {
                            _mm512_srl_epi16(h, _mm_cvtsi32_si128(k as i32 - 4))
                        };
                        *x = _mm512_or_si512(*x, _mm512_and_si512(s, bit));
                    }
                }
            }
        }
        x
    }
}

/// Tile blocks the prefetch runs ahead: the hardware prefetcher alone leaves the dots waiting
/// on memory. Addresses past the end are fine: a prefetch never faults.
const AHEAD: usize = 32;

#[inline(always)]
unsafe fn prefetch(p: *const u8, bytes: usize) {
    for line in (0..bytes).step_by(64) {
        // SAFETY: a prefetch of any address is allowed.
        unsafe { _mm_prefetch::<_MM_HINT_T0>(p.wrapping_add(line) as *const i8) };
    }
}

/// Legacy types: `R` activation rows with sixteen weight rows, eight lane accumulators per
/// activation row.
#[allow(clippy::needless_range_loop)]
#[inline(always)]
unsafe fn sixteen<const R: usize>(w: &QWeight, t: usize, ys: [&ActRow<'_>; R]) -> [[f32; TILE]; R] {
    unsafe {
        // What the integer dot of stored bytes overcounts per unit of an activation group's
        // sum: the type's offset, or 128 for Q8_0 made unsigned.
        let offset = if w.kind == QKind::Q8_0 {
            128
        } else {
            w.kind.offset()
        };
        let mut acc = [[_mm512_setzero_ps(); 8]; R];
        for b in 0..w.blocks() {
            let x = unpack(w, t, b);
            let s = (t * w.blocks() + b) * TILE;
            _mm_prefetch::<_MM_HINT_T0>(w.d.as_ptr().wrapping_add(s + AHEAD * TILE) as *const i8);
            let wd = halves(&w.d, s);
            for r in 0..R {
                let y = ys[r];
                let yq = y.qs.as_ptr().add(b * QK);
                let scale = _mm512_mul_ps(wd, _mm512_set1_ps(y.d[b]));
                for k in 0..8 {
                    let mut dot = _mm512_dpbusd_epi32(_mm512_setzero_si512(), x[k], group(yq, k));
                    if offset != 0 {
                        dot = _mm512_sub_epi32(dot, _mm512_set1_epi32(offset * y.groups[b][k]));
                    }
                    acc[r][k] = _mm512_fmadd_ps(scale, _mm512_cvtepi32_ps(dot), acc[r][k]);
                }
            }
        }
        let mut out = [[0f32; TILE]; R];
        for r in 0..R {
            let mut v = tree(&acc[r]);
            if w.kind.has_min() {
                // As in the AVX2 kernel: the minimum term in block order, after the lanes.
                let mut minimums = _mm512_setzero_ps();
                for b in 0..w.blocks() {
                    let m = halves(&w.m, (t * w.blocks() + b) * TILE);
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

/// Sixteen rows' integer scales `i` of super-block `sb` as i32 lanes whose high half is zero
/// (for `dpwssd`; Q6_K's sign-extended into the low half).
#[inline(always)]
unsafe fn scales(w: &QWeight, t: usize, sb: usize, i: usize) -> __m512i {
    unsafe {
        let at = ((t * w.super_blocks() + sb) * w.kind.scales() + i) * TILE;
        let bytes = _mm_loadu_si128(w.sc.as_ptr().add(at) as *const __m128i);
        if w.kind == QKind::Q6K {
            _mm512_and_si512(_mm512_cvtepi8_epi32(bytes), _mm512_set1_epi32(0xFFFF))
        } else {
            _mm512_cvtepu8_epi32(bytes)
        }
    }
}

/// K-quants: `R` activation rows with sixteen weight rows. Per super-block each lane's
/// integer sum collects scale x dot over the eight sub-blocks (exact: a dot of four values
/// fits in 16 bits, so `dpwssd` multiplies it by the scale), then one fused multiply-add.
#[allow(clippy::needless_range_loop)]
#[inline(always)]
unsafe fn sixteen_k<const R: usize>(
    w: &QWeight,
    t: usize,
    ys: [&ActRow<'_>; R],
) -> [[f32; TILE]; R] {
    unsafe {
        let offset = w.kind.offset();
        let mut acc = [[_mm512_setzero_ps(); 8]; R];
        let mut mins4 = [[_mm512_setzero_ps(); 4]; R];
        let mut summs = [_mm512_setzero_ps(); R];
        for sb in 0..w.super_blocks() {
            let mut isum = [[_mm512_setzero_si512(); 8]; R];
            for s in 0..QK_K_SUBS {
                let b = sb * QK_K_SUBS + s;
                let x = unpack(w, t, b);
                let (lo, hi) = if w.kind == QKind::Q6K {
                    (scales(w, t, sb, 2 * s), scales(w, t, sb, 2 * s + 1))
                } else {
                    let one = scales(w, t, sb, s);
                    (one, one)
                };
                for r in 0..R {
                    let yq = ys[r].qs.as_ptr().add(b * QK);
                    for k in 0..8 {
                        let mut dot =
                            _mm512_dpbusd_epi32(_mm512_setzero_si512(), x[k], group(yq, k));
                        if offset != 0 {
                            let o = _mm512_set1_epi32(offset * ys[r].groups[b][k]);
                            dot = _mm512_sub_epi32(dot, o);
                        }
                        let sc = if k < 4 { lo } else { hi };
                        isum[r][k] = _mm512_dpwssd_epi32(isum[r][k], dot, sc);
                    }
                }
            }
            let slot = (t * w.super_blocks() + sb) * TILE;
            let wd = halves(&w.d, slot);
            for r in 0..R {
                let d = _mm512_mul_ps(_mm512_set1_ps(ys[r].d[sb]), wd);
                for k in 0..8 {
                    acc[r][k] = _mm512_fmadd_ps(d, _mm512_cvtepi32_ps(isum[r][k]), acc[r][k]);
                }
            }
            if w.kind.has_min() {
                let wm = halves(&w.m, slot);
                let mins: [__m512i; QK_K_SUBS] = std::array::from_fn(|s| {
                    let at = ((t * w.super_blocks() + sb) * 8 + s) * TILE;
                    _mm512_cvtepu8_epi32(_mm_loadu_si128(w.mn.as_ptr().add(at) as *const __m128i))
                });
                for r in 0..R {
                    let dmin = _mm512_mul_ps(_mm512_set1_ps(-ys[r].d[sb]), wm);
                    let prod = |s: usize| {
                        let sum = _mm512_set1_epi32(ys[r].sub_sum(sb * QK_K_SUBS + s));
                        _mm512_mullo_epi32(mins[s], sum)
                    };
                    if w.kind == QKind::Q4K {
                        for p in 0..4 {
                            let pair = _mm512_add_epi32(prod(2 * p), prod(2 * p + 1));
                            mins4[r][p] =
                                _mm512_fmadd_ps(dmin, _mm512_cvtepi32_ps(pair), mins4[r][p]);
                        }
                    } else {
                        let total =
                            (1..QK_K_SUBS).fold(prod(0), |a, s| _mm512_add_epi32(a, prod(s)));
                        summs[r] = _mm512_fmadd_ps(dmin, _mm512_cvtepi32_ps(total), summs[r]);
                    }
                }
            }
        }
        let mut out = [[0f32; TILE]; R];
        for r in 0..R {
            let m = &mins4[r];
            let m = _mm512_add_ps(_mm512_add_ps(m[0], m[2]), _mm512_add_ps(m[1], m[3]));
            let v = _mm512_add_ps(_mm512_add_ps(tree(&acc[r]), m), summs[r]);
            _mm512_storeu_ps(out[r].as_mut_ptr(), v);
        }
        out
    }
}
