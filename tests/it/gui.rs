//! The real app driven like a user, with egui_kittest: a real library in a temp folder, files
//! dropped onto the window, the background indexer, a question answered from the keyword index
//! (no model), and every inspector tab opened, in Korean and in English.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use egui_kittest::Harness;
use egui_kittest::kittest::Queryable;
use glassbox::app::{GlassboxApp, Lang, Tab};

/// A file dropped from the desktop, as the windowing integration hands it to egui.
#[derive(Debug)]
struct DroppedPath(PathBuf);

impl egui::DroppedFile for DroppedPath {
    fn path(&self) -> &Path {
        &self.0
    }

    fn bytes(&self) -> Result<Vec<u8>, String> {
        std::fs::read(&self.0).map_err(|e| e.to_string())
    }
}

/// Whether some widget's label or text contains `text`.
fn shows(harness: &Harness<'_, GlassboxApp>, text: &str) -> bool {
    harness.query_all_by_label_contains(text).next().is_some()
}

/// Steps the UI until `done` holds (the worker reports between frames), or fails after a while.
fn step_until(
    harness: &mut Harness<'_, GlassboxApp>,
    what: &str,
    done: impl Fn(&Harness<'_, GlassboxApp>) -> bool,
) {
    let start = Instant::now();
    while !done(harness) {
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
        harness.step();
    }
}

#[test]
fn dropped_files_are_indexed_searched_and_explained() {
    let dir = tempfile::tempdir().unwrap();
    let corpus = dir.path().join("corpus");
    crate::common::copy_dir(&crate::common::data("en-corpus"), &corpus);
    let app = GlassboxApp::new(dir.path().join("data"), None, Lang::En);
    let mut harness = Harness::builder()
        .with_size([1280.0, 800.0])
        .build_ui_state(|ui, app: &mut GlassboxApp| app.show(ui), app);
    harness.step();

    harness
        .input_mut()
        .dropped_files
        .push(Arc::new(DroppedPath(corpus.clone())));
    harness.step();
    step_until(&mut harness, "the dropped folder to be indexed", |h| {
        shows(h, " indexed · ")
    });
    let folder = corpus.display().to_string();
    assert!(shows(&harness, &folder), "the folder is listed");

    harness.get_by_label("Ask").click();
    harness.step();
    // An empty question asks nothing.
    assert!(!shows(&harness, "No model yet"));
    let question = "How do you revive a neglected sourdough starter?";
    harness
        .get_by_role(egui::accesskit::Role::TextInput)
        .focus();
    harness.step();
    harness
        .get_by_role(egui::accesskit::Role::TextInput)
        .type_text(question);
    harness.step();
    harness.get_by_label("Ask").click();
    step_until(&mut harness, "the search results", |h| {
        shows(h, "No model yet")
    });
    assert!(shows(&harness, "01-sourdough.md"));

    // The retrieval tab lists each passage with its BM25 rank; every tab opens and explains.
    assert_eq!(harness.state().tab(), Tab::Retrieval);
    assert!(shows(&harness, "BM25"));
    for (label, tab) in [
        ("Attention", Tab::Attention),
        ("Embedding space", Tab::EmbeddingSpace),
        ("Engine", Tab::Engine),
        ("Retrieval", Tab::Retrieval),
    ] {
        harness.get_by_label(label).click();
        harness.step();
        assert_eq!(harness.state().tab(), tab);
        assert!(shows(&harness, "What am I seeing?"));
    }

    // Korean: the same window in the other language.
    harness.get_by_label("한국어").click();
    // The click lands in this frame; the next one is drawn in Korean.
    harness.run_steps(2);
    assert!(shows(&harness, "무엇을 보고 있나요?"));
    assert!(shows(&harness, "라이브러리"));
}
