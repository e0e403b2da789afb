//! A Glassbox library: one data directory holding the SQLite catalog and the tantivy index, and
//! the operations on it. The CLI, the GUI and the tests all go through this type.

mod embedding;
mod indexer;
mod session;
mod settings;
pub mod watch;

use session::IndexSession;

pub use embedding::{ActiveEmbedder, EmbedProgress, EmbedSummary, unit};
pub use indexer::{IndexOptions, IndexSummary, Progress};
pub use settings::{IndexSettings, resolve_data_dir};

use crate::catalog::{Catalog, FailedDoc, FolderStatus};
use crate::embed::CrossEncoder;
use crate::error::{Error, Result};
use crate::index::SearchIndex;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub struct Library {
    dir: PathBuf,
    catalog: Catalog,
    index: SearchIndex,
    settings: IndexSettings,
    embedder: Option<ActiveEmbedder>,
    reranker: Option<Arc<CrossEncoder>>,
    vectors: embedding::VectorCache,
}

/// What `glassbox status` shows.
#[derive(Debug, Clone, serde::Serialize)]
pub struct LibraryStatus {
    pub data_dir: PathBuf,
    pub analyzer: &'static str,
    pub folders: Vec<FolderStatus>,
    pub failed: Vec<FailedDoc>,
    pub indexed_chunks: u64,
}

/// Chunk ids present in only one of the two stores (both empty when they agree).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Consistency {
    pub only_in_index: Vec<i64>,
    pub only_in_catalog: Vec<i64>,
}

impl Library {
    /// Opens the library in `dir`, creating it if needed, and finishes any index work a crash
    /// left behind (replaying the journal), so the index and catalog agree before anything else.
    pub async fn open(dir: &Path) -> Result<Library> {
        std::fs::create_dir_all(dir).map_err(|source| Error::DataDir {
            path: dir.to_owned(),
            source,
        })?;
        let catalog = Catalog::open(&dir.join("glassbox.sqlite")).await?;
        let settings = IndexSettings::load(&catalog).await?;
        let index_dir = dir.join("tantivy");
        if SearchIndex::needs_rebuild(&index_dir, settings.analyzer) {
            catalog.journal_all().await?;
        }
        let index = SearchIndex::open(&index_dir, settings.analyzer)?;
        let library = Library {
            dir: dir.to_owned(),
            catalog,
            index,
            settings,
            embedder: None,
            reranker: None,
            vectors: Default::default(),
        };
        match library.sync_index().await {
            // Another process holds the writer (an `index` run in progress): it will bring the
            // index up to date itself; reading meanwhile is safe.
            Ok(()) | Err(Error::IndexBusy) => Ok(library),
            Err(err) => Err(err),
        }
    }

    pub fn settings(&self) -> &IndexSettings {
        &self.settings
    }

    /// Uses this embedding model for vector search and `embed_pending`. Its vectors are stored
    /// under `id`; vectors of any other model are dropped at the next `embed_pending`.
    pub fn set_embedder(&mut self, embedder: Option<ActiveEmbedder>) {
        self.embedder = embedder;
        self.vectors_changed();
    }

    pub fn embedder(&self) -> Option<&ActiveEmbedder> {
        self.embedder.as_ref()
    }

    pub fn set_reranker(&mut self, reranker: Option<Arc<CrossEncoder>>) {
        self.reranker = reranker;
    }

    pub fn reranker(&self) -> Option<&Arc<CrossEncoder>> {
        self.reranker.as_ref()
    }

    pub fn catalog(&self) -> &Catalog {
        &self.catalog
    }

    pub fn search_index(&self) -> &SearchIndex {
        &self.index
    }

    /// Changes indexing settings. A different analyzer rebuilds the keyword index from the
    /// catalog; different chunk sizes re-extract every file at the next `index` run.
    pub async fn set_settings(&mut self, settings: IndexSettings) -> Result<()> {
        if settings == self.settings {
            return Ok(());
        }
        settings.save(&self.catalog).await?;
        if settings.analyzer != self.settings.analyzer {
            self.catalog.journal_all().await?;
            self.index = SearchIndex::open(&self.dir.join("tantivy"), settings.analyzer)?;
            self.sync_index().await?;
        }
        self.settings = settings;
        Ok(())
    }

    /// Brings the keyword index up to date with the catalog for every journalled document.
    /// Idempotent: replaying after a crash at any point gives the same index.
    pub async fn sync_index(&self) -> Result<()> {
        let journal = self.catalog.journal().await?;
        if journal.is_empty() {
            return Ok(());
        }
        let mut session = IndexSession::start(self)?;
        session.apply(&journal).await?;
        session.finish().await
    }

    pub async fn status(&self) -> Result<LibraryStatus> {
        Ok(LibraryStatus {
            data_dir: self.dir.clone(),
            analyzer: self.settings.analyzer.name(),
            folders: self.catalog.folder_status().await?,
            failed: self.catalog.failed_documents().await?,
            indexed_chunks: self.index.num_chunks(),
        })
    }

    /// The documents of a folder, with how many chunks the active embedder has embedded.
    pub async fn documents(&self, folder_id: i64) -> Result<Vec<crate::catalog::DocumentRow>> {
        let model = self.embedder.as_ref().map(|e| e.id.as_str());
        self.catalog.folder_documents(folder_id, model).await
    }

    /// Removes a folder or file root (as given to `index`) and everything indexed under it.
    pub async fn remove(&self, path: &Path) -> Result<()> {
        let wanted = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_owned());
        let folder = self
            .catalog
            .folders()
            .await?
            .into_iter()
            .find(|f| f.path == wanted || f.path == path)
            .ok_or_else(|| {
                Error::Invalid(format!(
                    "{} is not in the library; `glassbox status` lists the folders that are",
                    path.display()
                ))
            })?;
        // The writer first: while another process indexes, removing would race its journal.
        let mut session = IndexSession::start(self)?;
        self.catalog.remove_folder(folder.id).await?;
        session.apply(&self.catalog.journal().await?).await?;
        session.finish().await
    }

    /// Compares the chunk ids of the index and the catalog.
    pub async fn check_consistency(&self) -> Result<Consistency> {
        let catalog: std::collections::BTreeSet<i64> =
            self.catalog.chunk_ids().await?.into_iter().collect();
        let index: std::collections::BTreeSet<i64> = self.index.chunk_ids()?.into_iter().collect();
        Ok(Consistency {
            only_in_index: index.difference(&catalog).copied().collect(),
            only_in_catalog: catalog.difference(&index).copied().collect(),
        })
    }

    pub async fn close(self) {
        self.catalog.close().await;
    }
}
