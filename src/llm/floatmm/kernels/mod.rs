//! Dot products of one weight tile (four rows) with up to `ROWS_PER_PASS` activation rows,
//! `[activation row][row in tile]`, in ggml's two orders. One generic body serves every
//! kernel: `Lanes` is sixteen f32 lanes (an AVX-512 register, two AVX2 halves, or an array in
//! the portable kernel, the oracle the others equal bit for bit), `Form` the weight type.

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

use half::{bf16, f16};

use super::{Data, FWeight, FloatKind, Order, ROWS_PER_PASS, TILE, act};

pub type Dots = [[f32; TILE]; ROWS_PER_PASS];
pub type Kernel = fn(&FWeight, usize, &[&[f32]], Order) -> Dots;

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
            return avx512::dots;
        }
        avx2::dots
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
        all.push(("avx2", avx2::dots));
        if avx512::detected() {
            all.push(("avx512", avx512::dots));
        }
    }
    all
}

pub fn portable(w: &FWeight, t: usize, xs: &[&[f32]], order: Order) -> Dots {
    // SAFETY: plain arrays; the bounds are those of the tiles and prepared rows.
    unsafe { run::<Portable, 4, 4>(w, t, xs, order) }
}

/// Sixteen f32 lanes.
pub(super) trait Lanes: Copy {
    unsafe fn zero() -> Self;
    unsafe fn load(p: *const f32) -> Self;
    unsafe fn load_f16(p: *const u16) -> Self;
    /// Thirty-two bf16 values widened: (even columns, odd columns).
    unsafe fn load_bf16(p: *const u16) -> (Self, Self);
    /// `a * b + c`, rounded once.
    unsafe fn fma(a: Self, b: Self, c: Self) -> Self;
    unsafe fn add(a: Self, b: Self) -> Self;
    /// A hint to fetch the cache lines of `bytes` from `p` (any address: a prefetch never
    /// faults).
    unsafe fn prefetch(_p: *const u8, _bytes: usize) {}
    /// GCC's `_mm512_reduce_add_ps`: lane i plus lane i+8, then i+4, then i+2, then i+1.
    unsafe fn sum(self) -> f32;
}

/// How one weight type feeds an accumulator.
pub(super) trait Form {
    type E;
    const KIND: FloatKind;
    /// Accumulators taking turns in ggml's `vec_dot` (64 columns a round).
    const TURNS: usize = 64 / Self::CHUNK;
    const CHUNK: usize;
    fn data(w: &FWeight) -> *const Self::E;
    /// One chunk of weights widened (the second vector only for BF16's odd columns).
    unsafe fn load<V: Lanes>(p: *const Self::E) -> [V; 2];
    /// One chunk of a row's dot added to `acc`.
    unsafe fn madd<V: Lanes>(w: [V; 2], x: *const f32, acc: V) -> V;
}

struct F32s;
struct F16s;
struct Bf16s;

impl Form for F32s {
    type E = f32;
    const KIND: FloatKind = FloatKind::F32;
    const CHUNK: usize = 16;
    fn data(w: &FWeight) -> *const f32 {
        match &w.data {
            Data::Single(v) => v.as_ptr(),
            Data::Half(_) => unreachable!("F32 weights are single"),
        }
    }
    #[inline(always)]
    unsafe fn load<V: Lanes>(p: *const f32) -> [V; 2] {
        unsafe { [V::load(p), V::zero()] }
    }
    #[inline(always)]
    unsafe fn madd<V: Lanes>(w: [V; 2], x: *const f32, acc: V) -> V {
        unsafe { V::fma(w[0], V::load(x), acc) }
    }
}

impl Form for F16s {
    type E = u16;
    const KIND: FloatKind = FloatKind::F16;
    const CHUNK: usize = 16;
    fn data(w: &FWeight) -> *const u16 {
        half_data(w)
    }
    #[inline(always)]
    unsafe fn load<V: Lanes>(p: *const u16) -> [V; 2] {
        unsafe { [V::load_f16(p), V::zero()] }
    }
    #[inline(always)]
    unsafe fn madd<V: Lanes>(w: [V; 2], x: *const f32, acc: V) -> V {
        unsafe { V::fma(w[0], V::load(x), acc) }
    }
}

impl Form for Bf16s {
    type E = u16;
    const KIND: FloatKind = FloatKind::Bf16;
    const CHUNK: usize = 32;
    fn data(w: &FWeight) -> *const u16 {
        half_data(w)
    }
    #[inline(always)]
    unsafe fn load<V: Lanes>(p: *const u16) -> [V; 2] {
        let (even, odd) = unsafe { V::load_bf16(p) };
        [even, odd]
    }
    /// `dpbf16`: per lane, the odd column's product, then the even one's (each product of
    /// two bf16 is exact in f32, so a fused multiply-add rounds as its addition does).
    #[inline(always)]
    unsafe fn madd<V: Lanes>(w: [V; 2], x: *const f32, acc: V) -> V {
        unsafe {
            let acc = V::fma(w[1], V::load(x.add(16)), acc);
            V::fma(w[0], V::load(x), acc)
        }
    }
}

fn half_data(w: &FWeight) -> *const u16 {
    match &w.data {
        Data::Half(v) => v.as_ptr(),
        Data::Single(_) => unreachable!("F16 and BF16 weights are halves"),
    }
}

/// The dots of tile `t` in `order`, `R` weight rows at a time with up to `G` activation rows
/// (the register blocking of each instruction set).
///
/// # Safety
/// `V`'s instructions must be available; `xs` are rows prepared by `Acts` for `w`.
#[inline(always)]
pub(super) unsafe fn run<V: Lanes, const R: usize, const G: usize>(
    w: &FWeight,
    t: usize,
    xs: &[&[f32]],
    order: Order,
) -> Dots {
    unsafe {
        match w.kind {
            FloatKind::F32 => by_form::<V, F32s, R, G>(w, t, xs, order),
            FloatKind::F16 => by_form::<V, F16s, R, G>(w, t, xs, order),
            FloatKind::Bf16 => by_form::<V, Bf16s, R, G>(w, t, xs, order),
        }
    }
}

#[inline(always)]
unsafe fn by_form<V: Lanes, K: Form, const R: usize, const G: usize>(
    w: &FWeight,
    t: usize,
    xs: &[&[f32]],
    order: Order,
) -> Dots {
    const { assert!(G <= 4, "gemm blocks take at most four activation rows") };
    let mut out = [[0f32; TILE]; ROWS_PER_PASS];
    for r0 in (0..TILE).step_by(R) {
        match order {
            Order::Gemm => {
                for (g, xs) in xs.chunks(G).enumerate() {
                    let o = &mut out[g * G..];
                    // SAFETY: as for `run`.
                    unsafe {
                        match xs.len() {
                            1 => put(o, r0, gemm::<V, K, R, 1>(w, t, r0, xs)),
                            2 => put(o, r0, gemm::<V, K, R, 2>(w, t, r0, xs)),
                            3 => put(o, r0, gemm::<V, K, R, 3>(w, t, r0, xs)),
                            _ => put(o, r0, gemm::<V, K, R, 4>(w, t, r0, xs)),
                        }
                    }
                }
            }
            Order::Dot => {
                for (o, x) in out.iter_mut().zip(xs) {
                    // SAFETY: as for `run`.
                    let d = unsafe { dot::<V, K, R>(w, t, r0, x) };
                    o[r0..r0 + R].copy_from_slice(&d);
                }
            }
        }
    }
    out
}

fn put<const R: usize, const A: usize>(out: &mut [[f32; TILE]], r0: usize, d: [[f32; R]; A]) {
    for (o, d) in out.iter_mut().zip(d) {
        o[r0..r0 + R].copy_from_slice(&d);
    }
}

/// Chunk `c` of row `r0 + r` of tile `t`.
#[inline(always)]
unsafe fn chunk<K: Form>(w: &FWeight, t: usize, r: usize, c: usize) -> *const K::E {
    unsafe { K::data(w).add(((t * w.chunks() + c) * TILE + r) * K::CHUNK) }
}

/// Chunks the prefetch runs ahead of the dots: the hardware prefetcher alone leaves them
/// waiting on memory.
const AHEAD: usize = 16;

/// Prefetches rows `r0..r0 + rows` of chunk `c + AHEAD` of tile `t`.
#[inline(always)]
unsafe fn ahead<V: Lanes, K: Form>(w: &FWeight, t: usize, r0: usize, rows: usize, c: usize) {
    let p = K::data(w).wrapping_add(((t * w.chunks() + c + AHEAD) * TILE + r0) * K::CHUNK);
    unsafe { V::prefetch(p as *const u8, rows * K::CHUNK * size_of::<K::E>()) };
}

/// tinyBLAS: one accumulator per output over every chunk, summed at the end.
#[inline(always)]
unsafe fn gemm<V: Lanes, K: Form, const R: usize, const A: usize>(
    w: &FWeight,
    t: usize,
    r0: usize,
    xs: &[&[f32]],
) -> [[f32; R]; A] {
    unsafe {
        let mut acc = [[V::zero(); R]; A];
        let x: [*const f32; A] = std::array::from_fn(|a| xs[a].as_ptr());
        for c in 0..w.cols / K::CHUNK {
            ahead::<V, K>(w, t, r0, R, c);
            for r in 0..R {
                let wv = K::load::<V>(chunk::<K>(w, t, r0 + r, c));
                for (acc, x) in acc.iter_mut().zip(x) {
                    acc[r] = K::madd(wv, x.add(c * K::CHUNK), acc[r]);
                }
            }
        }
        acc.map(|row| row.map(|v| v.sum()))
    }
}

/// `ggml_vec_dot_*`: accumulators taking turns over each 64 columns, combined as ggml
/// combines them, then the leftover columns one by one.
#[inline(always)]
unsafe fn dot<V: Lanes, K: Form, const R: usize>(
    w: &FWeight,
    t: usize,
    r0: usize,
    x: &[f32],
) -> [f32; R] {
    unsafe {
        let rounds = w.cols / 64;
        let mut acc = [[V::zero(); 4]; R];
        for round in 0..rounds {
            for j in 0..K::TURNS {
                let c = round * K::TURNS + j;
                ahead::<V, K>(w, t, r0, R, c);
                for (r, acc) in acc.iter_mut().enumerate() {
                    let wv = K::load::<V>(chunk::<K>(w, t, r0 + r, c));
                    acc[j] = K::madd(wv, x.as_ptr().add(c * K::CHUNK), acc[j]);
                }
            }
        }
        std::array::from_fn(|r| {
            let a = acc[r];
            let row = t * TILE + r0 + r;
            let from = rounds * 64;
            match K::KIND {
                // GGML_F32x16_REDUCE: halves of the four, then of the two, then the lanes.
                FloatKind::F32 => {
                    let head = V::add(V::add(a[0], a[2]), V::add(a[1], a[3])).sum();
                    (from..w.cols).fold(head, |s, c| s + w.weight(row, c) * x[c])
                }
                FloatKind::F16 => {
                    let head = V::add(V::add(a[0], a[2]), V::add(a[1], a[3])).sum();
                    tail(w, row, x, from, head as f64)
                }
                // ggml_vec_dot_bf16 sums each accumulator's lanes into a double.
                FloatKind::Bf16 => {
                    let head = a[0].sum() as f64 + a[1].sum() as f64;
                    tail(w, row, x, from, head)
                }
            }
        })
    }
}

/// F16 and BF16 `vec_dot`: the leftover columns' products added to a double.
fn tail(w: &FWeight, row: usize, x: &[f32], from: usize, head: f64) -> f32 {
    (from..w.cols).fold(head, |s, c| {
        s + (w.weight(row, c) * act(w.kind, x, c)) as f64
    }) as f32
}

/// The portable lanes.
#[derive(Clone, Copy)]
struct Portable([f32; 16]);

impl Lanes for Portable {
    unsafe fn zero() -> Self {
        Portable([0.0; 16])
    }
    unsafe fn load(p: *const f32) -> Self {
        Portable(std::array::from_fn(|i| unsafe { *p.add(i) }))
    }
    unsafe fn load_f16(p: *const u16) -> Self {
        Portable(std::array::from_fn(|i| {
            f16::from_bits(unsafe { *p.add(i) }).to_f32()
        }))
    }
    unsafe fn load_bf16(p: *const u16) -> (Self, Self) {
        let at = |i: usize| bf16::from_bits(unsafe { *p.add(i) }).to_f32();
        (
            Portable(std::array::from_fn(|i| at(2 * i))),
            Portable(std::array::from_fn(|i| at(2 * i + 1))),
        )
    }
    unsafe fn fma(a: Self, b: Self, c: Self) -> Self {
        Portable(std::array::from_fn(|i| a.0[i].mul_add(b.0[i], c.0[i])))
    }
    unsafe fn add(a: Self, b: Self) -> Self {
        Portable(std::array::from_fn(|i| a.0[i] + b.0[i]))
    }
    unsafe fn sum(self) -> f32 {
        let mut v = self.0;
        let mut n = 16;
        while n > 1 {
            n /= 2;
            for i in 0..n {
                v[i] += v[i + n];
            }
        }
        v[0]
    }
}
