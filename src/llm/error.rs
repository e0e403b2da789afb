//! Errors of the language-model engine. Each names the file and says what to do.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum LlmError {
    #[error("cannot read model {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "{path} is not a usable GGUF file: {reason}. The file may be truncated or damaged; download it again"
    )]
    Corrupt { path: PathBuf, reason: String },
    #[error(
        "{path}: architecture `{arch}` is not supported (supported: llama, qwen2, gemma3). Choose a Llama, SmolLM, Qwen2.5 or Gemma 3 GGUF"
    )]
    UnknownArchitecture { path: PathBuf, arch: String },
    #[error(
        "{path}: tensor `{tensor}` uses quantisation {dtype}, which this engine cannot run. Choose a Q4_0, Q4_1, Q5, Q8_0, K-quant or F16 file"
    )]
    UnsupportedQuant {
        path: PathBuf,
        tensor: String,
        dtype: String,
    },
    #[error("{path}: {what} is missing from the metadata; the file cannot be used as {purpose}")]
    MissingMetadata {
        path: PathBuf,
        what: String,
        purpose: &'static str,
    },
    #[error(
        "{path}: tensor `{name}` is missing; the file is incomplete or for another architecture"
    )]
    MissingTensor { path: PathBuf, name: String },
    #[error("tokenizer error: {0}")]
    Tokenizer(String),
    #[error("chat template error: {0}. Use --raw to skip the template")]
    Template(String),
    #[error(
        "the request needs {needed} KV-cache blocks but only {free} of {total} are free; shorten the prompt or raise the cache size"
    )]
    CacheFull {
        needed: usize,
        free: usize,
        total: usize,
    },
    #[error(
        "the prompt has {tokens} tokens but the context window holds {context} (the model's window, or the KV cache when it is smaller)"
    )]
    ContextOverflow { tokens: usize, context: usize },
    #[error("nothing to run: the input has no tokens")]
    EmptyInput,
    #[error("model computation failed: {0}")]
    Compute(#[from] candle_core::Error),
}

pub type LlmResult<T> = std::result::Result<T, LlmError>;
