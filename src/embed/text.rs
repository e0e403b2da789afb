//! A tokenizer and an encoder together: text in, hidden states and attention mask out.

use super::encoder::{Encoder, EncoderConfig, read_config, weights};
use super::error::ModelError;
use candle_core::{Device, Tensor};
use std::path::Path;
use tokenizers::{EncodeInput, Tokenizer, TruncationParams};

pub struct TextEncoder {
    encoder: Encoder,
    tokenizer: Tokenizer,
    config: EncoderConfig,
    device: Device,
    max_tokens: usize,
}

/// Token ids, type ids and mask of a padded batch, as `[batch, tokens]` tensors.
pub struct Batch {
    pub ids: Tensor,
    pub type_ids: Tensor,
    pub mask: Tensor,
}

impl TextEncoder {
    /// Loads config.json, tokenizer.json and model.safetensors from `dir`. Inputs are truncated to
    /// `max_tokens` (capped by the model's position embeddings).
    pub fn load(dir: &Path, max_tokens: Option<usize>) -> Result<TextEncoder, ModelError> {
        let (family, config) = read_config(dir)?;
        let device = Device::Cpu;
        let tokenizer_path = dir.join("tokenizer.json");
        if !tokenizer_path.exists() {
            return Err(ModelError::Missing {
                path: tokenizer_path,
            });
        }
        let mut tokenizer = Tokenizer::from_file(&tokenizer_path)
            .map_err(|e| ModelError::invalid(&tokenizer_path, e))?;
        let limit = config.max_positions.saturating_sub(config.position_offset);
        let max_tokens = max_tokens.unwrap_or(limit).min(limit);
        tokenizer
            .with_truncation(Some(TruncationParams {
                max_length: max_tokens,
                ..Default::default()
            }))
            .map_err(|e| ModelError::invalid(&tokenizer_path, e))?;
        tokenizer.with_padding(None);
        let encoder = Encoder::load(&family, weights(dir, &device)?, dir)?;
        Ok(TextEncoder {
            encoder,
            tokenizer,
            config,
            device,
            max_tokens,
        })
    }

    pub fn hidden_size(&self) -> usize {
        self.config.hidden_size
    }

    pub fn max_tokens(&self) -> usize {
        self.max_tokens
    }

    pub fn tokenizer(&self) -> &Tokenizer {
        &self.tokenizer
    }

    /// Token ids of `text` with special tokens, truncated like model input.
    pub fn token_ids(&self, text: &str) -> Result<Vec<u32>, ModelError> {
        let encoding = self
            .tokenizer
            .encode(text, true)
            .map_err(|e| ModelError::Tokenize(e.to_string()))?;
        Ok(encoding.get_ids().to_vec())
    }

    /// Tokenizes and pads a batch of single texts or text pairs.
    pub fn batch<'s>(&self, inputs: Vec<EncodeInput<'s>>) -> Result<Batch, ModelError> {
        let encodings = self
            .tokenizer
            .encode_batch(inputs, true)
            .map_err(|e| ModelError::Tokenize(e.to_string()))?;
        let width = encodings.iter().map(|e| e.len()).max().unwrap_or(0).max(1);
        let rows = encodings.len();
        let pad = self.config.pad_token_id;
        let (mut ids, mut types, mut mask) = (
            Vec::with_capacity(rows * width),
            Vec::with_capacity(rows * width),
            Vec::with_capacity(rows * width),
        );
        for encoding in &encodings {
            let n = encoding.len();
            ids.extend(
                encoding
                    .get_ids()
                    .iter()
                    .copied()
                    .chain(std::iter::repeat_n(pad, width - n)),
            );
            types.extend(
                encoding
                    .get_type_ids()
                    .iter()
                    .copied()
                    .chain(std::iter::repeat_n(0, width - n)),
            );
            mask.extend(std::iter::repeat_n(1u32, n).chain(std::iter::repeat_n(0, width - n)));
        }
        let tensor = |v: Vec<u32>| Tensor::from_vec(v, (rows, width), &self.device);
        Ok(Batch {
            ids: tensor(ids)?,
            type_ids: tensor(types)?,
            mask: tensor(mask)?,
        })
    }

    /// Hidden states `[batch, tokens, hidden]` of a batch.
    pub fn hidden(&self, batch: &Batch) -> Result<Tensor, ModelError> {
        Ok(self
            .encoder
            .forward(&batch.ids, &batch.type_ids, &batch.mask)?)
    }
}
