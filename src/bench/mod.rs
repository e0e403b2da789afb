//! Benchmarks and evaluations behind `glassbox bench` (results in BENCHMARKS.md).

pub mod corpus;

use crate::error::{Error, Result};
use crate::index::Analyzer;
use crate::library::{IndexOptions, IndexSettings, IndexSummary, Library};
use crate::retrieve::SearchOptions;
use std::path::Path;
use std::time::Instant;

/// Cold and incremental ingestion of one corpus into a fresh library.
#[derive(Debug, Clone, serde::Serialize)]
pub struct IngestReport {
    pub files: usize,
    pub bytes: u64,
    pub chunks: usize,
    pub cold_seconds: f64,
    /// Walking, reading, extracting and chunking alone, on all cores, storing nothing: the
    /// floor that storage costs are compared against.
    pub extract_seconds: f64,
    /// Of the cold run: time in SQLite transactions and in the keyword index.
    pub catalog_seconds: f64,
    pub index_seconds: f64,
    pub incremental_seconds: f64,
    /// Peak resident memory of this process so far, in MB (Linux only).
    pub peak_rss_mb: Option<f64>,
}

pub async fn ingest(corpus: &Path, data_dir: &Path) -> Result<IngestReport> {
    let extract_seconds = extract_only(corpus);
    let library = Library::open(data_dir).await?;
    let cold = library
        .index(&[corpus.to_owned()], &IndexOptions::default(), &|_| {})
        .await?;
    let incremental = library
        .index(&[corpus.to_owned()], &IndexOptions::default(), &|_| {})
        .await?;
    if incremental.indexed > 0 {
        return Err(Error::Invalid(
            "incremental run re-indexed unchanged files".into(),
        ));
    }
    library.close().await;
    Ok(IngestReport {
        files: cold.indexed + cold.failed.len(),
        bytes: cold.bytes,
        chunks: cold.chunks,
        cold_seconds: cold.seconds,
        extract_seconds,
        catalog_seconds: cold.catalog_seconds,
        index_seconds: cold.index_seconds,
        incremental_seconds: incremental.seconds,
        peak_rss_mb: peak_rss_mb(),
    })
}

fn extract_only(corpus: &Path) -> f64 {
    use rayon::prelude::*;
    let started = Instant::now();
    let files = crate::ingest::walk::walk(corpus, Path::new("")).files;
    files.par_iter().for_each(|file| {
        if let Ok(bytes) = std::fs::read(&file.path) {
            let _ = crate::ingest::prepare(
                file.kind,
                &bytes,
                Default::default(),
                &crate::ingest::ApproxTokens,
            );
        }
    });
    started.elapsed().as_secs_f64()
}

/// Latency percentiles in milliseconds.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Latency {
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub max_ms: f64,
}

impl Latency {
    fn from(mut samples: Vec<f64>) -> Latency {
        samples.sort_by(f64::total_cmp);
        let at = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize];
        Latency {
            p50_ms: at(0.5),
            p95_ms: at(0.95),
            max_ms: at(1.0),
        }
    }
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct QueryReport {
    pub chunks: u64,
    pub queries: usize,
    /// tantivy BM25 top-10 only.
    pub bm25: Latency,
    /// The whole `search`: BM25, catalog lookup of the chunks, snippets.
    pub full_search: Latency,
}

/// Runs `queries` generated queries against an already indexed library.
pub async fn query(library: &Library, queries: usize, seed: u64) -> Result<QueryReport> {
    let mut rng = corpus::Rng::new(seed);
    let texts: Vec<String> = (0..queries).map(|_| corpus::query(&mut rng)).collect();
    let opts = SearchOptions::default();
    // Warm the page cache and the searcher so that the first query does not count cold I/O.
    for text in texts.iter().take(20) {
        library.search(text, &opts).await?;
    }
    let mut bm25 = Vec::new();
    let mut full = Vec::new();
    for text in &texts {
        let start = Instant::now();
        library.search_index().search(text, opts.k)?;
        bm25.push(start.elapsed().as_secs_f64() * 1e3);
        let start = Instant::now();
        library.search(text, &opts).await?;
        full.push(start.elapsed().as_secs_f64() * 1e3);
    }
    Ok(QueryReport {
        chunks: library.search_index().num_chunks(),
        queries,
        bm25: Latency::from(bm25),
        full_search: Latency::from(full),
    })
}

/// Retrieval quality of one analyzer on a labelled question set.
#[derive(Debug, Clone, serde::Serialize)]
pub struct TokenizerScore {
    pub analyzer: &'static str,
    pub questions: usize,
    pub hit_at_1: f64,
    pub hit_at_5: f64,
    pub mrr: f64,
}

/// Reads `query<TAB>expected file name` lines (a header line starting with `query` is skipped).
pub fn read_questions(path: &Path) -> Result<Vec<(String, String)>> {
    let text = std::fs::read_to_string(path).map_err(|source| Error::Path {
        path: path.to_owned(),
        source,
    })?;
    Ok(text
        .lines()
        .filter_map(|line| line.split_once('\t'))
        .filter(|(q, _)| *q != "query")
        .map(|(q, e)| (q.trim().to_owned(), e.trim().to_owned()))
        .collect())
}

/// Indexes `corpus` with `analyzer` into `data_dir` and scores document-level hits: a question
/// hits at k when its expected file is among the documents of the top k chunks.
pub async fn score_analyzer(
    analyzer: Analyzer,
    corpus: &Path,
    questions: &[(String, String)],
    data_dir: &Path,
) -> Result<TokenizerScore> {
    let mut library = Library::open(data_dir).await?;
    library
        .set_settings(IndexSettings {
            analyzer,
            ..*library.settings()
        })
        .await?;
    let summary: IndexSummary = library
        .index(&[corpus.to_owned()], &IndexOptions::default(), &|_| {})
        .await?;
    if summary.indexed == 0 {
        return Err(Error::Invalid(format!(
            "no documents indexed from {}",
            corpus.display()
        )));
    }
    let (mut hit1, mut hit5, mut mrr) = (0.0, 0.0, 0.0);
    let opts = SearchOptions {
        k: 20,
        ..SearchOptions::default()
    };
    for (question, expected) in questions {
        let results = library.search(question, &opts).await?;
        let mut docs: Vec<String> = Vec::new();
        for r in &results {
            let name = r
                .chunk
                .path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            if !docs.contains(&name) {
                docs.push(name);
            }
        }
        if let Some(pos) = docs.iter().position(|d| d == expected) {
            hit1 += f64::from(pos == 0);
            hit5 += f64::from(pos < 5);
            mrr += 1.0 / (pos + 1) as f64;
        }
    }
    library.close().await;
    let n = questions.len().max(1) as f64;
    Ok(TokenizerScore {
        analyzer: analyzer.name(),
        questions: questions.len(),
        hit_at_1: hit1 / n,
        hit_at_5: hit5 / n,
        mrr: mrr / n,
    })
}

/// Peak resident set size (VmHWM) of this process, from /proc on Linux.
pub fn peak_rss_mb() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}
