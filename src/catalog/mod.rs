//! The SQLite catalog (through sqlx): folders, documents, chunks, settings, and the index journal.
//! It is the source of truth; the tantivy index is rebuilt from it when needed.

pub mod chats;
mod embeddings;
mod llm_cache;
mod write;

pub use chats::{ChatSummary, StoredMessage};
pub use embeddings::StoredVectors;
pub use llm_cache::{CachedAnswer, LlmCacheStats};
pub use write::{DocWrite, FileMeta};

use crate::error::{Error, Result};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A folder (or single file) the user added to the library.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Folder {
    pub id: i64,
    pub path: PathBuf,
    pub is_file: bool,
    /// Re-indexed automatically when its files change (while the window is open).
    pub watched: bool,
}

/// What the indexer needs to know about a catalogued document to decide whether to redo it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DocState {
    pub id: i64,
    pub path: PathBuf,
    pub size: u64,
    pub mtime_ns: i64,
    pub hash: Option<String>,
    pub kind: String,
    /// The last attempt failed: the file is retried at every run until it succeeds.
    pub failed: bool,
}

/// A chunk as search results show it: the chunk with its document's path and title.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ChunkRecord {
    pub chunk_id: i64,
    pub document_id: i64,
    pub path: PathBuf,
    pub title: String,
    pub heading: String,
    pub page: Option<u32>,
    pub lines: (u32, u32),
    pub text: String,
}

/// A document that could not be indexed, and why.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FailedDoc {
    pub path: PathBuf,
    pub error: String,
}

/// One document of a folder as the library panel lists it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct DocumentRow {
    pub path: PathBuf,
    pub title: String,
    pub kind: String,
    /// Why it could not be indexed; `None` when it was.
    pub error: Option<String>,
    pub chunks: u64,
    /// Chunks with a vector of the embedding model asked about; `None` without one.
    pub embedded: Option<u64>,
}

/// Per-folder counts for `glassbox status`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FolderStatus {
    pub folder: Folder,
    pub indexed: u64,
    pub failed: u64,
    pub chunks: u64,
}

pub struct Catalog {
    pool: SqlitePool,
}

/// id, path, size, mtime_ns, hash, kind, status.
type DocRow = (i64, String, i64, i64, Option<String>, String, String);

/// document_id, path, title, heading, page, line_start, line_end, text.
type ChunkRow = (i64, String, String, String, Option<i64>, i64, i64, String);

impl Catalog {
    /// Opens (creating if needed) the catalog database and brings its schema up to date.
    pub async fn open(path: &Path) -> Result<Catalog> {
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10));
        // Two processes creating a new library at once race for the lock that switching a new
        // database to WAL needs; the loser gets "database is locked" at once, not after the busy
        // timeout, and simply tries again.
        let mut attempt = 0;
        let pool = loop {
            match SqlitePoolOptions::new()
                .max_connections(4)
                .connect_with(options.clone())
                .await
            {
                Ok(pool) => break pool,
                Err(sqlx::Error::Database(e)) if attempt < 20 && e.message().contains("locked") => {
                    attempt += 1;
                    tokio::time::sleep(Duration::from_millis(50 * attempt)).await;
                }
                Err(err) => return Err(err.into()),
            }
        };
        migrate(&pool).await?;
        Ok(Catalog { pool })
    }

    /// Adds a folder or file root (idempotent) and returns its id.
    pub async fn add_folder(&self, path: &Path, is_file: bool) -> Result<i64> {
        let id = sqlx::query_scalar(
            "INSERT INTO folders (path, is_file, added_at) VALUES (?, ?, ?)
             ON CONFLICT(path) DO UPDATE SET is_file = excluded.is_file RETURNING id",
        )
        .bind(path_str(path)?)
        .bind(is_file)
        .bind(now())
        .fetch_one(&self.pool)
        .await?;
        Ok(id)
    }

    pub async fn folders(&self) -> Result<Vec<Folder>> {
        let rows: Vec<(i64, String, bool, bool)> =
            sqlx::query_as("SELECT id, path, is_file, watched FROM folders ORDER BY path")
                .fetch_all(&self.pool)
                .await?;
        Ok(rows
            .into_iter()
            .map(|(id, path, is_file, watched)| Folder {
                id,
                path: path.into(),
                is_file,
                watched,
            })
            .collect())
    }

    pub async fn set_watched(&self, folder_id: i64, watched: bool) -> Result<()> {
        sqlx::query("UPDATE folders SET watched = ? WHERE id = ?")
            .bind(watched)
            .bind(folder_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Removes a root and all its documents; their chunks are journalled for removal from the
    /// index in the same transaction.
    pub async fn remove_folder(&self, folder_id: i64) -> Result<()> {
        let others: Vec<Folder> = self
            .folders()
            .await?
            .into_iter()
            .filter(|f| f.id != folder_id)
            .collect();
        let mut tx = self.pool.begin().await?;
        // Documents that another root also covers (a registered subfolder) stay, under that root.
        for other in &others {
            let root = path_str(&other.path)?;
            let prefix = format!(
                "{}{}",
                root.trim_end_matches(std::path::MAIN_SEPARATOR),
                std::path::MAIN_SEPARATOR
            );
            sqlx::query(
                "UPDATE documents SET folder_id = ?1
                 WHERE folder_id = ?2 AND (path = ?3 OR substr(path, 1, length(?4)) = ?4)",
            )
            .bind(other.id)
            .bind(folder_id)
            .bind(root)
            .bind(prefix)
            .execute(&mut *tx)
            .await?;
        }
        sqlx::query("INSERT OR IGNORE INTO index_journal (document_id) SELECT id FROM documents WHERE folder_id = ?")
            .bind(folder_id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM folders WHERE id = ?")
            .bind(folder_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Every document catalogued at `root` or below it, whichever folder it was added with.
    pub async fn documents_under(&self, root: &Path) -> Result<Vec<DocState>> {
        let root = path_str(root)?;
        let prefix = format!(
            "{}{}",
            root.trim_end_matches(std::path::MAIN_SEPARATOR),
            std::path::MAIN_SEPARATOR
        );
        let rows: Vec<DocRow> = sqlx::query_as(
            "SELECT id, path, size, mtime_ns, hash, kind, status FROM documents
             WHERE path = ?1 OR substr(path, 1, length(?2)) = ?2",
        )
        .bind(root)
        .bind(prefix)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(id, path, size, mtime_ns, hash, kind, status)| DocState {
                id,
                path: path.into(),
                size: size as u64,
                mtime_ns,
                hash,
                kind,
                failed: status == "failed",
            })
            .collect())
    }

    /// Document ids whose index entries may be out of date.
    pub async fn journal(&self) -> Result<Vec<i64>> {
        Ok(
            sqlx::query_scalar("SELECT document_id FROM index_journal ORDER BY document_id")
                .fetch_all(&self.pool)
                .await?,
        )
    }

    pub async fn clear_journal(&self, ids: &[i64]) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        for id in ids {
            sqlx::query("DELETE FROM index_journal WHERE document_id = ?")
                .bind(id)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Puts every document in the journal, so the index is rebuilt from the catalog.
    pub async fn journal_all(&self) -> Result<()> {
        sqlx::query("INSERT OR IGNORE INTO index_journal (document_id) SELECT id FROM documents")
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// The title and chunks (id, heading, text) of one document; `None` if it no longer exists.
    pub async fn document_chunks(
        &self,
        doc_id: i64,
    ) -> Result<Option<(String, Vec<(i64, String, String)>)>> {
        let title: Option<String> = sqlx::query_scalar("SELECT title FROM documents WHERE id = ?")
            .bind(doc_id)
            .fetch_optional(&self.pool)
            .await?;
        let Some(title) = title else { return Ok(None) };
        let chunks = sqlx::query_as(
            "SELECT id, heading, text FROM chunks WHERE document_id = ? ORDER BY ordinal",
        )
        .bind(doc_id)
        .fetch_all(&self.pool)
        .await?;
        Ok(Some((title, chunks)))
    }

    pub async fn chunk_ids(&self) -> Result<Vec<i64>> {
        Ok(sqlx::query_scalar("SELECT id FROM chunks ORDER BY id")
            .fetch_all(&self.pool)
            .await?)
    }

    /// Every chunk's document, title and first characters, for the embedding-space picture.
    pub async fn chunk_labels(&self) -> Result<Vec<crate::viz::space::PointLabel>> {
        let rows: Vec<(i64, i64, String, String)> = sqlx::query_as(
            "SELECT c.id, c.document_id, d.title, substr(c.text, 1, 200)
             FROM chunks c JOIN documents d ON d.id = c.document_id",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(
                |(chunk_id, document_id, title, preview)| crate::viz::space::PointLabel {
                    chunk_id,
                    document_id,
                    title,
                    preview,
                },
            )
            .collect())
    }

    /// Chunks with their documents, in the order of `ids`; ids that no longer exist are skipped.
    pub async fn chunks(&self, ids: &[i64]) -> Result<Vec<ChunkRecord>> {
        let mut out = Vec::with_capacity(ids.len());
        for &id in ids {
            let row: Option<ChunkRow> = sqlx::query_as(
                "SELECT c.document_id, d.path, d.title, c.heading, c.page, c.line_start, c.line_end, c.text
                 FROM chunks c JOIN documents d ON d.id = c.document_id WHERE c.id = ?",
            )
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
            if let Some((document_id, path, title, heading, page, line_start, line_end, text)) = row
            {
                out.push(ChunkRecord {
                    chunk_id: id,
                    document_id,
                    path: path.into(),
                    title,
                    heading,
                    page: page.map(|p| p as u32),
                    lines: (line_start as u32, line_end as u32),
                    text,
                });
            }
        }
        Ok(out)
    }

    pub async fn folder_status(&self) -> Result<Vec<FolderStatus>> {
        let mut out = Vec::new();
        for folder in self.folders().await? {
            let (indexed, failed, chunks): (i64, i64, i64) = sqlx::query_as(
                "SELECT
                   (SELECT COUNT(*) FROM documents WHERE folder_id = ?1 AND status = 'indexed'),
                   (SELECT COUNT(*) FROM documents WHERE folder_id = ?1 AND status = 'failed'),
                   (SELECT COUNT(*) FROM chunks c JOIN documents d ON d.id = c.document_id WHERE d.folder_id = ?1)",
            )
            .bind(folder.id)
            .fetch_one(&self.pool)
            .await?;
            out.push(FolderStatus {
                folder,
                indexed: indexed as u64,
                failed: failed as u64,
                chunks: chunks as u64,
            });
        }
        Ok(out)
    }

    /// The documents of a folder, by path, with how many of their chunks have a vector of
    /// `model` (none without one).
    pub async fn folder_documents(
        &self,
        folder_id: i64,
        model: Option<&str>,
    ) -> Result<Vec<DocumentRow>> {
        // path, title, kind, status, error, chunks, embedded chunks
        type Row = (String, String, String, String, Option<String>, i64, i64);
        let rows: Vec<Row> = sqlx::query_as(
            "SELECT d.path, d.title, d.kind, d.status, d.error,
               (SELECT COUNT(*) FROM chunks c WHERE c.document_id = d.id),
               (SELECT COUNT(*) FROM chunks c JOIN embeddings e ON e.chunk_id = c.id
                  WHERE c.document_id = d.id AND e.model = ?2)
             FROM documents d WHERE d.folder_id = ?1 ORDER BY d.path",
        )
        .bind(folder_id)
        .bind(model.unwrap_or(""))
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(
                |(path, title, kind, status, error, chunks, embedded)| DocumentRow {
                    path: path.into(),
                    title,
                    kind,
                    error: (status == "failed").then(|| error.unwrap_or_default()),
                    chunks: chunks as u64,
                    embedded: model.map(|_| embedded as u64),
                },
            )
            .collect())
    }

    pub async fn failed_documents(&self) -> Result<Vec<FailedDoc>> {
        let rows: Vec<(String, Option<String>)> = sqlx::query_as(
            "SELECT path, error FROM documents WHERE status = 'failed' ORDER BY path",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(path, error)| FailedDoc {
                path: path.into(),
                error: error.unwrap_or_default(),
            })
            .collect())
    }

    pub async fn setting(&self, key: &str) -> Result<Option<String>> {
        Ok(
            sqlx::query_scalar("SELECT value FROM settings WHERE key = ?")
                .bind(key)
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    pub async fn set_setting(&self, key: &str, value: &str) -> Result<()> {
        sqlx::query("INSERT INTO settings (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value")
            .bind(key)
            .bind(value)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// Brings the schema up to date. Two processes opening a new library at once can both try to
/// apply the same migration; the loser fails, and on retry finds it applied by the winner.
async fn migrate(pool: &SqlitePool) -> Result<()> {
    let migrator = sqlx::migrate!("src/catalog/migrations");
    let mut attempt = 0;
    loop {
        match migrator.run(pool).await {
            Ok(()) => return Ok(()),
            Err(_) if attempt < 5 => {
                attempt += 1;
                tokio::time::sleep(Duration::from_millis(50 * attempt)).await;
            }
            Err(err) => return Err(err.into()),
        }
    }
}

/// Paths are stored as UTF-8 text; a path that is not valid Unicode cannot be catalogued.
pub(crate) fn path_str(path: &Path) -> Result<&str> {
    path.to_str().ok_or_else(|| {
        Error::Invalid(format!(
            "{}: file name is not valid Unicode",
            path.display()
        ))
    })
}

pub(crate) fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}
