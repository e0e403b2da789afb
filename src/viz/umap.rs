//! UMAP, the other picture of the embedding space. Where PCA keeps the two directions of most
//! variance (faithful to distances far apart, blurry up close), UMAP keeps neighbourhoods: it finds
//! each chunk's nearest chunks by cosine distance, turns those into weighted edges, and lays the
//! points out in 2-D so that linked chunks sit together and unlinked ones push apart. Clusters of
//! related passages come out sharper; distances between clusters mean less.
//!
//! Steps (McInnes, Healy & Melville 2018): a k-nearest-neighbour graph (exact for small
//! libraries, NN-descent beyond), fuzzy memberships from each point's local scale, then stochastic
//! gradient descent on the layout from the PCA picture, with negative sampling.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};

use rayon::prelude::*;

use super::projection::Cancelled;
use crate::index::vector::VectorIndex;
use crate::rng::Rng;

/// Neighbours per point, as umap-learn's default.
const NEIGHBOURS: usize = 15;
/// Curve parameters for min_dist 0.1, spread 1 (umap-learn's defaults, fitted once).
const A: f32 = 1.577;
const B: f32 = 0.8951;
/// Repelling samples per attracting one.
const NEGATIVES: usize = 5;
/// Rounds of NN-descent at most; they stop once few lists change.
const DESCENT_ROUNDS: usize = 10;

/// How the layout is computed; `brute_below` is the library size under which the neighbour graph
/// is exact (every pair compared).
#[derive(Clone, Copy, Debug)]
pub struct UmapOptions {
    pub brute_below: usize,
    pub seed: u64,
}

impl Default for UmapOptions {
    fn default() -> Self {
        UmapOptions {
            brute_below: 4096,
            seed: 0x0a11,
        }
    }
}

/// Unit-length rows of the index, as f32, for fast cosine similarity.
pub struct Rows {
    data: Vec<f32>,
    dims: usize,
}

impl Rows {
    pub fn of(index: &VectorIndex) -> Rows {
        let dims = index.dims();
        let mut data = Vec::with_capacity(index.len() * dims);
        for i in 0..index.len() {
            let start = data.len();
            data.extend(index.row(i).1.iter().map(|x| x.to_f32()));
            normalise(&mut data[start..]);
        }
        Rows { data, dims }
    }

    fn len(&self) -> usize {
        self.data.len() / self.dims
    }

    fn row(&self, i: usize) -> &[f32] {
        &self.data[i * self.dims..(i + 1) * self.dims]
    }

    fn distance(&self, i: usize, j: usize) -> f32 {
        distance(self.row(i), self.row(j))
    }
}

/// Lays out `rows` in 2-D starting from `init` (one point per row). Progress goes 0..=1.
pub fn umap(
    rows: &Rows,
    init: &[[f32; 2]],
    options: UmapOptions,
    cancel: &AtomicBool,
    progress: &mut dyn FnMut(f32),
) -> Result<Vec<[f32; 2]>, Cancelled> {
    let n = rows.len();
    let k = NEIGHBOURS.min(n.saturating_sub(1));
    if k == 0 {
        return Ok(init.to_vec());
    }
    let mut rng = Rng::new(options.seed);
    let graph = if n < options.brute_below {
        exact_neighbours(rows, k)
    } else {
        nn_descent(rows, k, &mut rng, cancel, &mut |p| progress(p * 0.4))?
    };
    progress(0.4);
    let edges = fuzzy_edges(&graph, k);
    let mut layout = scaled(init);
    optimise(&mut layout, &edges, &mut rng, cancel, &mut |p| {
        progress(0.4 + 0.6 * p)
    })?;
    progress(1.0);
    Ok(layout)
}

/// Where a new vector `v` lands: the weighted mean of its nearest rows' points, as umap-learn
/// places new data before refining it.
pub fn place(rows: &Rows, points: &[[f32; 2]], v: &[f32]) -> [f32; 2] {
    let mut v = v.to_vec();
    normalise(&mut v);
    let mut nearest: Vec<(f32, usize)> = (0..rows.len())
        .map(|i| (distance(&v, rows.row(i)), i))
        .collect();
    let k = NEIGHBOURS.min(nearest.len());
    if k == 0 {
        return [0.0, 0.0];
    }
    nearest.select_nth_unstable_by(k - 1, |a, b| a.0.total_cmp(&b.0));
    nearest.truncate(k);
    let closest = nearest.iter().map(|n| n.0).fold(f32::INFINITY, f32::min);
    let spread = nearest.iter().map(|n| n.0 - closest).sum::<f32>() / k as f32;
    let mut sum = ([0f32; 2], 0f32);
    for (d, i) in nearest {
        let w = (-(d - closest) / spread.max(1e-6)).exp();
        sum.0[0] += w * points[i][0];
        sum.0[1] += w * points[i][1];
        sum.1 += w;
    }
    [sum.0[0] / sum.1, sum.0[1] / sum.1]
}

/// Each point's k nearest others, nearest first, as (distance, index).
type Graph = Vec<Vec<(f32, usize)>>;

fn exact_neighbours(rows: &Rows, k: usize) -> Graph {
    (0..rows.len())
        .into_par_iter()
        .map(|i| {
            let mut all: Vec<(f32, usize)> = (0..rows.len())
                .filter(|&j| j != i)
                .map(|j| (rows.distance(i, j), j))
                .collect();
            all.select_nth_unstable_by(k - 1, |a, b| a.0.total_cmp(&b.0));
            all.truncate(k);
            all.sort_by(|a, b| a.0.total_cmp(&b.0));
            all
        })
        .collect()
}

/// NN-descent (Dong, Moses & Li 2011): a neighbour's neighbour is likely a neighbour. Starts from
/// random lists and, each round, lets every point try the neighbours and reverse neighbours of
/// its neighbours, until almost nothing improves.
fn nn_descent(
    rows: &Rows,
    k: usize,
    rng: &mut Rng,
    cancel: &AtomicBool,
    progress: &mut dyn FnMut(f32),
) -> Result<Graph, Cancelled> {
    let n = rows.len();
    let mut graph: Graph = (0..n)
        .map(|i| {
            let mut list: Vec<(f32, usize)> = Vec::with_capacity(k);
            while list.len() < k {
                let j = rng.below(n);
                if j != i && !list.iter().any(|e| e.1 == j) {
                    list.push((rows.distance(i, j), j));
                }
            }
            list.sort_by(|a, b| a.0.total_cmp(&b.0));
            list
        })
        .collect();
    for round in 0..DESCENT_ROUNDS {
        if cancel.load(Ordering::Relaxed) {
            return Err(Cancelled);
        }
        progress(round as f32 / DESCENT_ROUNDS as f32);
        let mut reverse: Vec<Vec<usize>> = vec![Vec::new(); n];
        for (i, list) in graph.iter().enumerate() {
            for &(_, j) in list {
                if reverse[j].len() < k {
                    reverse[j].push(i);
                }
            }
        }
        let improved: Vec<(Vec<(f32, usize)>, usize)> = (0..n)
            .into_par_iter()
            .map(|i| improve(rows, &graph, &reverse, i, k))
            .collect();
        let changes: usize = improved.iter().map(|(_, c)| c).sum();
        graph = improved.into_iter().map(|(list, _)| list).collect();
        // umap-learn's stopping rule: fewer than 0.1% of all entries changed.
        if changes * 1000 < n * k {
            break;
        }
    }
    Ok(graph)
}

/// Point `i`'s list after trying its neighbours' neighbours; and how many entries are new.
fn improve(
    rows: &Rows,
    graph: &Graph,
    reverse: &[Vec<usize>],
    i: usize,
    k: usize,
) -> (Vec<(f32, usize)>, usize) {
    let near = graph[i]
        .iter()
        .map(|e| e.1)
        .chain(reverse[i].iter().copied());
    let mut candidates: Vec<usize> = near
        .flat_map(|j| {
            let forward = graph[j].iter().map(|e| e.1);
            std::iter::once(j)
                .chain(forward)
                .chain(reverse[j].iter().copied())
        })
        .filter(|&c| c != i)
        .collect();
    candidates.sort_unstable();
    candidates.dedup();
    let mut list: Vec<(f32, usize)> = candidates
        .into_iter()
        .map(|c| (rows.distance(i, c), c))
        .collect();
    let keep = k.min(list.len());
    list.select_nth_unstable_by(keep.saturating_sub(1), |a, b| a.0.total_cmp(&b.0));
    list.truncate(keep);
    list.sort_by(|a, b| a.0.total_cmp(&b.0));
    let changes = list
        .iter()
        .filter(|e| !graph[i].iter().any(|o| o.1 == e.1))
        .count();
    (list, changes)
}

/// An undirected weighted edge.
struct Edge {
    a: usize,
    b: usize,
    weight: f32,
}

/// Memberships: each point sees its nearest neighbour at strength 1 and the rest fading at its
/// own scale sigma (chosen so the strengths sum to log2 k); the two directions of a pair combine
/// as a fuzzy union, a + b - ab.
fn fuzzy_edges(graph: &Graph, k: usize) -> Vec<Edge> {
    let target = (k as f32).log2();
    let mut directed: HashMap<(usize, usize), f32> = HashMap::new();
    for (i, list) in graph.iter().enumerate() {
        let rho = list.first().map_or(0.0, |e| e.0);
        let sigma = local_scale(list, rho, target);
        for &(d, j) in list {
            let w = (-((d - rho).max(0.0)) / sigma).exp();
            directed.insert((i, j), w);
        }
    }
    let mut edges = Vec::new();
    for (&(i, j), &w) in &directed {
        let back = directed.get(&(j, i)).copied();
        // Each unordered pair once: from its smaller end, or from the only end that has it.
        if back.is_some() && j < i {
            continue;
        }
        let back = back.unwrap_or(0.0);
        edges.push(Edge {
            a: i,
            b: j,
            weight: w + back - w * back,
        });
    }
    edges.sort_by_key(|e| (e.a, e.b));
    edges
}

/// Binary search for sigma with sum of exp(-(d - rho) / sigma) = target.
fn local_scale(list: &[(f32, usize)], rho: f32, target: f32) -> f32 {
    let (mut lo, mut hi, mut sigma) = (0f32, f32::INFINITY, 1f32);
    for _ in 0..64 {
        let sum: f32 = list
            .iter()
            .map(|e| (-((e.0 - rho).max(0.0)) / sigma).exp())
            .sum();
        if (sum - target).abs() < 1e-5 {
            break;
        }
        if sum > target {
            hi = sigma;
            sigma = (lo + hi) / 2.0;
        } else {
            lo = sigma;
            sigma = if hi.is_finite() {
                (lo + hi) / 2.0
            } else {
                sigma * 2.0
            };
        }
    }
    sigma.max(1e-3 * rho.max(1e-6))
}

/// The start scaled into a box of side 20, as umap-learn scales its initial layout.
fn scaled(init: &[[f32; 2]]) -> Vec<[f32; 2]> {
    let extent = |k: usize| {
        let (lo, hi) = init
            .iter()
            .fold((f32::INFINITY, f32::NEG_INFINITY), |a, p| {
                (a.0.min(p[k]), a.1.max(p[k]))
            });
        (lo, (hi - lo).max(1e-6))
    };
    let (x, y) = (extent(0), extent(1));
    init.iter()
        .map(|p| {
            [
                (p[0] - x.0) / x.1 * 20.0 - 10.0,
                (p[1] - y.0) / y.1 * 20.0 - 10.0,
            ]
        })
        .collect()
}

/// Stochastic gradient descent: each edge pulls its ends together as often as its weight says,
/// and each pull comes with a few pushes from random points. The step shrinks to zero.
fn optimise(
    layout: &mut [[f32; 2]],
    edges: &[Edge],
    rng: &mut Rng,
    cancel: &AtomicBool,
    progress: &mut dyn FnMut(f32),
) -> Result<(), Cancelled> {
    let n = layout.len();
    let epochs = if n <= 10_000 { 200 } else { 120 };
    let strongest = edges.iter().map(|e| e.weight).fold(0f32, f32::max);
    // An edge of weight w is sampled once every strongest / w epochs.
    let period: Vec<f32> = edges
        .iter()
        .map(|e| strongest / e.weight.max(1e-12))
        .collect();
    let mut next = period.clone();
    for epoch in 0..epochs {
        if cancel.load(Ordering::Relaxed) {
            return Err(Cancelled);
        }
        progress(epoch as f32 / epochs as f32);
        let rate = 1.0 - epoch as f32 / epochs as f32;
        for (e, edge) in edges.iter().enumerate() {
            if next[e] > (epoch + 1) as f32 {
                continue;
            }
            next[e] += period[e];
            let (a, b) = (edge.a, edge.b);
            let pull = attraction(layout[a], layout[b]);
            for d in 0..2 {
                layout[a][d] += pull[d] * rate;
                layout[b][d] -= pull[d] * rate;
            }
            for _ in 0..NEGATIVES {
                let c = rng.below(n);
                if c == a {
                    continue;
                }
                let push = repulsion(layout[a], layout[c]);
                for d in 0..2 {
                    layout[a][d] += push[d] * rate;
                }
            }
        }
    }
    Ok(())
}

/// The gradient of the attracting term for the pair, clipped as umap-learn clips it.
fn attraction(y: [f32; 2], z: [f32; 2]) -> [f32; 2] {
    let diff = [y[0] - z[0], y[1] - z[1]];
    let d2 = diff[0] * diff[0] + diff[1] * diff[1];
    if d2 <= 0.0 {
        return [0.0, 0.0];
    }
    let coeff = -2.0 * A * B * d2.powf(B - 1.0) / (1.0 + A * d2.powf(B));
    [clip(coeff * diff[0]), clip(coeff * diff[1])]
}

fn repulsion(y: [f32; 2], z: [f32; 2]) -> [f32; 2] {
    let diff = [y[0] - z[0], y[1] - z[1]];
    let d2 = diff[0] * diff[0] + diff[1] * diff[1];
    if d2 <= 0.0 {
        return [4.0, 4.0];
    }
    let coeff = 2.0 * B / ((0.001 + d2) * (1.0 + A * d2.powf(B)));
    [clip(coeff * diff[0]), clip(coeff * diff[1])]
}

fn clip(g: f32) -> f32 {
    g.clamp(-4.0, 4.0)
}

fn distance(a: &[f32], b: &[f32]) -> f32 {
    1.0 - a.iter().zip(b).map(|(x, y)| x * y).sum::<f32>()
}

fn normalise(v: &mut [f32]) {
    let norm = v
        .iter()
        .map(|x| x * x)
        .sum::<f32>()
        .sqrt()
        .max(f32::MIN_POSITIVE);
    v.iter_mut().for_each(|x| *x /= norm);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Five clusters in 24 dimensions, `per` points each, and each point's cluster.
    fn clusters(per: usize, seed: u64) -> (VectorIndex, Vec<usize>) {
        let index = crate::bench::space::clusters(per * 5, 24, 5, 0.3, seed);
        (index, (0..per * 5).map(|i| i % 5).collect())
    }

    /// The share of points whose nearest other point in `layout` is in their own group.
    fn kept_together(layout: &[[f32; 2]], group: &[usize]) -> f32 {
        let same = (0..layout.len())
            .filter(|&i| {
                let nearest = (0..layout.len())
                    .filter(|&j| j != i)
                    .min_by(|&a, &b| d2(layout[i], layout[a]).total_cmp(&d2(layout[i], layout[b])))
                    .unwrap();
                group[nearest] == group[i]
            })
            .count();
        same as f32 / layout.len() as f32
    }

    fn d2(a: [f32; 2], b: [f32; 2]) -> f32 {
        (a[0] - b[0]).powi(2) + (a[1] - b[1]).powi(2)
    }

    /// Starting from a layout that mixes the groups completely, UMAP separates them.
    #[test]
    fn separates_clusters_it_was_not_told_about() {
        let (index, group) = clusters(40, 3);
        let rows = Rows::of(&index);
        let mut rng = Rng::new(9);
        let init: Vec<[f32; 2]> = (0..group.len())
            .map(|_| [rng.next_f32(), rng.next_f32()])
            .collect();
        assert!(kept_together(&init, &group) < 0.5, "the start is mixed");
        let layout = umap(
            &rows,
            &init,
            UmapOptions::default(),
            &AtomicBool::new(false),
            &mut |_| {},
        )
        .unwrap();
        let kept = kept_together(&layout, &group);
        assert!(kept > 0.95, "only {kept} kept with their group");
        // A stored vector is placed inside its own group.
        let v: Vec<f32> = index.row(7).1.iter().map(|x| x.to_f32()).collect();
        let at = place(&rows, &layout, &v);
        let nearest = (0..layout.len())
            .min_by(|&a, &b| d2(at, layout[a]).total_cmp(&d2(at, layout[b])))
            .unwrap();
        assert_eq!(group[nearest], group[7]);
    }

    /// NN-descent finds nearly the same neighbours as comparing every pair.
    #[test]
    fn nn_descent_recalls_the_exact_neighbours() {
        let (index, _) = clusters(120, 5);
        let rows = Rows::of(&index);
        let exact = exact_neighbours(&rows, 10);
        let approx = nn_descent(
            &rows,
            10,
            &mut Rng::new(1),
            &AtomicBool::new(false),
            &mut |_| {},
        )
        .unwrap();
        let found: usize = exact
            .iter()
            .zip(&approx)
            .map(|(e, a)| e.iter().filter(|x| a.iter().any(|y| y.1 == x.1)).count())
            .sum();
        let recall = found as f32 / (exact.len() * 10) as f32;
        assert!(recall > 0.9, "recall {recall}");
    }

    #[test]
    fn memberships_are_symmetric_and_at_most_one() {
        let (index, _) = clusters(10, 8);
        let rows = Rows::of(&index);
        let edges = fuzzy_edges(&exact_neighbours(&rows, 5), 5);
        let mut seen = std::collections::HashSet::new();
        for e in &edges {
            assert!(e.weight > 0.0 && e.weight <= 1.0 + 1e-6, "{}", e.weight);
            let pair = (e.a.min(e.b), e.a.max(e.b));
            assert!(seen.insert(pair), "pair {pair:?} twice");
        }
    }

    #[test]
    fn cancel_stops_it() {
        let (index, group) = clusters(10, 2);
        let init = vec![[0.0, 0.0]; group.len()];
        let stopped = umap(
            &Rows::of(&index),
            &init,
            UmapOptions::default(),
            &AtomicBool::new(true),
            &mut |_| {},
        );
        assert_eq!(stopped.unwrap_err(), Cancelled);
    }
}
