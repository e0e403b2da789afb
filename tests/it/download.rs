//! Model downloads through the real hf-hub code against a real HTTP server on 127.0.0.1.

use crate::common::*;
use crate::hfserver::HfServer;
use glassbox::embed::ModelError;
use glassbox::models::{Hub, ModelFile, ModelSpec, Role};
use sha2::{Digest, Sha256};

const REVISION: &str = "0123456789abcdef0123456789abcdef01234567";

fn sha256(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn spec(files: &[(&str, &[u8])]) -> ModelSpec {
    ModelSpec {
        id: "test/tiny".into(),
        role: Role::Embedder,
        default: false,
        repo: "test/tiny".into(),
        revision: REVISION.into(),
        architecture: "bert".into(),
        pooling: None,
        normalize: None,
        query_prefix: String::new(),
        passage_prefix: String::new(),
        max_tokens: 16,
        dimensions: 8,
        quantization: None,
        languages: vec![],
        license: "MIT".into(),
        shape: None,
        files: files
            .iter()
            .map(|(name, bytes)| ModelFile {
                name: (*name).into(),
                sha256: sha256(bytes),
                size: Some(bytes.len() as u64),
            })
            .collect(),
    }
}

fn payload(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 % 251) as u8).collect()
}

#[test]
fn download_resumes_after_a_cut_connection_and_verifies() {
    let server = HfServer::start();
    let weights = payload(3 << 20);
    let config = b"{\"model_type\": \"bert\"}".to_vec();
    server.add(
        "test/tiny",
        REVISION,
        "model.safetensors",
        weights.clone(),
        &sha256(&weights),
    );
    server.add(
        "test/tiny",
        REVISION,
        "config.json",
        config.clone(),
        &sha256(&config),
    );
    let spec = spec(&[("config.json", &config), ("model.safetensors", &weights)]);
    let home = tempfile::tempdir().unwrap();
    let hub = Hub::new(Some(server.endpoint.clone()), home.path());

    server.cut_next_downloads(1);
    let mut seen = 0;
    let first = hub.download(&spec, &mut |p| seen = seen.max(p.done));
    assert!(
        matches!(first, Err(ModelError::Download { .. })),
        "{first:?}"
    );
    assert!(hub.cached_dir(&spec).is_none());

    let dir = hub
        .download(&spec, &mut |p| seen = seen.max(p.done))
        .unwrap();
    assert_eq!(
        std::fs::read(dir.join("model.safetensors")).unwrap(),
        weights
    );
    assert_eq!(hub.cached_dir(&spec), Some(dir));
    assert_eq!(seen, weights.len() as u64);
    // The second attempt asked only for what was missing.
    let resumed = server.ranges().iter().any(|r| {
        r.trim_start_matches("bytes=")
            .split('-')
            .next()
            .unwrap()
            .parse::<usize>()
            .unwrap()
            > 0
    });
    assert!(resumed, "no resuming Range request: {:?}", server.ranges());
    // Cached: a third call downloads nothing.
    let requests = server.ranges().len();
    hub.download(&spec, &mut |_| {}).unwrap();
    assert_eq!(server.ranges().len(), requests);
}

#[test]
fn wrong_checksum_is_an_error_and_leaves_nothing_behind() {
    let server = HfServer::start();
    let served = payload(100_000);
    let mut expected = served.clone();
    expected[0] ^= 1;
    server.add(
        "test/tiny",
        REVISION,
        "model.safetensors",
        served.clone(),
        &sha256(&served),
    );
    let spec = spec(&[("model.safetensors", &expected)]);
    let home = tempfile::tempdir().unwrap();
    let hub = Hub::new(Some(server.endpoint.clone()), home.path());
    let err = hub.download(&spec, &mut |_| {}).unwrap_err();
    assert!(matches!(err, ModelError::Checksum { .. }), "{err}");
    assert!(err.to_string().contains("model.safetensors"));
    // No data is left: no blob, no partial download, no snapshot entry (a ref naming the
    // revision's commit may stay; it holds no model data).
    let leftovers: Vec<_> = walk(home.path())
        .into_iter()
        .filter(|p| p.is_file() || p.is_symlink())
        .filter(|p| !p.parent().unwrap().ends_with("refs"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn a_cancelled_download_stops_within_its_file_and_resumes_later() {
    let server = HfServer::start();
    let (first, second) = (payload(200_000), payload(300_000));
    for (name, bytes) in [("config.json", &first), ("model.safetensors", &second)] {
        server.add("test/tiny", REVISION, name, bytes.clone(), &sha256(bytes));
    }
    let spec = spec(&[("config.json", &first), ("model.safetensors", &second)]);
    let home = tempfile::tempdir().unwrap();
    let hub = Hub::new(Some(server.endpoint.clone()), home.path());
    let cancel = std::sync::atomic::AtomicBool::new(false);
    // The user presses Cancel a quarter of the way into the first file.
    let err = hub
        .download_cancellable(&spec, &cancel, &mut |p| {
            if p.done >= 50_000 {
                cancel.store(true, std::sync::atomic::Ordering::Relaxed)
            }
        })
        .unwrap_err();
    assert!(err.to_string().contains("cancelled"), "{err}");
    let snapshot = hub.snapshot_dir(&spec);
    assert!(!snapshot.join("config.json").exists());
    assert_eq!(hub.cached_dir(&spec), None);
    let parts: Vec<u64> = walk(home.path())
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "part"))
        .map(|p| std::fs::metadata(p).unwrap().len())
        .collect();
    assert!(
        matches!(parts[..], [n] if n > 0 && n < first.len() as u64),
        "one partial file, stopped within it: {parts:?}"
    );
    // Started again, it completes, both files verified.
    let never = std::sync::atomic::AtomicBool::new(false);
    let dir = hub
        .download_cancellable(&spec, &never, &mut |_| {})
        .unwrap();
    assert_eq!(std::fs::read(dir.join("config.json")).unwrap(), first);
    assert_eq!(
        std::fs::read(dir.join("model.safetensors")).unwrap(),
        second
    );
    assert_eq!(hub.cached_dir(&spec), Some(dir));
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() && !path.is_symlink() {
            out.extend(walk(&path));
        }
        out.push(path);
    }
    out
}

/// The CLI end to end: `models download` of the real all-MiniLM-L6-v2 files (the registry's
/// checksums are those of the Hub), HF_ENDPOINT and HF_HOME honoured, then the model used by id.
#[test]
fn cli_downloads_a_known_model_and_uses_it_by_id() {
    let server = HfServer::start();
    let spec = glassbox::models::find("sentence-transformers/all-MiniLM-L6-v2").unwrap();
    let local = crate::embed::minilm_dir();
    for file in &spec.files {
        server.add(
            &spec.repo,
            &spec.revision,
            &file.name,
            std::fs::read(local.join(&file.name)).unwrap(),
            &file.sha256,
        );
    }
    let home = tempfile::tempdir().unwrap();
    let hf = |args: &[&str]| {
        let mut cmd = glassbox();
        cmd.env("HF_ENDPOINT", &server.endpoint)
            .env("HF_HOME", home.path())
            .args(args);
        cmd
    };
    let out = succeed(&mut hf(&["models", "download", &spec.id]));
    let dir = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    assert!(
        std::path::Path::new(&dir)
            .join("model.safetensors")
            .is_file()
    );

    let listing = String::from_utf8(succeed(&mut hf(&["models", "list"])).stdout).unwrap();
    let row = listing.lines().find(|l| l.starts_with(&spec.id)).unwrap();
    assert!(row.contains("downloaded") && row.contains(" F32 "), "{row}");
    // Every LLM says which quantization its file uses.
    let llm = "Qwen/Qwen2.5-1.5B-Instruct-GGUF";
    let row = listing.lines().find(|l| l.starts_with(llm)).unwrap();
    assert!(row.contains(" Q4_K_M "), "{row}");

    let lib = home.path().join("lib");
    let lib = lib.to_str().unwrap();
    let docs = data("docs");
    let out = succeed(&mut hf(&[
        "--data-dir",
        lib,
        "index",
        docs.to_str().unwrap(),
        "--embedder",
        &spec.id,
    ]));
    assert!(String::from_utf8_lossy(&out.stdout).contains("chunks embedded"));
    let query = "making model weights smaller";
    let args = [
        "--data-dir",
        lib,
        "--embedder",
        &spec.id,
        "search",
        query,
        "--mode",
        "vector",
        "--json",
        "-k",
        "1",
    ];
    let out = succeed(&mut hf(&args));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("paper.pdf") && text.contains("\"page\":2"),
        "{text} {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
