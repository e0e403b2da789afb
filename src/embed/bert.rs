//! Our BERT encoder forward pass (candle tensors, our own layer code). Compared with
//! candle-transformers' BERT it fuses the Q/K/V projections into one matrix multiply, scales the
//! queries instead of the (tokens² larger) score matrix, and uses the single-pass softmax kernel:
//! the attention scores of a batch of 32 × 256 tokens are 100 MB per layer, and every extra pass
//! over them is time (BENCHMARKS.md, embedding throughput).

use candle_core::{D, DType, Module, Result, Tensor};
use candle_nn::{Embedding, LayerNorm, Linear, VarBuilder, embedding, layer_norm, linear};

/// The config.json fields this encoder needs.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct BertConfig {
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub intermediate_size: usize,
    pub max_position_embeddings: usize,
    pub type_vocab_size: usize,
    pub layer_norm_eps: f64,
    #[serde(default = "gelu")]
    pub hidden_act: String,
}

fn gelu() -> String {
    "gelu".into()
}

pub struct Bert {
    words: Embedding,
    positions: Embedding,
    types: Embedding,
    embed_norm: LayerNorm,
    layers: Vec<Layer>,
    heads: usize,
}

struct Layer {
    qkv: Linear,
    attn_out: Linear,
    attn_norm: LayerNorm,
    up: Linear,
    down: Linear,
    out_norm: LayerNorm,
}

impl Bert {
    /// Loads the weights; `vb` points at the encoder (the caller strips a `bert.` prefix).
    pub fn load(vb: VarBuilder, cfg: &BertConfig) -> Result<Bert> {
        if cfg.hidden_act != "gelu" {
            candle_core::bail!(
                "hidden_act {:?} is not supported (only the exact \"gelu\")",
                cfg.hidden_act
            );
        }
        let h = cfg.hidden_size;
        let e = vb.pp("embeddings");
        let layers = (0..cfg.num_hidden_layers)
            .map(|i| Layer::load(vb.pp(format!("encoder.layer.{i}")), cfg))
            .collect::<Result<_>>()?;
        Ok(Bert {
            words: embedding(cfg.vocab_size, h, e.pp("word_embeddings"))?,
            positions: embedding(cfg.max_position_embeddings, h, e.pp("position_embeddings"))?,
            types: embedding(cfg.type_vocab_size, h, e.pp("token_type_embeddings"))?,
            embed_norm: layer_norm(h, cfg.layer_norm_eps, e.pp("LayerNorm"))?,
            layers,
            heads: cfg.num_attention_heads,
        })
    }

    /// Hidden states `[batch, tokens, hidden]`; `mask` is 1 for real tokens, 0 for padding.
    pub fn forward(&self, ids: &Tensor, type_ids: &Tensor, mask: &Tensor) -> Result<Tensor> {
        let (_, tokens) = ids.dims2()?;
        let positions = Tensor::arange(0u32, tokens as u32, ids.device())?;
        let x = self
            .words
            .forward(ids)?
            .broadcast_add(&self.positions.forward(&positions)?)?
            .add(&self.types.forward(type_ids)?)?;
        let mut x = self.embed_norm.forward(&x)?;
        // 0 where attention is allowed, a large negative number on padding: [batch, 1, 1, tokens].
        let bias = ((mask.to_dtype(DType::F32)? - 1.0)? * 1e30)?
            .unsqueeze(1)?
            .unsqueeze(1)?;
        for layer in &self.layers {
            x = layer.forward(&x, &bias, self.heads)?;
        }
        Ok(x)
    }
}

impl Layer {
    fn load(vb: VarBuilder, cfg: &BertConfig) -> Result<Layer> {
        let (h, i, eps) = (cfg.hidden_size, cfg.intermediate_size, cfg.layer_norm_eps);
        let a = vb.pp("attention.self");
        let part = |name: &str| -> Result<(Tensor, Tensor)> {
            let l = linear(h, h, a.pp(name))?;
            Ok((
                l.weight().clone(),
                l.bias()
                    .cloned()
                    .unwrap_or(Tensor::zeros(h, DType::F32, vb.device())?),
            ))
        };
        let (q, k, v) = (part("query")?, part("key")?, part("value")?);
        let qkv = Linear::new(
            Tensor::cat(&[&q.0, &k.0, &v.0], 0)?,
            Some(Tensor::cat(&[&q.1, &k.1, &v.1], 0)?),
        );
        Ok(Layer {
            qkv,
            attn_out: linear(h, h, vb.pp("attention.output.dense"))?,
            attn_norm: layer_norm(h, eps, vb.pp("attention.output.LayerNorm"))?,
            up: linear(h, i, vb.pp("intermediate.dense"))?,
            down: linear(i, h, vb.pp("output.dense"))?,
            out_norm: layer_norm(h, eps, vb.pp("output.LayerNorm"))?,
        })
    }

    fn forward(&self, x: &Tensor, bias: &Tensor, heads: usize) -> Result<Tensor> {
        let (batch, tokens, hidden) = x.dims3()?;
        let d = hidden / heads;
        let qkv = self.qkv.forward(x)?;
        let split = |i: usize| -> Result<Tensor> {
            qkv.narrow(D::Minus1, i * hidden, hidden)?
                .reshape((batch, tokens, heads, d))?
                .transpose(1, 2)?
                .contiguous()
        };
        let q = (split(0)? * (1.0 / (d as f64).sqrt()))?;
        let (k, v) = (split(1)?, split(2)?);
        let scores = q.matmul(&k.t()?)?.broadcast_add(bias)?;
        let probs = candle_nn::ops::softmax_last_dim(&scores)?;
        let context = probs
            .matmul(&v)?
            .transpose(1, 2)?
            .reshape((batch, tokens, hidden))?;
        let x = self
            .attn_norm
            .forward(&(self.attn_out.forward(&context)? + x)?)?;
        let up = self.up.forward(&x)?.gelu_erf()?;
        self.out_norm.forward(&(self.down.forward(&up)? + x)?)
    }
}
