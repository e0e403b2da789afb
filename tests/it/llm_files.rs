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
    // Metadata that does not match the tensors (a mislabelled width).
    let wrong = dir.path().join("wrong-width.gguf");
    let mut file = std::fs::File::open(smollm_path()).unwrap();
    let content = Content::read(&mut file).unwrap();
    let tensors: Vec<(&str, QTensor)> = content
        .tensor_infos
        .keys()
        .map(|n| {
            (
                n.as_str(),
                content.tensor(&mut file, n, &Device::Cpu).unwrap(),
            )
        })
        .collect();
    let meta = metadata(
        &|_| true,
        &[("llama.feed_forward_length", Value::U32(1024))],
    );
    write_gguf(&wrong, &meta, &tensors);
    assert_names_file(&load_err(&wrong), &wrong, "expected");
    // A chat template minijinja cannot parse: the model still loads, raw prompts still work,
    // and chat prompts say what is wrong.
    let template = dir.path().join("bad-template.gguf");
    let meta = metadata(
        &|_| true,
        &[("tokenizer.chat_template", Value::String("{% for %}".into()))],
    );
    write_gguf(&template, &meta, &tensors);
    let engine = Engine::load(&template, &EngineOptions::default()).unwrap();
    let err = engine
        .chat_prompt(&[glassbox::llm::Message::new(glassbox::llm::Role::User, "hi")])
        .unwrap_err();
    assert!(err.to_string().contains("--raw"), "{err}");
    succeed(glassbox().args([
        "--llm",
        template.to_str().unwrap(),
        "generate",
        "--raw",
        "--prompt",
        "Hi",
        "--max-tokens",
        "2",
    ]));
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

/// `glassbox tokenize --json` of `text` under the model file at `path`.
fn tokenize_json(path: &Path, text: &str) -> serde_json::Value {
    let model = path.to_str().unwrap();
    let out = succeed(glassbox().args(["--llm", model, "tokenize", "--json", text]));
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn tokenize_works_on_a_vocabulary_only_file() {
    let dir = tempfile::tempdir().unwrap();
    let vocab = vocab_only(dir.path());
    let json = tokenize_json(&vocab, "Hello world");
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
    assert_eq!(json["llm_cache"]["use"], "miss", "{json}");
    // Asked again (another process), the answer comes from the LLM cache; --no-cache runs the
    // model, which says the same.
    let again = |extra: &[&str]| -> serde_json::Value {
        let mut args = vec!["ask", question, "--json", "--max-tokens", "40", "-k", "3"];
        args.extend(extra);
        serde_json::from_slice(&run_in(&data, &args).stdout).unwrap()
    };
    let cached = again(&[]);
    assert_eq!(cached["llm_cache"]["use"], "hit", "{cached}");
    assert_eq!(cached["llm_cache"]["hits"], 1);
    assert_eq!(cached["answer"], json["answer"]);
    let generated = again(&["--no-cache"]);
    assert_eq!(generated["llm_cache"]["use"], "off", "{generated}");
    assert_eq!(generated["answer"], json["answer"]);
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

/// Logits of a text computed in one prefill equal those computed one token at a time through
/// the KV cache (each row's arithmetic does not depend on how rows are batched).
fn assert_prefill_equals_decode(path: &Path, tokens: &[u32]) {
    use glassbox::llm::model::SeqStep;
    use glassbox::llm::{AttentionKind, CaptureSpec};
    for attention in [AttentionKind::Cpu, AttentionKind::CpuFused] {
        let options = EngineOptions {
            attention,
            ..EngineOptions::default()
        };
        let mut engine = Engine::load(path, &options).unwrap();
        let all = engine.logits(tokens, true).unwrap();
        let vocab = all.len() / tokens.len();
        let (seq, _) = engine.cache.begin(&[]);
        for (i, t) in tokens.iter().enumerate() {
            let step = [SeqStep {
                seq,
                tokens: std::slice::from_ref(t),
                all_logits: false,
            }];
            let out = engine.forward(&step, &CaptureSpec::default()).unwrap();
            let row = &all[i * vocab..(i + 1) * vocab];
            let diff = crate::common::largest_difference(row, &out.logits[0]);
            assert!(diff < 1e-3, "{attention:?}: position {i} differs by {diff}");
        }
        engine.cache.end(seq);
    }
}

#[test]
fn prefill_and_token_by_token_decoding_agree() {
    let tokens = crate::llm::ids(&crate::llm::reference()["greedy"][3]["prompt_ids"]);
    assert_prefill_equals_decode(&smollm_path(), &tokens[..24]);
}

/// A small Qwen2-architecture file (random weights, Q/K/V biases, RoPE over halves, GQA 4:2,
/// and a mix of Q4_0, Q5_0, Q5_1, Q8_0, Q4_K, Q6_K and F32 tensors) loads and runs; its
/// vocabulary is SmolLM's with Qwen2's pre-tokenizer.
#[test]
fn a_qwen2_file_loads_and_runs() {
    let dir = tempfile::tempdir().unwrap();
    let (d, ff, heads, kv, layers) = (256usize, 512usize, 4usize, 2usize, 2usize);
    let keep = |k: &str| k.starts_with("tokenizer.") || k == "general.name";
    let int = |v: usize| Value::U32(v as u32);
    let meta = metadata(
        &keep,
        &[
            ("general.architecture", Value::String("qwen2".into())),
            ("tokenizer.ggml.pre", Value::String("qwen2".into())),
            ("qwen2.block_count", int(layers)),
            ("qwen2.context_length", int(512)),
            ("qwen2.embedding_length", int(d)),
            ("qwen2.feed_forward_length", int(ff)),
            ("qwen2.attention.head_count", int(heads)),
            ("qwen2.attention.head_count_kv", int(kv)),
            ("qwen2.rope.freq_base", Value::F32(1_000_000.0)),
            ("qwen2.attention.layer_norm_rms_epsilon", Value::F32(1e-6)),
        ],
    );
    let mut seed = 3u64;
    let mut random = |dims: &[usize], dtype: GgmlDType| {
        let n: usize = dims.iter().product();
        let v: Vec<f32> = (0..n)
            .map(|_| {
                seed = seed
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                ((seed >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 0.2
            })
            .collect();
        let t = Tensor::from_vec(v, dims, &Device::Cpu).unwrap();
        QTensor::quantize(&t, dtype).unwrap()
    };
    let vocab = 49152;
    let hd = d / heads;
    let mut tensors: Vec<(String, QTensor)> = vec![
        (
            "token_embd.weight".into(),
            random(&[vocab, d], GgmlDType::Q8_0),
        ),
        ("output_norm.weight".into(), random(&[d], GgmlDType::F32)),
    ];
    for l in 0..layers {
        let p = |n: &str| format!("blk.{l}.{n}");
        tensors.extend([
            (p("attn_norm.weight"), random(&[d], GgmlDType::F32)),
            (p("ffn_norm.weight"), random(&[d], GgmlDType::F32)),
            (
                p("attn_q.weight"),
                random(&[heads * hd, d], GgmlDType::Q4_0),
            ),
            (p("attn_k.weight"), random(&[kv * hd, d], GgmlDType::Q4_0)),
            (p("attn_v.weight"), random(&[kv * hd, d], GgmlDType::Q8_0)),
            (p("attn_q.bias"), random(&[heads * hd], GgmlDType::F32)),
            (p("attn_k.bias"), random(&[kv * hd], GgmlDType::F32)),
            (p("attn_v.bias"), random(&[kv * hd], GgmlDType::F32)),
            (
                p("attn_output.weight"),
                random(&[d, heads * hd], GgmlDType::Q5_1),
            ),
            (p("ffn_gate.weight"), random(&[ff, d], GgmlDType::Q4K)),
            (p("ffn_up.weight"), random(&[ff, d], GgmlDType::Q5_0)),
            (p("ffn_down.weight"), random(&[d, ff], GgmlDType::Q6K)),
        ]);
    }
    let path = dir.path().join("qwen2-tiny.gguf");
    let mut f = std::fs::File::create(&path).unwrap();
    let m: Vec<(&str, &Value)> = meta.iter().map(|(k, v)| (k.as_str(), v)).collect();
    let t: Vec<(&str, &QTensor)> = tensors.iter().map(|(k, v)| (k.as_str(), v)).collect();
    gguf_file::write(&mut f, &m, &t).unwrap();
    drop(f);
    let tokens: Vec<u32> = vec![
        9690, 198, 2683, 359, 253, 5356, 5646, 11173, 3365, 3511, 308, 34519, 28, 7018, 411, 407,
        19712, 8182,
    ];
    assert_prefill_equals_decode(&path, &tokens);
    let out = succeed(glassbox().args([
        "--llm",
        path.to_str().unwrap(),
        "generate",
        "--raw",
        "--prompt",
        "Hello",
        "--max-tokens",
        "5",
    ]));
    assert!(out.status.success());
}

/// A SentencePiece (`llama`) vocabulary: words with their leading `▁`, BOS added by default.
/// Pieces merge pairwise, so each prefix of a word is a piece too.
#[test]
fn a_sentencepiece_vocabulary_tokenizes() {
    let dir = tempfile::tempdir().unwrap();
    let pieces = [
        "<unk>", "<s>", "</s>", "▁hello", "▁world", "▁", "h", "e", "l", "o", "w", "r", "d", "▁h",
        "▁he", "▁hel", "▁hell", "▁w", "▁wo", "▁wor", "▁worl",
    ];
    let strings =
        |v: &[&str]| Value::Array(v.iter().map(|s| Value::String(s.to_string())).collect());
    let scores: Vec<Value> = (0..pieces.len()).map(|i| Value::F32(-(i as f32))).collect();
    let types: Vec<Value> = (0..pieces.len())
        .map(|i| {
            Value::I32(match i {
                0 => 2,
                1 | 2 => 3,
                _ => 1,
            })
        })
        .collect();
    let meta = vec![
        (
            "general.architecture".to_string(),
            Value::String("llama".into()),
        ),
        (
            "tokenizer.ggml.model".to_string(),
            Value::String("llama".into()),
        ),
        ("tokenizer.ggml.tokens".to_string(), strings(&pieces)),
        ("tokenizer.ggml.scores".to_string(), Value::Array(scores)),
        ("tokenizer.ggml.token_type".to_string(), Value::Array(types)),
        ("tokenizer.ggml.bos_token_id".to_string(), Value::U32(1)),
        ("tokenizer.ggml.eos_token_id".to_string(), Value::U32(2)),
        ("tokenizer.ggml.unknown_token_id".to_string(), Value::U32(0)),
    ];
    let path = dir.path().join("spm.gguf");
    write_gguf(&path, &meta, &[]);
    let json = tokenize_json(&path, "hello world");
    assert_eq!(json["ids"], serde_json::json!([1, 3, 4]));
    assert_eq!(
        json["pieces"],
        serde_json::json!(["<s>", " hello", " world"])
    );
}
