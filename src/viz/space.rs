//! The embedding-space panel's data: every chunk vector in two dimensions (PCA, or UMAP when
//! chosen), with each point's document and a preview of its text, and where a question lands
//! among them.

use std::collections::HashMap;
use std::sync::atomic::AtomicBool;

use serde::{Deserialize, Serialize};

use super::projection::{Projection, pca};
use super::umap::{self, Rows, UmapOptions};
use crate::Library;
use crate::error::{Error, Result};
use crate::index::vector::VectorIndex;

/// How the vectors are flattened to two dimensions.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Method {
    /// The two directions of most variance: a linear view, quick, faithful to large distances.
    #[default]
    Pca,
    /// Neighbourhoods kept: sharper clusters, slower, distances between clusters mean less.
    Umap,
}

impl Method {
    pub const ALL: [Method; 2] = [Method::Pca, Method::Umap];

    pub fn name(self) -> &'static str {
        match self {
            Method::Pca => "PCA",
            Method::Umap => "UMAP",
        }
    }
}

/// What a point stands for.
#[derive(Clone, Debug)]
pub struct PointLabel {
    pub chunk_id: i64,
    pub document_id: i64,
    pub title: String,
    pub preview: String,
}

/// The library's chunks in two dimensions; `labels[i]` describes `points[i]`.
pub struct Space {
    pub method: Method,
    pub points: Vec<[f32; 2]>,
    /// The PCA of the vectors: the picture itself, or UMAP's starting layout.
    pub pca: Projection,
    pub labels: Vec<PointLabel>,
    /// The vectors, kept for placing a question in a UMAP picture.
    rows: Option<Rows>,
}

impl Space {
    /// Where `question` lands, embedded as the vector search embeds it; `None` without an
    /// embedder.
    pub fn place_question(&self, library: &Library, question: &str) -> Result<Option<[f32; 2]>> {
        let Some(active) = library.embedder() else {
            return Ok(None);
        };
        let v = active.model.embed_query(question)?;
        Ok(Some(match &self.rows {
            Some(rows) => umap::place(rows, &self.points, &v),
            None => self.pca.place(&v),
        }))
    }

    /// The point of each chunk id, for drawing lines to a question's neighbours.
    pub fn index_of(&self) -> HashMap<i64, usize> {
        self.labels
            .iter()
            .enumerate()
            .map(|(i, l)| (l.chunk_id, i))
            .collect()
    }
}

/// The picture of `index` (the library's vectors) by `method`, each point labelled from
/// `labels` (by chunk id); `None` with fewer than three vectors. `progress` gets 0..=1;
/// `cancel` stops it between passes. It takes a while: call it off the UI thread.
pub fn project(
    index: &VectorIndex,
    labels: Vec<PointLabel>,
    method: Method,
    cancel: &AtomicBool,
    progress: &mut dyn FnMut(f32),
) -> Result<Option<Space>> {
    let cancelled = |c: super::projection::Cancelled| Error::Invalid(c.to_string());
    // PCA is all of the work for a PCA picture and a tenth of it for UMAP.
    let pca_share = if method == Method::Pca { 1.0 } else { 0.1 };
    let Some(projection) =
        pca(index, cancel, &mut |p| progress(p * pca_share)).map_err(cancelled)?
    else {
        return Ok(None);
    };
    let (points, rows) = match method {
        Method::Pca => (projection.points.clone(), None),
        Method::Umap => {
            let rows = Rows::of(index);
            let mut progress = |p| progress(0.1 + 0.9 * p);
            let points = umap::umap(
                &rows,
                &projection.points,
                UmapOptions::default(),
                cancel,
                &mut progress,
            )
            .map_err(cancelled)?;
            (points, Some(rows))
        }
    };
    let mut by_id: HashMap<i64, PointLabel> = labels.into_iter().map(|l| (l.chunk_id, l)).collect();
    let labels = projection
        .ids
        .iter()
        .map(|id| {
            by_id.remove(id).unwrap_or(PointLabel {
                chunk_id: *id,
                document_id: -1,
                title: String::new(),
                preview: String::new(),
            })
        })
        .collect();
    Ok(Some(Space {
        method,
        points,
        pca: projection,
        labels,
        rows,
    }))
}
