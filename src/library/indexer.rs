//! The indexing run: walk, decide what changed, extract in parallel, write in batches.
//!
//! Extraction runs on the rayon pool (all cores) and streams outcomes over a bounded channel to
//! this task, which writes them to SQLite in batched transactions and periodically syncs the
//! keyword index. SQLite commits are the durable record; the journal makes the index catch up.

use super::{IndexSession, Library};
use crate::catalog::{DocState, DocWrite, FailedDoc, FileMeta};
use crate::error::{Error, Result};
use crate::ingest::walk::{FoundFile, walk};
use crate::ingest::{ApproxTokens, ExtractError, TokenCounter, prepare};
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Outcomes per SQLite transaction, and the longest wait before one is written anyway.
const BATCH_DOCS: usize = 128;
const BATCH_BYTES: usize = 8 << 20;
const BATCH_AGE: Duration = Duration::from_millis(500);
/// How often a long run makes its progress searchable (a tantivy commit).
const COMMIT_EVERY: Duration = Duration::from_secs(10);

/// Options of one indexing run.
#[derive(Debug, Clone, Default)]
pub struct IndexOptions {
    /// Set to true from another thread to stop the run at the next file.
    pub cancel: Arc<AtomicBool>,
}

/// Progress reports, in order: one `Planned`, then one `File` per processed file, then `Finishing`.
#[derive(Debug, Clone)]
pub enum Progress {
    Planned {
        files: usize,
        bytes: u64,
        unchanged: usize,
    },
    File {
        path: PathBuf,
        bytes: u64,
        error: Option<String>,
    },
    Finishing,
}

/// What an indexing run did.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct IndexSummary {
    pub indexed: usize,
    pub unchanged: usize,
    pub moved: usize,
    pub removed: usize,
    /// Files with an extension Glassbox does not index.
    pub skipped: usize,
    pub failed: Vec<FailedDoc>,
    pub bytes: u64,
    pub chunks: usize,
    pub seconds: f64,
    /// Time spent writing SQLite transactions (overlaps extraction on other threads).
    pub catalog_seconds: f64,
    /// Time spent updating and committing the keyword index.
    pub index_seconds: f64,
    pub cancelled: bool,
}

/// A file that needs work, with what the catalog knew of it.
struct Job {
    folder_id: i64,
    file: FoundFile,
    existing: Option<DocState>,
    /// Extract again even if the content is known (chunking changed, or the last try failed).
    redo: bool,
}

/// Documents whose files vanished, by content hash, so that a new file with the same content is
/// recognised as a move. Each is taken at most once.
type Vanished = Mutex<HashMap<String, Vec<i64>>>;

impl Library {
    /// Indexes the given folders or files (adding them to the library), or every folder of the
    /// library when `paths` is empty.
    pub async fn index(
        &self,
        paths: &[PathBuf],
        opts: &IndexOptions,
        progress: &(dyn Fn(&Progress) + Send + Sync),
    ) -> Result<IndexSummary> {
        let started = Instant::now();
        // Taking the writer first makes a second concurrent run fail now, not after its work.
        let mut session = IndexSession::start(self)?;
        let roots = self.roots(paths).await?;
        let mut summary = IndexSummary::default();
        let fingerprint = self.chunking_fingerprint();
        let force = self.catalog.setting("indexed_chunking").await?.as_deref()
            != Some(fingerprint.as_str());
        let (jobs, gone) = self.plan(&roots, force, &mut summary).await?;
        progress(&Progress::Planned {
            files: jobs.len(),
            bytes: jobs.iter().map(|j| j.file.size).sum(),
            unchanged: summary.unchanged,
        });
        let mut vanished: HashMap<String, Vec<i64>> = HashMap::new();
        for doc in &gone {
            if let Some(hash) = &doc.hash {
                vanished
                    .entry(vanished_key(hash, &doc.kind))
                    .or_default()
                    .push(doc.id);
            }
        }
        let vanished = Arc::new(Mutex::new(vanished));
        let moved = self
            .run_jobs(jobs, vanished, opts, progress, &mut session, &mut summary)
            .await?;
        progress(&Progress::Finishing);
        if !summary.cancelled {
            let removed: Vec<DocWrite> = gone
                .iter()
                .filter(|d| !moved.contains(&d.id))
                .map(|d| DocWrite::Removed { doc_id: d.id })
                .collect();
            summary.removed = removed.len();
            self.write_and_apply(&removed, &mut session, &mut summary)
                .await?;
            // Only a run over every folder has chunked everything the current way.
            if roots.len() == self.catalog.folders().await?.len() {
                self.catalog
                    .set_setting("indexed_chunking", &fingerprint)
                    .await?;
            }
        }
        let finishing = Instant::now();
        session.finish().await?;
        summary.index_seconds += finishing.elapsed().as_secs_f64();
        summary.seconds = started.elapsed().as_secs_f64();
        Ok(summary)
    }

    /// Registers the roots of this run and returns (folder id, path) for each.
    async fn roots(&self, paths: &[PathBuf]) -> Result<Vec<(i64, PathBuf)>> {
        if paths.is_empty() {
            let folders = self.catalog.folders().await?;
            return Ok(folders.into_iter().map(|f| (f.id, f.path)).collect());
        }
        let mut roots = Vec::new();
        for path in paths {
            let path = std::fs::canonicalize(path).map_err(|source| Error::Path {
                path: path.clone(),
                source,
            })?;
            let id = self.catalog.add_folder(&path, path.is_file()).await?;
            roots.push((id, path));
        }
        Ok(roots)
    }

    /// Walks the roots and splits files into work to do; returns the jobs and the catalogued
    /// documents whose files are gone.
    async fn plan(
        &self,
        roots: &[(i64, PathBuf)],
        force: bool,
        summary: &mut IndexSummary,
    ) -> Result<(Vec<Job>, Vec<DocState>)> {
        let mut known: HashMap<PathBuf, DocState> = HashMap::new();
        let mut jobs = Vec::new();
        let mut found = std::collections::HashSet::new();
        let mut unreadable: Vec<PathBuf> = Vec::new();
        for (folder_id, root) in roots {
            if !root.exists() {
                // An unplugged drive or offline share is not a deletion: keep what was indexed.
                summary.failed.push(FailedDoc {
                    path: root.clone(),
                    error: "folder not found (unplugged drive?); its documents are kept until it is back or removed with `glassbox remove`".into(),
                });
                continue;
            }
            for doc in self.catalog.documents_under(root).await? {
                known.insert(doc.path.clone(), doc);
            }
            let root_walk = walk_in_background(root.clone(), self.dir.clone()).await?;
            summary.skipped += root_walk.unsupported;
            unreadable.extend(root_walk.errors.iter().map(|(path, _)| path.clone()));
            summary.failed.extend(
                root_walk
                    .errors
                    .into_iter()
                    .map(|(path, error)| FailedDoc { path, error }),
            );
            for file in root_walk.files {
                if found.insert(file.path.clone()) {
                    jobs.push((*folder_id, file));
                }
            }
        }
        let jobs = jobs
            .into_iter()
            .filter_map(|(folder_id, file)| {
                let existing = known.remove(&file.path);
                let failed = existing.as_ref().is_some_and(|d| d.failed);
                let unchanged = existing
                    .as_ref()
                    .is_some_and(|d| d.size == file.size && d.mtime_ns == file.mtime_ns);
                if unchanged && !force && !failed {
                    summary.unchanged += 1;
                    return None;
                }
                Some(Job {
                    redo: force || failed,
                    folder_id,
                    file,
                    existing,
                })
            })
            .collect();
        // Whatever is left in `known` was catalogued but not found by this walk.
        // Documents under a path the walk could not read are not known to be gone.
        let gone = known
            .into_values()
            .filter(|d| !unreadable.iter().any(|p| d.path.starts_with(p)))
            .collect();
        Ok((jobs, gone))
    }

    async fn run_jobs(
        &self,
        jobs: Vec<Job>,
        vanished: Arc<Vanished>,
        opts: &IndexOptions,
        progress: &(dyn Fn(&Progress) + Send + Sync),
        session: &mut IndexSession<'_>,
        summary: &mut IndexSummary,
    ) -> Result<HashSet<i64>> {
        let (tx, mut rx) = tokio::sync::mpsc::channel::<DocWrite>(256);
        let settings = self.settings;
        let counter = self.token_counter();
        let cancel = opts.cancel.clone();
        let extractor = std::thread::spawn(move || {
            use rayon::prelude::*;
            jobs.into_par_iter().for_each_with(tx, |tx, job| {
                if cancel.load(Ordering::Relaxed) {
                    return;
                }
                let write = process(job, &settings, &*counter, &vanished);
                // A closed channel means the writer stopped on an error; the rest is moot.
                let _ = tx.blocking_send(write);
            });
        });
        let mut batch = Vec::new();
        let mut batch_bytes = 0;
        let mut batch_started = Instant::now();
        let mut last_commit = Instant::now();
        let mut moved = HashSet::new();
        while let Some(write) = rx.recv().await {
            if let DocWrite::Moved { doc_id, .. } = &write {
                moved.insert(*doc_id);
            }
            report(&write, summary, progress);
            batch_bytes += write_bytes(&write);
            batch.push(write);
            if batch.len() >= BATCH_DOCS
                || batch_bytes >= BATCH_BYTES
                || batch_started.elapsed() >= BATCH_AGE
            {
                self.write_and_apply(&batch, session, summary).await?;
                batch.clear();
                batch_bytes = 0;
                batch_started = Instant::now();
                if last_commit.elapsed() >= COMMIT_EVERY {
                    let started = Instant::now();
                    session.commit().await?;
                    summary.index_seconds += started.elapsed().as_secs_f64();
                    last_commit = Instant::now();
                }
            }
        }
        self.write_and_apply(&batch, session, summary).await?;
        extractor
            .join()
            .map_err(|_| Error::Invalid("the extraction thread panicked".into()))?;
        summary.cancelled = opts.cancel.load(Ordering::Relaxed);
        Ok(moved)
    }
}

impl Library {
    /// Chunks are measured in the embedding model's tokens when there is one.
    fn token_counter(&self) -> Arc<dyn TokenCounter> {
        match &self.embedder {
            Some(active) => active.model.clone(),
            None => Arc::new(ApproxTokens),
        }
    }

    /// Identifies how files are cut into chunks; when it changes every file is redone.
    fn chunking_fingerprint(&self) -> String {
        let counter = self.embedder.as_ref().map_or("approx", |a| a.id.as_str());
        format!("{}:{counter}", self.settings.chunking_fingerprint())
    }

    /// Writes a batch to SQLite, then hands its journalled documents to the index session.
    async fn write_and_apply(
        &self,
        batch: &[DocWrite],
        session: &mut IndexSession<'_>,
        summary: &mut IndexSummary,
    ) -> Result<()> {
        let started = Instant::now();
        let journalled = self.catalog.write_batch(batch).await?;
        let written = Instant::now();
        session.apply(&journalled).await?;
        summary.catalog_seconds += (written - started).as_secs_f64();
        summary.index_seconds += written.elapsed().as_secs_f64();
        Ok(())
    }
}

async fn walk_in_background(root: PathBuf, exclude: PathBuf) -> Result<crate::ingest::walk::Walk> {
    let folder = root.display().to_string();
    tokio::task::spawn_blocking(move || walk(&root, &exclude))
        .await
        .map_err(|e| Error::Invalid(format!("walking {folder} failed: {e}")))
}

fn report(
    write: &DocWrite,
    summary: &mut IndexSummary,
    progress: &(dyn Fn(&Progress) + Send + Sync),
) {
    let (path, bytes, error) = match write {
        DocWrite::Indexed { meta, chunks, .. } => {
            summary.indexed += 1;
            summary.chunks += chunks.len();
            (meta.path.clone(), meta.size, None)
        }
        DocWrite::Failed { meta, error, .. } => {
            summary.failed.push(FailedDoc {
                path: meta.path.clone(),
                error: error.clone(),
            });
            (meta.path.clone(), meta.size, Some(error.clone()))
        }
        DocWrite::Moved { meta, .. } => {
            summary.moved += 1;
            (meta.path.clone(), meta.size, None)
        }
        DocWrite::Touched { meta, .. } => {
            summary.unchanged += 1;
            (meta.path.clone(), meta.size, None)
        }
        DocWrite::Removed { .. } => return,
    };
    summary.bytes += bytes;
    progress(&Progress::File { path, bytes, error });
}

fn write_bytes(write: &DocWrite) -> usize {
    match write {
        DocWrite::Indexed { chunks, .. } => chunks.iter().map(|c| c.text.len()).sum(),
        _ => 0,
    }
}

/// Does the work for one file: read, hash, then touch, move or extract.
fn process(
    job: Job,
    settings: &super::IndexSettings,
    counter: &dyn TokenCounter,
    vanished: &Vanished,
) -> DocWrite {
    let file = &job.file;
    let meta = FileMeta {
        folder_id: job.folder_id,
        path: file.path.clone(),
        size: file.size,
        mtime_ns: file.mtime_ns,
        kind: file.kind.as_str(),
    };
    let failed = |meta: FileMeta, hash: Option<String>, err: ExtractError| DocWrite::Failed {
        meta,
        hash,
        error: err.to_string(),
    };
    let cap = settings.max_file_mb * 1024 * 1024;
    if file.size > cap {
        return failed(
            meta,
            None,
            ExtractError::TooLarge {
                size: file.size,
                cap_mb: settings.max_file_mb,
            },
        );
    }
    let bytes = match read_capped(&file.path, cap) {
        Ok(bytes) => bytes,
        Err(err) => return failed(meta, None, err),
    };
    let meta = FileMeta {
        size: bytes.len() as u64,
        ..meta
    };
    let hash = blake3::hash(&bytes).to_hex().to_string();
    if !job.redo {
        if let Some(doc) = &job.existing {
            if doc.hash.as_deref() == Some(hash.as_str()) {
                return DocWrite::Touched {
                    doc_id: doc.id,
                    meta,
                };
            }
        } else if let Some(doc_id) = take_vanished(vanished, &vanished_key(&hash, meta.kind)) {
            return DocWrite::Moved { doc_id, meta };
        }
    }
    match prepare(file.kind, &bytes, settings.chunk, counter) {
        Ok(prepared) => DocWrite::Indexed {
            title: prepared.title.unwrap_or_else(|| file_name(&file.path)),
            encoding: prepared.encoding,
            chunks: prepared.chunks,
            meta,
            hash,
        },
        Err(err) => failed(meta, Some(hash), err),
    }
}

fn take_vanished(vanished: &Vanished, key: &str) -> Option<i64> {
    vanished.lock().ok()?.get_mut(key)?.pop()
}

/// A moved file must have the same content and be read the same way (a.txt renamed to a.md
/// is markdown now, so it is extracted again).
fn vanished_key(hash: &str, kind: &str) -> String {
    format!("{hash}:{kind}")
}

/// Reads a file, refusing to grow past `cap` even if it grew since the walk.
fn read_capped(path: &Path, cap: u64) -> Result<Vec<u8>, ExtractError> {
    use std::io::Read;
    let file = std::fs::File::open(path).map_err(|e| ExtractError::from_io(&e))?;
    let mut bytes = Vec::new();
    file.take(cap + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| ExtractError::from_io(&e))?;
    if bytes.len() as u64 > cap {
        return Err(ExtractError::TooLarge {
            size: bytes.len() as u64,
            cap_mb: cap >> 20,
        });
    }
    Ok(bytes)
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::FileKind;

    fn job(path: PathBuf, size: u64) -> Job {
        Job {
            folder_id: 1,
            file: FoundFile {
                path,
                size,
                mtime_ns: 0,
                kind: FileKind::Text,
            },
            existing: None,
            redo: false,
        }
    }

    #[test]
    fn a_file_deleted_after_the_walk_is_a_per_file_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("gone.txt");
        std::fs::write(&path, "잠깐 있다 사라지는 파일").unwrap();
        let job = job(path.clone(), 30);
        std::fs::remove_file(&path).unwrap();
        let write = process(job, &Default::default(), &ApproxTokens, &Mutex::default());
        let DocWrite::Failed { error, .. } = write else {
            panic!("{write:?}")
        };
        assert_eq!(error, ExtractError::Vanished.to_string());
    }

    #[test]
    fn a_file_that_grew_past_the_cap_since_the_walk_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("growing.txt");
        std::fs::write(&path, "x".repeat(2 << 20)).unwrap();
        let settings = super::super::IndexSettings {
            max_file_mb: 1,
            ..Default::default()
        };
        let write = process(job(path, 10), &settings, &ApproxTokens, &Mutex::default());
        let DocWrite::Failed { error, .. } = write else {
            panic!("{write:?}")
        };
        assert!(error.contains("larger than the 1 MB limit"), "{error}");
    }
}
