//! Why a single file could not be ingested. Recorded per document in the catalog; never fatal.

/// A per-file failure. The text is shown by `glassbox status` and in the GUI library panel.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExtractError {
    #[error(
        "file is larger than the {cap_mb} MB limit ({size} bytes); raise max_file_mb in settings to index it"
    )]
    TooLarge { size: u64, cap_mb: u64 },
    #[error("file is empty")]
    Empty,
    #[error("file looks binary, not text (NUL bytes found)")]
    Binary,
    #[error(
        "text encoding could not be recognised (tried UTF-8, UTF-16 and legacy encodings such as EUC-KR/CP949); re-save the file as UTF-8"
    )]
    UnknownEncoding,
    #[error("PDF is encrypted; remove the password to index it")]
    Encrypted,
    #[error("{format} file is damaged or truncated: {detail}")]
    Corrupt {
        format: &'static str,
        detail: String,
    },
    #[error("no text found in the file (a scanned PDF needs OCR first)")]
    NoText,
    #[error("cannot read file: {0}; check its permissions")]
    Unreadable(String),
    #[error("file disappeared while it was being indexed")]
    Vanished,
}

impl ExtractError {
    /// Maps an I/O error from reading a file to the matching per-file error.
    pub fn from_io(err: &std::io::Error) -> Self {
        match err.kind() {
            std::io::ErrorKind::NotFound => ExtractError::Vanished,
            _ => ExtractError::Unreadable(err.to_string()),
        }
    }

    pub(crate) fn corrupt(format: &'static str, detail: impl ToString) -> Self {
        ExtractError::Corrupt {
            format,
            detail: detail.to_string(),
        }
    }
}
