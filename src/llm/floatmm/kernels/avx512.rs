//! AVX-512: the sixteen lanes in one register; four weight rows by four activation rows per
//! block (sixteen accumulators of the 32 registers).

use std::arch::x86_64::*;

use super::super::{FWeight, Order};
use super::{Dots, Lanes, run};

pub fn detected() -> bool {
    std::arch::is_x86_feature_detected!("avx512f")
}

pub fn dots(w: &FWeight, t: usize, xs: &[&[f32]], order: Order) -> Dots {
    // SAFETY: `select` and `available` offer this only when `detected()`.
    unsafe { dispatch(w, t, xs, order) }
}

#[target_feature(enable = "avx512f")]
unsafe fn dispatch(w: &FWeight, t: usize, xs: &[&[f32]], order: Order) -> Dots {
    // SAFETY: the feature is enabled on this function.
    unsafe { run::<Zmm, 4, 4>(w, t, xs, order) }
}

#[derive(Clone, Copy)]
struct Zmm(__m512);

impl Lanes for Zmm {
    #[inline(always)]
    unsafe fn zero() -> Self {
        unsafe { Zmm(_mm512_setzero_ps()) }
    }
    #[inline(always)]
    unsafe fn load(p: *const f32) -> Self {
        unsafe { Zmm(_mm512_loadu_ps(p)) }
    }
    #[inline(always)]
    unsafe fn load_f16(p: *const u16) -> Self {
        unsafe { Zmm(_mm512_cvtph_ps(_mm256_loadu_si256(p as *const __m256i))) }
    }
    #[inline(always)]
    unsafe fn load_bf16(p: *const u16) -> (Self, Self) {
        unsafe {
            let v = _mm512_loadu_si512(p as *const __m512i);
            let even = _mm512_slli_epi32::<16>(v);
            let odd = _mm512_and_si512(v, _mm512_set1_epi32(0xFFFF_0000u32 as i32));
            (
                Zmm(_mm512_castsi512_ps(even)),
                Zmm(_mm512_castsi512_ps(odd)),
            )
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
        unsafe { Zmm(_mm512_fmadd_ps(a.0, b.0, c.0)) }
    }
    #[inline(always)]
    unsafe fn add(a: Self, b: Self) -> Self {
        unsafe { Zmm(_mm512_add_ps(a.0, b.0)) }
    }
    #[inline(always)]
    unsafe fn sum(self) -> f32 {
        unsafe {
            let high = _mm256_castpd_ps(_mm512_extractf64x4_pd::<1>(_mm512_castps_pd(self.0)));
            let eight = _mm256_add_ps(high, _mm512_castps512_ps256(self.0));
            super::avx2::sum8(eight)
        }
    }
}
