//! Batched writes of indexing outcomes: one transaction per batch, journalled for the index.

use super::{Catalog, now, path_str};
use crate::error::Result;
use crate::ingest::chunk::Chunk;
use sqlx::{QueryBuilder, Sqlite, Transaction};
use std::path::PathBuf;

/// Chunks per multi-row INSERT: 9 bound values each, well under SQLite's parameter limit.
const CHUNK_ROWS_PER_INSERT: usize = 200;

/// Metadata of a file as the indexer saw it.
#[derive(Debug, Clone)]
pub struct FileMeta {
    pub folder_id: i64,
    pub path: PathBuf,
    pub size: u64,
    pub mtime_ns: i64,
    pub kind: &'static str,
}

/// One change to the catalog produced by the indexer.
#[derive(Debug, Clone)]
pub enum DocWrite {
    /// New or changed content: replaces the document's chunks.
    Indexed {
        meta: FileMeta,
        hash: String,
        title: String,
        encoding: Option<&'static str>,
        chunks: Vec<Chunk>,
    },
    /// The file could not be indexed; any old chunks go.
    Failed {
        meta: FileMeta,
        hash: Option<String>,
        error: String,
    },
    /// Same content, new modification time: nothing to re-extract.
    Touched { doc_id: i64, meta: FileMeta },
    /// Same content at a new path (a moved or renamed file); the title is kept.
    Moved { doc_id: i64, meta: FileMeta },
    /// The file is gone.
    Removed { doc_id: i64 },
}

impl Catalog {
    /// Applies a batch of outcomes in one transaction, journalling every document whose index
    /// entries must change; returns those document ids.
    pub async fn write_batch(&self, batch: &[DocWrite]) -> Result<Vec<i64>> {
        let mut tx = self.pool.begin().await?;
        let mut journalled = Vec::new();
        for write in batch {
            journalled.extend(apply(&mut tx, write).await?);
        }
        tx.commit().await?;
        Ok(journalled)
    }
}

/// Writes one outcome; returns the document id if its index entries must change.
async fn apply(tx: &mut Transaction<'_, Sqlite>, write: &DocWrite) -> Result<Option<i64>> {
    match write {
        DocWrite::Indexed {
            meta,
            hash,
            title,
            encoding,
            chunks,
        } => {
            let id = upsert(tx, meta, Some(hash), title, *encoding, None).await?;
            replace_chunks(tx, id, chunks).await?;
            journal(tx, id).await
        }
        DocWrite::Failed { meta, hash, error } => {
            let title = meta
                .path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let id = upsert(tx, meta, hash.as_ref(), &title, None, Some(error)).await?;
            replace_chunks(tx, id, &[]).await?;
            journal(tx, id).await
        }
        DocWrite::Touched { doc_id, meta } => {
            sqlx::query("UPDATE documents SET size = ?, mtime_ns = ? WHERE id = ?")
                .bind(meta.size as i64)
                .bind(meta.mtime_ns)
                .bind(doc_id)
                .execute(&mut **tx)
                .await?;
            Ok(None)
        }
        DocWrite::Moved { doc_id, meta } => {
            sqlx::query(
                "UPDATE documents SET folder_id = ?, path = ?, size = ?, mtime_ns = ? WHERE id = ?",
            )
            .bind(meta.folder_id)
            .bind(path_str(&meta.path)?)
            .bind(meta.size as i64)
            .bind(meta.mtime_ns)
            .bind(doc_id)
            .execute(&mut **tx)
            .await?;
            journal(tx, *doc_id).await
        }
        DocWrite::Removed { doc_id } => {
            sqlx::query("DELETE FROM documents WHERE id = ?")
                .bind(doc_id)
                .execute(&mut **tx)
                .await?;
            journal(tx, *doc_id).await
        }
    }
}

async fn upsert(
    tx: &mut Transaction<'_, Sqlite>,
    meta: &FileMeta,
    hash: Option<&String>,
    title: &str,
    encoding: Option<&str>,
    error: Option<&String>,
) -> Result<i64> {
    let status = if error.is_some() { "failed" } else { "indexed" };
    let id = sqlx::query_scalar(
        "INSERT INTO documents (folder_id, path, title, size, mtime_ns, hash, kind, encoding, status, error, indexed_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
         ON CONFLICT(path) DO UPDATE SET folder_id = excluded.folder_id, title = excluded.title,
           size = excluded.size, mtime_ns = excluded.mtime_ns, hash = excluded.hash, kind = excluded.kind,
           encoding = excluded.encoding, status = excluded.status, error = excluded.error,
           indexed_at = excluded.indexed_at
         RETURNING id",
    )
    .bind(meta.folder_id)
    .bind(path_str(&meta.path)?)
    .bind(title)
    .bind(meta.size as i64)
    .bind(meta.mtime_ns)
    .bind(hash)
    .bind(meta.kind)
    .bind(encoding)
    .bind(status)
    .bind(error)
    .bind(now())
    .fetch_one(&mut **tx)
    .await?;
    Ok(id)
}

async fn replace_chunks(
    tx: &mut Transaction<'_, Sqlite>,
    doc_id: i64,
    chunks: &[Chunk],
) -> Result<()> {
    sqlx::query("DELETE FROM chunks WHERE document_id = ?")
        .bind(doc_id)
        .execute(&mut **tx)
        .await?;
    for rows in chunks.chunks(CHUNK_ROWS_PER_INSERT) {
        let mut insert = QueryBuilder::<Sqlite>::new(
            "INSERT INTO chunks (document_id, ordinal, byte_start, byte_end, line_start, line_end, page, heading, text, tokens) ",
        );
        insert.push_values(rows, |mut row, chunk| {
            row.push_bind(doc_id)
                .push_bind(chunk.ordinal as i64)
                .push_bind(chunk.bytes.start as i64)
                .push_bind(chunk.bytes.end as i64)
                .push_bind(chunk.lines.0 as i64)
                .push_bind(chunk.lines.1 as i64)
                .push_bind(chunk.page.map(i64::from))
                .push_bind(chunk.heading.clone())
                .push_bind(chunk.text.clone())
                .push_bind(chunk.tokens as i64);
        });
        insert.build().execute(&mut **tx).await?;
    }
    Ok(())
}

async fn journal(tx: &mut Transaction<'_, Sqlite>, doc_id: i64) -> Result<Option<i64>> {
    sqlx::query("INSERT OR IGNORE INTO index_journal (document_id) VALUES (?)")
        .bind(doc_id)
        .execute(&mut **tx)
        .await?;
    Ok(Some(doc_id))
}
