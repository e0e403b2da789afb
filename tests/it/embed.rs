//! Embeddings from the real all-MiniLM-L6-v2 weights, held against an independent float64
//! implementation (tests/data/reference), and the errors of broken model folders.

use crate::common::*;
use glassbox::embed::{Embedder, EmbedderOptions, ModelError};
use serde_json::Value;

pub fn minilm_dir() -> std::path::PathBuf {
    let root = std::env::var("GLASSBOX_TEST_MODELS")
        .expect("GLASSBOX_TEST_MODELS is not set: run the tests through scripts/test, which fetches the test models");
    std::path::Path::new(&root).join("all-minilm-l6-v2")
}

fn cosine(a: &[f32], b: &[f64]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| *x as f64 * y).sum();
    let na: f64 = a.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    let nb: f64 = b.iter().map(|y| y * y).sum::<f64>().sqrt();
    dot / (na * nb)
}

#[test]
fn minilm_matches_the_reference_implementation() {
    let embedder = Embedder::load(&minilm_dir(), &EmbedderOptions::default()).unwrap();
    assert_eq!(embedder.dims(), 384);
    assert_eq!(embedder.max_tokens(), 256);
    let reference: Value = serde_json::from_str(
        &std::fs::read_to_string(data("reference/all-minilm-l6-v2.reference.json")).unwrap(),
    )
    .unwrap();
    let sentences = reference["sentences"].as_array().unwrap();
    let texts: Vec<&str> = sentences
        .iter()
        .map(|s| s["text"].as_str().unwrap())
        .collect();
    // One batch of different lengths: padding must not change any vector.
    let batch = embedder.embed(&texts).unwrap();
    for (sentence, vector) in sentences.iter().zip(&batch) {
        let ids: Vec<u32> = sentence["token_ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as u32)
            .collect();
        assert_eq!(
            embedder
                .token_ids(sentence["text"].as_str().unwrap())
                .unwrap(),
            ids
        );
        let expected: Vec<f64> = sentence["embedding"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect();
        let cos = cosine(vector, &expected);
        assert!(cos >= 0.9999, "{:?}: cosine {cos}", sentence["text"]);
        let norm: f32 = vector.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-4);
    }
}

#[test]
fn broken_model_folders_name_the_problem() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let src = minilm_dir();
    std::fs::copy(src.join("config.json"), dir.join("config.json")).unwrap();
    std::os::unix::fs::symlink(src.join("model.safetensors"), dir.join("model.safetensors"))
        .unwrap();
    let err = Embedder::load(dir, &EmbedderOptions::default())
        .err()
        .unwrap();
    assert!(
        matches!(&err, ModelError::Missing { path } if path.ends_with("tokenizer.json")),
        "{err}"
    );
    assert!(err.to_string().contains("glassbox models download"));

    std::fs::copy(src.join("tokenizer.json"), dir.join("tokenizer.json")).unwrap();
    std::fs::write(
        dir.join("config.json"),
        r#"{"model_type": "gpt2", "hidden_size": 8}"#,
    )
    .unwrap();
    let err = Embedder::load(dir, &EmbedderOptions::default())
        .err()
        .unwrap();
    assert!(matches!(err, ModelError::Unsupported { .. }), "{err}");

    // A config that does not match the weights (wrong dimensions).
    let mut config: Value =
        serde_json::from_str(&std::fs::read_to_string(src.join("config.json")).unwrap()).unwrap();
    config["hidden_size"] = 512.into();
    std::fs::write(dir.join("config.json"), config.to_string()).unwrap();
    let err = Embedder::load(dir, &EmbedderOptions::default())
        .err()
        .unwrap();
    assert!(err.to_string().contains("model.safetensors"), "{err}");
}
