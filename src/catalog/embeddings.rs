//! The vector store: chunk embeddings in SQLite, compact (f16), per model.

use super::Catalog;
use crate::error::Result;
use half::f16;
use half::slice::HalfFloatSliceExt;

/// All vectors of one model, as loaded for search.
pub struct StoredVectors {
    pub ids: Vec<i64>,
    pub dims: usize,
    /// Row-major `ids.len() × dims`.
    pub data: Vec<f16>,
}

impl Catalog {
    /// Chunks that have no vector for `model` yet, at most `limit`, oldest first.
    pub async fn chunks_without_vectors(
        &self,
        model: &str,
        limit: usize,
    ) -> Result<Vec<(i64, String)>> {
        Ok(sqlx::query_as(
            "SELECT c.id, c.text FROM chunks c
             WHERE NOT EXISTS (SELECT 1 FROM embeddings e WHERE e.model = ?1 AND e.chunk_id = c.id)
             ORDER BY c.id LIMIT ?2",
        )
        .bind(model)
        .bind(limit as i64)
        .fetch_all(&self.pool)
        .await?)
    }

    pub async fn count_without_vectors(&self, model: &str) -> Result<u64> {
        let n: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM chunks c
             WHERE NOT EXISTS (SELECT 1 FROM embeddings e WHERE e.model = ?1 AND e.chunk_id = c.id)",
        )
        .bind(model)
        .fetch_one(&self.pool)
        .await?;
        Ok(n as u64)
    }

    /// Stores vectors (normalised by the caller) in one transaction. A chunk deleted meanwhile is
    /// skipped: its vector would have nothing to point at.
    pub async fn store_vectors(&self, model: &str, vectors: &[(i64, Vec<f32>)]) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        for (chunk_id, vector) in vectors {
            let mut halves = vec![f16::ZERO; vector.len()];
            halves.convert_from_f32_slice(vector);
            let bytes: Vec<u8> = halves.iter().flat_map(|h| h.to_le_bytes()).collect();
            sqlx::query(
                "INSERT OR REPLACE INTO embeddings (model, chunk_id, vector)
                 SELECT ?1, ?2, ?3 WHERE EXISTS (SELECT 1 FROM chunks WHERE id = ?2)",
            )
            .bind(model)
            .bind(chunk_id)
            .bind(bytes)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Drops the vectors of every model but `keep`, so that two models' vectors never mix.
    pub async fn drop_other_vectors(&self, keep: &str) -> Result<u64> {
        let done = sqlx::query("DELETE FROM embeddings WHERE model != ?")
            .bind(keep)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }

    /// Loads every vector of `model`; `None` when there are none. Rows are streamed, so the peak
    /// memory is the matrix itself, not the matrix plus every row as fetched.
    pub async fn load_vectors(&self, model: &str) -> Result<Option<StoredVectors>> {
        use futures_util::TryStreamExt;
        let mut rows = sqlx::query_as::<_, (i64, Vec<u8>)>(
            "SELECT chunk_id, vector FROM embeddings WHERE model = ? ORDER BY chunk_id",
        )
        .bind(model)
        .fetch(&self.pool);
        let mut out: Option<StoredVectors> = None;
        while let Some((id, bytes)) = rows.try_next().await? {
            let stored = out.get_or_insert_with(|| StoredVectors {
                ids: Vec::new(),
                dims: bytes.len() / 2,
                data: Vec::new(),
            });
            if bytes.len() != stored.dims * 2 {
                continue;
            }
            stored.data.extend(
                bytes
                    .chunks_exact(2)
                    .map(|p| f16::from_le_bytes([p[0], p[1]])),
            );
            stored.ids.push(id);
        }
        Ok(out.filter(|s| !s.ids.is_empty()))
    }
}
