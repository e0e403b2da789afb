//! The library's embedding space in two dimensions: principal component analysis of every chunk
//! vector. The two directions along which the vectors vary most become the x and y axes, so
//! chunks that the vector search finds similar land near each other, and the share of variance
//! each axis keeps says how much of the picture is lost.

use std::sync::atomic::{AtomicBool, Ordering};

use half::f16;
use rayon::prelude::*;

use crate::index::vector::VectorIndex;
use crate::rng::Rng;

/// Power iterations per axis at most; they stop earlier once the axis settles.
const MAX_ITERATIONS: usize = 200;
/// Change of the (unit) axis below which it has settled.
const SETTLED: f32 = 1e-6;

/// Every chunk as a point, and what is needed to place a question among them.
#[derive(Clone, Debug)]
pub struct Projection {
    pub ids: Vec<i64>,
    pub points: Vec<[f32; 2]>,
    pub mean: Vec<f32>,
    /// Unit principal axes, the first explaining the most variance.
    pub axes: [Vec<f32>; 2],
    /// Share of the total variance along each axis.
    pub explained: [f32; 2],
}

impl Projection {
    /// Where vector `v` (a question, a chunk) falls in the picture.
    pub fn place(&self, v: &[f32]) -> [f32; 2] {
        let centred: Vec<f32> = v.iter().zip(&self.mean).map(|(a, m)| a - m).collect();
        [dot(&centred, &self.axes[0]), dot(&centred, &self.axes[1])]
    }
}

/// Stopped by its cancel flag.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the projection was cancelled")]
pub struct Cancelled;

/// PCA of every vector of `index`; `None` with fewer than 3 vectors. Reports progress in 0..=1
/// and checks `cancel` between passes (each pass reads every vector once).
pub fn pca(
    index: &VectorIndex,
    cancel: &AtomicBool,
    progress: &mut dyn FnMut(f32),
) -> Result<Option<Projection>, Cancelled> {
    let (n, d) = (index.len(), index.dims());
    if n < 3 || d < 2 {
        return Ok(None);
    }
    let mean = mean(index);
    let total: f32 = rows(index, &mean)
        .map(|r| dot(&r, &r))
        .sum::<f32>()
        .max(f32::MIN_POSITIVE);
    let mut axes: Vec<Vec<f32>> = Vec::new();
    let mut rng = Rng::new(0x9ca);
    for a in 0..2 {
        let mut v = unit((0..d).map(|_| rng.next_f32() - 0.5).collect());
        for it in 0..MAX_ITERATIONS {
            if cancel.load(Ordering::Relaxed) {
                return Err(Cancelled);
            }
            progress((a as f32 + it as f32 / MAX_ITERATIONS as f32) / 2.0);
            // Covariance times v, without forming the d x d matrix: sum of (x·v) x.
            let mut w = covariance_times(index, &mean, &v);
            for earlier in &axes {
                let along = dot(&w, earlier);
                w.iter_mut().zip(earlier).for_each(|(x, e)| *x -= along * e);
            }
            let w = unit(w);
            let change: f32 = w.iter().zip(&v).map(|(a, b)| (a - b).abs()).sum();
            v = w;
            if change < SETTLED {
                break;
            }
        }
        axes.push(v);
    }
    progress(1.0);
    let axes: [Vec<f32>; 2] = [axes[0].clone(), axes[1].clone()];
    let points: Vec<[f32; 2]> = rows(index, &mean)
        .map(|r| [dot(&r, &axes[0]), dot(&r, &axes[1])])
        .collect();
    let variance = |k: usize| points.iter().map(|p| p[k] * p[k]).sum::<f32>() / total;
    Ok(Some(Projection {
        ids: (0..n).map(|i| index.row(i).0).collect(),
        explained: [variance(0), variance(1)],
        points,
        mean,
        axes,
    }))
}

fn mean(index: &VectorIndex) -> Vec<f32> {
    let d = index.dims();
    let sum = (0..index.len())
        .into_par_iter()
        .fold(
            || vec![0f64; d],
            |mut acc, i| {
                for (a, x) in acc.iter_mut().zip(index.row(i).1) {
                    *a += x.to_f64();
                }
                acc
            },
        )
        .reduce(|| vec![0f64; d], add);
    sum.iter()
        .map(|s| (s / index.len() as f64) as f32)
        .collect()
}

fn covariance_times(index: &VectorIndex, mean: &[f32], v: &[f32]) -> Vec<f32> {
    let d = index.dims();
    let sum = (0..index.len())
        .into_par_iter()
        .fold(
            || (vec![0f64; d], vec![0f32; d]),
            |(mut acc, mut row), i| {
                centre(index.row(i).1, mean, &mut row);
                let along = dot(&row, v) as f64;
                for (a, x) in acc.iter_mut().zip(&row) {
                    *a += along * *x as f64;
                }
                (acc, row)
            },
        )
        .map(|(acc, _)| acc)
        .reduce(|| vec![0f64; d], add);
    sum.iter().map(|&s| s as f32).collect()
}

/// Every row, centred, in order.
fn rows<'a>(index: &'a VectorIndex, mean: &'a [f32]) -> impl Iterator<Item = Vec<f32>> + 'a {
    (0..index.len()).map(move |i| {
        let mut row = vec![0f32; mean.len()];
        centre(index.row(i).1, mean, &mut row);
        row
    })
}

fn centre(x: &[f16], mean: &[f32], out: &mut [f32]) {
    for ((o, x), m) in out.iter_mut().zip(x).zip(mean) {
        *o = x.to_f32() - m;
    }
}

fn add(mut a: Vec<f64>, b: Vec<f64>) -> Vec<f64> {
    a.iter_mut().zip(b).for_each(|(a, b)| *a += b);
    a
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

fn unit(v: Vec<f32>) -> Vec<f32> {
    let norm = dot(&v, &v).sqrt().max(f32::MIN_POSITIVE);
    v.into_iter().map(|x| x / norm).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::StoredVectors;

    /// Points spread 3 units along one direction, 2 along another (orthogonal) and a little
    /// noise elsewhere: PCA must find those directions, in that order, with their shares.
    #[test]
    fn finds_the_directions_of_most_variance() {
        let (n, d) = (2000, 16);
        let mut rng = Rng::new(7);
        let e1 = unit((0..d).map(|i| (i as f32 * 0.7).sin()).collect());
        let mut e2: Vec<f32> = (0..d).map(|i| (i as f32 * 1.3).cos()).collect();
        let along = dot(&e2, &e1);
        e2.iter_mut().zip(&e1).for_each(|(x, e)| *x -= along * e);
        let e2 = unit(e2);
        let mut data = Vec::new();
        for _ in 0..n {
            let (a, b) = (gauss(&mut rng) * 3.0, gauss(&mut rng) * 2.0);
            for k in 0..d {
                let noise = gauss(&mut rng) * 0.05;
                data.push(f16::from_f32(1.0 + a * e1[k] + b * e2[k] + noise));
            }
        }
        let index = VectorIndex::new(StoredVectors {
            ids: (0..n as i64).collect(),
            dims: d,
            data,
        });
        let p = pca(&index, &AtomicBool::new(false), &mut |_| {})
            .unwrap()
            .unwrap();
        assert!(dot(&p.axes[0], &e1).abs() > 0.99, "first axis");
        assert!(dot(&p.axes[1], &e2).abs() > 0.99, "second axis");
        // Variances 9 and 4 of a total of about 13.04.
        assert!(
            (p.explained[0] - 9.0 / 13.04).abs() < 0.05,
            "{:?}",
            p.explained
        );
        assert!(
            (p.explained[1] - 4.0 / 13.04).abs() < 0.05,
            "{:?}",
            p.explained
        );
        // A stored row is placed where its point is.
        let row: Vec<f32> = index.row(5).1.iter().map(|x| x.to_f32()).collect();
        let placed = p.place(&row);
        assert!((placed[0] - p.points[5][0]).abs() < 1e-4);
        assert!((placed[1] - p.points[5][1]).abs() < 1e-4);
    }

    #[test]
    fn cancel_stops_it() {
        let index = VectorIndex::new(StoredVectors {
            ids: vec![1, 2, 3],
            dims: 2,
            data: [0.0, 1.0, 1.0, 0.0, 2.0, 2.0].map(f16::from_f32).to_vec(),
        });
        assert_eq!(
            pca(&index, &AtomicBool::new(true), &mut |_| {}).unwrap_err(),
            Cancelled
        );
    }

    fn gauss(rng: &mut Rng) -> f32 {
        // Sum of uniforms: close enough to a normal for a spread.
        (0..12).map(|_| rng.next_f32()).sum::<f32>() - 6.0
    }
}
