use super::*;

fn rand_vec(n: usize, seed: u64) -> Vec<f32> {
    crate::rng::Rng::new(seed).signed_vec(n)
}

/// A random `rows x cols` matrix written in `kind`'s GGUF bytes.
fn weights(kind: FloatKind, rows: usize, cols: usize) -> FWeight {
    let v = rand_vec(rows * cols, (rows * cols) as u64);
    let bytes: Vec<u8> = v
        .iter()
        .flat_map(|&x| match kind {
            FloatKind::F32 => x.to_le_bytes().to_vec(),
            FloatKind::F16 => f16::from_f32(x).to_le_bytes().to_vec(),
            FloatKind::Bf16 => bf16::from_f32(x).to_le_bytes().to_vec(),
        })
        .collect();
    FWeight::from_bytes(kind.ggml(), rows, cols, &bytes).unwrap()
}

const KINDS: [FloatKind; 3] = [FloatKind::F32, FloatKind::F16, FloatKind::Bf16];

/// The SIMD kernels equal the portable one bit for bit, in both orders, for every row count
/// of a pass, on a full tile and on the padded last one; widths with whole 64-column rounds,
/// with a BF16 chunk past them, and with leftovers.
#[test]
fn float_kernels_equal_portable_bit_for_bit() {
    for kind in KINDS {
        for cols in [256, 288, 200] {
            let rows = 37;
            let w = weights(kind, rows, cols);
            let mut x = rand_vec(ROWS_PER_PASS * cols, 3);
            for (i, v) in x.iter_mut().enumerate().step_by(97) {
                *v *= 40.0 + i as f32 % 7.0;
            }
            let acts = Acts::new(&w, &x, ROWS_PER_PASS);
            for take in 1..=ROWS_PER_PASS {
                let xs: Vec<&[f32]> = (0..take).map(|j| acts.row(j)).collect();
                for order in [Order::Gemm, Order::Dot] {
                    if order == Order::Gemm && !cols.is_multiple_of(kind.chunk()) {
                        continue;
                    }
                    for t in [0, rows / TILE] {
                        let slow = kernels::portable(&w, t, &xs, order);
                        for (name, kernel) in kernels::available() {
                            let fast = kernel(&w, t, &xs, order);
                            assert_eq!(
                                fast.map(|r| r.map(f32::to_bits)),
                                slow.map(|r| r.map(f32::to_bits)),
                                "{name} {kind:?} cols {cols} take {take} {order:?} tile {t}"
                            );
                        }
                    }
                }
            }
        }
    }
}

/// The matmul agrees with an f64 product of the weights and activations (F16 and BF16
/// activations carry their rounding), for one row (vec_dot's order) and several (tinyBLAS's).
#[test]
fn float_matmul_agrees_with_f64() {
    for kind in KINDS {
        let (rows, cols) = (37, 320);
        let w = weights(kind, rows, cols);
        for m in [1, 11] {
            let x = rand_vec(m * cols, 9);
            let mut out = vec![f32::NAN; m * rows];
            w.matmul(&x, m, &mut out);
            let relative = match kind {
                FloatKind::F32 => 1e-5,
                FloatKind::F16 => 2e-3,
                FloatKind::Bf16 => 1e-2,
            };
            let mut wr = vec![0f32; cols];
            for r in 0..rows {
                w.row(r, &mut wr);
                for i in 0..m {
                    let xi = &x[i * cols..(i + 1) * cols];
                    let exact: f64 = wr.iter().zip(xi).map(|(a, b)| *a as f64 * *b as f64).sum();
                    let scale: f64 = wr.iter().zip(xi).map(|(a, b)| (a * b).abs() as f64).sum();
                    let got = out[i * rows + r] as f64;
                    assert!(
                        (got - exact).abs() <= relative * scale,
                        "{kind:?} m {m} row {r}: {got} vs {exact}"
                    );
                }
            }
        }
    }
}

/// ggml's choice of order: tinyBLAS needs two activation rows, rows by fours and whole chunks.
#[test]
fn float_order_is_ggmls() {
    let w = weights(FloatKind::F16, 8, 64);
    assert_eq!((w.order(1), w.order(2)), (Order::Dot, Order::Gemm));
    assert_eq!(weights(FloatKind::F16, 6, 64).order(2), Order::Dot);
    assert_eq!(weights(FloatKind::Bf16, 8, 48).order(2), Order::Dot);
    assert_eq!(weights(FloatKind::F32, 8, 48).order(2), Order::Gemm);
}

/// Stacked weights give the rows of their parts.
#[test]
fn float_stacked_weights_compute_their_parts() {
    for kind in KINDS {
        let (a, b) = (weights(kind, 32, 128), weights(kind, 8, 128));
        let both = FWeight::stack(&[&a, &b]).unwrap();
        assert!(FWeight::stack(&[&weights(kind, 6, 128), &b]).is_none());
        let x = rand_vec(3 * 128, 5);
        let run = |w: &FWeight| {
            let mut out = vec![0f32; 3 * w.rows];
            w.matmul(&x, 3, &mut out);
            out
        };
        let (oa, ob, o) = (run(&a), run(&b), run(&both));
        for i in 0..3 {
            assert_eq!(&o[i * 40..i * 40 + 32], &oa[i * 32..(i + 1) * 32]);
            assert_eq!(&o[i * 40 + 32..(i + 1) * 40], &ob[i * 8..(i + 1) * 8]);
        }
    }
}
