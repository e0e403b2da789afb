use super::acts::{ActRow, quantize};
use super::*;
use candle_core::quantized::{GgmlDType as T, QTensor};
use candle_core::{Device, Tensor};

fn rand_vec(n: usize, seed: u64) -> Vec<f32> {
    crate::rng::Rng::new(seed).signed_vec(n)
}

/// A random matrix quantized by candle (an independent writer of ggml's block layouts), with
/// candle's dequantization of it.
fn quantized(dtype: T, rows: usize, cols: usize) -> (QWeight, Vec<f32>) {
    let t = Tensor::from_vec(
        rand_vec(rows * cols, rows as u64 ^ 0x5eed),
        (rows, cols),
        &Device::Cpu,
    )
    .unwrap();
    let q = QTensor::quantize(&t, dtype).unwrap();
    let w = QWeight::from_bytes(dtype, rows, cols, &q.data().unwrap()).unwrap();
    let dequantized = q
        .dequantize(&Device::Cpu)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap();
    (w, dequantized)
}

const ALL: [T; 8] = [
    T::Q4_0,
    T::Q4_1,
    T::Q5_0,
    T::Q5_1,
    T::Q8_0,
    T::Q4K,
    T::Q5K,
    T::Q6K,
];

/// The repacked rows equal candle's dequantization, and the matmul agrees with a float dot
/// of those rows (Q8 activations carry about 1/254 of each block's largest value as error).
#[test]
fn matmul_agrees_with_the_dequantized_weights() {
    for dtype in ALL {
        // 37 rows: two full tiles and one of five rows; three super-blocks of 256.
        let (rows, cols, m) = (37, 3 * QK_K, 11);
        let (w, dequantized) = quantized(dtype, rows, cols);
        let x = rand_vec(m * cols, 7);
        let mut out = vec![f32::NAN; m * rows];
        w.matmul(&x, m, &mut out);
        let mut wr = vec![0f32; cols];
        for r in 0..rows {
            w.row(r, &mut wr);
            let expected = &dequantized[r * cols..(r + 1) * cols];
            let worst = wr
                .iter()
                .zip(expected)
                .map(|(a, b)| (a - b).abs())
                .fold(0f32, f32::max);
            assert!(worst < 1e-5, "{dtype:?} row {r}: off by {worst}");
            for i in 0..m {
                let xi = &x[i * cols..(i + 1) * cols];
                let exact: f32 = wr.iter().zip(xi).map(|(a, b)| a * b).sum();
                let norm = |v: &[f32]| v.iter().map(|a| a * a).sum::<f32>().sqrt();
                let tolerance = 0.01 * norm(&wr) * norm(xi);
                let got = out[i * rows + r];
                assert!(
                    (got - exact).abs() < tolerance,
                    "{dtype:?} row {r}: {got} vs {exact}"
                );
            }
        }
    }
}

/// The SIMD kernels equal the portable one bit for bit, for every row count of a pass, on a
/// full tile and on the padded last one.
#[test]
fn kernels_equal_portable_bit_for_bit() {
    for dtype in ALL {
        let (rows, cols) = (37, 2 * QK_K);
        let (w, _) = quantized(dtype, rows, cols);
        // Large activations with a few outliers, so that the roundings differ when the order
        // of any addition does.
        let mut x = rand_vec(ROWS_PER_PASS * cols, 3);
        for (i, v) in x.iter_mut().enumerate().step_by(97) {
            *v *= 40.0 + i as f32 % 7.0;
        }
        let acts = quantize(&x, cols, w.kind.act());
        for take in 1..=ROWS_PER_PASS {
            let ys: Vec<ActRow<'_>> = (0..take).map(|i| acts.row(i)).collect();
            for t in [0, rows / TILE] {
                let slow = kernels::portable(&w, t, &ys);
                for (name, kernel) in kernels::available() {
                    let fast = kernel(&w, t, &ys);
                    assert_eq!(
                        fast.map(|r| r.map(f32::to_bits)),
                        slow.map(|r| r.map(f32::to_bits)),
                        "{name} {dtype:?} take {take} tile {t}"
                    );
                }
            }
        }
    }
}

#[test]
fn simd_quantization_equals_portable() {
    let x = rand_vec(64 * QK, 11);
    for (n, block) in x.chunks_exact(QK).enumerate() {
        // Some blocks scaled so that products land on exact halves, one all zero.
        let scale = [1.0, 127.0, 0.0, 1e-6][n % 4];
        let block: Vec<f32> = block
            .iter()
            .map(|v| (v * 8.0).round() / 8.0 * scale)
            .collect();
        let block: &[f32; QK] = block.as_slice().try_into().unwrap();
        let (mut a, mut b) = ([0i8; QK], [0i8; QK]);
        let fast = kernels::quantize_block(block, &mut a);
        let slow = kernels::quantize_block_portable(block, &mut b);
        assert_eq!((fast, a), (slow, b), "block {n}");
    }
}

/// Stacked weights of any kind give the rows of their parts.
#[test]
fn stacked_weights_compute_their_parts() {
    for dtype in ALL {
        let (a, _) = quantized(dtype, 32, QK_K);
        let (b, _) = quantized(dtype, 5, QK_K);
        let both = QWeight::stack(&[&a, &b]).unwrap();
        let x = rand_vec(3 * QK_K, 5);
        let run = |w: &QWeight| {
            let mut out = vec![0f32; 3 * w.rows];
            w.matmul(&x, 3, &mut out);
            out
        };
        let (oa, ob, o) = (run(&a), run(&b), run(&both));
        for i in 0..3 {
            assert_eq!(
                &o[i * 37..i * 37 + 32],
                &oa[i * 32..(i + 1) * 32],
                "{dtype:?}"
            );
            assert_eq!(
                &o[i * 37 + 32..(i + 1) * 37],
                &ob[i * 5..(i + 1) * 5],
                "{dtype:?}"
            );
        }
    }
}
