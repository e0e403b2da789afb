//! AVX2: each half of the tile (eight weight rows) at a time, one activation row at a time,
//! eight lane accumulators (one per group of four values) as in `portable`.

use std::arch::x86_64::*;

use super::super::acts::ActRow;
use super::super::format::{QK, QKind, Storage};
use super::super::{QWeight, ROWS_PER_PASS, TILE};
use super::{Dots, QK_K_SUBS};

pub fn dot(w: &QWeight, t: usize, ys: &[ActRow<'_>]) -> Dots {
    let mut out = [[0f32; TILE]; ROWS_PER_PASS];
    for (o, y) in out.iter_mut().zip(ys) {
        for half in 0..2 {
            // SAFETY: AVX2, FMA and F16C are compiled in (the module's cfg).
            let v = unsafe {
                if w.kind.k_quant() {
                    eight_k(w, t, half, y)
                } else {
                    eight(w, t, half, y)
                }
            };
            // SAFETY: as above; `o` has room for both halves.
            unsafe { _mm256_storeu_ps(o.as_mut_ptr().add(half * 8), v) };
        }
    }
    out
}

/// Where sub-block `b` of tile `t` starts in `qs` and `qh`, for this half's rows.
#[inline(always)]
fn sub_block(w: &QWeight, t: usize, b: usize, half: usize) -> (usize, usize) {
    let tb = t * w.blocks() + b;
    (
        tb * TILE * w.kind.qs_len() + half * 32,
        tb * TILE * 4 + half * 32,
    )
}

/// Eight f16 values of `v` from `at` as f32.
#[inline(always)]
unsafe fn halves(v: &[half::f16], at: usize) -> __m256 {
    unsafe { _mm256_cvtph_ps(_mm_loadu_si128(v.as_ptr().add(at) as *const __m128i)) }
}

/// Activation bytes 4k..4k+4 in every lane.
#[inline(always)]
unsafe fn group(y: *const i8, k: usize) -> __m256i {
    unsafe { _mm256_set1_epi32(std::ptr::read_unaligned(y.add(4 * k) as *const i32)) }
}

/// Group `k` of eight rows' stored values as unsigned bytes (every type but Q8_0).
#[inline(always)]
unsafe fn unsigned_group(kind: QKind, q: *const u8, qh: *const u8, k: usize) -> __m256i {
    const GROUP: usize = 4 * TILE;
    unsafe {
        match kind.storage() {
            Storage::Bytes => _mm256_loadu_si256(q.add(k * GROUP) as *const __m256i),
            Storage::Nibbles | Storage::NibblesHigh => {
                // Groups 4..8 are the high nibbles of groups 0..4.
                let p = _mm256_loadu_si256(q.add((k % 4) * GROUP) as *const __m256i);
                let p = if k < 4 { p } else { _mm256_srli_epi16(p, 4) };
                let low = _mm256_and_si256(p, _mm256_set1_epi8(0x0F));
                if kind.storage() == Storage::Nibbles {
                    return low;
                }
                // Bit k of each fifth-bit byte moved to bit 4.
                let h = _mm256_loadu_si256(qh as *const __m256i);
                let h = if k <= 4 {
                    _mm256_sll_epi16(h, _mm_cvtsi32_si128(4 - k as i32))
                } else {
                    _mm256_srl_epi16(h, _mm_cvtsi32_si128(k as i32 - 4))
                };
                _mm256_or_si256(low, _mm256_and_si256(h, _mm256_set1_epi8(0x10)))
            }
        }
    }
}

/// Group `k` of eight weight rows dotted with the same group of the activation block: one
/// exact i32 per row, stored values (no offset).
#[inline(always)]
unsafe fn group_dot(kind: QKind, q: *const u8, qh: *const u8, k: usize, y: __m256i) -> __m256i {
    unsafe {
        let ones = _mm256_set1_epi16(1);
        if kind == QKind::Q8_0 {
            // Signed x signed: |x| as unsigned, x's sign moved onto y.
            let x = _mm256_loadu_si256(q.add(k * 4 * TILE) as *const __m256i);
            let pairs = _mm256_maddubs_epi16(_mm256_sign_epi8(x, x), _mm256_sign_epi8(y, x));
            return _mm256_madd_epi16(pairs, ones);
        }
        let x = unsigned_group(kind, q, qh, k);
        _mm256_madd_epi16(_mm256_maddubs_epi16(x, y), ones)
    }
}

/// The lanes added in ggml's `hsum_float_8` tree, one result per row.
#[inline(always)]
unsafe fn tree(acc: &[__m256; 8]) -> __m256 {
    unsafe {
        _mm256_add_ps(
            _mm256_add_ps(_mm256_add_ps(acc[0], acc[4]), _mm256_add_ps(acc[2], acc[6])),
            _mm256_add_ps(_mm256_add_ps(acc[1], acc[5]), _mm256_add_ps(acc[3], acc[7])),
        )
    }
}

/// Legacy types, one activation row with eight weight rows.
#[inline(always)]
unsafe fn eight(w: &QWeight, t: usize, half: usize, y: &ActRow<'_>) -> __m256 {
    unsafe {
        let offset = w.kind.offset();
        let mut acc = [_mm256_setzero_ps(); 8];
        for b in 0..w.blocks() {
            let (q, h) = sub_block(w, t, b, half);
            let (q, h) = (w.qs.as_ptr().add(q), w.qh.as_ptr().wrapping_add(h));
            let s = (t * w.blocks() + b) * TILE + half * 8;
            let scale = _mm256_mul_ps(halves(&w.d, s), _mm256_set1_ps(y.d[b]));
            let yq = y.qs.as_ptr().add(b * QK);
            for (k, acc) in acc.iter_mut().enumerate() {
                let mut dot = group_dot(w.kind, q, h, k, group(yq, k));
                if offset != 0 {
                    dot = _mm256_sub_epi32(dot, _mm256_set1_epi32(offset * y.groups[b][k]));
                }
                *acc = _mm256_fmadd_ps(scale, _mm256_cvtepi32_ps(dot), *acc);
            }
        }
        let tree = tree(&acc);
        if !w.kind.has_min() {
            return tree;
        }
        // The minimum term, the sum over blocks of `m * s`, added after the lanes in block
        // order as ggml does: the terms are large and cancel, so the order shows.
        let mut minimums = _mm256_setzero_ps();
        for b in 0..w.blocks() {
            let m = halves(&w.m, (t * w.blocks() + b) * TILE + half * 8);
            minimums = _mm256_add_ps(minimums, _mm256_mul_ps(m, _mm256_set1_ps(y.s[b])));
        }
        _mm256_add_ps(tree, minimums)
    }
}

/// Eight rows' integer scales `i` of super-block `sb`, each as an (s, s) pair of i16 for
/// `madd` (Q6_K's sign-extended).
#[inline(always)]
unsafe fn scale_pairs(w: &QWeight, t: usize, sb: usize, i: usize, half: usize) -> __m256i {
    unsafe {
        let at = ((t * w.super_blocks() + sb) * w.kind.scales() + i) * TILE + half * 8;
        let bytes = _mm_loadl_epi64(w.sc.as_ptr().add(at) as *const __m128i);
        let v = if w.kind == QKind::Q6K {
            _mm256_and_si256(_mm256_cvtepi8_epi32(bytes), _mm256_set1_epi32(0xFFFF))
        } else {
            _mm256_cvtepu8_epi32(bytes)
        };
        _mm256_or_si256(v, _mm256_slli_epi32(v, 16))
    }
}

/// K-quants, one activation row with eight weight rows.
#[inline(always)]
unsafe fn eight_k(w: &QWeight, t: usize, half: usize, y: &ActRow<'_>) -> __m256 {
    unsafe {
        let mut acc = [_mm256_setzero_ps(); 8];
        let mut mins4 = [_mm256_setzero_ps(); 4];
        let mut summs = _mm256_setzero_ps();
        for sb in 0..w.super_blocks() {
            let mut isum = [_mm256_setzero_si256(); 8];
            for s in 0..QK_K_SUBS {
                let b = sb * QK_K_SUBS + s;
                let (q, h) = sub_block(w, t, b, half);
                let (q, h) = (w.qs.as_ptr().add(q), w.qh.as_ptr().wrapping_add(h));
                let yq = y.qs.as_ptr().add(b * QK);
                let (lo, hi) = match w.kind {
                    QKind::Q6K => (
                        scale_pairs(w, t, sb, 2 * s, half),
                        scale_pairs(w, t, sb, 2 * s + 1, half),
                    ),
                    _ => {
                        let one = scale_pairs(w, t, sb, s, half);
                        (one, one)
                    }
                };
                for (k, isum) in isum.iter_mut().enumerate() {
                    let yk = group(yq, k);
                    let mut p = _mm256_maddubs_epi16(unsigned_group(w.kind, q, h, k), yk);
                    if w.kind == QKind::Q6K {
                        // Less 32 * y per value, still in i16 as ggml does.
                        p = _mm256_sub_epi16(p, _mm256_maddubs_epi16(_mm256_set1_epi8(32), yk));
                    }
                    let sc = if k < 4 { lo } else { hi };
                    *isum = _mm256_add_epi32(*isum, _mm256_madd_epi16(p, sc));
                }
            }
            let slot = (t * w.super_blocks() + sb) * TILE + half * 8;
            let d = _mm256_mul_ps(_mm256_set1_ps(y.d[sb]), halves(&w.d, slot));
            for (acc, isum) in acc.iter_mut().zip(isum) {
                *acc = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(isum), *acc);
            }
            if w.kind.has_min() {
                let dmin = _mm256_mul_ps(_mm256_set1_ps(-y.d[sb]), halves(&w.m, slot));
                let prod = |s: usize| {
                    let at = ((t * w.super_blocks() + sb) * 8 + s) * TILE + half * 8;
                    let mins = _mm_loadl_epi64(w.mn.as_ptr().add(at) as *const __m128i);
                    let sum = _mm256_set1_epi32(y.sub_sum(sb * QK_K_SUBS + s));
                    _mm256_mullo_epi32(_mm256_cvtepu8_epi32(mins), sum)
                };
                if w.kind == QKind::Q4K {
                    for (p, m) in mins4.iter_mut().enumerate() {
                        let pair = _mm256_add_epi32(prod(2 * p), prod(2 * p + 1));
                        *m = _mm256_fmadd_ps(dmin, _mm256_cvtepi32_ps(pair), *m);
                    }
                } else {
                    let total = (1..QK_K_SUBS).fold(prod(0), |a, s| _mm256_add_epi32(a, prod(s)));
                    summs = _mm256_fmadd_ps(dmin, _mm256_cvtepi32_ps(total), summs);
                }
            }
        }
        let m = _mm256_add_ps(
            _mm256_add_ps(mins4[0], mins4[2]),
            _mm256_add_ps(mins4[1], mins4[3]),
        );
        _mm256_add_ps(_mm256_add_ps(tree(&acc), m), summs)
    }
}

/// `quantize_block_portable` eight lanes at a time (the same products and rounding).
#[inline(always)]
pub unsafe fn quantize_block(x: &[f32; QK], q: &mut [i8; QK]) -> (f32, i32) {
    unsafe {
        let v: [__m256; 4] = std::array::from_fn(|k| _mm256_loadu_ps(x.as_ptr().add(8 * k)));
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
        let total = _mm256_add_epi32(_mm256_add_epi32(i[0], i[1]), _mm256_add_epi32(i[2], i[3]));
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
