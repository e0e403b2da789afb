//! Bad model files and the language-model commands, through the real `glassbox` binary.

use crate::common::{glassbox, succeed};
use crate::llm::smollm_path;
use candle_core::quantized::gguf_file::{self, Content, Value};
use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{Device, Tensor};
use glassbox::llm::{Engine, EngineOptions, LlmError};
use std::path::{Path, PathBuf};

/// The real file's metadata whose key passes `keep`, with `changes` applied.
fn metadata(keep: &dyn Fn(&str) -> bool, changes: &[(&str, Value)]) -> Vec<(String, Value)> {
    let mut file = std::fs::File::open(smollm_path()).unwrap();
    let content = Content::read(&mut file).unwrap();
    let mut meta: Vec<(String, Value)> = content
        .metadata
        .into_iter()
        .filter(|(k, _)| keep(k) && !changes.iter().any(|(c, _)| c == k))
        .collect();
    meta.extend(changes.iter().map(|(k, v)| (k.to_string(), v.clone())));
    meta
}

fn write_gguf(path: &Path, meta: &[(String, Value)], tensors: &[(&str, QTensor)]) {
    let mut f = std::fs::File::create(path).unwrap();
    let meta: Vec<(&str, &Value)> = meta.iter().map(|(k, v)| (k.as_str(), v)).collect();
    let tensors: Vec<(&str, &QTensor)> = tensors.iter().map(|(k, v)| (*k, v)).collect();
    gguf_file::write(&mut f, &meta, &tensors).unwrap();
}

fn load_err(path: &Path) -> LlmError {
    match Engine::load(path, &EngineOptions::default()) {
        Ok(_) => panic!("{} loaded", path.display()),
        Err(e) => e,
    }
}

fn assert_names_file(err: &LlmError, path: &Path, what: &str) {
    let msg = err.to_string();
    assert!(msg.contains(&path.display().to_string()), "{msg}");
    assert!(msg.contains(what), "{msg}");
}

#[test]
fn broken_model_files_give_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    // Truncated in the middle of the tensors, as an interrupted download leaves it.
    let truncated = dir.path().join("truncated.gguf");
    let bytes = std::fs::read(smollm_path()).unwrap();
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    assert_names_file(&load_err(&truncated), &truncated, "truncated");
    // Not a GGUF at all.
    let text = dir.path().join("notes.gguf");
    std::fs::write(&text, "these are my notes, not a model").unwrap();
    assert_names_file(&load_err(&text), &text, "not a usable GGUF");
    // An architecture this engine does not run.
    let mamba = dir.path().join("mamba.gguf");
    let meta = metadata(
        &|_| true,
        &[("general.architecture", Value::String("mamba".into()))],
    );
    write_gguf(&mamba, &meta, &[]);
    assert_names_file(&load_err(&mamba), &mamba, "architecture `mamba`");
    // No vocabulary.
    let novocab = dir.path().join("novocab.gguf");
    write_gguf(
        &novocab,
        &metadata(&|k| !k.starts_with("tokenizer."), &[]),
        &[],
    );
    assert_names_file(&load_err(&novocab), &novocab, "tokenizer.ggml.tokens");
    // A weight in a quantisation the engine cannot multiply (Q8_K is an activation format).
    let q8k = dir.path().join("q8k.gguf");
    let w = Tensor::zeros((576, 768), candle_core::DType::F32, &Device::Cpu).unwrap();
    let w = QTensor::quantize(&w, GgmlDType::Q8K).unwrap();
    write_gguf(
        &q8k,
        &metadata(&|_| true, &[]),
        &[("blk.0.attn_q.weight", w)],
    );
    assert_names_file(&load_err(&q8k), &q8k, "quantisation Q8K");
    // Through the binary: an error message and a failure code, never a panic.
    let out = glassbox()
        .args([
            "--llm",
            truncated.to_str().unwrap(),
            "generate",
            "--prompt",
            "hi",
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("truncated") && !stderr.contains("panicked"),
        "{stderr}"
    );
}

fn vocab_only(dir: &Path) -> PathBuf {
    let path = dir.join("vocab.gguf");
    let keep = |k: &str| k.starts_with("tokenizer.") || k.starts_with("general.");
    write_gguf(&path, &metadata(&keep, &[]), &[]);
    path
}

#[test]
fn tokenize_works_on_a_vocabulary_only_file() {
    let dir = tempfile::tempdir().unwrap();
    let vocab = vocab_only(dir.path());
    let out = succeed(glassbox().args([
        "--llm",
        vocab.to_str().unwrap(),
        "tokenize",
        "--json",
        "Hello world",
    ]));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["ids"], serde_json::json!([19556, 905]));
    assert_eq!(json["pieces"], serde_json::json!(["Hello", " world"]));
    let out = succeed(glassbox().args(["--llm", vocab.to_str().unwrap(), "tokenize", "임"]));
    assert!(String::from_utf8_lossy(&out.stdout).contains("<0xEC>"));
}

#[test]
fn generate_prints_only_the_generated_text() {
    let out = succeed(glassbox().args([
        "--llm",
        smollm_path().to_str().unwrap(),
        "--attention",
        "cpu",
        "generate",
        "--prompt",
        "What is the capital of France?",
        "--max-tokens",
        "12",
    ]));
    // The GGUF template adds its default system turn: llama.cpp's first reference answer.
    let reference = crate::llm::reference()["greedy"][0]["continuation_text"]
        .as_str()
        .unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(
        stdout.len() > 20 && reference.starts_with(stdout.trim_end()),
        "{stdout:?}"
    );
}

fn run_in(data: &Path, args: &[&str]) -> std::process::Output {
    let model = smollm_path();
    succeed(
        glassbox()
            .arg("--data-dir")
            .arg(data)
            .args(["--llm", model.to_str().unwrap()])
            .args(args),
    )
}

/// `ask` retrieves from a real library and answers with numbered sources; `chat` keeps the
/// conversation in the library's database and answers follow-ups.
#[test]
fn ask_and_chat_answer_from_the_library_with_sources() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let corpus = crate::common::data("en-corpus");
    run_in(&data, &["index", corpus.to_str().unwrap()]);
    let question = "How do you revive a neglected sourdough starter?";
    let out = run_in(
        &data,
        &["ask", question, "--json", "--max-tokens", "40", "-k", "3"],
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(!json["answer"].as_str().unwrap().trim().is_empty());
    let sources = json["sources"].as_array().unwrap();
    assert_eq!(sources.len(), 3);
    assert!(
        sources[0]["path"]
            .as_str()
            .unwrap()
            .ends_with("01-sourdough.md"),
        "{json}"
    );
    assert_eq!(sources[0]["n"], 1);
    for s in sources {
        let lines = s["lines"].as_array().unwrap();
        assert!(lines[0].as_u64().unwrap() >= 1 && lines[1].as_u64() >= lines[0].as_u64());
    }
    for c in json["citations"].as_array().unwrap() {
        assert!((1..=3).contains(&c.as_u64().unwrap()));
    }
    assert!(json["timings"]["first_token_s"].as_f64().unwrap() > 0.0);
    // The plain form streams the answer, then lists the sources with paths and lines.
    let out = run_in(&data, &["ask", question, "--max-tokens", "8", "-k", "2"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("Sources:") && text.contains("01-sourdough.md:"),
        "{text}"
    );
    // A chat of two turns: the follow-up sees the first exchange.
    run_in(
        &data,
        &[
            "chat",
            "--message",
            question,
            "--max-tokens",
            "16",
            "-k",
            "1",
        ],
    );
    run_in(
        &data,
        &[
            "chat",
            "--id",
            "1",
            "--message",
            "And how long does it take?",
            "--max-tokens",
            "16",
            "-k",
            "1",
        ],
    );
    let list = run_in(&data, &["chat", "--list"]);
    let list = String::from_utf8_lossy(&list.stdout);
    assert!(
        list.contains("4 messages") && list.contains("sourdough"),
        "{list}"
    );
}

/// The same weights stored as F16 (run by candle's matmul) and as Q8_0 (our kernel, also for
/// the embedding table) give the same top token as the Q4_1 file almost everywhere.
#[test]
fn other_quantisation_types_load_and_agree() {
    use glassbox::llm::AttentionKind;
    let dir = tempfile::tempdir().unwrap();
    let mut file = std::fs::File::open(smollm_path()).unwrap();
    let content = Content::read(&mut file).unwrap();
    let meta = metadata(&|_| true, &[]);
    let texts: Vec<Vec<u32>> = crate::llm::reference()["greedy"]
        .as_array()
        .unwrap()
        .iter()
        .take(3)
        .map(|c| {
            let mut t = crate::llm::ids(&c["prompt_ids"]);
            t.extend(crate::llm::ids(&c["continuation_ids"]));
            t
        })
        .collect();
    let top_tokens = |path: &Path| -> Vec<u32> {
        let options = EngineOptions {
            attention: AttentionKind::Cpu,
            ..EngineOptions::default()
        };
        let mut engine = Engine::load(path, &options).unwrap();
        let mut tops = Vec::new();
        for t in &texts {
            let logits = engine.logits(t, true).unwrap();
            let vocab = logits.len() / t.len();
            tops.extend(
                logits
                    .chunks_exact(vocab)
                    .map(glassbox::llm::sampler::argmax),
            );
        }
        tops
    };
    let original = top_tokens(&smollm_path());
    for dtype in [GgmlDType::F16, GgmlDType::Q8_0] {
        let tensors: Vec<(String, QTensor)> = content
            .tensor_infos
            .keys()
            .map(|name| {
                let q = content.tensor(&mut file, name, &Device::Cpu).unwrap();
                let q = if q.shape().dims().len() == 2 {
                    QTensor::quantize(&q.dequantize(&Device::Cpu).unwrap(), dtype).unwrap()
                } else {
                    q
                };
                (name.clone(), q)
            })
            .collect();
        let path = dir.path().join(format!("{dtype:?}.gguf"));
        let mut f = std::fs::File::create(&path).unwrap();
        let m: Vec<(&str, &Value)> = meta.iter().map(|(k, v)| (k.as_str(), v)).collect();
        let t: Vec<(&str, &QTensor)> = tensors.iter().map(|(k, v)| (k.as_str(), v)).collect();
        gguf_file::write(&mut f, &m, &t).unwrap();
        drop(f);
        let tops = top_tokens(&path);
        let same = tops.iter().zip(&original).filter(|(a, b)| a == b).count();
        eprintln!(
            "{dtype:?}: same top token at {same} of {} positions",
            tops.len()
        );
        assert!(
            same as f32 >= 0.85 * tops.len() as f32,
            "{dtype:?}: {same} of {}",
            tops.len()
        );
    }
}
