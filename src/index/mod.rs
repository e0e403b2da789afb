//! The BM25 keyword index (tantivy). It is derived data: every entry mirrors a chunk row of the
//! SQLite catalog and can be rebuilt from it at any time.

pub mod tokenize;
pub mod vector;

use crate::error::{Error, Result};
use std::path::Path;
use tantivy::collector::TopDocs;
use tantivy::query::{BooleanQuery, BoostQuery, Occur, Query, TermQuery};
use tantivy::schema::{
    FAST, Field, INDEXED, IndexRecordOption, STORED, Schema, TextFieldIndexing, TextOptions,
};
use tantivy::snippet::SnippetGenerator;
use tantivy::tokenizer::{
    Language, LowerCaser, RemoveLongFilter, SimpleTokenizer, Stemmer, TextAnalyzer,
};
use tantivy::{DocAddress, Index, IndexReader, IndexWriter, ReloadPolicy, TantivyDocument, Term};
use tokenize::{HangulMode, KoreanTokenizer};

/// Which analysis the text fields get. Compared in BENCHMARKS.md; `MorphBigram` is the default.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Analyzer {
    /// tantivy's default: split on non-alphanumerics, lowercase. The baseline.
    Simple,
    Bigram,
    Morph,
    /// Both `Morph` and `Bigram`, as separate fields queried together.
    #[default]
    MorphBigram,
}

impl Analyzer {
    pub const ALL: [Analyzer; 4] = [
        Analyzer::Simple,
        Analyzer::Bigram,
        Analyzer::Morph,
        Analyzer::MorphBigram,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Analyzer::Simple => "simple",
            Analyzer::Bigram => "bigram",
            Analyzer::Morph => "morph",
            Analyzer::MorphBigram => "morph+bigram",
        }
    }

    pub fn parse(name: &str) -> Option<Analyzer> {
        Analyzer::ALL.into_iter().find(|a| a.name() == name)
    }

    /// The tokenizer names whose fields this analyzer indexes.
    fn tokenizers(self) -> &'static [&'static str] {
        match self {
            Analyzer::Simple => &["simple"],
            Analyzer::Bigram => &["bigram"],
            Analyzer::Morph => &["morph"],
            Analyzer::MorphBigram => &["morph", "bigram"],
        }
    }
}

fn simple_analyzer() -> tantivy::tokenizer::TextAnalyzerBuilder<impl tantivy::tokenizer::Tokenizer>
{
    TextAnalyzer::builder(SimpleTokenizer::default())
        .filter(RemoveLongFilter::limit(64))
        .filter(LowerCaser)
}

/// What the Korean tokenizers do with Latin-script words: lowercase and English stemming.
pub(crate) fn latin_analyzer() -> TextAnalyzer {
    simple_analyzer()
        .filter(Stemmer::new(Language::English))
        .build()
}

fn text_analyzer(name: &str) -> TextAnalyzer {
    let korean = |mode| {
        let latin = latin_analyzer();
        TextAnalyzer::builder(KoreanTokenizer { mode, latin })
            .filter(RemoveLongFilter::limit(64))
            .build()
    };
    match name {
        "bigram" => korean(HangulMode::Bigram),
        "morph" => korean(HangulMode::Morph),
        _ => simple_analyzer().build(),
    }
}

/// Opens the index in `dir` if it has `schema`; otherwise starts it over, but only while holding
/// the writer lock, so that two processes opening a new library at once, or one opening while
/// another writes, never delete each other's index. A busy lock on an index that must be
/// (re)created means another process is creating it: wait for it a moment.
fn open_or_rebuild(dir: &Path, schema: Schema) -> Result<Index> {
    use tantivy::directory::{Directory, INDEX_WRITER_LOCK, MmapDirectory, error::LockError};
    for _ in 0..100 {
        if let Ok(index) = Index::open_in_dir(dir)
            && index.schema() == schema
        {
            return Ok(index);
        }
        let directory = MmapDirectory::open(dir)
            .map_err(|e| Error::Invalid(format!("{}: {e}", dir.display())))?;
        match directory.acquire_lock(&INDEX_WRITER_LOCK) {
            Ok(lock) => {
                // Missing, unreadable or built with another analyzer: start over. Nothing is
                // lost, the catalog holds every chunk. The lock files stay: they are held.
                clear_index_files(dir)?;
                let index = Index::create(directory, schema, tantivy::IndexSettings::default())?;
                drop(lock);
                return Ok(index);
            }
            Err(LockError::LockBusy) => std::thread::sleep(std::time::Duration::from_millis(100)),
            Err(LockError::IoError(e)) => {
                return Err(Error::Invalid(format!("{}: {e}", dir.display())));
            }
        }
    }
    Err(Error::IndexBusy)
}

/// Deletes everything in the index folder but tantivy's lock files.
fn clear_index_files(dir: &Path) -> Result<()> {
    let entries = std::fs::read_dir(dir).map_err(|source| Error::DataDir {
        path: dir.to_owned(),
        source,
    })?;
    for entry in entries.flatten() {
        let name = entry.file_name();
        if name.to_string_lossy().ends_with(".lock") {
            continue;
        }
        let path = entry.path();
        let removed = if path.is_dir() {
            std::fs::remove_dir_all(&path)
        } else {
            std::fs::remove_file(&path)
        };
        removed.map_err(|source| Error::DataDir { path, source })?;
    }
    Ok(())
}

/// A held writer lock is [`Error::IndexBusy`]; the lock is an OS file lock, so one left by a
/// killed process is released with it and only a live writer makes this fail.
fn busy(err: tantivy::TantivyError) -> Error {
    match err {
        tantivy::TantivyError::LockFailure(tantivy::directory::error::LockError::LockBusy, _) => {
            Error::IndexBusy
        }
        other => Error::Index(other),
    }
}

/// A text field, the tokenizer it uses, and its weight in queries.
#[derive(Clone, Copy)]
struct TextField {
    field: Field,
    boost: f32,
    is_body: bool,
}

/// The fields of one chunk entry.
#[derive(Clone)]
struct Fields {
    chunk_id: Field,
    doc_id: Field,
    text: Vec<TextField>,
}

/// What goes into the index for a chunk.
pub struct ChunkEntry<'a> {
    pub chunk_id: i64,
    pub doc_id: i64,
    pub title: &'a str,
    pub heading: &'a str,
    pub text: &'a str,
}

/// A BM25 hit: a chunk id and its score.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Hit {
    pub chunk_id: i64,
    pub score: f32,
}

/// A fragment of chunk text with the byte ranges of matched terms.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Snippet {
    pub text: String,
    pub highlights: Vec<(usize, usize)>,
}

pub struct SearchIndex {
    index: Index,
    reader: IndexReader,
    fields: Fields,
}

impl SearchIndex {
    /// Opens the index in `dir`, creating it if needed. Returns `(index, rebuilt)` where `rebuilt`
    /// says the index was (re)created empty and must be refilled from the catalog.
    /// Whether the index in `dir` is missing, unreadable or built with another analyzer, so that
    /// [`SearchIndex::open`] will start it over. Callers journal every document *before* opening
    /// in that case: a crash between the reset and the journal would leave an empty index that
    /// nothing refills.
    pub fn needs_rebuild(dir: &Path, analyzer: Analyzer) -> bool {
        Index::open_in_dir(dir).map_or(true, |index| index.schema() != schema(analyzer).0)
    }

    /// Opens the index in `dir`, starting it over (empty) when [`SearchIndex::needs_rebuild`].
    pub fn open(dir: &Path, analyzer: Analyzer) -> Result<SearchIndex> {
        let data_dir_error = |source| Error::DataDir {
            path: dir.to_owned(),
            source,
        };
        std::fs::create_dir_all(dir).map_err(data_dir_error)?;
        let (schema, fields) = schema(analyzer);
        let index = open_or_rebuild(dir, schema)?;
        for name in ["simple", "bigram", "morph"] {
            index.tokenizers().register(name, text_analyzer(name));
        }
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .try_into()?;
        Ok(SearchIndex {
            index,
            reader,
            fields,
        })
    }

    /// Takes the writer lock ([`Error::IndexBusy`] while another process holds it).
    pub fn writer(&self) -> Result<IndexWriter> {
        // One indexing thread per core (tokenizing is the costly part of indexing), each with
        // a 48 MB arena, which keeps segments few without much memory.
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get().min(4));
        self.index
            .writer_with_num_threads(threads, threads * 48 * 1024 * 1024)
            .map_err(busy)
    }

    pub fn add(&self, writer: &IndexWriter, entry: &ChunkEntry<'_>) -> Result<()> {
        let mut doc = TantivyDocument::default();
        doc.add_i64(self.fields.chunk_id, entry.chunk_id);
        doc.add_i64(self.fields.doc_id, entry.doc_id);
        let [title, heading, body] = [entry.title, entry.heading, entry.text];
        for group in self.fields.text.chunks(3) {
            doc.add_text(group[0].field, title);
            doc.add_text(group[1].field, heading);
            doc.add_text(group[2].field, body);
        }
        writer.add_document(doc)?;
        Ok(())
    }

    /// Removes every chunk of a document (takes effect at the next commit).
    pub fn delete_document(&self, writer: &IndexWriter, doc_id: i64) {
        writer.delete_term(Term::from_field_i64(self.fields.doc_id, doc_id));
    }

    /// Makes committed changes visible to searches.
    pub fn reload(&self) -> Result<()> {
        self.reader.reload()?;
        Ok(())
    }

    /// BM25 search: the query is analysed like the fields, and every resulting term is an
    /// optional clause, so word order and query syntax characters never cause an error.
    pub fn search(&self, query: &str, k: usize) -> Result<Vec<Hit>> {
        let Some(query) = self.query(query)? else {
            return Ok(Vec::new());
        };
        let searcher = self.reader.searcher();
        let top = searcher.search(&*query, &TopDocs::with_limit(k.max(1)).order_by_score())?;
        top.into_iter()
            .map(|(score, addr)| {
                Ok(Hit {
                    chunk_id: self.chunk_id(&searcher, addr)?,
                    score,
                })
            })
            .collect()
    }

    fn chunk_id(&self, searcher: &tantivy::Searcher, addr: DocAddress) -> Result<i64> {
        let column = searcher
            .segment_reader(addr.segment_ord)
            .fast_fields()
            .i64("chunk_id")?;
        column
            .first(addr.doc_id)
            .ok_or_else(|| Error::Invalid("index entry without chunk id".into()))
    }

    fn query(&self, text: &str) -> Result<Option<Box<dyn Query>>> {
        let mut clauses: Vec<(Occur, Box<dyn Query>)> = Vec::new();
        for field in &self.fields.text {
            let mut analyzer = self.index.tokenizer_for_field(field.field)?;
            let mut stream = analyzer.token_stream(text);
            let mut seen = std::collections::HashSet::new();
            while let Some(token) = stream.next() {
                if seen.insert(token.text.clone()) {
                    let term = Term::from_field_text(field.field, &token.text);
                    let query = TermQuery::new(term, IndexRecordOption::WithFreqs);
                    clauses.push((
                        Occur::Should,
                        Box::new(BoostQuery::new(Box::new(query), field.boost)),
                    ));
                }
            }
        }
        Ok((!clauses.is_empty()).then(|| Box::new(BooleanQuery::new(clauses)) as Box<dyn Query>))
    }

    /// A short fragment of `text` around the best matches of `query`, with highlight ranges.
    pub fn snippet(&self, query: &str, text: &str, max_chars: usize) -> Result<Snippet> {
        let Some(parsed) = self.query(query)? else {
            return Ok(Snippet {
                text: text.chars().take(max_chars).collect(),
                highlights: vec![],
            });
        };
        let searcher = self.reader.searcher();
        let body = self.fields.text.iter().find(|f| f.is_body).map(|f| f.field);
        let body = body.ok_or_else(|| Error::Invalid("index has no body field".into()))?;
        let mut generator = SnippetGenerator::create(&searcher, &*parsed, body)?;
        generator.set_max_num_chars(max_chars);
        let snippet = generator.snippet(text);
        if snippet.fragment().is_empty() {
            return Ok(Snippet {
                text: text.chars().take(max_chars).collect(),
                highlights: vec![],
            });
        }
        Ok(Snippet {
            text: snippet.fragment().to_owned(),
            highlights: snippet
                .highlighted()
                .iter()
                .map(|r| (r.start, r.end))
                .collect(),
        })
    }

    /// Every chunk id in the index (for consistency checks against the catalog).
    pub fn chunk_ids(&self) -> Result<Vec<i64>> {
        let searcher = self.reader.searcher();
        let mut ids = Vec::new();
        for segment in searcher.segment_readers() {
            let column = segment.fast_fields().i64("chunk_id")?;
            ids.extend(segment.doc_ids_alive().filter_map(|doc| column.first(doc)));
        }
        Ok(ids)
    }

    pub fn num_chunks(&self) -> u64 {
        self.reader.searcher().num_docs()
    }
}

fn schema(analyzer: Analyzer) -> (Schema, Fields) {
    let mut builder = Schema::builder();
    let chunk_id = builder.add_i64_field("chunk_id", INDEXED | STORED | FAST);
    let doc_id = builder.add_i64_field("doc_id", INDEXED | FAST);
    let mut text = Vec::new();
    for tokenizer in analyzer.tokenizers() {
        let options = TextOptions::default().set_indexing_options(
            TextFieldIndexing::default()
                .set_tokenizer(tokenizer)
                .set_index_option(IndexRecordOption::WithFreqs),
        );
        for (part, boost) in [("title", 2.0), ("heading", 1.5), ("body", 1.0)] {
            let field = builder.add_text_field(&format!("{part}_{tokenizer}"), options.clone());
            text.push(TextField {
                field,
                boost,
                is_body: part == "body",
            });
        }
    }
    (
        builder.build(),
        Fields {
            chunk_id,
            doc_id,
            text,
        },
    )
}
