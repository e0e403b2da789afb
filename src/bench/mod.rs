//! Benchmarks and evaluations behind `glassbox bench` (results in BENCHMARKS.md).

pub mod attention;
pub mod corpus;
pub mod llm;
pub mod space;

use crate::error::{Error, Result};
use crate::index::Analyzer;
use crate::library::{IndexOptions, IndexSettings, IndexSummary, Library};
use crate::retrieve::eval::{ModeScore, Question, evaluate};
use crate::retrieve::{Mode, SearchOptions};
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

/// Indexes `corpus` with `analyzer` into `data_dir` and scores BM25 retrieval on `questions`.
pub async fn score_analyzer(
    analyzer: Analyzer,
    corpus: &Path,
    questions: &[Question],
    data_dir: &Path,
) -> Result<ModeScore> {
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
    let score = evaluate(&library, questions, Mode::Bm25).await?;
    library.close().await;
    Ok(score)
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct EmbedReport {
    pub chunks: usize,
    pub tokens: usize,
    pub batch: usize,
    pub threads: usize,
    pub seconds: f64,
    pub chunks_per_second: f64,
    /// One short query (as search embeds it), 50 runs.
    pub query: Latency,
}

/// Generated English text of exactly `tokens` model tokens (special tokens included).
fn text_of_tokens(rng: &mut corpus::Rng, counter: &dyn Fn(&str) -> usize, tokens: usize) -> String {
    let mut text = String::new();
    while counter(&text) < tokens {
        text.push_str(&corpus::english_sentence(rng));
        text.push(' ');
    }
    text
}

/// Embeds `chunks` generated passages of `tokens` tokens (after one warm-up batch).
pub fn embedding(dir: &Path, tokens: usize, chunks: usize) -> Result<EmbedReport> {
    use crate::embed::{BATCH, Embedder, EmbedderOptions};
    let embedder = Embedder::load(
        dir,
        &EmbedderOptions {
            max_tokens: Some(tokens),
            ..Default::default()
        },
    )?;
    let mut rng = corpus::Rng::new(3);
    let count = |t: &str| embedder.token_ids(t).map_or(0, |ids| ids.len());
    let texts: Vec<String> = (0..chunks)
        .map(|_| text_of_tokens(&mut rng, &count, tokens))
        .collect();
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    embedder.embed(&refs[..BATCH.min(refs.len())])?;
    let started = Instant::now();
    embedder.embed(&refs)?;
    let seconds = started.elapsed().as_secs_f64();
    let query: Vec<f64> = (0..50)
        .map(|_| {
            let clock = Instant::now();
            embedder
                .embed_query("how does a cache reduce latency")
                .map(|_| clock.elapsed().as_secs_f64() * 1e3)
        })
        .collect::<std::result::Result<_, _>>()?;
    Ok(EmbedReport {
        query: Latency::from(query),
        chunks,
        tokens,
        batch: BATCH,
        threads: rayon::current_num_threads(),
        seconds,
        chunks_per_second: chunks as f64 / seconds,
    })
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct RerankReport {
    pub candidates: usize,
    pub tokens: usize,
    pub runs: usize,
    pub median_ms: f64,
}

/// Scores `candidates` passages of about `tokens` tokens (query included) with a cross-encoder.
pub fn reranking(dir: &Path, tokens: usize, candidates: usize) -> Result<RerankReport> {
    let reranker = crate::embed::CrossEncoder::load(dir, Some(tokens))?;
    let mut rng = corpus::Rng::new(5);
    let words = |rng: &mut corpus::Rng, n: usize| {
        (0..n)
            .map(|_| corpus::english_sentence(rng))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let passages: Vec<String> = (0..candidates)
        .map(|_| words(&mut rng, tokens / 8))
        .collect();
    let refs: Vec<&str> = passages.iter().map(String::as_str).collect();
    let query = "how does a cache reduce latency";
    reranker.score(query, &refs)?;
    let runs = 3;
    let mut times: Vec<f64> = (0..runs)
        .map(|_| {
            let started = Instant::now();
            reranker
                .score(query, &refs)
                .map(|_| started.elapsed().as_secs_f64() * 1e3)
        })
        .collect::<std::result::Result<_, _>>()?;
    times.sort_by(f64::total_cmp);
    Ok(RerankReport {
        candidates,
        tokens,
        runs,
        median_ms: times[runs / 2],
    })
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct VectorReport {
    pub chunks: usize,
    pub dims: usize,
    pub synthetic_vectors: u64,
    pub load_seconds: f64,
    pub vector_memory_mb: f64,
    pub rss_before_mb: Option<f64>,
    pub rss_after_mb: Option<f64>,
    /// Exact top-10 over the in-memory matrix.
    pub vector_top10: Latency,
    /// Whole hybrid search: BM25 + query embedding + vector top-50 + RRF + fetch + snippets.
    pub hybrid: Latency,
    /// Query embedding alone (part of `hybrid`).
    pub embed_query: Latency,
}

/// Vector and hybrid search latency over every chunk of `library` (which has an embedder).
/// Chunks without a vector get a random unit vector first: latency and memory do not depend on
/// the values, and embedding 100,000 chunks for real would take hours on a laptop CPU.
pub async fn vectors(library: &Library, queries: usize) -> Result<VectorReport> {
    let active = library
        .embedder()
        .cloned()
        .ok_or_else(|| Error::Invalid("bench vectors needs --embedder".into()))?;
    let dims = active.model.dims();
    let mut rng = corpus::Rng::new(11);
    let mut synthetic = 0;
    loop {
        let todo = library
            .catalog()
            .chunks_without_vectors(&active.id, 5000)
            .await?;
        if todo.is_empty() {
            break;
        }
        let rows: Vec<(i64, Vec<f32>)> = todo
            .iter()
            .map(|(id, _)| {
                (
                    *id,
                    crate::library::unit(
                        (0..dims)
                            .map(|_| (rng.next_u64() % 2001) as f32 - 1000.0)
                            .collect(),
                    ),
                )
            })
            .collect();
        synthetic += rows.len() as u64;
        library.catalog().store_vectors(&active.id, &rows).await?;
    }
    let rss_before_mb = current_rss_mb();
    let started = Instant::now();
    let index = library
        .vector_index()
        .await?
        .ok_or_else(|| Error::Invalid("no vectors".into()))?;
    let load_seconds = started.elapsed().as_secs_f64();
    let rss_after_mb = current_rss_mb();
    let texts: Vec<String> = (0..queries).map(|_| corpus::query(&mut rng)).collect();
    let (mut vector, mut hybrid, mut embed) = (Vec::new(), Vec::new(), Vec::new());
    let opts = SearchOptions {
        mode: Some(Mode::Hybrid),
        ..SearchOptions::default()
    };
    for text in &texts {
        let query = crate::library::unit(active.model.embed_query(text)?);
        let clock = Instant::now();
        index.search(&query, 10);
        vector.push(clock.elapsed().as_secs_f64() * 1e3);
        let response = library.search(text, &opts).await?;
        hybrid.push(response.trace.timings.total_ms);
        embed.push(response.trace.timings.embed_query_ms);
    }
    Ok(VectorReport {
        chunks: index.len(),
        dims: index.dims(),
        synthetic_vectors: synthetic,
        load_seconds,
        vector_memory_mb: index.memory_bytes() as f64 / 1e6,
        rss_before_mb,
        rss_after_mb,
        vector_top10: Latency::from(vector),
        hybrid: Latency::from(hybrid),
        embed_query: Latency::from(embed),
    })
}

/// Resident set size of this process now (VmRSS), Linux only.
pub fn current_rss_mb() -> Option<f64> {
    proc_status_mb("VmRSS:")
}

/// Peak resident set size (VmHWM) of this process, from /proc on Linux.
pub fn peak_rss_mb() -> Option<f64> {
    proc_status_mb("VmHWM:")
}

fn proc_status_mb(key: &str) -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(key))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}
