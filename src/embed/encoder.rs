//! The transformer encoders (candle): BERT and XLM-RoBERTa, loaded from a model folder.

use super::bert::{Bert, BertConfig};
use super::error::ModelError;
use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::xlm_roberta;
use std::path::Path;

/// The parsed config.json of an encoder, kept for what pooling and tokenization need.
pub struct EncoderConfig {
    pub hidden_size: usize,
    pub max_positions: usize,
    pub pad_token_id: u32,
    /// XLM-RoBERTa position ids start after the padding index, so it can take two fewer tokens.
    pub position_offset: usize,
}

pub enum Encoder {
    Bert(Bert),
    XlmRoberta(xlm_roberta::XLMRobertaModel),
}

/// Which encoder family a config.json describes.
pub enum Family {
    Bert(BertConfig),
    XlmRoberta(xlm_roberta::Config),
}

pub fn read_config(dir: &Path) -> Result<(Family, EncoderConfig), ModelError> {
    let path = dir.join("config.json");
    let text =
        std::fs::read_to_string(&path).map_err(|_| ModelError::Missing { path: path.clone() })?;
    let value: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| ModelError::invalid(&path, e))?;
    let model_type = value["model_type"].as_str().unwrap_or_default().to_owned();
    let number = |key: &str| value[key].as_u64().map(|v| v as usize);
    let hidden_size =
        number("hidden_size").ok_or_else(|| ModelError::invalid(&path, "no hidden_size"))?;
    let max_positions = number("max_position_embeddings").unwrap_or(512);
    let pad_token_id = number("pad_token_id").unwrap_or(0) as u32;
    let parse_err = |e: serde_json::Error| ModelError::invalid(&path, e);
    let (family, position_offset) = match model_type.as_str() {
        "bert" => (
            Family::Bert(serde_json::from_value(value).map_err(parse_err)?),
            0,
        ),
        "xlm-roberta" | "roberta" => (
            Family::XlmRoberta(serde_json::from_value(value).map_err(parse_err)?),
            pad_token_id as usize + 1,
        ),
        other => {
            return Err(ModelError::Unsupported {
                path,
                found: other.to_owned(),
            });
        }
    };
    Ok((
        family,
        EncoderConfig {
            hidden_size,
            max_positions,
            pad_token_id,
            position_offset,
        },
    ))
}

/// Memory-maps model.safetensors from `dir`.
pub fn weights(dir: &Path, device: &Device) -> Result<VarBuilder<'static>, ModelError> {
    let path = dir.join("model.safetensors");
    if !path.exists() {
        return Err(ModelError::Missing { path });
    }
    // SAFETY: the file is memory-mapped read-only; Glassbox never writes model files while a
    // model is loaded (downloads go to a temporary name and are renamed into place).
    unsafe { VarBuilder::from_mmaped_safetensors(&[&path], DType::F32, device) }
        .map_err(|e| ModelError::invalid(&path, e))
}

impl Encoder {
    /// Loads the encoder weights, under the prefixes that sentence-transformers and
    /// sequence-classification checkpoints use.
    pub fn load(family: &Family, vb: VarBuilder, dir: &Path) -> Result<Encoder, ModelError> {
        let path = dir.join("model.safetensors");
        match family {
            Family::Bert(cfg) => {
                let vb = if vb.contains_tensor("bert.embeddings.word_embeddings.weight") {
                    vb.pp("bert")
                } else {
                    vb
                };
                Bert::load(vb, cfg).map(Encoder::Bert).map_err(|e| {
                    ModelError::invalid(
                        &path,
                        format!("not a BERT checkpoint matching config.json: {e}"),
                    )
                })
            }
            Family::XlmRoberta(cfg) => {
                let vb = if vb.contains_tensor("roberta.embeddings.word_embeddings.weight") {
                    vb.pp("roberta")
                } else {
                    vb
                };
                xlm_roberta::XLMRobertaModel::new(cfg, vb)
                    .map(Encoder::XlmRoberta)
                    .map_err(|e| {
                        ModelError::invalid(
                            &path,
                            format!("not an XLM-RoBERTa checkpoint matching config.json: {e}"),
                        )
                    })
            }
        }
    }

    /// Hidden states `[batch, tokens, hidden]`.
    pub fn forward(
        &self,
        ids: &Tensor,
        type_ids: &Tensor,
        mask: &Tensor,
    ) -> candle_core::Result<Tensor> {
        match self {
            Encoder::Bert(model) => model.forward(ids, type_ids, mask),
            Encoder::XlmRoberta(model) => model.forward(ids, mask, type_ids, None, None, None),
        }
    }
}
