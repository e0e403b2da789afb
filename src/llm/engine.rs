//! The engine: a loaded model with its tokenizer, chat template, KV cache and attention backend,
//! and the generation loop (prefill, then one token at a time, streamed as whole characters).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use serde::{Deserialize, Serialize};

use super::attention::{AttentionBackend, CpuAttention, FusedCpuAttention};
use super::error::{LlmError, LlmResult};
use super::gguf::Gguf;
use super::kv::{CacheStats, KvCache, KvShape};
use super::model::{AttnRecord, CaptureSpec, Model, SeqStep};
use super::sampler::{Sampler, SamplingParams};
use super::stream::Utf8Stream;
use super::template::{ChatTemplate, Message};
use super::tokenizer::LlmTokenizer;
use crate::gpu::backend::GpuAttention;
use crate::gpu::{AdapterChoice, GpuContext};

/// Which attention implementation runs.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum, Serialize, serde::Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum AttentionKind {
    /// Reference CPU attention with llama.cpp's rounding (for exact comparisons).
    Cpu,
    /// Fused single-pass CPU attention (online softmax, FlashAttention style): the default.
    #[default]
    CpuFused,
    /// Our WGSL kernels on the GPU; a software adapter (lavapipe) counts too.
    Gpu,
    /// The GPU when the machine has a hardware one, else the fused CPU attention.
    Auto,
}

impl AttentionKind {
    pub const ALL: [AttentionKind; 4] = [
        AttentionKind::Cpu,
        AttentionKind::CpuFused,
        AttentionKind::Gpu,
        AttentionKind::Auto,
    ];

    pub fn name(self) -> &'static str {
        match self {
            AttentionKind::Cpu => "cpu",
            AttentionKind::CpuFused => "cpu-fused",
            AttentionKind::Gpu => "gpu",
            AttentionKind::Auto => "auto",
        }
    }

    /// The backend for a cache of `shape` and `capacity` blocks, and, when the GPU was asked
    /// for and cannot be used, why (the fused CPU attention answers instead).
    fn backend(
        self,
        shape: KvShape,
        capacity: usize,
        given: Option<&GpuContext>,
    ) -> (Box<dyn AttentionBackend>, Option<String>) {
        let choice = match self {
            AttentionKind::Cpu => return (Box::new(CpuAttention), None),
            AttentionKind::CpuFused => return (Box::new(FusedCpuAttention), None),
            AttentionKind::Gpu => AdapterChoice::AllowSoftware,
            AttentionKind::Auto => AdapterChoice::HardwareOnly,
        };
        let ctx = match given {
            Some(ctx) if choice == AdapterChoice::AllowSoftware || !ctx.is_software() => {
                Ok(ctx.clone())
            }
            _ => GpuContext::new(choice),
        };
        let gpu = ctx.and_then(|ctx| GpuAttention::new(&ctx, shape, capacity));
        match gpu {
            Ok(backend) => (Box::new(backend), None),
            Err(e) => (Box::new(FusedCpuAttention), Some(e.to_string())),
        }
    }
}

#[derive(Clone, Debug)]
pub struct EngineOptions {
    /// Compute threads (default: all cores).
    pub threads: Option<usize>,
    pub attention: AttentionKind,
    pub cache: CacheSize,
    pub block_size: usize,
    /// The device for GPU attention (the window's own); without one, the engine looks for one.
    pub gpu: Option<GpuContext>,
}

/// KV-cache capacity, in tokens or in bytes of memory.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum CacheSize {
    /// The model's context window, at most 8,192 tokens.
    #[default]
    Context,
    Tokens(usize),
    Bytes(usize),
}

impl Default for EngineOptions {
    fn default() -> Self {
        Self {
            threads: None,
            attention: AttentionKind::default(),
            cache: CacheSize::Context,
            block_size: 16,
            gpu: None,
        }
    }
}

pub struct Engine {
    pub model: Model,
    pub tokenizer: LlmTokenizer,
    pub template: ChatTemplate,
    pub cache: KvCache,
    backend: Box<dyn AttentionBackend>,
    attention_notice: Option<String>,
    pool: rayon::ThreadPool,
    path: PathBuf,
}

/// One generation request.
#[derive(Clone, Debug)]
pub struct GenerateRequest {
    pub prompt: Vec<u32>,
    pub sampling: SamplingParams,
    pub max_tokens: usize,
    pub stop: Vec<String>,
    pub capture: CaptureSpec,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    EndOfText,
    MaxTokens,
    StopString,
    Cancelled,
    ContextFull,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct Timings {
    pub prompt_tokens: usize,
    /// Prompt tokens found in the KV cache (not computed).
    pub cached_tokens: usize,
    /// From the call to the first token sampled (the prompt's forward pass and sampling).
    pub prefill_s: f64,
    pub decode_tokens: usize,
    pub decode_s: f64,
}

impl Timings {
    pub fn decode_tokens_per_s(&self) -> f64 {
        self.decode_tokens as f64 / self.decode_s.max(1e-9)
    }
}

#[derive(Clone, Debug)]
pub struct Generation {
    pub ids: Vec<u32>,
    pub text: String,
    pub stop: StopReason,
    pub timings: Timings,
    pub attention: Vec<AttnRecord>,
    /// Seconds from the call to each answer token (the first is the prefill's end).
    pub token_times: Vec<f32>,
    /// The KV cache as it stood at the last token, this sequence's blocks still held.
    pub cache: CacheStats,
}

impl Engine {
    pub fn load(path: &Path, options: &EngineOptions) -> LlmResult<Self> {
        let mut gguf = Gguf::open(path)?;
        let tokenizer = LlmTokenizer::from_gguf(&gguf)?;
        let model = Model::load(&mut gguf)?;
        let token = |id: Option<u32>| {
            id.map(|i| tokenizer.decode(&[i], false))
                .unwrap_or_default()
        };
        let template = ChatTemplate::new(
            gguf.string("tokenizer.chat_template")
                .or(model.config.arch.builtin_template()),
            &token(tokenizer.bos),
            &token(tokenizer.eos),
        );
        let shape = model.kv_shape(options.block_size);
        let cache = match options.cache {
            CacheSize::Context => KvCache::with_tokens(shape, model.config.context.min(8192)),
            CacheSize::Tokens(tokens) => KvCache::with_tokens(shape, tokens),
            CacheSize::Bytes(bytes) => KvCache::new(shape, bytes / shape.block_bytes()),
        };
        let (backend, attention_notice) = options.attention.backend(
            shape,
            cache.capacity_tokens() / shape.block_size,
            options.gpu.as_ref(),
        );
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(options.threads.unwrap_or(0))
            .thread_name(|i| format!("glassbox-llm-{i}"))
            .build()
            .map_err(|e| LlmError::Tokenizer(format!("cannot start compute threads: {e}")))?;
        Ok(Self {
            model,
            tokenizer,
            template,
            cache,
            backend,
            attention_notice,
            pool,
            path: path.to_owned(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn attention_name(&self) -> &'static str {
        self.backend.name()
    }

    /// Why the attention asked for is not the one running (no GPU), if so.
    pub fn attention_notice(&self) -> Option<String> {
        self.attention_notice
            .clone()
            .or_else(|| self.backend.notice())
    }

    /// The GGUF types of this model that run on candle's kernels instead of ours.
    pub fn candle_tensors(&self) -> Vec<String> {
        self.model.candle_types()
    }

    /// A one-line notice naming the types that run on candle's slower kernels, if any.
    pub fn quant_notice(&self) -> Option<String> {
        let types = self.candle_tensors();
        (!types.is_empty()).then(|| {
            format!(
                "{} run on candle's generic kernels (slower than ours for Q4_0-Q8_0 and K-quants)",
                types.join(", ")
            )
        })
    }

    pub fn threads(&self) -> usize {
        self.pool.current_num_threads()
    }

    pub fn cache_stats(&self) -> CacheStats {
        self.cache.stats()
    }

    /// The prompt ids for a conversation, rendered by the model's chat template.
    pub fn chat_prompt(&self, messages: &[Message]) -> LlmResult<Vec<u32>> {
        let text = self.template.render(messages, true)?;
        self.tokenizer.encode_prompt(&text)
    }

    /// Run one forward step on the engine's pool (used by benchmarks and batched decoding).
    pub fn forward(
        &mut self,
        steps: &[SeqStep<'_>],
        capture: &CaptureSpec,
    ) -> LlmResult<super::model::StepOutput> {
        let (model, cache, backend) = (&self.model, &mut self.cache, &*self.backend);
        self.pool
            .install(|| model.forward(steps, cache, backend, capture))
    }

    /// Tokens a sequence can hold: the model's context window, or less when the KV cache is
    /// smaller.
    pub fn window(&self) -> usize {
        self.model.config.context.min(self.cache.capacity_tokens())
    }

    /// Logits of `tokens` run as a fresh sequence (no prefix reuse): the last token's, or every
    /// token's back to back when `all`. For scoring texts, tests and benchmarks.
    pub fn logits(&mut self, tokens: &[u32], all: bool) -> LlmResult<Vec<f32>> {
        let (seq, _) = self.cache.begin(&[]);
        let step = [SeqStep {
            seq,
            tokens,
            all_logits: all,
        }];
        let result = self.forward(&step, &CaptureSpec::default());
        self.cache.end(seq);
        Ok(result?.logits.swap_remove(0))
    }

    /// The attention `capture` asks for, of `tokens` run as a fresh sequence: every position's
    /// row, as generation would have recorded it. The attention panel uses it to show another
    /// layer of an answer already given (its prompt and answer tokens run again in one step).
    pub fn attention_of(
        &mut self,
        tokens: &[u32],
        capture: &CaptureSpec,
    ) -> LlmResult<Vec<AttnRecord>> {
        let (seq, _) = self.cache.begin(&[]);
        let step = [SeqStep {
            seq,
            tokens,
            all_logits: false,
        }];
        let result = self.forward(&step, capture);
        self.cache.end(seq);
        Ok(result?.attention)
    }

    /// Generate a continuation of `req.prompt`, calling `on_text` with each complete piece of
    /// text. Stops at end of text, a stop string, `max_tokens`, or when `cancel` is set.
    pub fn generate(
        &mut self,
        req: &GenerateRequest,
        cancel: Option<&AtomicBool>,
        on_text: &mut dyn FnMut(&str),
    ) -> LlmResult<Generation> {
        let context = self.window();
        if req.prompt.is_empty() || req.prompt.len() >= context {
            return Err(LlmError::ContextOverflow {
                tokens: req.prompt.len(),
                context,
            });
        }
        let (seq, cached) = self.cache.begin(&req.prompt);
        let mut result = self.run(seq, cached, req, cancel, on_text);
        if let Ok(generation) = &mut result {
            generation.cache = self.cache.stats();
        }
        self.cache.end(seq);
        result
    }

    fn run(
        &mut self,
        seq: u64,
        cached: usize,
        req: &GenerateRequest,
        cancel: Option<&AtomicBool>,
        on_text: &mut dyn FnMut(&str),
    ) -> LlmResult<Generation> {
        let start = Instant::now();
        let mut timings = Timings {
            prompt_tokens: req.prompt.len(),
            cached_tokens: cached,
            ..Timings::default()
        };
        let mut sampler = Sampler::new(req.sampling.clone());
        let mut history = req.prompt.clone();
        let mut out = StopFilter::new(&req.stop);
        let mut utf8 = Utf8Stream::default();
        let mut ids = Vec::new();
        let mut token_times = Vec::new();
        let mut attention = Vec::new();
        let mut pending: Vec<u32> = req.prompt[cached..].to_vec();
        let budget = req.max_tokens.min(self.window() - req.prompt.len());
        let mut forwards = 0usize;
        let stop = loop {
            if cancel.is_some_and(|c| c.load(Ordering::Relaxed)) {
                break StopReason::Cancelled;
            }
            if ids.len() >= budget {
                break if budget < req.max_tokens {
                    StopReason::ContextFull
                } else {
                    StopReason::MaxTokens
                };
            }
            let step = [SeqStep {
                seq,
                tokens: &pending,
                all_logits: false,
            }];
            let output = self.forward(&step, &req.capture)?;
            forwards += 1;
            attention.extend(output.attention);
            let token = sampler.sample(&output.logits[0], &history);
            if ids.is_empty() {
                timings.prefill_s = start.elapsed().as_secs_f64();
            }
            if self.tokenizer.is_stop(token) {
                break StopReason::EndOfText;
            }
            ids.push(token);
            token_times.push(start.elapsed().as_secs_f32());
            history.push(token);
            let piece = utf8.push(self.tokenizer.token_bytes(token));
            if out.push(&piece, on_text) {
                break StopReason::StopString;
            }
            pending = vec![token];
        };
        if stop != StopReason::StopString {
            let rest = utf8.finish();
            out.push(&rest, on_text);
            out.flush(on_text);
        }
        // Every forward pass after the prompt's decoded one token.
        timings.decode_tokens = forwards.saturating_sub(1);
        timings.decode_s = start.elapsed().as_secs_f64() - timings.prefill_s;
        Ok(Generation {
            ids,
            text: out.text,
            stop,
            timings,
            attention,
            token_times,
            cache: CacheStats::default(),
        })
    }
}

/// Holds back text that might be the start of a stop string, and cuts the output at one.
struct StopFilter<'a> {
    stops: &'a [String],
    text: String,
    emitted: usize,
}

impl<'a> StopFilter<'a> {
    fn new(stops: &'a [String]) -> Self {
        Self {
            stops,
            text: String::new(),
            emitted: 0,
        }
    }

    /// Add text; returns true when a stop string was reached (the text ends before it).
    fn push(&mut self, piece: &str, on_text: &mut dyn FnMut(&str)) -> bool {
        self.text.push_str(piece);
        if let Some(at) = self
            .stops
            .iter()
            .filter(|s| !s.is_empty())
            .filter_map(|s| self.text.find(s.as_str()))
            .min()
        {
            self.text.truncate(at);
            self.flush(on_text);
            return true;
        }
        let hold = self
            .stops
            .iter()
            .map(|s| partial_suffix(&self.text, s))
            .max()
            .unwrap_or(0);
        let safe = self.text.len() - hold;
        if safe > self.emitted {
            on_text(&self.text[self.emitted..safe]);
            self.emitted = safe;
        }
        false
    }

    fn flush(&mut self, on_text: &mut dyn FnMut(&str)) {
        if self.text.len() > self.emitted {
            on_text(&self.text[self.emitted..]);
            self.emitted = self.text.len();
        }
    }
}

/// Length of the longest suffix of `text` that is a proper prefix of `stop`.
fn partial_suffix(text: &str, stop: &str) -> usize {
    (1..stop.len())
        .rev()
        .filter(|&n| stop.is_char_boundary(n) && text.len() >= n)
        .find(|&n| text.is_char_boundary(text.len() - n) && text.ends_with(&stop[..n]))
        .unwrap_or(0)
}
