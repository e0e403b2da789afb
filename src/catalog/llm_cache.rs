//! The LLM cache's table: answers already generated, found again by their key (`answer::cache`
//! decides what goes into it).

use super::{Catalog, now};
use crate::error::Result;
use crate::llm::StopReason;

/// An answer as the cache keeps it: enough to give it again, and to show its attention.
#[derive(Debug, Clone, PartialEq)]
pub struct CachedAnswer {
    pub text: String,
    pub ids: Vec<u32>,
    pub stop: StopReason,
    /// Seconds generating it took: what each hit saves.
    pub generation_s: f64,
    /// Times it was given from the cache, this one included.
    pub hits: u64,
}

/// What the engine panel shows of the cache.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize)]
pub struct LlmCacheStats {
    pub answers: u64,
    pub hits: u64,
    /// Generation time all the hits saved, in seconds.
    pub saved_s: f64,
}

type Row = (String, String, String, f64, i64);

impl Catalog {
    /// The answer stored under `key`, counting the hit; `None` when there is none.
    pub async fn cached_answer(&self, key: &str) -> Result<Option<CachedAnswer>> {
        let row: Option<Row> = sqlx::query_as(
            "UPDATE llm_cache SET hits = hits + 1, used_at = ? WHERE key = ?
             RETURNING answer, ids, stop, generation_s, hits",
        )
        .bind(now())
        .bind(key)
        .fetch_optional(&self.pool)
        .await?;
        let Some((text, ids, stop, generation_s, hits)) = row else {
            return Ok(None);
        };
        // An entry another version wrote differently is a miss: the new answer replaces it.
        let (Ok(ids), Ok(stop)) = (serde_json::from_str(&ids), serde_json::from_str(&stop)) else {
            return Ok(None);
        };
        Ok(Some(CachedAnswer {
            text,
            ids,
            stop,
            generation_s,
            hits: hits as u64,
        }))
    }

    /// Keeps `answer` under `key` (replacing what was there).
    pub async fn store_answer(&self, key: &str, model: &str, answer: &CachedAnswer) -> Result<()> {
        let json = |v: serde_json::Result<String>| v.expect("ids and stop reasons serialise");
        let at = now();
        sqlx::query(
            "INSERT OR REPLACE INTO llm_cache
             (key, model, answer, ids, stop, generation_s, hits, created_at, used_at)
             VALUES (?, ?, ?, ?, ?, ?, 0, ?, ?)",
        )
        .bind(key)
        .bind(model)
        .bind(&answer.text)
        .bind(json(serde_json::to_string(&answer.ids)))
        .bind(json(serde_json::to_string(&answer.stop)))
        .bind(answer.generation_s)
        .bind(at)
        .bind(at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn llm_cache_stats(&self) -> Result<LlmCacheStats> {
        let (answers, hits, saved_s): (i64, i64, f64) = sqlx::query_as(
            "SELECT COUNT(*), COALESCE(SUM(hits), 0), COALESCE(SUM(hits * generation_s), 0.0)
             FROM llm_cache",
        )
        .fetch_one(&self.pool)
        .await?;
        Ok(LlmCacheStats {
            answers: answers as u64,
            hits: hits as u64,
            saved_s,
        })
    }

    /// Forgets every cached answer; returns how many there were.
    pub async fn clear_llm_cache(&self) -> Result<u64> {
        let done = sqlx::query("DELETE FROM llm_cache")
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }
}
