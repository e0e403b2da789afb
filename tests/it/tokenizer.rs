//! The LLM tokenizer against llama.cpp's own token ids: llama.cpp's test vectors for a
//! SentencePiece (Llama 2) and a GPT-2 vocabulary, and the ids llama.cpp gives for small
//! vocabularies of every pre-tokenizer family we support and for Gemma 3's vocabulary
//! (tests/data/vocab/make_vectors.py). A failing test lists every text that differs.

use std::path::{Path, PathBuf};
use std::time::Instant;

use candle_core::quantized::gguf_file::{self, Content};
use glassbox::llm::gguf::Gguf;
use glassbox::llm::tokenizer::LlmTokenizer;
use serde_json::Value;

const SEPARATOR: &str = "\n__ggml_vocab_test__\n";

fn vocab_path(name: &str) -> PathBuf {
    crate::common::data(&format!("vocab/{name}"))
}

fn load(path: &Path) -> LlmTokenizer {
    let gguf = Gguf::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    LlmTokenizer::from_gguf(&gguf).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Texts and ids as llama.cpp's test-tokenizer-0 reads them: each text runs up to a
/// separator line (the file ends with one), each line of ids belongs to one text.
fn llama_cpp_test_vectors(vocab: &str) -> Vec<(String, Vec<u32>)> {
    let read = |ext: &str| std::fs::read_to_string(vocab_path(&format!("{vocab}.{ext}"))).unwrap();
    let (inp, out) = (read("inp"), read("out"));
    let mut texts = Vec::new();
    let mut rest = inp.as_str();
    while !rest.is_empty() {
        let (text, after) = rest.split_once(SEPARATOR).unwrap_or((rest, ""));
        texts.push(text.to_owned());
        rest = after;
    }
    let ids: Vec<Vec<u32>> = out
        .lines()
        .map(|l| l.split_whitespace().map(|t| t.parse().unwrap()).collect())
        .collect();
    assert_eq!(texts.len(), ids.len(), "{vocab}: texts and id lines");
    texts.into_iter().zip(ids).collect()
}

/// Every case whose ids differ, described; empty when all pass.
fn failures<'a>(
    cases: impl IntoIterator<Item = (&'a str, Vec<u32>)>,
    encode: impl Fn(&str) -> Vec<u32>,
) -> Vec<String> {
    cases
        .into_iter()
        .filter_map(|(text, expected)| {
            let got = encode(text);
            (got != expected)
                .then(|| format!("{text:?}\n    llama.cpp {expected:?}\n    ours      {got:?}"))
        })
        .collect()
}

fn assert_all_pass(what: &str, total: usize, failed: Vec<String>) {
    assert!(
        failed.is_empty(),
        "{what}: {} of {total} pass; failing:\n{}",
        total - failed.len(),
        failed.join("\n")
    );
}

fn run_llama_cpp_test(vocab: &str) {
    let tokenizer = load(&vocab_path(vocab));
    let cases = llama_cpp_test_vectors(vocab);
    // llama.cpp's test tokenizes with special text as text and no BOS.
    let failed = failures(
        cases.iter().map(|(t, ids)| (t.as_str(), ids.clone())),
        |t| tokenizer.encode(t, false).unwrap(),
    );
    assert_eq!(cases.len(), 46, "llama.cpp's file has 46 texts");
    assert_all_pass(vocab, cases.len(), failed);
}

#[test]
fn tokenizer_passes_llama_cpps_sentencepiece_vectors() {
    run_llama_cpp_test("ggml-vocab-llama-spm.gguf");
}

#[test]
fn tokenizer_passes_llama_cpps_gpt2_vectors() {
    run_llama_cpp_test("ggml-vocab-gpt-2.gguf");
}

/// Checks one vocabulary against the ids llama.cpp gave for the shared texts, three ways:
/// special text as text, special text parsed, and as a prompt (BOS/EOS as the file asks).
fn check_vectors(label: &str, tokenizer: &LlmTokenizer, texts: &[Value], modes: &Value) {
    let texts: Vec<&str> = texts.iter().map(|t| t.as_str().unwrap()).collect();
    let expected =
        |mode: &str| -> Vec<Vec<u32>> { serde_json::from_value(modes[mode].clone()).unwrap() };
    let mut failed = Vec::new();
    for (mode, parse) in [("plain", false), ("parsed", true)] {
        let cases = texts.iter().copied().zip(expected(mode));
        failed.extend(
            failures(cases, |t| tokenizer.encode(t, parse).unwrap())
                .into_iter()
                .map(|f| format!("[{mode}] {f}")),
        );
    }
    // llama.cpp adds BOS even before a BOS the text already has (and EOS after an EOS); we
    // add none then (see encode_prompt), so those prompts are left out.
    let doubled = |ids: &Vec<u32>| {
        ids.first() == tokenizer.bos.as_ref() && tokenizer.add_bos
            || ids.last() == tokenizer.eos.as_ref() && tokenizer.add_eos
    };
    let prompts: Vec<(&str, Vec<u32>)> = texts
        .iter()
        .copied()
        .zip(expected("prompt"))
        .filter(|(t, _)| !doubled(&tokenizer.encode(t, true).unwrap()))
        .collect();
    assert!(
        prompts.len() * 10 >= texts.len() * 9,
        "{label}: most prompts are compared"
    );
    failed.extend(
        failures(prompts, |t| tokenizer.encode_prompt(t).unwrap())
            .into_iter()
            .map(|f| format!("[prompt] {f}")),
    );
    assert_all_pass(label, texts.len() * 3, failed);
}

fn vectors(name: &str) -> Value {
    let text = std::fs::read_to_string(vocab_path(name)).unwrap();
    serde_json::from_str(&text).unwrap()
}

#[test]
fn tokenizer_gives_llama_cpps_ids_for_every_supported_family() {
    let all = vectors("llama-cpp-vectors.json");
    let texts = all["texts"].as_array().unwrap();
    let vocabs = all["vocabs"].as_object().unwrap();
    // The pre-tokenizers, the whole-word rule, and SentencePiece without a space prefix.
    for family in [
        "llama-bpe",
        "qwen2",
        "smollm",
        "deepseek-coder",
        "tekken",
        "spm-gemma",
    ] {
        assert!(
            vocabs.keys().any(|k| k.contains(family)),
            "{family} is covered"
        );
    }
    let dir = tempfile::tempdir().unwrap();
    for (label, vocab) in vocabs {
        let mut path = vocab_path(vocab["file"].as_str().unwrap());
        // The small BPE vocabulary stands for each family with its pre-tokenizer's name.
        if let Some(pre) = vocab["pre"].as_str() {
            let name = gguf_file::Value::String(pre.into());
            path = with_metadata(&path, dir.path(), &[("tokenizer.ggml.pre", name)]);
        }
        check_vectors(label, &load(&path), texts, vocab);
    }
}

/// Gemma 3's own vocabulary: 262,144 SentencePiece pieces, no space prefix, runs of spaces and
/// newlines as user-defined tokens, over 6,000 control tokens.
#[test]
fn tokenizer_gives_llama_cpps_ids_for_gemma3() {
    let root = std::env::var("GLASSBOX_TEST_MODELS").expect(
        "GLASSBOX_TEST_MODELS is not set: run the tests through scripts/test, which fetches the test models",
    );
    let reference = vectors("gemma3-270m.llama-cpp.json");
    let path = PathBuf::from(root).join(reference["model"].as_str().unwrap());
    let started = Instant::now();
    let tokenizer = load(&path);
    eprintln!("Gemma 3 tokenizer loaded in {:?}", started.elapsed());
    let texts = vectors("llama-cpp-vectors.json")["texts"].clone();
    check_vectors("gemma3", &tokenizer, texts.as_array().unwrap(), &reference);
}

#[test]
fn tokenizer_round_trips_text_through_its_bytes() {
    for (vocab, prefix) in [
        ("ggml-vocab-gpt-2.gguf", ""),
        ("ggml-vocab-llama-spm.gguf", " "),
    ] {
        let tokenizer = load(&vocab_path(vocab));
        for (text, ids) in llama_cpp_test_vectors(vocab) {
            // SentencePiece's space prefix comes back as a leading space.
            let want = if text.is_empty() {
                text.clone()
            } else {
                format!("{prefix}{text}")
            };
            assert_eq!(tokenizer.decode(&ids, false), want, "{vocab}: {text:?}");
        }
    }
}

/// A copy of a vocabulary file with some metadata replaced.
fn with_metadata(source: &Path, dir: &Path, changes: &[(&str, gguf_file::Value)]) -> PathBuf {
    let mut file = std::fs::File::open(source).unwrap();
    let mut content = Content::read(&mut file).unwrap();
    for (key, value) in changes {
        content.metadata.insert(key.to_string(), value.clone());
    }
    let path = dir.join("changed.gguf");
    let mut out = std::fs::File::create(&path).unwrap();
    let meta: Vec<(&str, &gguf_file::Value)> = content
        .metadata
        .iter()
        .map(|(k, v)| (k.as_str(), v))
        .collect();
    gguf_file::write(&mut out, &meta, &[]).unwrap();
    path
}

#[test]
fn tokenizer_refuses_a_pre_tokenizer_it_does_not_know() {
    let dir = tempfile::tempdir().unwrap();
    let pre = gguf_file::Value::String("my-new-model".into());
    let path = with_metadata(
        &vocab_path("mini-bpe.gguf"),
        dir.path(),
        &[("tokenizer.ggml.pre", pre)],
    );
    let err = LlmTokenizer::from_gguf(&Gguf::open(&path).unwrap())
        .err()
        .unwrap();
    let msg = err.to_string();
    assert!(
        msg.contains("`my-new-model`") && msg.contains("not supported"),
        "{msg}"
    );
    assert!(msg.contains(&path.display().to_string()), "{msg}");
}

#[test]
fn tokenizer_control_text_in_documents_is_defused() {
    let tokenizer = load(&vocab_path("mini-spm-gemma-style.gguf"));
    let text = "see <start_of_turn>user and </s> but \n\n stays";
    let safe = tokenizer.neutralize(text);
    assert_eq!(safe, "see ‹start_of_turn>user and ‹/s> but \n\n stays");
    let ids = tokenizer.encode(&safe, true).unwrap();
    assert!(!ids.iter().any(|&id| tokenizer.is_special(id)), "{ids:?}");
}
