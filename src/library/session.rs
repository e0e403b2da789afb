//! Bringing the keyword index up to date from the catalog, one writer session at a time.

use super::Library;
use crate::error::Result;
use crate::index::ChunkEntry;
use tantivy::IndexWriter;

/// Holds the index writer (and so its lock) while journalled documents are applied. Journal rows
/// are cleared only after the commit that contains their changes, which is what makes a crash at
/// any point recoverable by replaying the journal.
pub(super) struct IndexSession<'a> {
    library: &'a Library,
    writer: IndexWriter,
    applied: Vec<i64>,
}

impl<'a> IndexSession<'a> {
    pub fn start(library: &'a Library) -> Result<Self> {
        Ok(IndexSession {
            writer: library.index.writer()?,
            library,
            applied: Vec::new(),
        })
    }

    /// Replaces the index entries of these documents with their chunks in the catalog (none if
    /// the document is gone). Visible after the next commit.
    pub async fn apply(&mut self, doc_ids: &[i64]) -> Result<()> {
        let index = &self.library.index;
        for &doc_id in doc_ids {
            index.delete_document(&self.writer, doc_id);
            if let Some((title, chunks)) = self.library.catalog.document_chunks(doc_id).await? {
                for (chunk_id, heading, text) in &chunks {
                    let entry = ChunkEntry {
                        chunk_id: *chunk_id,
                        doc_id,
                        title: &title,
                        heading,
                        text,
                    };
                    index.add(&self.writer, &entry)?;
                }
            }
            self.applied.push(doc_id);
        }
        Ok(())
    }

    /// Commits what was applied, then clears it from the journal and makes it searchable.
    pub async fn commit(&mut self) -> Result<()> {
        if self.applied.is_empty() {
            return Ok(());
        }
        self.writer.commit()?;
        self.library.catalog.clear_journal(&self.applied).await?;
        self.applied.clear();
        self.library.vectors_changed();
        self.library.index.reload()
    }

    /// Commits and waits for segment merges, so the next search runs on a compact index.
    pub async fn finish(mut self) -> Result<()> {
        self.commit().await?;
        self.writer.wait_merging_threads()?;
        self.library.index.reload()
    }
}
