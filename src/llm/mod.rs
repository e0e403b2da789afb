//! The local language model: GGUF files run by our own forward pass on candle's quantized types
//! and our own kernels, with a paged KV cache, pluggable attention, tokenizer and chat template
//! from the file, sampling and streaming.

pub mod attention;
pub mod config;
pub mod engine;
pub mod error;
pub mod floatmm;
pub mod gguf;
pub mod gguf_write;
pub mod kv;
pub mod linear;
pub mod model;
pub mod quant;
pub mod quantize;
pub mod rope;
pub mod sampler;
pub mod stream;
pub mod template;
pub mod tokenizer;

pub use engine::{
    AttentionKind, CacheSize, Engine, EngineOptions, GenerateRequest, Generation, StopReason,
    Timings,
};
pub use error::{LlmError, LlmResult};
pub use model::{AttnRecord, CaptureSpec};
pub use sampler::SamplingParams;
pub use template::{Message, Role};
