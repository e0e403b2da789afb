//! Activation rows quantized as ggml quantizes them for each weight type (its `vec_dot_type`):
//! Q8_0/Q8_1 blocks of 32 with the scale rounded through f16, or Q8_K blocks of 256 with an
//! f32 scale, so that every integer the kernels sum is the one llama.cpp sums.

use half::f16;

use super::format::{ActKind, QK, QK_K};
use super::kernels;

/// Activation rows in blocks: one scale per block of `per` values.
pub struct Acts {
    cols: usize,
    per: usize,
    d: Vec<f32>,
    /// `d * sum(q)` per block (Q8_1 only, for the minimum term of Q4_1/Q5_1).
    s: Vec<f32>,
    /// Exact `sum(q)` over each group of 4 values of every 32 (for offsets and K-quant mins).
    groups: Vec<[i32; 8]>,
    qs: Vec<i8>,
}

/// One activation row's blocks.
#[derive(Clone, Copy)]
pub struct ActRow<'a> {
    pub d: &'a [f32],
    pub s: &'a [f32],
    /// Per 32 values.
    pub groups: &'a [[i32; 8]],
    pub qs: &'a [i8],
}

impl ActRow<'_> {
    /// The sum of the 32 quantized values of sub-block `b`.
    pub fn sub_sum(&self, b: usize) -> i32 {
        self.groups[b].iter().sum()
    }
}

impl Acts {
    pub fn row(&self, i: usize) -> ActRow<'_> {
        let (nb, ns) = (self.cols / self.per, self.cols / QK);
        let b = i * nb..(i + 1) * nb;
        ActRow {
            d: &self.d[b.clone()],
            s: self.s.get(b).unwrap_or(&[]),
            groups: &self.groups[i * ns..(i + 1) * ns],
            qs: &self.qs[i * self.cols..(i + 1) * self.cols],
        }
    }
}

/// Every row of `x` (`cols` wide) quantized for weights that take `kind`.
pub fn quantize(x: &[f32], cols: usize, kind: ActKind) -> Acts {
    let per = if kind == ActKind::Q8K { QK_K } else { QK };
    let mut acts = Acts {
        cols,
        per,
        d: Vec::with_capacity(x.len() / per),
        s: Vec::new(),
        groups: Vec::with_capacity(x.len() / QK),
        qs: vec![0; x.len()],
    };
    for (block, q) in x.chunks_exact(per).zip(acts.qs.chunks_exact_mut(per)) {
        match kind {
            ActKind::Q8K => acts.d.push(q8k_block(block, q)),
            ActKind::Q8_0 | ActKind::Q8_1 => {
                let (x, q) = (block.try_into().expect("QK"), q.try_into().expect("QK"));
                let (amax, sum) = kernels::quantize_block(x, q);
                let d = amax / 127.0;
                acts.d.push(f16::from_f32(d).to_f32());
                if kind == ActKind::Q8_1 {
                    acts.s.push(f16::from_f32(d * sum as f32).to_f32());
                }
            }
        }
    }
    acts.groups = acts
        .qs
        .chunks_exact(QK)
        .map(|q| std::array::from_fn(|k| q[4 * k..4 * k + 4].iter().map(|&v| v as i32).sum()))
        .collect();
    acts
}

/// ggml's `quantize_row_q8_K_ref`: the value of largest magnitude (the first such) maps to
/// -127 through `iscale = -127 / max`, values round half to even, and `d = 1 / iscale`.
fn q8k_block(x: &[f32], q: &mut [i8]) -> f32 {
    let (mut amax, mut max) = (0f32, 0f32);
    for &v in x {
        if v.abs() > amax {
            amax = v.abs();
            max = v;
        }
    }
    if amax == 0.0 {
        q.fill(0);
        return 0.0;
    }
    let iscale = -127.0 / max;
    for (q, &v) in q.iter_mut().zip(x) {
        *q = ((iscale * v).round_ties_even() as i32).min(127) as i8;
    }
    1.0 / iscale
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn q8_quantization_rounds_half_to_even_like_ggml() {
        // amax 127 makes the multiplier exactly 1, so 2.5 must round to 2 and 3.5 to 4.
        let mut x = [0f32; QK];
        x[0] = 127.0;
        x[1] = 2.5;
        x[2] = 3.5;
        x[3] = -2.5;
        let acts = quantize(&x, QK, ActKind::Q8_1);
        assert_eq!(&acts.qs[..4], &[127, 2, 4, -2]);
        assert_eq!(acts.s[0], 131.0);
        assert_eq!(acts.groups[0][0], 131);
    }

    #[test]
    fn q8k_maps_the_first_largest_value_to_minus_127() {
        let mut x = [0f32; QK_K];
        x[3] = -2.0;
        x[9] = 2.0; // as large, but later: the scale follows x[3]
        x[10] = 0.5;
        let acts = quantize(&x, QK_K, ActKind::Q8K);
        assert_eq!((acts.qs[3], acts.qs[9], acts.qs[10]), (-127, 127, 32));
        assert_eq!(acts.d[0], 1.0 / (-127.0 / -2.0));
        // -127 + 127 + 32 in the first 32 values.
        assert_eq!(acts.row(0).sub_sum(0), 32);
    }
}
