//! Helpers shared by the integration tests.

use glassbox::Library;
use glassbox::library::{IndexOptions, IndexSummary};
use glassbox::retrieve::{SearchOptions, SearchResult};
use std::path::{Path, PathBuf};

/// A file or folder under tests/data.
pub fn data(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(rel)
}

/// Copies a folder tree (tests never write into tests/data).
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// A library in `dir`/data with `folder` indexed (default options).
pub async fn indexed_library(dir: &Path, folder: &Path) -> Library {
    let library = Library::open(&dir.join("data")).await.unwrap();
    index(&library, &[folder.to_owned()]).await;
    library
}

pub async fn index(library: &Library, paths: &[PathBuf]) -> IndexSummary {
    library
        .index(paths, &IndexOptions::default(), &|_| {})
        .await
        .unwrap()
}

pub async fn search(library: &Library, query: &str) -> Vec<SearchResult> {
    let opts = SearchOptions {
        k: 10,
        ..SearchOptions::default()
    };
    library.search(query, &opts).await.unwrap().results
}

/// File name of the top result, if any.
pub async fn top_file(library: &Library, query: &str) -> Option<String> {
    search(library, query)
        .await
        .first()
        .map(|r| file_name(&r.chunk.path))
}

pub fn file_name(path: &Path) -> String {
    path.file_name().unwrap().to_string_lossy().into_owned()
}

/// Asserts that the catalog and the keyword index hold exactly the same chunks.
pub async fn assert_consistent(library: &Library) {
    let check = library.check_consistency().await.unwrap();
    assert!(
        check.only_in_index.is_empty() && check.only_in_catalog.is_empty(),
        "stores disagree: {check:?}"
    );
}

pub fn glassbox() -> std::process::Command {
    std::process::Command::new(env!("CARGO_BIN_EXE_glassbox"))
}

/// Runs a prepared command and asserts that it succeeded, showing its stderr if not.
pub fn succeed(cmd: &mut std::process::Command) -> std::process::Output {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// The largest absolute difference between two equally long runs of numbers.
pub fn largest_difference(a: &[f32], b: &[f32]) -> f32 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0f32, f32::max)
}

/// The bytes a string of hexadecimal digits stands for (the ggml reference data).
pub fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}
