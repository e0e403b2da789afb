//! Errors of loading and running models: each names the file and what to do.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error(
        "{path} is missing: a model folder needs config.json, tokenizer.json and model.safetensors; get the model with `glassbox models download ID` or point to a complete folder"
    )]
    Missing { path: PathBuf },
    #[error("{path}: {detail}")]
    Invalid { path: PathBuf, detail: String },
    #[error(
        "{path}: model type {found:?} is not supported; supported are BERT and XLM-RoBERTa encoders"
    )]
    Unsupported { path: PathBuf, found: String },
    #[error("model computation failed: {0}")]
    Compute(#[from] candle_core::Error),
    #[error("tokenizer failed: {0}")]
    Tokenize(String),
    #[error(
        "no known model {0:?}; `glassbox models list` shows the known ones, or give a folder path"
    )]
    UnknownModel(String),
    #[error(
        "download of {file} from {repo} failed: {detail}; run the same command again to resume"
    )]
    Download {
        repo: String,
        file: String,
        detail: String,
    },
    #[error(
        "{file} from {repo} has SHA-256 {actual}, expected {expected}: the download was corrupted or the file changed upstream; it was removed, run the command again"
    )]
    Checksum {
        repo: String,
        file: String,
        expected: String,
        actual: String,
    },
}

impl ModelError {
    pub(crate) fn invalid(path: &std::path::Path, detail: impl ToString) -> Self {
        ModelError::Invalid {
            path: path.to_owned(),
            detail: detail.to_string(),
        }
    }
}
