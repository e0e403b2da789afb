//! Model hyper-parameters from GGUF metadata (`{arch}.block_count` and friends).

use super::error::{LlmError, LlmResult};
use super::gguf::Gguf;

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Arch {
    Llama,
    Qwen2,
    Gemma3,
}

impl Arch {
    /// The chat template for files that carry none (Gemma GGUFs often do not).
    pub fn builtin_template(self) -> Option<&'static str> {
        match self {
            Arch::Gemma3 => Some(super::template::GEMMA),
            Arch::Llama | Arch::Qwen2 => None,
        }
    }
}

/// The feed-forward gate's activation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Activation {
    /// SwiGLU (Llama, Qwen2).
    Silu,
    /// GeGLU with the tanh approximation of GELU (Gemma).
    GeluTanh,
}

/// Local attention (Gemma 3): most layers see only the last `window` positions and rotate with
/// their own RoPE base; every `period`-th layer is global.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
pub struct SlidingWindow {
    /// Positions a local layer's query sees, its own included.
    pub window: usize,
    pub period: usize,
    pub rope_base: f32,
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
    /// Linear RoPE scaling of global layers (positions divided by it); 1 when none.
    pub rope_scale: f32,
    pub rms_eps: f32,
    #[serde(skip)]
    pub rope_style: RopeStyle,
    pub activation: Activation,
    /// Embeddings are multiplied by it (Gemma: sqrt(n_embd)).
    pub embed_scale: f32,
    /// The attention scale is `1/sqrt(query_pre_attn_scalar)` (llama: the head size).
    pub query_pre_attn_scalar: usize,
    pub sliding_window: Option<SlidingWindow>,
    /// Logits become `cap * tanh(logits / cap)`.
    pub final_softcap: Option<f32>,
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
            "gemma3" => (Arch::Gemma3, RopeStyle::Halves),
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
        // The KV cache holds keys and values of one size.
        let value_dim = g
            .int(&key("attention.value_length"))
            .map_or(head_dim, |v| v as usize);
        if value_dim != head_dim {
            return Err(LlmError::Corrupt {
                path: g.path().to_owned(),
                reason: format!("keys of {head_dim} values and values of {value_dim} per head"),
            });
        }
        let n_layer = int("block_count")?;
        let gemma = arch == Arch::Gemma3;
        let sliding_window = match g.int(&key("attention.sliding_window")) {
            Some(window) if gemma && window > 0 => Some(SlidingWindow {
                window: window as usize,
                // Not in the metadata: llama.cpp and Hugging Face fix both for Gemma 3.
                period: 6,
                rope_base: 10_000.0,
            }),
            _ => None,
        };
        let rope_scale = match g.string(&key("rope.scaling.type")) {
            Some("linear") => g.float(&key("rope.scaling.factor")).unwrap_or(1.0),
            _ => 1.0,
        };
        // Gemma 3 27B scales queries by its width per head rather than its head size (Google's
        // config, which llama.cpp follows by the layer count since the GGUF does not say).
        let query_pre_attn_scalar = if gemma && n_layer == 62 {
            n_embd / n_head
        } else {
            head_dim
        };
        Ok(Self {
            arch,
            name: g.string("general.name").unwrap_or("model").to_owned(),
            n_layer,
            n_embd,
            n_ff: int("feed_forward_length")?,
            n_head,
            n_kv_head,
            head_dim,
            context: int("context_length")?,
            rope_base: g.float(&key("rope.freq_base")).unwrap_or(10_000.0),
            rope_scale,
            rms_eps: g
                .float(&key("attention.layer_norm_rms_epsilon"))
                .unwrap_or(1e-5),
            rope_style,
            activation: if gemma {
                Activation::GeluTanh
            } else {
                Activation::Silu
            },
            embed_scale: if gemma { (n_embd as f32).sqrt() } else { 1.0 },
            query_pre_attn_scalar,
            sliding_window,
            final_softcap: g
                .float(&key("final_logit_softcapping"))
                .filter(|&cap| cap > 0.0),
        })
    }

    /// The window of layer `layer` if it is a local (sliding-window) layer.
    pub fn layer_window(&self, layer: usize) -> Option<usize> {
        self.sliding_window
            .filter(|s| !(layer + 1).is_multiple_of(s.period))
            .map(|s| s.window)
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
