//! What can go wrong while quantizing a GGUF file. Each message names the file and says what to do.

use std::path::PathBuf;

use crate::llm::error::LlmError;

#[derive(Debug, thiserror::Error)]
pub enum QuantizeError {
    /// Opening or reading the input (its messages name the file).
    #[error(transparent)]
    Read(#[from] LlmError),
    #[error(
        "{path} is not a usable GGUF file: {reason}. The file may be truncated or damaged; download it again"
    )]
    Corrupt { path: PathBuf, reason: String },
    #[error(
        "{path}: tensor `{tensor}` is stored as {dtype}, which the quantizer cannot read. Start from an F32, F16, BF16, Q4/Q5/Q8 or K-quant file"
    )]
    UnreadableType {
        path: PathBuf,
        tensor: String,
        dtype: String,
    },
    #[error(
        "{path}: tensor `{tensor}` has values too large for {dtype} (block {block} gets an infinite or NaN scale), as llama-quantize also finds; choose a type with more range, e.g. q8_0"
    )]
    Overflow {
        path: PathBuf,
        tensor: String,
        dtype: String,
        block: usize,
    },
    #[error(
        "cannot write {path}: {source}. Check that the folder exists, is writable and has room"
    )]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

pub type QuantizeResult<T> = std::result::Result<T, QuantizeError>;
