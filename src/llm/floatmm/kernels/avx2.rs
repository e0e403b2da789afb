//! AVX2 (compiled in: the crate targets x86-64-v3): the sixteen lanes as two registers of
//! eight; two weight rows by two activation rows per block.

use std::arch::x86_64::*;

use super::super::{FWeight, Order};
use super::{Dots, Lanes, run};

pub fn dots(w: &FWeight, t: usize, xs: &[&[f32]], order: Order) -> Dots {
    // SAFETY: AVX2, FMA and F16C are compiled in (the cfg on this module).
    unsafe { run::<Ymm2, 2, 2>(w, t, xs, order) }
}

/// Lanes 0..8 and 8..16.
#[derive(Clone, Copy)]
struct Ymm2(__m256, __m256);

impl Lanes for Ymm2 {
    #[inline(always)]
    unsafe fn zero() -> Self {
        unsafe { Ymm2(_mm256_setzero_ps(), _mm256_setzero_ps()) }
    }
    #[inline(always)]
    unsafe fn load(p: *const f32) -> Self {
        unsafe { Ymm2(_mm256_loadu_ps(p), _mm256_loadu_ps(p.add(8))) }
    }
    #[inline(always)]
    unsafe fn load_f16(p: *const u16) -> Self {
        unsafe {
            Ymm2(
                _mm256_cvtph_ps(_mm_loadu_si128(p as *const __m128i)),
                _mm256_cvtph_ps(_mm_loadu_si128(p.add(8) as *const __m128i)),
            )
        }
    }
    #[inline(always)]
    unsafe fn load_bf16(p: *const u16) -> (Self, Self) {
        unsafe {
            let high = _mm256_set1_epi32(0xFFFF_0000u32 as i32);
            let a = _mm256_loadu_si256(p as *const __m256i);
            let b = _mm256_loadu_si256(p.add(16) as *const __m256i);
            let even = |v| _mm256_castsi256_ps(_mm256_slli_epi32::<16>(v));
            let odd = |v| _mm256_castsi256_ps(_mm256_and_si256(v, high));
            (Ymm2(even(a), even(b)), Ymm2(odd(a), odd(b)))
        }
    }
    #[inline(always)]
    unsafe fn prefetch(p: *const u8, bytes: usize) {
        for line in (0..bytes).step_by(64) {
            // SAFETY: a prefetch of any address is allowed.
            unsafe { _mm_prefetch::<_MM_HINT_T0>(p.wrapping_add(line) as *const i8) };
        }
    }
    #[inline(always)]
    unsafe fn fma(a: Self, b: Self, c: Self) -> Self {
        unsafe {
            Ymm2(
                _mm256_fmadd_ps(a.0, b.0, c.0),
                _mm256_fmadd_ps(a.1, b.1, c.1),
            )
        }
    }
    #[inline(always)]
    unsafe fn add(a: Self, b: Self) -> Self {
        unsafe { Ymm2(_mm256_add_ps(a.0, b.0), _mm256_add_ps(a.1, b.1)) }
    }
    #[inline(always)]
    unsafe fn sum(self) -> f32 {
        unsafe { sum8(_mm256_add_ps(self.1, self.0)) }
    }
}

/// Eight lanes summed as GCC's reduction ends: i plus i+4, then i+2, then i+1.
#[inline(always)]
pub(super) unsafe fn sum8(v: __m256) -> f32 {
    unsafe {
        let x = _mm_add_ps(_mm256_extractf128_ps::<1>(v), _mm256_castps256_ps128(v));
        let x = _mm_add_ps(x, _mm_movehl_ps(x, x));
        let x = _mm_add_ss(x, _mm_movehdup_ps(x));
        _mm_cvtss_f32(x)
    }
}
