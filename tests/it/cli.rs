//! The `glassbox` binary as a user runs it.

use crate::common::*;
use serde_json::Value;
use std::path::Path;

fn run(args: &[&str], data_dir: &Path) -> std::process::Output {
    succeed(glassbox().arg("--data-dir").arg(data_dir).args(args))
}

fn stdout(out: &std::process::Output) -> String {
    String::from_utf8(out.stdout.clone()).unwrap()
}

#[test]
fn index_search_status_remove() {
    let tmp = tempfile::tempdir().unwrap();
    let lib = tmp.path().join("lib");
    let docs = data("docs");
    let bad = data("bad");
    let summary = stdout(&run(
        &["index", docs.to_str().unwrap(), bad.to_str().unwrap()],
        &lib,
    ));
    assert!(summary.contains("11 indexed"), "{summary}");
    assert!(
        summary.contains("failed: ") && summary.contains("encrypted.pdf"),
        "{summary}"
    );

    // --json: one object per result with the documented fields.
    let out = stdout(&run(&["search", "quantization", "--json", "-k", "3"], &lib));
    let first: Value = serde_json::from_str(out.lines().next().unwrap()).unwrap();
    assert_eq!(first["rank"], 1);
    assert!(first["score"].as_f64().unwrap() > 0.0);
    assert!(first["path"].as_str().unwrap().ends_with("docs/paper.pdf"));
    assert!(Path::new(first["path"].as_str().unwrap()).is_absolute());
    assert_eq!(first["page"], 2);
    assert!(first["text"].as_str().unwrap().contains("four bits"));
    assert!(first["lines"].as_array().unwrap().len() == 2);
    assert!(first.get("heading").is_some());

    // Human output highlights matched terms.
    let out = stdout(&run(&["search", "교차 인코더"], &lib));
    assert!(
        out.contains("guide.html") && out.contains("«교차»"),
        "{out}"
    );

    // Global flag after the subcommand, and the environment variable.
    let after = glassbox()
        .args(["search", "lithium", "--json", "--data-dir"])
        .arg(&lib)
        .output()
        .unwrap();
    assert!(stdout(&after).contains("report.docx"));
    let env = glassbox()
        .args(["search", "lithium", "--json"])
        .env("GLASSBOX_DATA_DIR", &lib)
        .output()
        .unwrap();
    assert!(stdout(&env).contains("report.docx"));

    // --batch: one JSON line per query.
    let queries = tmp.path().join("queries.txt");
    std::fs::write(&queries, "quantization\n\n형태소 분석기\n").unwrap();
    let out = stdout(&run(
        &["search", "--batch", queries.to_str().unwrap(), "--json"],
        &lib,
    ));
    let lines: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[1]["query"], "형태소 분석기");
    assert!(
        lines[1]["results"][0]["path"]
            .as_str()
            .unwrap()
            .ends_with("windows-memo.txt")
    );

    // status lists folders and failures with reasons.
    let status = stdout(&run(&["status"], &lib));
    assert!(
        status.contains("garbled.txt: text encoding could not be recognised"),
        "{status}"
    );

    run(&["remove", bad.to_str().unwrap()], &lib);
    let status = stdout(&run(&["status"], &lib));
    assert!(!status.contains("garbled.txt"), "{status}");
    assert!(status.contains("11 indexed"), "{status}");
}

#[test]
fn help_lists_commands_and_unknown_paths_fail_clearly() {
    let help = glassbox().arg("--help").output().unwrap();
    assert!(help.status.success());
    assert!(stdout(&help).contains("Usage"));
    let tmp = tempfile::tempdir().unwrap();
    let missing = glassbox()
        .arg("--data-dir")
        .arg(tmp.path())
        .args(["index", "/no/such/folder"])
        .output()
        .unwrap();
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("/no/such/folder"));
}

/// A file the user cannot read. Root reads everything, so as root the indexer runs as `nobody`.
#[test]
fn unreadable_file_is_recorded() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    let open = std::fs::Permissions::from_mode(0o777);
    std::fs::set_permissions(tmp.path(), open.clone()).unwrap();
    let corpus = tmp.path().join("corpus");
    std::fs::create_dir(&corpus).unwrap();
    std::fs::set_permissions(&corpus, open.clone()).unwrap();
    std::fs::write(corpus.join("readable.txt"), "누구나 읽을 수 있는 파일").unwrap();
    std::fs::write(corpus.join("secret.txt"), "비밀").unwrap();
    std::fs::set_permissions(
        corpus.join("secret.txt"),
        std::fs::Permissions::from_mode(0o000),
    )
    .unwrap();
    let lib = tmp.path().join("lib");
    let is_root = std::process::Command::new("id")
        .arg("-u")
        .output()
        .unwrap()
        .stdout
        == b"0\n";
    let mut cmd = if is_root {
        let mut c = std::process::Command::new("setpriv");
        c.args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            env!("CARGO_BIN_EXE_glassbox"),
        ]);
        c
    } else {
        glassbox()
    };
    let out = cmd
        .arg("--data-dir")
        .arg(&lib)
        .arg("index")
        .arg(&corpus)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("1 indexed"), "{text}");
    assert!(text.contains("secret.txt: cannot read file"), "{text}");
}

/// While another process holds the index writer, reading still works and a second indexing run
/// says clearly why it cannot start.
#[test]
fn a_busy_index_blocks_writers_not_readers() {
    let tmp = tempfile::tempdir().unwrap();
    let lib = tmp.path().join("lib");
    run(&["index", data("docs").to_str().unwrap()], &lib);
    let index = tantivy::Index::open_in_dir(lib.join("tantivy")).unwrap();
    let writer: tantivy::IndexWriter = index.writer(20_000_000).unwrap();

    let search = stdout(&run(&["search", "quantization", "--json"], &lib));
    assert!(search.contains("paper.pdf"), "{search}");
    let status = stdout(&run(&["status"], &lib));
    assert!(status.contains("11 indexed"), "{status}");

    let blocked = glassbox()
        .arg("--data-dir")
        .arg(&lib)
        .arg("index")
        .output()
        .unwrap();
    assert!(!blocked.status.success());
    let message = String::from_utf8_lossy(&blocked.stderr);
    assert!(message.contains("another Glassbox process"), "{message}");
    let docs = data("docs");
    let remove = glassbox()
        .arg("--data-dir")
        .arg(&lib)
        .arg("remove")
        .arg(&docs)
        .output()
        .unwrap();
    assert!(!remove.status.success());
    drop(writer);
    let status = stdout(&run(&["status"], &lib));
    assert!(
        status.contains("11 indexed"),
        "remove must change nothing while blocked: {status}"
    );
    run(&["index"], &lib);
}

/// Embedding runs after keyword indexing, and keyword search of what is indexed works from
/// another process while it runs.
#[test]
fn keyword_search_works_while_the_library_is_embedding() {
    let tmp = tempfile::tempdir().unwrap();
    let lib = tmp.path().join("lib");
    let mut child = glassbox()
        .arg("--data-dir")
        .arg(&lib)
        .arg("--embedder")
        .arg(crate::embed::minilm_dir())
        .arg("index")
        .arg(data("ko-corpus"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    let mut searched_while_embedding = false;
    while std::time::Instant::now() < deadline && child.try_wait().unwrap().is_none() {
        let out = glassbox()
            .arg("--data-dir")
            .arg(&lib)
            .args(["search", "김치 발효", "--mode", "bm25", "--json", "-k", "1"])
            .output()
            .unwrap();
        let found =
            out.status.success() && String::from_utf8_lossy(&out.stdout).contains("01-kimchi.md");
        if found && child.try_wait().unwrap().is_none() {
            searched_while_embedding = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let status = child.wait().unwrap();
    assert!(status.success());
    assert!(
        searched_while_embedding,
        "no successful keyword search while the index run was embedding"
    );
}

/// The fusion flags reach the search: the trace shows the RRF k and the weights' effect.
#[test]
fn fusion_flags_reach_the_search() {
    let tmp = tempfile::tempdir().unwrap();
    let lib = tmp.path().join("lib");
    let model = crate::embed::minilm_dir();
    let model = model.to_str().unwrap();
    run(
        &["--embedder", model, "index", data("docs").to_str().unwrap()],
        &lib,
    );
    let args = [
        "--embedder",
        model,
        "search",
        "attention",
        "--mode",
        "hybrid",
        "--rrf-k",
        "10",
        "--weights",
        "1,0",
        "--explain",
        "--json",
    ];
    let out = stdout(&run(&args, &lib));
    let trace: serde_json::Value = serde_json::from_str(out.lines().last().unwrap()).unwrap();
    let trace = &trace["trace"];
    assert_eq!(trace["rrf_k"], 10.0);
    for fused in trace["fused"].as_array().unwrap() {
        if let Some(vector) = fused["vector"].as_object() {
            assert_eq!(
                vector["rrf"], 0.0,
                "a zero weight must give the vector list no votes"
            );
        }
    }
}

/// Two processes opening a brand-new library at the same moment (an index run and a search)
/// both succeed: neither deletes the other's fresh index nor fails on the database lock.
#[test]
fn concurrent_first_opens_of_a_new_library_both_succeed() {
    for _ in 0..6 {
        let tmp = tempfile::tempdir().unwrap();
        let lib = tmp.path().join("lib");
        let mut index = glassbox()
            .arg("--data-dir")
            .arg(&lib)
            .arg("index")
            .arg(data("docs"))
            .spawn()
            .unwrap();
        let search = glassbox()
            .arg("--data-dir")
            .arg(&lib)
            .args(["search", "quantization", "--mode", "bm25"])
            .output()
            .unwrap();
        assert!(
            search.status.success(),
            "{}",
            String::from_utf8_lossy(&search.stderr)
        );
        assert!(index.wait().unwrap().success());
    }
}

/// `explain` prints a concept in the language asked for, every concept as JSON, and names the
/// known ones when asked for an unknown one.
#[test]
fn explain_prints_concepts_in_korean_and_english() {
    use crate::common::{glassbox, succeed};
    let ko = succeed(glassbox().args(["explain", "kv-cache", "--lang", "ko"]));
    let ko = String::from_utf8(ko.stdout).unwrap();
    assert!(ko.starts_with("KV 캐시") && ko.contains("블록"), "{ko}");
    let en = succeed(glassbox().args(["explain", "벡터 검색"]));
    assert!(String::from_utf8_lossy(&en.stdout).starts_with("Vector search"));
    let all = succeed(glassbox().args(["explain", "--json"]));
    let all: serde_json::Value = serde_json::from_slice(&all.stdout).unwrap();
    assert_eq!(
        all.as_array().unwrap().len(),
        glassbox::concepts::concepts().len()
    );
    let bad = glassbox().args(["explain", "warp-drive"]).output().unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("known: transfer-learning"));
}
