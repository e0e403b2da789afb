//! Our forward pass for llama-family GGUF models (Llama, SmolLM, Qwen2) and Gemma 3 (the same
//! skeleton with per-head query/key norms, norms after attention and feed-forward, GeGLU, scaled
//! embeddings, and local sliding-window layers between global ones). Linear layers run on the
//! packed rows of every sequence in the batch; attention runs per sequence against the paged KV
//! cache through a pluggable backend.

use super::attention::{AttentionBackend, AttnInput, ProbRow};
use super::config::{Activation, Arch, Config};
use super::error::{LlmError, LlmResult};
use super::gguf::Gguf;
use super::kv::{KvCache, KvShape, SeqId};
use super::linear::{Embedding, Linear};
use super::rope::Rope;

struct Layer {
    attn_norm: Vec<f32>,
    /// Q, K and V projections stacked into one matrix.
    qkv: Linear,
    qkv_bias: Option<Vec<f32>>,
    out: Linear,
    ffn_norm: Vec<f32>,
    /// Gate and up projections stacked.
    gate_up: Linear,
    down: Linear,
    gemma: Option<GemmaNorms>,
    /// A local layer's window (it also rotates with the local RoPE).
    window: Option<usize>,
}

/// Gemma's extra norms (their weights already hold Gemma's `1 +`: llama.cpp's converter adds it).
struct GemmaNorms {
    /// Per head, before RoPE.
    q: Vec<f32>,
    k: Vec<f32>,
    /// The attention and feed-forward outputs, before each residual add.
    post_attn: Vec<f32>,
    post_ffn: Vec<f32>,
}

pub struct Model {
    pub config: Config,
    embed: Embedding,
    layers: Vec<Layer>,
    norm: Vec<f32>,
    output: Linear,
    rope: Rope,
    /// Local layers' RoPE (their own base, no scaling).
    local_rope: Option<Rope>,
    /// Multiplies queries so that the backends' `1/sqrt(head_dim)` becomes the model's scale.
    q_scale: f32,
    weight_bytes: usize,
}

/// One sequence's part of a forward step.
pub struct SeqStep<'a> {
    pub seq: SeqId,
    pub tokens: &'a [u32],
    /// Logits for every new token (speculative verification) instead of only the last.
    pub all_logits: bool,
}

/// Which attention probabilities to record.
#[derive(Clone, Debug, Default)]
pub struct CaptureSpec {
    pub layers: Vec<usize>,
    pub heads: Vec<usize>,
}

impl CaptureSpec {
    /// Every head of every layer.
    pub fn all(config: &Config) -> Self {
        Self {
            layers: (0..config.n_layer).collect(),
            heads: (0..config.n_head).collect(),
        }
    }
}

#[derive(Clone, Debug)]
pub struct AttnRecord {
    pub seq: SeqId,
    pub layer: usize,
    pub row: ProbRow,
}

pub struct StepOutput {
    /// Per step: the last token's logits, or all new tokens' logits back to back.
    pub logits: Vec<Vec<f32>>,
    pub attention: Vec<AttnRecord>,
}

impl Model {
    pub fn load(g: &mut Gguf) -> LlmResult<Self> {
        let config = Config::from_gguf(g)?;
        // Not `with_capacity`: a damaged block count must fail on a missing tensor, not on memory.
        let mut layers = Vec::new();
        for i in 0..config.n_layer {
            let p = |n: &str| format!("blk.{i}.{n}");
            let qkv = Linear::fuse(vec![
                Linear::load(g, &p("attn_q.weight"))?,
                Linear::load(g, &p("attn_k.weight"))?,
                Linear::load(g, &p("attn_v.weight"))?,
            ]);
            let qkv_bias = if config.arch == Arch::Qwen2 {
                let mut b = vector(g, &p("attn_q.bias"))?;
                b.extend(vector(g, &p("attn_k.bias"))?);
                b.extend(vector(g, &p("attn_v.bias"))?);
                Some(b)
            } else {
                None
            };
            let gemma = if config.arch == Arch::Gemma3 {
                Some(GemmaNorms {
                    q: vector(g, &p("attn_q_norm.weight"))?,
                    k: vector(g, &p("attn_k_norm.weight"))?,
                    post_attn: vector(g, &p("post_attention_norm.weight"))?,
                    post_ffn: vector(g, &p("post_ffw_norm.weight"))?,
                })
            } else {
                None
            };
            layers.push(Layer {
                attn_norm: vector(g, &p("attn_norm.weight"))?,
                qkv,
                qkv_bias,
                out: Linear::load(g, &p("attn_output.weight"))?,
                ffn_norm: vector(g, &p("ffn_norm.weight"))?,
                gate_up: Linear::fuse(vec![
                    Linear::load(g, &p("ffn_gate.weight"))?,
                    Linear::load(g, &p("ffn_up.weight"))?,
                ]),
                down: Linear::load(g, &p("ffn_down.weight"))?,
                gemma,
                window: config.layer_window(i),
            });
        }
        // Small models tie the output projection to the embedding table.
        let output_name = if g.has_tensor("output.weight") {
            "output.weight"
        } else {
            "token_embd.weight"
        };
        let output = Linear::load(g, output_name)?;
        let embed = Embedding::load(g, "token_embd.weight")?;
        let rope_factors = if g.has_tensor("rope_freqs.weight") {
            Some(vector(g, "rope_freqs.weight")?)
        } else {
            None
        };
        let norm = vector(g, "output_norm.weight")?;
        check_shapes(
            &config,
            &layers,
            &embed,
            &output,
            &norm,
            rope_factors.as_deref(),
        )
        .map_err(|reason| LlmError::Corrupt {
            path: g.path().to_owned(),
            reason,
        })?;
        let weight_bytes = output.bytes()
            + layers
                .iter()
                .map(|l| l.qkv.bytes() + l.out.bytes() + l.gate_up.bytes() + l.down.bytes())
                .sum::<usize>();
        // Linear scaling divides every frequency's angle, as the factors do.
        let half = config.head_dim / 2;
        let scale = config.rope_scale;
        let factors = match rope_factors {
            Some(f) => Some(f.iter().map(|x| x * scale).collect()),
            None => (scale != 1.0).then(|| vec![scale; half]),
        };
        let local_rope = config
            .sliding_window
            .map(|s| Rope::new(config.head_dim, s.rope_base, config.rope_style, None));
        Ok(Self {
            rope: Rope::new(
                config.head_dim,
                config.rope_base,
                config.rope_style,
                factors,
            ),
            local_rope,
            q_scale: (config.head_dim as f32 / config.query_pre_attn_scalar as f32).sqrt(),
            norm,
            config,
            embed,
            layers,
            output,
            weight_bytes,
        })
    }

    pub fn kv_shape(&self, block_size: usize) -> KvShape {
        KvShape {
            n_layer: self.config.n_layer,
            n_kv_head: self.config.n_kv_head,
            head_dim: self.config.head_dim,
            block_size,
        }
    }

    pub fn vocab_size(&self) -> usize {
        self.output.rows()
    }

    /// Bytes of the weights read for each token (the figure that bounds decode speed).
    pub fn weight_bytes(&self) -> usize {
        self.weight_bytes
    }

    /// The GGUF types (each named once) of the matrices that run on candle's slower kernels
    /// because ours do not cover them.
    pub fn candle_types(&self) -> Vec<String> {
        let mut types: Vec<String> = self
            .layers
            .iter()
            .flat_map(|l| [&l.qkv, &l.out, &l.gate_up, &l.down])
            .chain([&self.output])
            .flat_map(Linear::candle_types)
            .chain(self.embed.candle_types())
            .map(|t| format!("{t:?}"))
            .collect();
        types.sort();
        types.dedup();
        types
    }

    /// Run `steps` through the model, appending their tokens to their sequences in `cache`.
    pub fn forward(
        &self,
        steps: &[SeqStep<'_>],
        cache: &mut KvCache,
        backend: &dyn AttentionBackend,
        capture: &CaptureSpec,
    ) -> LlmResult<StepOutput> {
        let c = &self.config;
        if steps.is_empty() || steps.iter().any(|s| s.tokens.is_empty()) {
            return Err(LlmError::EmptyInput);
        }
        for s in steps {
            cache.reserve(s.seq, s.tokens.len())?;
        }
        let starts: Vec<usize> = steps.iter().map(|s| cache.seq_len(s.seq)).collect();
        let rows: usize = steps.iter().map(|s| s.tokens.len()).sum();
        let d = c.n_embd;
        let mut x = vec![0f32; rows * d];
        for (id, row) in steps
            .iter()
            .flat_map(|s| s.tokens.iter())
            .zip(x.chunks_exact_mut(d))
        {
            if *id as usize >= self.vocab_size() {
                return Err(LlmError::Tokenizer(format!(
                    "token id {id} is outside the vocabulary"
                )));
            }
            self.embed.row(*id, row)?;
            if c.embed_scale != 1.0 {
                row.iter_mut().for_each(|v| *v *= c.embed_scale);
            }
        }
        let mut attention = Vec::new();
        for (li, layer) in self.layers.iter().enumerate() {
            let h = rms_norm(&x, &layer.attn_norm, c.rms_eps);
            let mut qkv = layer.qkv.forward(&h, rows)?;
            let width = c.q_dim() + 2 * c.kv_dim();
            if let Some(bias) = &layer.qkv_bias {
                qkv.chunks_exact_mut(width)
                    .for_each(|r| r.iter_mut().zip(bias).for_each(|(v, b)| *v += b));
            }
            let mut q = vec![0f32; rows * c.q_dim()];
            let mut r = 0;
            for (s, &start) in steps.iter().zip(&starts) {
                for i in 0..s.tokens.len() {
                    let row = &mut qkv[(r + i) * width..(r + i + 1) * width];
                    let (qr, kv) = row.split_at_mut(c.q_dim());
                    let (kr, vr) = kv.split_at_mut(c.kv_dim());
                    self.position(layer, qr, kr, start + i);
                    q[(r + i) * c.q_dim()..][..c.q_dim()].copy_from_slice(qr);
                    cache.write(li, cache.slot(s.seq, start + i), kr, vr);
                }
                r += s.tokens.len();
            }
            let heads: &[usize] = if capture.layers.contains(&li) {
                &capture.heads
            } else {
                &[]
            };
            let mut attn = vec![0f32; rows * c.q_dim()];
            let mut r = 0;
            let inputs: Vec<AttnInput<'_>> = steps
                .iter()
                .zip(&starts)
                .map(|(s, &start)| {
                    let n = s.tokens.len();
                    r += n;
                    AttnInput {
                        kv: cache.layer(li),
                        table: cache.table(s.seq),
                        q: &q[(r - n) * c.q_dim()..r * c.q_dim()],
                        n_head: c.n_head,
                        start,
                        window: layer.window,
                        capture: heads,
                    }
                })
                .collect();
            let probs = backend.attend_all(&inputs, &mut attn);
            for (s, rows) in steps.iter().zip(probs) {
                attention.extend(rows.into_iter().map(|row| AttnRecord {
                    seq: s.seq,
                    layer: li,
                    row,
                }));
            }
            let mut out = layer.out.forward(&attn, rows)?;
            if let Some(n) = &layer.gemma {
                rms_norm_in_place(&mut out, &n.post_attn, c.rms_eps);
            }
            add(&mut x, &out);
            let h = rms_norm(&x, &layer.ffn_norm, c.rms_eps);
            let gu = layer.gate_up.forward(&h, rows)?;
            let act: Vec<f32> = gu
                .chunks_exact(2 * c.n_ff)
                .flat_map(|r| {
                    let (g, u) = r.split_at(c.n_ff);
                    g.iter().zip(u).map(|(&g, &u)| match c.activation {
                        Activation::Silu => g / (1.0 + (-g).exp()) * u,
                        Activation::GeluTanh => gelu_tanh(g) * u,
                    })
                })
                .collect();
            let mut out = layer.down.forward(&act, rows)?;
            if let Some(n) = &layer.gemma {
                rms_norm_in_place(&mut out, &n.post_ffn, c.rms_eps);
            }
            add(&mut x, &out);
        }
        for s in steps {
            cache.commit(s.seq, s.tokens);
        }
        self.logits(steps, &x, attention)
    }

    /// One token's query and key heads at `pos`: Gemma's per-head norms, the layer's RoPE, and
    /// the query scale.
    fn position(&self, layer: &Layer, q: &mut [f32], k: &mut [f32], pos: usize) {
        if let Some(n) = &layer.gemma {
            rms_norm_in_place(q, &n.q, self.config.rms_eps);
            rms_norm_in_place(k, &n.k, self.config.rms_eps);
        }
        let rope = match (layer.window, &self.local_rope) {
            (Some(_), Some(local)) => local,
            _ => &self.rope,
        };
        rope.apply(q, pos);
        rope.apply(k, pos);
        if self.q_scale != 1.0 {
            q.iter_mut().for_each(|v| *v *= self.q_scale);
        }
    }

    fn logits(
        &self,
        steps: &[SeqStep<'_>],
        x: &[f32],
        attention: Vec<AttnRecord>,
    ) -> LlmResult<StepOutput> {
        let d = self.config.n_embd;
        let mut r = 0;
        let mut logits = Vec::with_capacity(steps.len());
        for s in steps {
            let n = s.tokens.len();
            let first = if s.all_logits { r } else { r + n - 1 };
            let h = rms_norm(&x[first * d..(r + n) * d], &self.norm, self.config.rms_eps);
            let mut l = self.output.forward(&h, r + n - first)?;
            if let Some(cap) = self.config.final_softcap {
                l.iter_mut().for_each(|v| *v = cap * (*v / cap).tanh());
            }
            logits.push(l);
            r += n;
        }
        Ok(StepOutput { logits, attention })
    }
}

/// Every matrix and vector has the shape the metadata implies, so a damaged or mislabelled file
/// fails at load instead of panicking in the middle of a forward pass.
fn check_shapes(
    c: &Config,
    layers: &[Layer],
    embed: &Embedding,
    output: &Linear,
    norm: &[f32],
    rope_factors: Option<&[f32]>,
) -> Result<(), String> {
    let d = c.n_embd;
    if layers.is_empty()
        || d == 0
        || c.n_ff == 0
        || c.head_dim == 0
        || !c.head_dim.is_multiple_of(2)
    {
        return Err(format!(
            "{} layers of width {d}, feed-forward {} and head size {} cannot run",
            layers.len(),
            c.n_ff,
            c.head_dim
        ));
    }
    let qkv = c.q_dim() + 2 * c.kv_dim();
    let matrix = |name: &str, l: &Linear, rows: usize, cols: usize| {
        (l.rows() == rows && l.cols() == cols)
            .then_some(())
            .ok_or_else(|| {
                format!(
                    "{name} is {}x{}, expected {rows}x{cols}",
                    l.rows(),
                    l.cols()
                )
            })
    };
    let vector = |name: &str, v: &[f32], len: usize| {
        (v.len() == len)
            .then_some(())
            .ok_or_else(|| format!("{name} has {} values, expected {len}", v.len()))
    };
    for (i, l) in layers.iter().enumerate() {
        let name = |n: &str| format!("blk.{i}.{n}");
        matrix(&name("attn_qkv"), &l.qkv, qkv, d)?;
        matrix(&name("attn_output"), &l.out, d, c.q_dim())?;
        matrix(&name("ffn_gate+up"), &l.gate_up, 2 * c.n_ff, d)?;
        matrix(&name("ffn_down"), &l.down, d, c.n_ff)?;
        vector(&name("attn_norm"), &l.attn_norm, d)?;
        vector(&name("ffn_norm"), &l.ffn_norm, d)?;
        if let Some(b) = &l.qkv_bias {
            vector(&name("attn_qkv.bias"), b, qkv)?;
        }
        if let Some(n) = &l.gemma {
            vector(&name("attn_q_norm"), &n.q, c.head_dim)?;
            vector(&name("attn_k_norm"), &n.k, c.head_dim)?;
            vector(&name("post_attention_norm"), &n.post_attn, d)?;
            vector(&name("post_ffw_norm"), &n.post_ffn, d)?;
        }
    }
    vector("output_norm", norm, d)?;
    if let Some(f) = rope_factors {
        vector("rope_freqs", f, c.head_dim / 2)?;
    }
    let (rows, cols) = embed.dims();
    if cols != d || output.cols() != d || output.rows() > rows {
        return Err(format!(
            "token_embd is {rows}x{cols} and the output {}x{}, for width {d}",
            output.rows(),
            output.cols()
        ));
    }
    Ok(())
}

/// ggml's RMS norm: sum of squares in f64, scale `1/sqrt(mean + eps)` in f32, then the weight.
fn rms_norm(x: &[f32], w: &[f32], eps: f32) -> Vec<f32> {
    let mut out = x.to_vec();
    rms_norm_in_place(&mut out, w, eps);
    out
}

/// `rms_norm` of every `w.len()` values of `x` (rows, or heads of a row), in place.
fn rms_norm_in_place(x: &mut [f32], w: &[f32], eps: f32) {
    for row in x.chunks_exact_mut(w.len()) {
        let sum: f64 = row.iter().map(|&v| (v as f64) * (v as f64)).sum();
        let mean = (sum / row.len() as f64) as f32;
        let scale = 1.0 / (mean + eps).sqrt();
        row.iter_mut()
            .zip(w)
            .for_each(|(v, &w)| *v = (*v * scale) * w);
    }
}

/// GELU by its tanh approximation (Gemma's `gelu_pytorch_tanh`).
fn gelu_tanh(x: f32) -> f32 {
    const SQRT_2_OVER_PI: f32 = 0.797_884_6;
    0.5 * x * (1.0 + (SQRT_2_OVER_PI * x * (1.0 + 0.044_715 * x * x)).tanh())
}

fn add(x: &mut [f32], y: &[f32]) {
    x.iter_mut().zip(y).for_each(|(a, b)| *a += b);
}

/// A 1-D tensor (norm weights, biases) as f32.
fn vector(g: &mut Gguf, name: &str) -> LlmResult<Vec<f32>> {
    let q = g.qtensor(name)?;
    Ok(q.dequantize(&candle_core::Device::Cpu)?
        .flatten_all()?
        .to_vec1()?)
}
