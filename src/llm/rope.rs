//! Rotary position embedding, computed the way ggml does (angles built by repeated f32
//! multiplication), so positions rotate exactly as in llama.cpp.

use super::config::RopeStyle;

pub struct Rope {
    head_dim: usize,
    style: RopeStyle,
    base: f32,
    /// Per-pair frequency divisors (`rope_freqs.weight`, Llama 3.1+ long-context scaling).
    factors: Option<Vec<f32>>,
}

impl Rope {
    pub fn new(head_dim: usize, base: f32, style: RopeStyle, factors: Option<Vec<f32>>) -> Self {
        Self {
            head_dim,
            style,
            base,
            factors,
        }
    }

    /// Rotate every head of `row` (heads of `head_dim` values, back to back) for `pos`.
    pub fn apply(&self, row: &mut [f32], pos: usize) {
        let half = self.head_dim / 2;
        let scale = self.base.powf(-2.0 / self.head_dim as f32);
        let mut cs = Vec::with_capacity(half);
        let mut theta = pos as f32;
        for i in 0..half {
            let factor = self
                .factors
                .as_ref()
                .and_then(|f| f.get(i))
                .copied()
                .unwrap_or(1.0);
            let angle = theta / factor;
            cs.push((angle.cos(), angle.sin()));
            theta *= scale;
        }
        for head in row.chunks_exact_mut(self.head_dim) {
            for (i, &(c, s)) in cs.iter().enumerate() {
                let (a, b) = match self.style {
                    RopeStyle::Adjacent => (2 * i, 2 * i + 1),
                    RopeStyle::Halves => (i, i + half),
                };
                let (x0, x1) = (head[a], head[b]);
                head[a] = x0 * c - x1 * s;
                head[b] = x0 * s + x1 * c;
            }
        }
    }
}
