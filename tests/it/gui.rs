//! The real app driven like a user, with egui_kittest: a real library in a temp folder, files
//! dropped onto the window, the background indexer, questions answered from the keyword index
//! and by SmolLM2 over MiniLM vectors, citations opened in the reader, chats kept in SQLite
//! across restarts, Korean typed through the IME, and every inspector tab, in both languages.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use egui::accesskit::Role;
use egui_kittest::Harness;
use egui_kittest::kittest::{NodeT, Queryable, by};
use glassbox::app::{GlassboxApp, Lang, Settings, Tab};

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

type App<'a> = Harness<'a, GlassboxApp>;

fn harness<'a>(data: &Path, settings: Settings) -> App<'a> {
    let app = GlassboxApp::new(data.to_owned(), settings);
    let mut harness = Harness::builder()
        .with_size([1280.0, 800.0])
        .build_ui_state(|ui, app: &mut GlassboxApp| app.show(ui), app);
    harness.step();
    harness
}

fn english() -> Settings {
    Settings {
        lang: Lang::En,
        ..Settings::default()
    }
}

/// Whether some widget's label or text contains `text`.
fn shows(harness: &App<'_>, text: &str) -> bool {
    harness.query_all_by_label_contains(text).next().is_some()
}

/// Steps the UI until `done` holds (the worker reports between frames), or fails after a while.
fn step_until(harness: &mut App<'_>, what: &str, done: impl Fn(&App<'_>) -> bool) {
    let start = Instant::now();
    while !done(harness) {
        assert!(
            start.elapsed() < Duration::from_secs(240),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
        harness.step();
    }
}

fn drop_folder(harness: &mut App<'_>, folder: &Path) {
    harness
        .input_mut()
        .dropped_files
        .push(Arc::new(DroppedPath(folder.to_owned())));
    harness.step();
    step_until(
        harness,
        "the dropped folder to be indexed and embedded",
        |h| shows(h, " indexed · ") && shows(h, "Idle"),
    );
}

/// The question box: the text input that is not a chat title being renamed.
fn question_box<'h>(harness: &'h App<'_>) -> egui_kittest::Node<'h> {
    harness
        .query_all_by_role(Role::MultilineTextInput)
        .next()
        .expect("the question box")
}

fn ask(harness: &mut App<'_>, question: &str) {
    question_box(harness).focus();
    harness.step();
    question_box(harness).type_text(question);
    harness.step();
    harness.get_by_label("Ask").click();
    harness.step();
}

fn corpus(dir: &Path) -> PathBuf {
    let corpus = dir.join("corpus");
    crate::common::copy_dir(&crate::common::data("en-corpus"), &corpus);
    corpus
}

#[test]
fn dropped_files_are_indexed_searched_and_explained() {
    let dir = tempfile::tempdir().unwrap();
    let corpus = corpus(dir.path());
    let mut harness = harness(&dir.path().join("data"), english());
    step_until(&mut harness, "the first-run guide", |h| {
        shows(h, "Welcome to Glassbox")
    });
    drop_folder(&mut harness, &corpus);
    assert!(shows(&harness, "corpus"), "the folder is listed");
    assert!(!shows(&harness, "Welcome to Glassbox"), "the guide is gone");

    // The folder is watched: a new file is indexed without asking.
    let counts = |h: &App<'_>| {
        h.query_all_by_label_contains(" indexed · ")
            .filter_map(|n| n.accesskit_node().label().or_else(|| n.value()))
            .next()
    };
    let before = counts(&harness);
    assert!(before.is_some());
    std::fs::write(
        corpus.join("zz-quokka.md"),
        "# Quokkas\n\nThe quokkaberry jam recipe needs three cups of berries.\n",
    )
    .unwrap();
    step_until(&mut harness, "the new file to be indexed", |h| {
        counts(h) != before && shows(h, "Idle")
    });

    // Korean through the input method: composing, then committing, lands in the question box.
    question_box(&harness).focus();
    harness.step();
    for text in ["ㅅ", "사", "사워"] {
        harness.event(egui::Event::Ime(egui::ImeEvent::Preedit {
            text: text.into(),
            active_range_chars: None,
        }));
        harness.step();
    }
    harness.event(egui::Event::Ime(egui::ImeEvent::Commit("사워도우".into())));
    harness.step();
    assert_eq!(question_box(&harness).value().as_deref(), Some("사워도우"));
    harness.key_press_modifiers(egui::Modifiers::COMMAND, egui::Key::A);
    harness.key_press(egui::Key::Backspace);
    harness.step();
    assert_eq!(question_box(&harness).value().as_deref(), Some(""));

    // An empty question asks nothing.
    harness.get_by_label("Ask").click();
    harness.step();
    assert!(!shows(&harness, "No model yet"));
    ask(
        &mut harness,
        "How do you revive a neglected sourdough starter?",
    );
    step_until(&mut harness, "the search results", |h| {
        shows(h, "No model yet")
    });
    assert!(shows(&harness, "01-sourdough.md"));
    ask(&mut harness, "quokkaberry jam");
    step_until(&mut harness, "the watched file's passage", |h| {
        shows(h, "zz-quokka.md")
    });

    // A result opens in the reader, highlighted in its file.
    harness
        .query_all_by_label_contains("1. ")
        .next()
        .expect("the first result")
        .click();
    step_until(&mut harness, "the reader", |h| shows(h, "Open file"));

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

    // Settings: a change reaches the app's settings (and eframe keeps them between runs).
    harness.get_by_label("Settings").click();
    step_until(&mut harness, "the settings window", |h| {
        shows(h, "Retrieval mode")
    });
    harness.get_by_label("Dark").click();
    harness.step();
    assert_eq!(harness.state().settings().theme, glassbox::app::Theme::Dark);

    // Bad input: a file of a kind Glassbox does not read, and a broken model dropped on the
    // window, each get a message; the library and the window go on.
    let photo = dir.path().join("photo.jpg");
    std::fs::write(&photo, b"\xff\xd8\xff\xe0 not really a photo").unwrap();
    harness
        .input_mut()
        .dropped_files
        .push(Arc::new(DroppedPath(photo)));
    step_until(&mut harness, "the skipped file to be reported", |h| {
        shows(h, "1 file(s) skipped")
    });
    let broken = dir.path().join("broken.gguf");
    std::fs::write(&broken, b"GGUF\x03\x00\x00\x00 and then nothing").unwrap();
    harness
        .input_mut()
        .dropped_files
        .push(Arc::new(DroppedPath(broken)));
    harness.step();
    ask(&mut harness, "sourdough starter");
    step_until(&mut harness, "the model's failure to load", |h| {
        shows(h, "cannot load the model") && shows(h, "broken.gguf")
    });
    assert!(shows(&harness, " indexed · "), "the library is still there");

    // Korean: the same window in the other language.
    // The top bar's (the settings window has one too).
    harness
        .query_all_by_label("한국어")
        .next()
        .expect("the language switch")
        .click_accesskit();
    // The click lands in this frame; the next one is drawn in Korean.
    harness.run_steps(2);
    assert!(shows(&harness, "무엇을 보고 있나요?"));
    assert!(shows(&harness, "라이브러리"));
}

/// A library whose embedder is the test MiniLM, as `glassbox models use` would set it.
fn library_with_minilm(data: &Path) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let library = glassbox::Library::open(data).await.unwrap();
        let minilm = crate::embed::minilm_dir();
        library
            .catalog()
            .set_setting("embedder", &minilm.display().to_string())
            .await
            .unwrap();
        library.close().await;
    });
}

fn chats_listed(harness: &mut App<'_>) -> Vec<String> {
    // By accessibility action: the reader window may lie over the chat bar.
    harness.get_by_label("Chat").click_accesskit();
    harness.run_steps(2);
    let listed = harness
        .query_all_by_label_contains(")")
        .filter_map(|n| n.accesskit_node().label())
        .collect();
    harness.key_press(egui::Key::Escape);
    harness.step();
    listed
}

#[test]
fn answers_cite_sources_and_chats_persist() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    library_with_minilm(&data);
    let corpus = corpus(dir.path());
    let settings = Settings {
        llm: Some(crate::llm::smollm_path()),
        max_tokens: 32,
        temperature: 0.0,
        k: 3,
        ..english()
    };
    let mut harness = harness(&data, settings.clone());
    drop_folder(&mut harness, &corpus);

    let question = "How do you revive a neglected sourdough starter?";
    ask(&mut harness, question);
    step_until(&mut harness, "the answer", |h| shows(h, "Regenerate"));
    assert!(shows(&harness, "tok/s"), "the answer's metadata");
    assert!(shows(&harness, "01-sourdough.md"), "its sources");

    // A source opens in the reader.
    harness
        .query_all_by_role(Role::Link)
        .find(|n| {
            n.accesskit_node()
                .label()
                .is_some_and(|l| l.starts_with("[1] "))
        })
        .expect("source [1]")
        .click_accesskit();
    step_until(&mut harness, "the reader", |h| shows(h, "Open file"));

    // The inspector follows the answer.
    harness.get_by_label("Attention").click();
    harness.step();
    assert!(shows(&harness, "Rows: answer tokens"));
    assert!(shows(&harness, "KV 2:"), "SmolLM2's three KV heads, GQA");
    harness.get_by_label("h4").click();
    harness.step();
    // Another layer of the same answer: its tokens run again with layer 3 captured.
    harness.get_by_label("Layer").click_accesskit();
    harness.run_steps(2);
    harness.get_by_label("3").click_accesskit();
    step_until(&mut harness, "layer 3", |h| {
        h.query_all_by_role(Role::ComboBox)
            .any(|n| n.value().as_deref() == Some("3 / 30"))
            && !shows(h, "Running the answer again")
    });
    harness.get_by_label("Engine").click();
    harness.step();
    assert!(shows(&harness, "KV cache blocks"));
    harness.get_by_label("Embedding space").click();
    step_until(&mut harness, "the embedding space", |h| shows(h, "PC1"));
    // UMAP instead of PCA, computed on the worker.
    harness.get_by_label("Projection").click_accesskit();
    harness.run_steps(2);
    harness.get_by_label("UMAP").click_accesskit();
    step_until(&mut harness, "the UMAP picture", |h| {
        shows(h, "UMAP · laid out") && !shows(h, "PC1")
    });

    // Regenerating replaces the answer: still one question and one answer.
    harness.get_by_label("Regenerate").click();
    harness.step();
    step_until(&mut harness, "the new answer", |h| shows(h, "Regenerate"));
    let listed = chats_listed(&mut harness);
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert!(listed[0].ends_with("(2)"), "{listed:?}");

    // A second question: the inspector follows the newest answer, and Inspect on the first
    // answer takes it back to that one.
    let second = "What makes the tides rise and fall?";
    ask(&mut harness, second);
    step_until(&mut harness, "the second answer", |h| {
        shows(h, &format!("The answer to: {second}"))
    });
    // The chat's messages arrive just after the answer.
    step_until(
        &mut harness,
        "each answer of this session to be inspectable",
        |h| h.query_all_by_label("Inspect").count() == 2,
    );
    harness
        .query_all_by_label("Inspect")
        .next()
        .unwrap()
        .click_accesskit();
    step_until(&mut harness, "the first answer inspected", |h| {
        shows(h, &format!("The answer to: {question}"))
    });

    // Rename.
    harness.get_by_label("Rename").click_accesskit();
    let editing = |h: &App<'_>| {
        h.query_all_by_role(Role::TextInput)
            .any(|n| n.value().as_deref() == Some(question))
    };
    step_until(&mut harness, "the title to be editable", editing);
    harness
        .query_all_by_role(Role::TextInput)
        .find(|n| n.value().as_deref() == Some(question))
        .unwrap()
        .focus();
    harness.step();
    harness.key_press(egui::Key::End);
    harness
        .query_all_by_role(Role::TextInput)
        .find(|n| n.value().as_deref() == Some(question))
        .unwrap()
        .type_text(" (renamed)");
    harness.step();
    harness.get_by_label("Save").click_accesskit();
    step_until(&mut harness, "the new title", |h| {
        h.query_all_by_role(Role::ComboBox)
            .any(|n| n.value().is_some_and(|v| v.ends_with("(renamed)")))
    });
    drop(harness);

    // After a restart the chat is still there and opens with its answer.
    let mut harness = self::harness(&data, settings);
    step_until(&mut harness, "the library", |h| shows(h, " indexed · "));
    harness.get_by_label("Chat").click_accesskit();
    // The list of chats arrives after the library's summary.
    step_until(&mut harness, "the chat in the list", |h| {
        h.query_all_by_label_contains("(renamed)").count() == 1
    });
    harness.get_by_label_contains("(renamed)").click_accesskit();
    step_until(&mut harness, "the chat to open", |h| shows(h, "Regenerate"));
    assert!(shows(&harness, question));

    // Delete.
    harness.get_by_label("Delete").click_accesskit();
    step_until(&mut harness, "the chat to go", |h| !shows(h, "Regenerate"));
    assert!(chats_listed(&mut harness).is_empty());

    // The first question again, in a new chat: its answer (kept across the restart) comes out
    // of the LLM cache, and the engine panel says so. Regenerate's answer was not kept.
    ask(&mut harness, question);
    step_until(&mut harness, "the cached answer", |h| {
        shows(h, "Regenerate")
    });
    assert!(
        shows(&harness, "from the LLM cache"),
        "the answer's metadata"
    );
    // Its attention is computed after it is shown (the model did not run for it).
    harness.get_by_label("Attention").click_accesskit();
    step_until(&mut harness, "the cached answer's attention", |h| {
        shows(h, "Rows: answer tokens")
    });
    harness.get_by_label("Engine").click_accesskit();
    step_until(&mut harness, "the cache's figures", |h| {
        shows(h, "answers kept 2 · hits 1")
    });
    assert!(shows(&harness, "came out of the LLM cache"));
    harness.get_by_label("Clear").click_accesskit();
    step_until(&mut harness, "the cache to empty", |h| {
        shows(h, "answers kept 0 · hits 0")
    });
}

/// Hides the live memory figure, which differs from run to run, before a snapshot.
fn mask_memory(harness: &mut App<'_>) {
    let rect = harness
        .query_all_by_label_contains(" MB")
        .next()
        .expect("the memory figure")
        .rect();
    harness.mask(rect.expand(2.0));
}

/// Pictures of the main views, rendered by wgpu on this machine's adapter (Mesa lavapipe in
/// tests), held against the ones checked in under tests/snapshots (UPDATE_SNAPSHOTS=1 renews
/// them after a deliberate change).
#[test]
fn main_views_match_their_snapshots() {
    let dir = tempfile::tempdir().unwrap();
    let corpus = corpus(dir.path());
    let app = GlassboxApp::new(dir.path().join("data"), english());
    let mut harness = Harness::builder()
        .with_size([1280.0, 800.0])
        .wgpu()
        .build_ui_state(|ui, app: &mut GlassboxApp| app.show(ui), app);
    step_until(&mut harness, "the first-run guide", |h| {
        shows(h, "Welcome to Glassbox") && shows(h, "Idle")
    });
    harness.run_steps(2);
    mask_memory(&mut harness);
    harness.snapshot("first_run_en");

    drop_folder(&mut harness, &corpus);
    ask(
        &mut harness,
        "How do you revive a neglected sourdough starter?",
    );
    step_until(&mut harness, "the search results", |h| {
        shows(h, "No model yet") && shows(h, "Idle")
    });
    harness.run_steps(2);
    mask_memory(&mut harness);
    harness.snapshot("search_en");

    harness
        .query_all_by_label("한국어")
        .next()
        .unwrap()
        .click_accesskit();
    harness.run_steps(3);
    mask_memory(&mut harness);
    harness.snapshot("search_ko");
}

/// The Models window downloads a known model (the real all-MiniLM-L6-v2 files, from a local
/// server in the Hub's layout) with the app's own download code, and then lists it as
/// downloaded.
#[test]
fn a_model_is_downloaded_from_the_models_window() {
    let server = crate::hfserver::HfServer::start();
    let spec = glassbox::models::find("sentence-transformers/all-MiniLM-L6-v2").unwrap();
    let local = crate::embed::minilm_dir();
    for file in &spec.files {
        let bytes = std::fs::read(local.join(&file.name)).unwrap();
        server.add(&spec.repo, &spec.revision, &file.name, bytes, &file.sha256);
    }
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("hf");
    let hub = glassbox::models::Hub::new(Some(server.endpoint.clone()), &home);
    let app = GlassboxApp::new(dir.path().join("data"), english()).with_hub(hub.clone());
    let mut harness = Harness::builder()
        .with_size([1280.0, 800.0])
        .build_ui_state(|ui, app: &mut GlassboxApp| app.show(ui), app);
    harness.step();
    harness
        .query_all_by_label("Get models…")
        .next()
        .unwrap()
        .click_accesskit();
    step_until(&mut harness, "the Models window", |h| shows(h, &spec.id));
    // The Download button on MiniLM's row: the one level with its name.
    let row = |h: &App<'_>| h.get_by_label(&spec.id).rect();
    // A widget with this text (a button's label or a label's value) on MiniLM's row.
    let on_row = |h: &App<'_>, text: &str| {
        let row = row(h);
        h.query_all(egui_kittest::kittest::by().predicate(|n| {
            n.label().as_deref() == Some(text) || n.value().as_deref() == Some(text)
        }))
        .any(|n| (n.rect().center().y - row.center().y).abs() < row.height())
    };
    let y = row(&harness).center().y;
    harness
        .query_all_by_label("Download")
        .find(|n| (n.rect().center().y - y).abs() < 8.0)
        .expect("a Download button on the row")
        .click_accesskit();
    step_until(&mut harness, "the download", |h| on_row(h, "downloaded"));
    assert!(!on_row(&harness, "Download"), "no second download offered");
    let folder = hub.cached_dir(&spec).expect("every file in the cache");
    for file in &spec.files {
        let got = std::fs::read(folder.join(&file.name)).unwrap();
        assert!(
            got == std::fs::read(local.join(&file.name)).unwrap(),
            "{}",
            file.name
        );
    }
}

/// A second copy of Glassbox writing the same library, and a folder gone by the time it is
/// dropped: each gets a message in the window, and the library stays as it was.
#[test]
fn a_busy_library_and_a_vanished_folder_get_clear_messages() {
    let dir = tempfile::tempdir().unwrap();
    let corpus = corpus(dir.path());
    std::fs::write(corpus.join("broken.pdf"), b"%PDF-1.7 and then nothing").unwrap();
    let data = dir.path().join("data");
    let mut harness = harness(&data, english());
    drop_folder(&mut harness, &corpus);
    step_until(&mut harness, "the library", |h| {
        shows(h, " indexed · ") && shows(h, "Idle")
    });

    // The folder opens to list its documents.
    harness
        .get_by_label("Documents of corpus")
        .click_accesskit();
    step_until(&mut harness, "the documents", |h| {
        h.query_all(by().value("01-sourdough.md").role(Role::Label))
            .count()
            == 1
    });
    // The list draws only the rows in view; the broken file is counted, and listed with its
    // reason under the folders.
    assert!(shows(&harness, "1 failed"));
    assert!(shows(&harness, "broken.pdf: "));

    // Another process holds the index writer, as a second copy indexing would.
    let index = tantivy::Index::open_in_dir(data.join("tantivy")).unwrap();
    let writer: tantivy::IndexWriter = index.writer(20_000_000).unwrap();
    std::fs::write(
        corpus.join("new.md"),
        "# New\n\nA note written while busy.\n",
    )
    .unwrap();
    drop_folder(&mut harness, &corpus);
    step_until(&mut harness, "the busy message", |h| {
        shows(h, "another Glassbox process")
    });
    assert!(
        shows(&harness, " indexed · "),
        "the library is still listed"
    );
    drop(writer);

    let gone = dir.path().join("gone");
    drop_folder(&mut harness, &gone);
    step_until(&mut harness, "the vanished folder's message", |h| {
        shows(h, "cannot open") && shows(h, "check that it still exists")
    });
    assert!(
        shows(&harness, " indexed · "),
        "the library is still listed"
    );
}

/// GPU attention in the window runs on the device it is given (in the app, eframe's own), and
/// the top bar says which.
#[test]
fn answers_with_gpu_attention_on_the_windows_device() {
    let dir = tempfile::tempdir().unwrap();
    let corpus = corpus(dir.path());
    let gpu = glassbox::gpu::GpuContext::new(glassbox::gpu::AdapterChoice::AllowSoftware)
        .expect("a wgpu adapter (scripts/test installs Mesa's lavapipe)");
    let settings = Settings {
        llm: Some(crate::llm::smollm_path()),
        attention: glassbox::llm::AttentionKind::Gpu,
        max_tokens: 8,
        ..english()
    };
    let app = GlassboxApp::new(dir.path().join("data"), settings).with_gpu(gpu.clone());
    let mut harness = Harness::builder()
        .with_size([1280.0, 800.0])
        .build_ui_state(|ui, app: &mut GlassboxApp| app.show(ui), app);
    harness.step();
    drop_folder(&mut harness, &corpus);
    ask(
        &mut harness,
        "How do you revive a neglected sourdough starter?",
    );
    step_until(&mut harness, "the answer", |h| shows(h, "Regenerate"));
    assert!(
        shows(&harness, &format!("{} · attention gpu", gpu.describe())),
        "the top bar names the device"
    );
    // The engine computes on that very device: when it is lost, the next answer comes from
    // the CPU, and the top bar says so (an engine with a device of its own would not notice).
    gpu.device.destroy();
    ask(&mut harness, "Why does a starter smell of acetone?");
    step_until(&mut harness, "the fall back to the CPU", |h| {
        shows(h, "CPU · attention cpu-fused (the GPU failed)")
    });
}
