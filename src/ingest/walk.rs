//! Finding the files to index under a folder, the way a developer's tools do: .gitignore and
//! .ignore are respected, hidden and build folders skipped, symlinks followed with loop detection.

use super::document::FileKind;
use std::path::{Path, PathBuf};

/// Folders that hold build output or dependencies, never the user's own documents.
const SKIPPED_DIRS: &[&str] = &[
    "node_modules",
    "target",
    "__pycache__",
    "build",
    "dist",
    "venv",
    "site-packages",
];

/// A file found by the walk, with what the incremental check needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FoundFile {
    pub path: PathBuf,
    pub size: u64,
    pub mtime_ns: i64,
    pub kind: FileKind,
}

/// The result of walking one root.
#[derive(Debug, Default)]
pub struct Walk {
    pub files: Vec<FoundFile>,
    /// Files with an extension Glassbox does not index.
    pub unsupported: usize,
    /// Entries the walk could not read (permission denied on a folder, a symlink loop).
    pub errors: Vec<(PathBuf, String)>,
}

/// Walks `root` (a folder or a single file). `exclude` is a folder never to enter (the data dir).
pub fn walk(root: &Path, exclude: &Path) -> Walk {
    let mut out = Walk::default();
    let exclude = exclude.to_owned();
    let walker = ignore::WalkBuilder::new(root)
        .hidden(true)
        .git_ignore(true)
        .git_exclude(true)
        .git_global(false)
        .require_git(false)
        .follow_links(true)
        .filter_entry(move |entry| {
            let is_dir = entry.file_type().is_some_and(|t| t.is_dir());
            let skipped = entry
                .file_name()
                .to_str()
                .is_some_and(|n| SKIPPED_DIRS.contains(&n));
            !(is_dir && (skipped || entry.path() == exclude))
        })
        .build();
    for entry in walker {
        let entry = match entry {
            Ok(entry) => entry,
            Err(err) => {
                let path = error_path(&err).unwrap_or_else(|| root.to_owned());
                out.errors.push((path, err.to_string()));
                continue;
            }
        };
        if !entry.file_type().is_some_and(|t| t.is_file()) {
            continue;
        }
        let Some(kind) = FileKind::from_path(entry.path()) else {
            out.unsupported += 1;
            continue;
        };
        match entry.metadata() {
            Ok(meta) => out.files.push(FoundFile {
                path: entry.path().to_owned(),
                size: meta.len(),
                mtime_ns: mtime_ns(&meta),
                kind,
            }),
            Err(err) => out.errors.push((entry.path().to_owned(), err.to_string())),
        }
    }
    out
}

fn error_path(err: &ignore::Error) -> Option<PathBuf> {
    match err {
        ignore::Error::WithPath { path, .. } => Some(path.clone()),
        ignore::Error::WithDepth { err, .. } | ignore::Error::WithLineNumber { err, .. } => {
            error_path(err)
        }
        ignore::Error::Loop { child, .. } => Some(child.clone()),
        _ => None,
    }
}

/// Modification time in nanoseconds since the epoch (0 where the platform has none).
pub fn mtime_ns(meta: &std::fs::Metadata) -> i64 {
    meta.modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos() as i64)
}
