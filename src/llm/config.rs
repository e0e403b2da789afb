//! Model hyper-parameters from GGUF metadata (`{arch}.block_count` and friends).

use super::error::{LlmError, LlmResult};
use super::gguf::Gguf;

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Arch {
    Llama,
    Qwen2,
}

/// How RoPE pairs dimensions: adjacent pairs (llama GGUFs, whose Q/K rows are permuted by the
/// converter) or the two halves of the head (NeoX style, Qwen2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RopeStyle {
    Adjacent,
    Halves,
}

#[derive(Clone, Debug, serde::Serialize)]
pub struct Config {
    pub arch: Arch,
    pub name: String,
    pub n_layer: usize,
    pub n_embd: usize,
    pub n_ff: usize,
    pub n_head: usize,
    pub n_kv_head: usize,
    pub head_dim: usize,
    pub context: usize,
    pub rope_base: f32,
    pub rms_eps: f32,
    #[serde(skip)]
    pub rope_style: RopeStyle,
}

impl Config {
    pub fn from_gguf(g: &Gguf) -> LlmResult<Self> {
        const PURPOSE: &str = "a language model";
        let arch_name = g
            .string("general.architecture")
            .ok_or_else(|| g.missing("general.architecture", PURPOSE))?;
        let (arch, rope_style) = match arch_name {
            "llama" => (Arch::Llama, RopeStyle::Adjacent),
            "qwen2" => (Arch::Qwen2, RopeStyle::Halves),
            other => {
                return Err(LlmError::UnknownArchitecture {
                    path: g.path().to_owned(),
                    arch: other.to_owned(),
                });
            }
        };
        let key = |k: &str| format!("{arch_name}.{k}");
        let int = |k: &str| g.require_int(&key(k), PURPOSE).map(|v| v as usize);
        let n_embd = int("embedding_length")?;
        let n_head = int("attention.head_count")?;
        let n_kv_head = g
            .int(&key("attention.head_count_kv"))
            .map_or(n_head, |v| v as usize);
        if n_head == 0 || n_kv_head == 0 || !n_head.is_multiple_of(n_kv_head) {
            return Err(LlmError::Corrupt {
                path: g.path().to_owned(),
                reason: format!("{n_head} query heads cannot share {n_kv_head} KV heads"),
            });
        }
        let head_dim = g
            .int(&key("attention.key_length"))
            .map_or(n_embd / n_head, |v| v as usize);
        Ok(Self {
            arch,
            name: g.string("general.name").unwrap_or("model").to_owned(),
            n_layer: int("block_count")?,
            n_embd,
            n_ff: int("feed_forward_length")?,
            n_head,
            n_kv_head,
            head_dim,
            context: int("context_length")?,
            rope_base: g.float(&key("rope.freq_base")).unwrap_or(10_000.0),
            rms_eps: g
                .float(&key("attention.layer_norm_rms_epsilon"))
                .unwrap_or(1e-5),
            rope_style,
        })
    }

    pub fn q_dim(&self) -> usize {
        self.n_head * self.head_dim
    }

    pub fn kv_dim(&self) -> usize {
        self.n_kv_head * self.head_dim
    }

    /// Query heads per KV head (1 = multi-head, n_head = multi-query).
    pub fn group(&self) -> usize {
        self.n_head / self.n_kv_head
    }
}
