//! Where the library lives and how it indexes.

use crate::catalog::Catalog;
use crate::error::{Error, Result};
use crate::index::Analyzer;
use crate::ingest::ChunkOptions;
use std::path::PathBuf;

/// The data directory: the explicit choice (`--data-dir` or `GLASSBOX_DATA_DIR`, resolved by the
/// caller) or the platform's application-data folder.
pub fn resolve_data_dir(explicit: Option<PathBuf>) -> Result<PathBuf> {
    if let Some(dir) = explicit {
        return Ok(dir);
    }
    directories::ProjectDirs::from("", "", "Glassbox")
        .map(|dirs| dirs.data_dir().to_owned())
        .ok_or(Error::NoHome)
}

/// Settings that decide what the index contains; stored in the catalog.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexSettings {
    pub chunk: ChunkOptions,
    /// Files above this size are recorded as failed instead of read.
    pub max_file_mb: u64,
    pub analyzer: Analyzer,
}

impl Default for IndexSettings {
    fn default() -> Self {
        IndexSettings {
            chunk: ChunkOptions::default(),
            max_file_mb: 50,
            analyzer: Analyzer::default(),
        }
    }
}

impl IndexSettings {
    pub async fn load(catalog: &Catalog) -> Result<IndexSettings> {
        let mut settings = IndexSettings::default();
        let number = |value: Option<String>, default: u64| {
            value.and_then(|v| v.parse::<u64>().ok()).unwrap_or(default)
        };
        settings.chunk.target_tokens = number(
            catalog.setting("chunk_tokens").await?,
            settings.chunk.target_tokens as u64,
        ) as usize;
        settings.chunk.overlap_tokens = number(
            catalog.setting("chunk_overlap").await?,
            settings.chunk.overlap_tokens as u64,
        ) as usize;
        settings.max_file_mb = number(catalog.setting("max_file_mb").await?, settings.max_file_mb);
        if let Some(name) = catalog.setting("analyzer").await? {
            settings.analyzer = Analyzer::parse(&name).unwrap_or_default();
        }
        Ok(settings)
    }

    pub async fn save(&self, catalog: &Catalog) -> Result<()> {
        catalog
            .set_setting("chunk_tokens", &self.chunk.target_tokens.to_string())
            .await?;
        catalog
            .set_setting("chunk_overlap", &self.chunk.overlap_tokens.to_string())
            .await?;
        catalog
            .set_setting("max_file_mb", &self.max_file_mb.to_string())
            .await?;
        catalog.set_setting("analyzer", self.analyzer.name()).await
    }

    /// Identifies the chunking: when it changes, stored chunks no longer match what a fresh
    /// extraction would give, so every file is redone.
    pub fn chunking_fingerprint(&self) -> String {
        format!("{}:{}", self.chunk.target_tokens, self.chunk.overlap_tokens)
    }
}
