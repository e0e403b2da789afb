//! Bi-encoder sentence embeddings: encoder → pooling (mean or CLS) → optional L2 normalisation,
//! configured as sentence-transformers configures the model.

use super::error::ModelError;
use super::text::TextEncoder;
use crate::ingest::TokenCounter;
use candle_core::{D, DType, Tensor};
use std::path::Path;

/// How token states become one vector.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Pooling {
    Mean,
    Cls,
}

/// How to use an embedding model; from the model's TOML in `models/` and its folder.
#[derive(Debug, Clone, Default)]
pub struct EmbedderOptions {
    pub pooling: Option<Pooling>,
    pub normalize: Option<bool>,
    pub max_tokens: Option<usize>,
    pub query_prefix: String,
    pub passage_prefix: String,
}

pub struct Embedder {
    text: TextEncoder,
    pooling: Pooling,
    normalize: bool,
    query_prefix: String,
    passage_prefix: String,
}

/// Texts per forward pass: large enough to use the matrix kernels well, small enough that
/// padding to the longest text in a batch wastes little.
pub const BATCH: usize = 32;

impl Embedder {
    /// Loads a model folder. Pooling, normalisation and length come from the sentence-transformers
    /// files in the folder when present (1_Pooling/config.json, modules.json,
    /// sentence_bert_config.json), else from `opts`, else mean pooling, normalised.
    pub fn load(dir: &Path, opts: &EmbedderOptions) -> Result<Embedder, ModelError> {
        let st = SentenceTransformersConfig::read(dir);
        let max_tokens = st.max_seq_length.or(opts.max_tokens);
        Ok(Embedder {
            text: TextEncoder::load(dir, max_tokens)?,
            pooling: st.pooling.or(opts.pooling).unwrap_or(Pooling::Mean),
            normalize: st.normalize.or(opts.normalize).unwrap_or(true),
            query_prefix: opts.query_prefix.clone(),
            passage_prefix: opts.passage_prefix.clone(),
        })
    }

    pub fn dims(&self) -> usize {
        self.text.hidden_size()
    }

    pub fn max_tokens(&self) -> usize {
        self.text.max_tokens()
    }

    pub fn token_ids(&self, text: &str) -> Result<Vec<u32>, ModelError> {
        self.text.token_ids(text)
    }

    pub fn embed_query(&self, query: &str) -> Result<Vec<f32>, ModelError> {
        let text = format!("{}{query}", self.query_prefix);
        Ok(self.embed(&[text.as_str()])?.remove(0))
    }

    pub fn embed_passages(&self, passages: &[&str]) -> Result<Vec<Vec<f32>>, ModelError> {
        if self.passage_prefix.is_empty() {
            return self.embed(passages);
        }
        let prefixed: Vec<String> = passages
            .iter()
            .map(|p| format!("{}{p}", self.passage_prefix))
            .collect();
        self.embed(&prefixed.iter().map(String::as_str).collect::<Vec<_>>())
    }

    /// Embeds texts in batches of similar length (less padding), returning vectors in input order.
    pub fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, ModelError> {
        let mut order: Vec<usize> = (0..texts.len()).collect();
        order.sort_by_key(|&i| texts[i].len());
        let mut out = vec![Vec::new(); texts.len()];
        for group in order.chunks(BATCH) {
            let inputs = group.iter().map(|&i| texts[i].into()).collect();
            let vectors = self.embed_batch(inputs)?;
            for (&i, vector) in group.iter().zip(vectors) {
                out[i] = vector;
            }
        }
        Ok(out)
    }

    fn embed_batch(
        &self,
        inputs: Vec<tokenizers::EncodeInput<'_>>,
    ) -> Result<Vec<Vec<f32>>, ModelError> {
        let batch = self.text.batch(inputs)?;
        let hidden = self.text.hidden(&batch)?;
        let pooled = match self.pooling {
            Pooling::Cls => hidden.narrow(1, 0, 1)?.squeeze(1)?,
            Pooling::Mean => {
                let mask = batch.mask.to_dtype(DType::F32)?.unsqueeze(2)?;
                let summed = hidden.broadcast_mul(&mask)?.sum(1)?;
                summed.broadcast_div(&mask.sum(1)?)?
            }
        };
        let pooled = if self.normalize {
            l2_normalize(&pooled)?
        } else {
            pooled
        };
        Ok(pooled.to_vec2::<f32>()?)
    }
}

fn l2_normalize(v: &Tensor) -> candle_core::Result<Tensor> {
    let norm = v
        .sqr()?
        .sum_keepdim(D::Minus1)?
        .sqrt()?
        .clamp(1e-12, f32::MAX)?;
    v.broadcast_div(&norm)
}

/// Chunks are sized in the embedder's own tokens (special tokens excluded).
impl TokenCounter for Embedder {
    fn count(&self, text: &str) -> usize {
        self.text
            .tokenizer()
            .encode_fast(text, false)
            .map_or_else(|_| crate::ingest::ApproxTokens.count(text), |e| e.len())
    }
}

/// The parts of a sentence-transformers model folder that decide pooling and length.
#[derive(Default)]
struct SentenceTransformersConfig {
    pooling: Option<Pooling>,
    normalize: Option<bool>,
    max_seq_length: Option<usize>,
}

impl SentenceTransformersConfig {
    fn read(dir: &Path) -> Self {
        let json = |name: &str| -> Option<serde_json::Value> {
            serde_json::from_str(&std::fs::read_to_string(dir.join(name)).ok()?).ok()
        };
        let pooling = json("1_Pooling/config.json").map(|p| {
            if p["pooling_mode_cls_token"].as_bool() == Some(true) {
                Pooling::Cls
            } else {
                Pooling::Mean
            }
        });
        let normalize = json("modules.json").and_then(|m| {
            let modules = m.as_array()?.clone();
            Some(
                modules
                    .iter()
                    .any(|x| x["type"].as_str().is_some_and(|t| t.ends_with("Normalize"))),
            )
        });
        let max_seq_length = json("sentence_bert_config.json")
            .and_then(|c| c["max_seq_length"].as_u64())
            .map(|v| v as usize);
        SentenceTransformersConfig {
            pooling,
            normalize,
            max_seq_length,
        }
    }
}
