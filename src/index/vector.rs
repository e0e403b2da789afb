//! Exact nearest-neighbour search over all chunk vectors of a library, held in memory as one
//! f32 matrix loaded from the SQLite vector store. Exact search is chosen over an approximate
//! index by measurement (BENCHMARKS.md): at desktop library sizes a SIMD scan is fast enough,
//! has perfect recall, and needs no second structure to keep in step with SQLite.

use crate::catalog::StoredVectors;
use half::f16;
use half::slice::HalfFloatSliceExt;
use rayon::prelude::*;

/// Rows scanned per parallel task.
const ROWS_PER_TASK: usize = 8192;

/// Vectors stay f16 in memory, as stored: half the memory and half the bytes each scan reads
/// (the scan is bound by memory bandwidth), and no precision is lost that storage had not
/// already dropped. Rows are widened to f32 one at a time, in SIMD, to compute the dot product.
pub struct VectorIndex {
    ids: Vec<i64>,
    dims: usize,
    data: Vec<f16>,
}

/// A vector hit: chunk id and cosine similarity.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct VectorHit {
    pub chunk_id: i64,
    pub score: f32,
}

impl VectorIndex {
    pub fn new(stored: StoredVectors) -> Self {
        VectorIndex {
            ids: stored.ids,
            dims: stored.dims,
            data: stored.data,
        }
    }

    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// Chunk id and stored vector of row `i`.
    pub fn row(&self, i: usize) -> (i64, &[f16]) {
        (self.ids[i], &self.data[i * self.dims..(i + 1) * self.dims])
    }

    pub fn dims(&self) -> usize {
        self.dims
    }

    /// Bytes of vector data held in memory.
    pub fn memory_bytes(&self) -> usize {
        self.data.len() * 2 + self.ids.len() * 8
    }

    /// The `k` most similar chunks to `query` (both sides unit length, so dot = cosine).
    pub fn search(&self, query: &[f32], k: usize) -> Vec<VectorHit> {
        if query.len() != self.dims || k == 0 {
            return Vec::new();
        }
        let dims = self.dims;
        let mut best: Vec<VectorHit> = self
            .data
            .par_chunks(ROWS_PER_TASK * dims)
            .enumerate()
            .flat_map_iter(|(task, rows)| {
                let mut wide = vec![0f32; dims];
                let scores = rows.chunks_exact(dims).map(move |row| {
                    row.convert_to_f32_slice(&mut wide);
                    dot(&wide, query)
                });
                let first = task * ROWS_PER_TASK;
                top_k(scores.enumerate().map(move |(i, s)| (first + i, s)), k)
            })
            .map(|(row, score)| VectorHit {
                chunk_id: self.ids[row],
                score,
            })
            .collect();
        best.sort_by(|a, b| {
            b.score
                .total_cmp(&a.score)
                .then(a.chunk_id.cmp(&b.chunk_id))
        });
        best.truncate(k);
        best
    }
}

/// Dot product written so that the compiler vectorises it (eight independent lanes).
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut lanes = [0f32; 8];
    let (a8, a_rest) = a.split_at(a.len() / 8 * 8);
    let (b8, b_rest) = b.split_at(a8.len());
    for (x, y) in a8.chunks_exact(8).zip(b8.chunks_exact(8)) {
        for i in 0..8 {
            lanes[i] += x[i] * y[i];
        }
    }
    let tail: f32 = a_rest.iter().zip(b_rest).map(|(x, y)| x * y).sum();
    lanes.iter().sum::<f32>() + tail
}

/// The `k` highest-scoring items of a stream, highest first.
fn top_k(items: impl Iterator<Item = (usize, f32)>, k: usize) -> Vec<(usize, f32)> {
    let mut best: Vec<(usize, f32)> = Vec::with_capacity(k + 1);
    for (row, score) in items {
        if best.len() == k && best[k - 1].1 >= score {
            continue;
        }
        let at = best.partition_point(|&(_, s)| s >= score);
        best.insert(at, (row, score));
        best.truncate(k);
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::corpus::Rng;

    fn random_unit(rng: &mut Rng, dims: usize) -> Vec<f32> {
        let v: Vec<f32> = (0..dims)
            .map(|_| (rng.next_u64() % 2001) as f32 / 1000.0 - 1.0)
            .collect();
        let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        v.into_iter().map(|x| x / norm).collect()
    }

    #[test]
    fn search_equals_a_brute_force_sort() {
        let mut rng = Rng::new(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64,
        );
        let (n, dims) = (20_000, 37);
        let rows: Vec<Vec<f32>> = (0..n).map(|_| random_unit(&mut rng, dims)).collect();
        let rows: Vec<Vec<f32>> = rows
            .into_iter()
            .map(|r| r.into_iter().map(|x| f16::from_f32(x).to_f32()).collect())
            .collect();
        let index = VectorIndex::new(StoredVectors {
            ids: (0..n as i64).map(|i| i * 3).collect(),
            dims,
            data: rows.concat().into_iter().map(f16::from_f32).collect(),
        });
        let query = random_unit(&mut rng, dims);
        let mut expected: Vec<(i64, f32)> = rows
            .iter()
            .enumerate()
            .map(|(i, r)| (i as i64 * 3, r.iter().zip(&query).map(|(a, b)| a * b).sum()))
            .collect();
        expected.sort_by(|a, b| b.1.total_cmp(&a.1));
        let got = index.search(&query, 10);
        assert_eq!(got.len(), 10);
        for (hit, (id, score)) in got.iter().zip(&expected) {
            assert_eq!(hit.chunk_id, *id);
            assert!((hit.score - score).abs() < 1e-5);
        }
    }
}
