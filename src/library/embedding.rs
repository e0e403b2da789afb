//! Embedding the library's chunks into the vector store, and the in-memory vector index.
//!
//! Embedding runs after keyword indexing and only reads chunks and writes vectors, so keyword
//! search of everything already indexed works throughout (SQLite WAL: readers never wait for the
//! writer). Chunks without a vector for the active model are the to-do list, so an interrupted
//! run simply resumes, and switching models re-embeds everything.

use super::Library;
use crate::embed::Embedder;
use crate::error::{Error, Result};
use crate::index::vector::VectorIndex;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

/// Chunks read, embedded and stored per round (one SQLite transaction).
const ROUND: usize = 64;

/// The embedding model attached to a library, with the id its vectors are stored under.
#[derive(Clone)]
pub struct ActiveEmbedder {
    pub id: String,
    pub model: Arc<Embedder>,
}

/// Progress of [`Library::embed_pending`]: chunks done of total.
#[derive(Debug, Clone, Copy)]
pub struct EmbedProgress {
    pub done: u64,
    pub total: u64,
}

#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct EmbedSummary {
    pub embedded: u64,
    pub seconds: f64,
    pub cancelled: bool,
}

impl Library {
    /// Embeds every chunk that has no vector for the active model yet.
    pub async fn embed_pending(
        &self,
        opts: &super::IndexOptions,
        progress: &(dyn Fn(EmbedProgress) + Send + Sync),
    ) -> Result<EmbedSummary> {
        let Some(active) = self.embedder.clone() else {
            return Ok(EmbedSummary::default());
        };
        let started = Instant::now();
        self.catalog.drop_other_vectors(&active.id).await?;
        let total = self.catalog.count_without_vectors(&active.id).await?;
        let mut summary = EmbedSummary::default();
        progress(EmbedProgress { done: 0, total });
        loop {
            if opts.cancel.load(Ordering::Relaxed) {
                summary.cancelled = true;
                break;
            }
            let todo = self
                .catalog
                .chunks_without_vectors(&active.id, ROUND)
                .await?;
            if todo.is_empty() {
                break;
            }
            let model = active.model.clone();
            let texts: Vec<String> = todo.iter().map(|(_, text)| text.clone()).collect();
            let vectors = tokio::task::spawn_blocking(move || {
                let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
                model.embed_passages(&refs)
            })
            .await
            .map_err(|e| Error::Invalid(format!("embedding task failed: {e}")))??;
            let rows: Vec<(i64, Vec<f32>)> = todo
                .iter()
                .map(|(id, _)| *id)
                .zip(vectors.into_iter().map(unit))
                .collect();
            self.catalog.store_vectors(&active.id, &rows).await?;
            self.vectors_changed();
            summary.embedded += rows.len() as u64;
            progress(EmbedProgress {
                done: summary.embedded,
                total,
            });
        }
        summary.seconds = started.elapsed().as_secs_f64();
        Ok(summary)
    }

    /// The vector index of the active model, loaded from SQLite when vectors changed.
    pub async fn vector_index(&self) -> Result<Option<Arc<VectorIndex>>> {
        let Some(active) = &self.embedder else {
            return Ok(None);
        };
        let generation = self.vectors.generation.load(Ordering::Acquire);
        if let Some((cached, index)) = &*self.vectors.lock()
            && *cached == generation
        {
            return Ok(Some(index.clone()));
        }
        let Some(stored) = self.catalog.load_vectors(&active.id).await? else {
            return Ok(None);
        };
        let index = Arc::new(VectorIndex::new(stored));
        // Vectors that changed while loading make this copy stale: keep it for this query only.
        if self.vectors.generation.load(Ordering::Acquire) == generation {
            *self.vectors.lock() = Some((generation, index.clone()));
        }
        Ok(Some(index))
    }

    pub(super) fn vectors_changed(&self) {
        self.vectors.generation.fetch_add(1, Ordering::AcqRel);
    }
}

/// The cached vector index and the generation of the vector store it was loaded at.
#[derive(Default)]
pub(super) struct VectorCache {
    generation: std::sync::atomic::AtomicU64,
    cached: std::sync::Mutex<Option<(u64, Arc<VectorIndex>)>>,
}

impl VectorCache {
    fn lock(&self) -> std::sync::MutexGuard<'_, Option<(u64, Arc<VectorIndex>)>> {
        self.cached
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Cosine is the metric: vectors are stored unit length whatever the model's own normalisation.
pub fn unit(mut v: Vec<f32>) -> Vec<f32> {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        v.iter_mut().for_each(|x| *x /= norm);
    }
    v
}
