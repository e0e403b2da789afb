//! Incremental indexing: unchanged files are skipped, changed ones redone, moved ones kept
//! without re-extraction, deleted ones removed, in both the catalog and the index.

use crate::common::*;
use glassbox::Library;
use std::time::{Duration, SystemTime};

#[tokio::test]
async fn changes_moves_and_deletions() {
    let tmp = tempfile::tempdir().unwrap();
    let corpus = tmp.path().join("corpus");
    copy_dir(&data("ko-corpus"), &corpus);
    let library = Library::open(&tmp.path().join("lib")).await.unwrap();
    let files = std::fs::read_dir(&corpus).unwrap().count();

    let first = index(&library, std::slice::from_ref(&corpus)).await;
    assert_eq!(first.indexed, files);
    let chunks_before = library.search_index().num_chunks();

    // Nothing changed: nothing is redone (and the folder is remembered: no path needed).
    let again = index(&library, &[]).await;
    assert_eq!((again.indexed, again.unchanged), (0, files));

    // New mtime, same content: recognised by hash, not re-extracted.
    let kimchi = corpus.join("01-kimchi.md");
    let file = std::fs::File::options().write(true).open(&kimchi).unwrap();
    file.set_modified(SystemTime::now() + Duration::from_secs(5))
        .unwrap();
    let touched = index(&library, &[]).await;
    assert_eq!((touched.indexed, touched.unchanged), (0, files));

    // Changed content is re-indexed and searchable.
    let mut text = std::fs::read_to_string(&kimchi).unwrap();
    text.push_str("\n\n## 추가\n\n유일무이한낱말 은 이번에 새로 추가된 문장이다.\n");
    std::fs::write(&kimchi, text).unwrap();
    let changed = index(&library, &[]).await;
    assert_eq!(changed.indexed, 1);
    assert_eq!(
        top_file(&library, "유일무이한낱말").await.as_deref(),
        Some("01-kimchi.md")
    );

    // A moved file keeps its chunks under the new path.
    let moved_to = corpus.join("sub/renamed-hangul.md");
    std::fs::create_dir_all(moved_to.parent().unwrap()).unwrap();
    std::fs::rename(corpus.join("02-hangul.md"), &moved_to).unwrap();
    let moved = index(&library, &[]).await;
    assert_eq!(
        (moved.indexed, moved.moved, moved.removed),
        (0, 1, 0),
        "{moved:?}"
    );
    assert_eq!(
        top_file(&library, "훈민정음 창제").await.as_deref(),
        Some("renamed-hangul.md")
    );

    // A deleted file disappears from search and from both stores.
    std::fs::remove_file(&kimchi).unwrap();
    let removed = index(&library, &[]).await;
    assert_eq!(removed.removed, 1);
    let hits = search(&library, "유일무이한낱말").await;
    assert!(hits.iter().all(|r| r.chunk.path != kimchi), "{hits:?}");
    assert!(library.search_index().num_chunks() < chunks_before);
    assert_consistent(&library).await;

    // Removing the folder empties the library.
    library.remove(&corpus).await.unwrap();
    assert_eq!(library.search_index().num_chunks(), 0);
    assert!(library.status().await.unwrap().folders.is_empty());
    assert_consistent(&library).await;
}

#[tokio::test]
async fn changing_the_analyzer_rebuilds_the_index_from_the_catalog() {
    let tmp = tempfile::tempdir().unwrap();
    let mut library = Library::open(&tmp.path().join("lib")).await.unwrap();
    index(&library, &[data("ko-corpus")]).await;
    let chunks = library.search_index().num_chunks();
    let settings = glassbox::library::IndexSettings {
        analyzer: glassbox::index::Analyzer::Simple,
        ..*library.settings()
    };
    library.set_settings(settings).await.unwrap();
    assert_eq!(library.search_index().num_chunks(), chunks);
    assert_consistent(&library).await;
    library.close().await;
    // The choice persists.
    let reopened = Library::open(&tmp.path().join("lib")).await.unwrap();
    assert_eq!(
        reopened.settings().analyzer,
        glassbox::index::Analyzer::Simple
    );
}

#[tokio::test]
async fn a_subfolder_of_a_known_folder_is_not_redone() {
    let tmp = tempfile::tempdir().unwrap();
    let corpus = tmp.path().join("corpus");
    copy_dir(&data("ko-corpus"), &corpus.join("ko"));
    copy_dir(&data("docs"), &corpus.join("docs"));
    let library = Library::open(&tmp.path().join("lib")).await.unwrap();
    let all = index(&library, std::slice::from_ref(&corpus)).await;
    let sub = index(&library, &[corpus.join("docs")]).await;
    assert_eq!((sub.indexed, sub.removed), (0, 0), "{sub:?}");
    assert_eq!(sub.unchanged, 11);
    // The parent still sees everything as unchanged afterwards.
    let again = index(&library, &[]).await;
    assert_eq!(
        (again.indexed, again.removed, again.unchanged),
        (0, 0, all.indexed)
    );
    assert_consistent(&library).await;

    // Removing the parent keeps what the registered subfolder covers.
    library.remove(&corpus).await.unwrap();
    let status = library.status().await.unwrap();
    assert_eq!(status.folders.len(), 1);
    assert_eq!(status.folders[0].indexed, 11);
    assert_eq!(
        top_file(&library, "quantization").await.as_deref(),
        Some("paper.pdf")
    );
    assert_consistent(&library).await;
}

#[tokio::test]
async fn new_chunk_sizes_redo_every_file_and_failed_files_are_retried() {
    let tmp = tempfile::tempdir().unwrap();
    let corpus = tmp.path().join("corpus");
    copy_dir(&data("ko-corpus"), &corpus);
    std::fs::write(
        corpus.join("big.txt"),
        "큰 파일의 한 줄입니다.\n".repeat(60_000),
    )
    .unwrap();
    let mut library = Library::open(&tmp.path().join("lib")).await.unwrap();
    let small_cap = glassbox::library::IndexSettings {
        max_file_mb: 1,
        ..*library.settings()
    };
    library.set_settings(small_cap).await.unwrap();
    let first = index(&library, std::slice::from_ref(&corpus)).await;
    assert_eq!((first.indexed, first.failed.len()), (24, 1), "{first:?}");
    let chunks = library.search_index().num_chunks();

    // Smaller chunks: every file is cut again (same content, so no "unchanged" shortcut), and
    // the failed file is tried again, still failing under the same cap.
    let smaller = glassbox::library::IndexSettings {
        chunk: glassbox::ingest::ChunkOptions {
            target_tokens: 64,
            overlap_tokens: 8,
        },
        ..*library.settings()
    };
    library.set_settings(smaller).await.unwrap();
    let rechunked = index(&library, &[]).await;
    assert_eq!(
        (
            rechunked.indexed,
            rechunked.unchanged,
            rechunked.failed.len()
        ),
        (24, 0, 1),
        "{rechunked:?}"
    );
    assert!(library.search_index().num_chunks() > chunks * 2);

    // A higher cap: the failed file is retried and indexed; the others stay unchanged.
    let big_cap = glassbox::library::IndexSettings {
        max_file_mb: 50,
        ..*library.settings()
    };
    library.set_settings(big_cap).await.unwrap();
    let retried = index(&library, &[]).await;
    assert_eq!(
        (retried.indexed, retried.unchanged, retried.failed.len()),
        (1, 24, 0),
        "{retried:?}"
    );
    assert_consistent(&library).await;
}

#[tokio::test]
async fn a_folder_that_is_gone_for_now_keeps_its_documents() {
    let tmp = tempfile::tempdir().unwrap();
    let corpus = tmp.path().join("drive");
    copy_dir(&data("docs"), &corpus);
    let library = Library::open(&tmp.path().join("lib")).await.unwrap();
    index(&library, std::slice::from_ref(&corpus)).await;
    let chunks = library.search_index().num_chunks();

    let away = tmp.path().join("unplugged");
    std::fs::rename(&corpus, &away).unwrap();
    let offline = index(&library, &[]).await;
    assert_eq!(offline.removed, 0, "{offline:?}");
    assert!(
        offline
            .failed
            .iter()
            .any(|f| f.path == corpus && f.error.contains("not found"))
    );
    assert_eq!(library.search_index().num_chunks(), chunks);

    std::fs::rename(&away, &corpus).unwrap();
    let back = index(&library, &[]).await;
    assert_eq!(
        (back.indexed, back.removed, back.unchanged),
        (0, 0, 11),
        "{back:?}"
    );
    assert_consistent(&library).await;
}

#[test]
fn watched_folders_report_a_burst_of_changes_once() {
    use glassbox::library::watch::FolderWatcher;
    use std::sync::mpsc::channel;
    use std::time::Duration;

    let dir = tempfile::tempdir().unwrap();
    let (notes, other, data) = (
        dir.path().join("notes"),
        dir.path().join("other"),
        dir.path().join("notes/.glassbox"),
    );
    for d in [&notes, &other, &data] {
        std::fs::create_dir_all(d).unwrap();
    }
    let (tx, rx) = channel();
    let tx = std::sync::Mutex::new(tx);
    let mut watcher = FolderWatcher::start(Duration::from_millis(300), data.clone(), move |r| {
        tx.lock().unwrap().send(r).unwrap();
    })
    .unwrap();
    watcher.watch(&notes).unwrap();
    watcher.watch(&notes).unwrap();

    // Several writes in a burst: one report, naming the watched root.
    for i in 0..5 {
        std::fs::write(notes.join(format!("n{i}.md")), format!("note {i}")).unwrap();
    }
    let roots = rx.recv_timeout(Duration::from_secs(10)).expect("a report");
    assert_eq!(roots, vec![notes.clone()]);
    assert!(
        rx.recv_timeout(Duration::from_millis(800)).is_err(),
        "only one"
    );

    // Files Glassbox does not index, the data directory, and unwatched folders do not count.
    std::fs::write(notes.join("photo.jpg"), b"\xff\xd8").unwrap();
    std::fs::write(data.join("cache.md"), b"x").unwrap();
    std::fs::write(other.join("x.md"), b"x").unwrap();
    assert!(rx.recv_timeout(Duration::from_millis(1200)).is_err());

    // After unwatching, changes go unreported.
    watcher.unwatch(&notes);
    std::fs::write(notes.join("late.md"), b"late").unwrap();
    assert!(rx.recv_timeout(Duration::from_millis(1200)).is_err());
}
