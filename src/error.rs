//! Library-wide error type. Messages name what failed, where, and what the user can do.

use std::path::PathBuf;

/// Errors of the Glassbox library. The binary turns them into messages with `anyhow`.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(
        "cannot use data directory {path}: {source}. Check that it is writable, or choose another with --data-dir"
    )]
    DataDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "no home directory found to hold the library; pass --data-dir or set GLASSBOX_DATA_DIR"
    )]
    NoHome,
    #[error(
        "library database error: {0}. If the file is damaged, move the data directory away and index again"
    )]
    Database(#[from] sqlx::Error),
    #[error("cannot upgrade the library database: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error(
        "search index error: {0}. Deleting the tantivy folder in the data directory rebuilds it on the next start"
    )]
    Index(#[from] tantivy::TantivyError),
    #[error(
        "the search index is being written by another Glassbox process; wait for it to finish and try again"
    )]
    IndexBusy,
    #[error("cannot open {path}: {source}; check that it still exists and that you may read it")]
    Path {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Model(#[from] crate::embed::ModelError),
    #[error(transparent)]
    Llm(#[from] crate::llm::LlmError),
    #[error("{0}")]
    Invalid(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
