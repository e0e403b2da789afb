//! Vector search, hybrid fusion, re-ranking and the search trace, with the real MiniLM
//! embedder and a tiny cross-encoder that this test writes (random weights, real format).

use crate::common::*;
use crate::embed::minilm_dir;
use candle_core::{DType, Device, Tensor};
use glassbox::Library;
use glassbox::embed::{CrossEncoder, Embedder, EmbedderOptions};
use glassbox::library::{ActiveEmbedder, IndexOptions};
use glassbox::retrieve::{Mode, SearchOptions};
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;

fn minilm() -> ActiveEmbedder {
    let model = Embedder::load(&minilm_dir(), &EmbedderOptions::default()).unwrap();
    ActiveEmbedder {
        id: "sentence-transformers/all-MiniLM-L6-v2".into(),
        model: Arc::new(model),
    }
}

/// The encoder families a generated checkpoint can take.
#[derive(Clone, Copy)]
enum Family {
    Bert,
    XlmRoberta,
}

/// Writes a 2-layer encoder with random weights, a WordPiece tokenizer.json and a config.json:
/// the same files and tensor names as a real checkpoint of `family`, as a cross-encoder (with a
/// classification head, weights under `bert.`/`roberta.`) or as a plain encoder.
fn tiny_checkpoint(dir: &Path, family: Family, cross_encoder: bool) {
    let words = [
        "[PAD]", "[UNK]", "[CLS]", "[SEP]", "cache", "stores", "keys", "values", "tokens", "the",
        "of", "a", "coffee", "beans", "roast",
    ];
    let vocab: serde_json::Map<String, serde_json::Value> = words
        .iter()
        .enumerate()
        .map(|(i, w)| (w.to_string(), i.into()))
        .collect();
    let tokenizer = serde_json::json!({
        "version": "1.0", "truncation": null, "padding": null, "added_tokens": [],
        "normalizer": {"type": "BertNormalizer", "clean_text": true, "handle_chinese_chars": true,
                       "strip_accents": null, "lowercase": true},
        "pre_tokenizer": {"type": "BertPreTokenizer"},
        "post_processor": {"type": "BertProcessing", "sep": ["[SEP]", 3], "cls": ["[CLS]", 2]},
        "decoder": null,
        "model": {"type": "WordPiece", "unk_token": "[UNK]", "continuing_subword_prefix": "##",
                  "max_input_chars_per_word": 100, "vocab": vocab}
    });
    std::fs::write(dir.join("tokenizer.json"), tokenizer.to_string()).unwrap();
    let (v, h, i, p, layers) = (words.len(), 16, 32, 64, 2);
    let (model_type, prefix, pad) = match family {
        Family::Bert => ("bert", "bert", 0),
        Family::XlmRoberta => ("xlm-roberta", "roberta", 1),
    };
    let config = serde_json::json!({
        "model_type": model_type, "vocab_size": v,
        "hidden_size": h, "num_hidden_layers": layers, "num_attention_heads": 2, "intermediate_size": i,
        "hidden_act": "gelu", "hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0,
        "max_position_embeddings": p, "type_vocab_size": 2, "initializer_range": 0.02,
        "layer_norm_eps": 1e-12, "pad_token_id": pad, "position_embedding_type": "absolute",
        "id2label": {"0": "LABEL_0"}
    });
    std::fs::write(dir.join("config.json"), config.to_string()).unwrap();
    let base = if cross_encoder {
        format!("{prefix}.")
    } else {
        String::new()
    };
    let mut tensors: HashMap<String, Tensor> = HashMap::new();
    let mut add = |name: &str, shape: &[usize]| {
        let t = Tensor::randn(0f32, 0.5, shape, &Device::Cpu)
            .unwrap()
            .to_dtype(DType::F32)
            .unwrap();
        tensors.insert(name.to_owned(), t);
    };
    add(&format!("{base}embeddings.word_embeddings.weight"), &[v, h]);
    add(
        &format!("{base}embeddings.position_embeddings.weight"),
        &[p, h],
    );
    add(
        &format!("{base}embeddings.token_type_embeddings.weight"),
        &[2, h],
    );
    add(&format!("{base}embeddings.LayerNorm.weight"), &[h]);
    add(&format!("{base}embeddings.LayerNorm.bias"), &[h]);
    for l in 0..layers {
        let pre = format!("{base}encoder.layer.{l}");
        for (name, out, inp) in [
            ("attention.self.query", h, h),
            ("attention.self.key", h, h),
            ("attention.self.value", h, h),
            ("attention.output.dense", h, h),
            ("intermediate.dense", i, h),
            ("output.dense", h, i),
        ] {
            add(&format!("{pre}.{name}.weight"), &[out, inp]);
            add(&format!("{pre}.{name}.bias"), &[out]);
        }
        for norm in ["attention.output.LayerNorm", "output.LayerNorm"] {
            add(&format!("{pre}.{norm}.weight"), &[h]);
            add(&format!("{pre}.{norm}.bias"), &[h]);
        }
    }
    match (cross_encoder, family) {
        (false, _) => {}
        (true, Family::Bert) => {
            add("bert.pooler.dense.weight", &[h, h]);
            add("bert.pooler.dense.bias", &[h]);
            add("classifier.weight", &[1, h]);
            add("classifier.bias", &[1]);
        }
        (true, Family::XlmRoberta) => {
            add("classifier.dense.weight", &[h, h]);
            add("classifier.dense.bias", &[h]);
            add("classifier.out_proj.weight", &[1, h]);
            add("classifier.out_proj.bias", &[1]);
        }
    }
    candle_core::safetensors::save(&tensors, dir.join("model.safetensors")).unwrap();
}

fn tiny_cross_encoder(dir: &Path, with_head: bool) {
    if with_head {
        tiny_checkpoint(dir, Family::Bert, true);
    } else {
        // An encoder-only checkpoint under the cross-encoder's prefix: no head to find.
        tiny_checkpoint(dir, Family::Bert, true);
        let tensors =
            candle_core::safetensors::load(dir.join("model.safetensors"), &Device::Cpu).unwrap();
        let kept: HashMap<String, Tensor> = tensors
            .into_iter()
            .filter(|(name, _)| !name.contains("pooler") && !name.starts_with("classifier"))
            .collect();
        candle_core::safetensors::save(&kept, dir.join("model.safetensors")).unwrap();
    }
}

#[test]
fn xlm_roberta_checkpoints_load_as_embedder_and_cross_encoder() {
    let passages = [
        "the cache stores keys and values of tokens",
        "coffee beans roast",
        "a cache",
    ];
    let enc = tempfile::tempdir().unwrap();
    tiny_checkpoint(enc.path(), Family::XlmRoberta, false);
    let embedder = Embedder::load(enc.path(), &EmbedderOptions::default()).unwrap();
    assert_eq!(embedder.dims(), 16);
    // Position ids start after the padding index: two positions fewer than the table holds.
    assert_eq!(embedder.max_tokens(), 62);
    let batch = embedder.embed(&passages).unwrap();
    for (passage, vector) in passages.iter().zip(&batch) {
        let alone = &embedder.embed(&[passage]).unwrap()[0];
        let cos: f32 = alone.iter().zip(vector).map(|(a, b)| a * b).sum();
        assert!(cos > 0.9999, "{cos}");
    }
    let ce = tempfile::tempdir().unwrap();
    tiny_checkpoint(ce.path(), Family::XlmRoberta, true);
    let reranker = CrossEncoder::load(ce.path(), None).unwrap();
    let scores = reranker.score("cache keys", &passages).unwrap();
    assert!(scores.iter().all(|s| s.is_finite()) && scores[0] != scores[1]);
    let alone = reranker.score("cache keys", &passages[2..]).unwrap()[0];
    assert!((alone - scores[2]).abs() < 1e-4);
}

#[test]
fn a_cross_encoder_loads_and_scores_pairs() {
    let tmp = tempfile::tempdir().unwrap();
    tiny_cross_encoder(tmp.path(), true);
    let reranker = CrossEncoder::load(tmp.path(), None).unwrap();
    let passages = [
        "the cache stores keys and values of tokens",
        "coffee beans roast",
        "a cache",
    ];
    let batch = reranker.score("cache keys", &passages).unwrap();
    assert_eq!(batch.len(), 3);
    assert!(batch.iter().all(|s| s.is_finite()));
    assert!(batch[0] != batch[1] && batch[1] != batch[2]);
    // Padding in a batch does not change a pair's score.
    for (passage, score) in passages.iter().zip(&batch) {
        let alone = reranker.score("cache keys", &[passage]).unwrap()[0];
        assert!((alone - score).abs() < 1e-4, "{alone} vs {score}");
    }
    // The query matters: the same passage scores differently for another query.
    assert_ne!(
        reranker.score("coffee", &passages[..1]).unwrap()[0],
        batch[0]
    );

    let headless = tempfile::tempdir().unwrap();
    tiny_cross_encoder(headless.path(), false);
    let err = CrossEncoder::load(headless.path(), None).err().unwrap();
    assert!(
        err.to_string().contains("sequence-classification head"),
        "{err}"
    );
}

async fn english_library(tmp: &Path) -> Library {
    let mut library = Library::open(&tmp.join("lib")).await.unwrap();
    library.set_embedder(Some(minilm()));
    index(&library, &[data("docs")]).await;
    library
        .embed_pending(&IndexOptions::default(), &|_| {})
        .await
        .unwrap();
    library
}

#[tokio::test]
async fn vector_search_finds_meaning_without_shared_words() {
    let tmp = tempfile::tempdir().unwrap();
    let library = english_library(tmp.path()).await;
    let opts = SearchOptions {
        k: 3,
        mode: Some(Mode::Vector),
        ..SearchOptions::default()
    };
    let response = library
        .search(
            "compressing neural network parameters to low precision",
            &opts,
        )
        .await
        .unwrap();
    let top = &response.results[0].chunk;
    assert_eq!(
        (file_name(&top.path).as_str(), top.page),
        ("paper.pdf", Some(2))
    );
    assert!(response.trace.bm25.is_empty());
    assert_eq!(response.trace.vector[0].chunk_id, top.chunk_id);
    assert!((response.results[0].score - response.trace.vector[0].score).abs() < 1e-6);
}

#[tokio::test]
async fn hybrid_trace_accounts_for_every_fused_score() {
    let tmp = tempfile::tempdir().unwrap();
    let mut library = english_library(tmp.path()).await;
    let opts = SearchOptions {
        k: 5,
        mode: Some(Mode::Hybrid),
        ..SearchOptions::default()
    };
    let trace = library
        .search("attention over tokens", &opts)
        .await
        .unwrap()
        .trace;
    assert!(!trace.bm25.is_empty() && !trace.vector.is_empty() && !trace.fused.is_empty());
    for fused in &trace.fused {
        let mut sum = 0.0;
        for (contribution, list) in [(fused.bm25, &trace.bm25), (fused.vector, &trace.vector)] {
            if let Some(c) = contribution {
                let hit = list.iter().find(|h| h.chunk_id == fused.chunk_id).unwrap();
                assert_eq!((c.rank, c.score), (hit.rank, hit.score));
                assert!((c.rrf - 1.0 / (trace.rrf_k + c.rank as f32)).abs() < 1e-7);
                sum += c.rrf;
            } else {
                assert!(list.iter().all(|h| h.chunk_id != fused.chunk_id));
            }
        }
        assert!((fused.score - sum).abs() < 1e-6);
    }
    assert!(trace.fused.windows(2).all(|w| w[0].score >= w[1].score));

    // With a reranker the fused candidates are re-scored and re-sorted.
    let rr = tempfile::tempdir().unwrap();
    tiny_cross_encoder(rr.path(), true);
    library.set_reranker(Some(Arc::new(CrossEncoder::load(rr.path(), None).unwrap())));
    assert_eq!(library.default_mode(), Mode::HybridRerank);
    let opts = SearchOptions {
        k: 5,
        rerank_top: 8,
        ..SearchOptions::default()
    };
    let response = library
        .search("attention over tokens", &opts)
        .await
        .unwrap();
    let reranked = &response.trace.reranked;
    assert_eq!(reranked.len(), 8.min(response.trace.fused.len()));
    assert!(reranked.windows(2).all(|w| w[0].score >= w[1].score));
    let result_ids: Vec<i64> = response.results.iter().map(|r| r.chunk.chunk_id).collect();
    let reranked_ids: Vec<i64> = reranked.iter().take(5).map(|h| h.chunk_id).collect();
    assert_eq!(result_ids, reranked_ids);
    assert!(response.trace.timings.rerank_ms > 0.0);

    // Beyond the re-ranked top N, results continue in fused order.
    let opts = SearchOptions {
        k: 10,
        rerank_top: 3,
        ..SearchOptions::default()
    };
    let response = library
        .search("attention over tokens", &opts)
        .await
        .unwrap();
    let fused: Vec<i64> = response.trace.fused.iter().map(|f| f.chunk_id).collect();
    let ids: Vec<i64> = response.results.iter().map(|r| r.chunk.chunk_id).collect();
    assert_eq!(ids.len(), 10.min(fused.len()));
    assert_eq!(&ids[3..], &fused[3..ids.len()]);
}

#[tokio::test]
async fn interrupted_embedding_resumes_and_models_never_mix() {
    let tmp = tempfile::tempdir().unwrap();
    let corpus = tmp.path().join("notes");
    std::fs::create_dir(&corpus).unwrap();
    for i in 0..150 {
        std::fs::write(
            corpus.join(format!("note{i}.txt")),
            format!("Note {i} is about topic number {i}."),
        )
        .unwrap();
    }
    let mut library = Library::open(&tmp.path().join("lib")).await.unwrap();
    library.set_embedder(Some(minilm()));
    index(&library, &[corpus]).await;
    let opts = IndexOptions::default();
    let cancel = opts.cancel.clone();
    let first = library
        .embed_pending(&opts, &|p| {
            if p.done > 0 {
                cancel.store(true, Ordering::Relaxed);
            }
        })
        .await
        .unwrap();
    assert!(
        first.cancelled && first.embedded > 0 && first.embedded < 150,
        "{first:?}"
    );
    let rest = library
        .embed_pending(&IndexOptions::default(), &|_| {})
        .await
        .unwrap();
    assert_eq!(first.embedded + rest.embedded, 150);
    assert_eq!(library.vector_index().await.unwrap().unwrap().len(), 150);

    // Another model: the old vectors go, the new model's are computed for every chunk.
    let other = ActiveEmbedder {
        id: "path:another".into(),
        ..minilm()
    };
    library.set_embedder(Some(other));
    assert!(library.vector_index().await.unwrap().is_none());
    let again = library
        .embed_pending(&IndexOptions::default(), &|_| {})
        .await
        .unwrap();
    assert_eq!(again.embedded, 150);
    let pool = sqlx::SqlitePool::connect(&format!(
        "sqlite://{}",
        tmp.path().join("lib/glassbox.sqlite").display()
    ))
    .await
    .unwrap();
    let models: Vec<String> = sqlx::query_scalar("SELECT DISTINCT model FROM embeddings")
        .fetch_all(&pool)
        .await
        .unwrap();
    assert_eq!(models, ["path:another"]);
}
