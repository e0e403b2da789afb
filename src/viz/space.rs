//! The embedding-space panel's data: the PCA picture of every chunk vector, with each point's
//! document and a preview of its text, and where a question lands among them.

use std::collections::HashMap;
use std::sync::atomic::AtomicBool;

use super::projection::{Projection, pca};
use crate::Library;
use crate::error::{Error, Result};

/// What a point stands for.
#[derive(Clone, Debug)]
pub struct PointLabel {
    pub chunk_id: i64,
    pub document_id: i64,
    pub title: String,
    pub preview: String,
}

/// The library's chunks in two dimensions; `labels[i]` describes `projection.points[i]`.
#[derive(Clone, Debug)]
pub struct Space {
    pub projection: Projection,
    pub labels: Vec<PointLabel>,
}

impl Space {
    /// Where `question` lands, embedded as the vector search embeds it; `None` without an
    /// embedder.
    pub fn place_question(&self, library: &Library, question: &str) -> Result<Option<[f32; 2]>> {
        let Some(active) = library.embedder() else {
            return Ok(None);
        };
        let v = active.model.embed_query(question)?;
        Ok(Some(self.projection.place(&v)))
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

/// Projects every chunk vector of the library; `None` without an embedder or with fewer than
/// three vectors. `progress` gets 0..=1; `cancel` stops it between passes.
pub async fn build(
    library: &Library,
    cancel: &AtomicBool,
    progress: &mut dyn FnMut(f32),
) -> Result<Option<Space>> {
    let Some(index) = library.vector_index().await? else {
        return Ok(None);
    };
    let Some(projection) =
        pca(&index, cancel, progress).map_err(|c| Error::Invalid(c.to_string()))?
    else {
        return Ok(None);
    };
    let mut by_id: HashMap<i64, PointLabel> = library
        .catalog()
        .chunk_labels()
        .await?
        .into_iter()
        .map(|l| (l.chunk_id, l))
        .collect();
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
    Ok(Some(Space { projection, labels }))
}
