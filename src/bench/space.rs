//! `glassbox bench space`: how long the embedding-space pictures take to compute for a library
//! of a given size, on synthetic vectors shaped like a real library's (chunks of one document
//! cluster around a topic), and the window's frame times while the user pans and zooms them.

use std::sync::atomic::AtomicBool;
use std::time::Instant;

use half::f16;

use crate::catalog::StoredVectors;
use crate::error::Result;
use crate::index::vector::VectorIndex;
use crate::rng::Rng;
use crate::viz::space::{Method, PointLabel, Space, project};

/// `n` unit-scale vectors of `dims` dimensions in `groups` clusters (point i is in group
/// i % groups), each coordinate off its cluster's centre by up to `spread` / 2.
pub fn clusters(n: usize, dims: usize, groups: usize, spread: f32, seed: u64) -> VectorIndex {
    let mut rng = Rng::new(seed);
    let centres: Vec<Vec<f32>> = (0..groups)
        .map(|_| (0..dims).map(|_| rng.next_f32() * 2.0 - 1.0).collect())
        .collect();
    let mut data = Vec::with_capacity(n * dims);
    for i in 0..n {
        let centre = &centres[i % groups];
        data.extend(
            centre
                .iter()
                .map(|c| f16::from_f32(c + (rng.next_f32() - 0.5) * spread)),
        );
    }
    VectorIndex::new(StoredVectors {
        ids: (0..n as i64).collect(),
        dims,
        data,
    })
}

/// Labels for `clusters`: one document per group.
pub fn labels(n: usize, groups: usize) -> Vec<PointLabel> {
    (0..n)
        .map(|i| PointLabel {
            chunk_id: i as i64,
            document_id: (i % groups) as i64,
            title: format!("document {}", i % groups),
            preview: format!("chunk {i}"),
        })
        .collect()
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct ProjectionTime {
    pub method: &'static str,
    pub points: usize,
    pub dims: usize,
    pub seconds: f64,
}

/// Projects `n` clustered vectors of `dims` dimensions with `method`; returns the time and the
/// picture (for the window's part of the benchmark).
pub fn projection(
    n: usize,
    dims: usize,
    method: Method,
) -> Result<(ProjectionTime, Option<Space>)> {
    let groups = (n / 500).clamp(2, 200);
    let index = clusters(n, dims, groups, 1.0, 11);
    let start = Instant::now();
    let space = project(
        &index,
        labels(n, groups),
        method,
        &AtomicBool::new(false),
        &mut |_| {},
    )?;
    let time = ProjectionTime {
        method: method.name(),
        points: n,
        dims,
        seconds: start.elapsed().as_secs_f64(),
    };
    Ok((time, space))
}
