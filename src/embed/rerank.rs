//! Cross-encoder re-ranking: the query and a passage are read together by one encoder, and a
//! classification head scores how well the passage answers the query. Slower than comparing
//! embeddings, so it only re-scores the top candidates of the first-stage retrieval.

use super::encoder::{read_config, weights};
use super::error::ModelError;
use super::text::TextEncoder;
use candle_core::{Module, Tensor};
use candle_nn::{Linear, VarBuilder, linear};
use std::path::Path;

/// Query–passage pairs per forward pass.
const BATCH: usize = 16;

pub struct CrossEncoder {
    text: TextEncoder,
    head: Head,
}

/// `[CLS] → dense → tanh → out`: BERT's pooler + classifier and XLM-R's classification head are
/// the same computation under different weight names.
struct Head {
    dense: Linear,
    out: Linear,
}

impl Head {
    fn load(vb: &VarBuilder, hidden: usize, labels: usize) -> candle_core::Result<Head> {
        let bert_pooler = ["bert.pooler.dense", "pooler.dense"]
            .into_iter()
            .find(|p| vb.contains_tensor(&format!("{p}.weight")));
        match bert_pooler {
            Some(pooler) => Ok(Head {
                dense: linear(hidden, hidden, vb.pp(pooler))?,
                out: linear(hidden, labels, vb.pp("classifier"))?,
            }),
            None => Ok(Head {
                dense: linear(hidden, hidden, vb.pp("classifier.dense"))?,
                out: linear(hidden, labels, vb.pp("classifier.out_proj"))?,
            }),
        }
    }

    fn forward(&self, hidden: &Tensor) -> candle_core::Result<Tensor> {
        let cls = hidden.get_on_dim(1, 0)?.contiguous()?;
        self.out.forward(&self.dense.forward(&cls)?.tanh()?)
    }
}

impl CrossEncoder {
    pub fn load(dir: &Path, max_tokens: Option<usize>) -> Result<CrossEncoder, ModelError> {
        let text = TextEncoder::load(dir, max_tokens)?;
        let labels = num_labels(dir);
        let vb = weights(dir, &candle_core::Device::Cpu)?;
        let head = Head::load(&vb, text.hidden_size(), labels).map_err(|e| {
            ModelError::invalid(
                &dir.join("model.safetensors"),
                format!("no sequence-classification head (is this a cross-encoder?): {e}"),
            )
        })?;
        // Surface a config that names an unsupported family even when weights happened to load.
        read_config(dir)?;
        Ok(CrossEncoder { text, head })
    }

    /// Relevance scores (logits: higher is more relevant) of each passage for `query`.
    pub fn score(&self, query: &str, passages: &[&str]) -> Result<Vec<f32>, ModelError> {
        let mut scores = Vec::with_capacity(passages.len());
        for group in passages.chunks(BATCH) {
            let inputs = group.iter().map(|p| (query, *p).into()).collect();
            let batch = self.text.batch(inputs)?;
            let hidden = self.text.hidden(&batch)?;
            let logits = self.head.forward(&hidden)?.to_vec2::<f32>()?;
            // One logit: the relevance. Several labels: the last is "relevant" by convention.
            scores.extend(logits.iter().map(|row| *row.last().unwrap_or(&f32::NAN)));
        }
        Ok(scores)
    }
}

fn num_labels(dir: &Path) -> usize {
    let config: Option<serde_json::Value> = std::fs::read_to_string(dir.join("config.json"))
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok());
    config
        .and_then(|c| {
            c["id2label"]
                .as_object()
                .map(|m| m.len())
                .or(c["num_labels"].as_u64().map(|n| n as usize))
        })
        .unwrap_or(1)
        .max(1)
}
