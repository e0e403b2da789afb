//! Watched folders: file-system events (notify) on the library's folders, debounced, become
//! one "re-index these folders" call once the folders have been quiet for a moment. Saving a
//! file often writes it several times; a burst of events costs one incremental re-index, which
//! skips every unchanged file.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use notify::{EventKind, RecursiveMode, Watcher};

use crate::error::{Error, Result};
use crate::ingest::FileKind;

pub struct FolderWatcher {
    watcher: notify::RecommendedWatcher,
    roots: Arc<Mutex<Vec<PathBuf>>>,
}

impl FolderWatcher {
    /// Calls `on_change` with the roots whose supported files changed, once no event has come
    /// for `quiet`. Paths under `ignore` (the data directory) never count.
    pub fn start(
        quiet: Duration,
        ignore: PathBuf,
        on_change: impl Fn(Vec<PathBuf>) + Send + 'static,
    ) -> Result<FolderWatcher> {
        let roots: Arc<Mutex<Vec<PathBuf>>> = Arc::default();
        let (changes, changed) = channel();
        let owners = roots.clone();
        let watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
            let Ok(event) = event else { return };
            if matches!(event.kind, EventKind::Access(_)) {
                return;
            }
            let roots = owners.lock().unwrap_or_else(|e| e.into_inner());
            for path in &event.paths {
                if let Some(root) = owner(&roots, path, &ignore) {
                    let _ = changes.send(root);
                }
            }
        })
        .map_err(watch_error)?;
        std::thread::Builder::new()
            .name("glassbox-watch".into())
            .spawn(move || debounce(&changed, quiet, &on_change))
            .map_err(|e| Error::Invalid(format!("cannot start watching folders: {e}")))?;
        Ok(FolderWatcher { watcher, roots })
    }

    // The roots lock is never held while notify is called: notify's `watch` waits for its event
    // thread, which may be waiting for that lock in the event handler.
    pub fn watch(&mut self, root: &Path) -> Result<()> {
        if self.roots().iter().any(|r| r == root) {
            return Ok(());
        }
        self.watcher
            .watch(root, RecursiveMode::Recursive)
            .map_err(|e| Error::Invalid(format!("cannot watch {}: {e}", root.display())))?;
        self.roots().push(root.to_owned());
        Ok(())
    }

    pub fn unwatch(&mut self, root: &Path) {
        let was_watched = {
            let mut roots = self.roots();
            let before = roots.len();
            roots.retain(|r| r != root);
            roots.len() < before
        };
        if was_watched {
            // A root that is gone can no longer be unwatched; nothing is left to do then.
            let _ = self.watcher.unwatch(root);
        }
    }

    fn roots(&self) -> std::sync::MutexGuard<'_, Vec<PathBuf>> {
        self.roots.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn watch_error(e: notify::Error) -> Error {
    Error::Invalid(format!("cannot watch folders for changes: {e}"))
}

/// The root a changed `path` belongs to, if it is a file Glassbox indexes (or a folder, whose
/// removal takes files with it).
fn owner(roots: &[PathBuf], path: &Path, ignore: &Path) -> Option<PathBuf> {
    if path.starts_with(ignore) {
        return None;
    }
    let indexable = FileKind::from_path(path).is_some() || path.extension().is_none();
    indexable
        .then(|| roots.iter().find(|r| path.starts_with(r)).cloned())
        .flatten()
}

/// Gathers changed roots until `quiet` passes without one, then reports them together.
fn debounce(changed: &Receiver<PathBuf>, quiet: Duration, on_change: &dyn Fn(Vec<PathBuf>)) {
    let mut pending = BTreeSet::new();
    loop {
        match changed.recv_timeout(quiet) {
            Ok(root) => {
                pending.insert(root);
            }
            Err(RecvTimeoutError::Timeout) if !pending.is_empty() => {
                on_change(std::mem::take(&mut pending).into_iter().collect());
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return,
        }
    }
}
