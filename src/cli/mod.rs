//! Command-line interface. Presentation only: every command is one library call plus printing.

mod llm;
mod models;
mod output;
mod progress;
mod quantize;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use glassbox::Library;
use glassbox::index::Analyzer;
use glassbox::library::{IndexOptions, resolve_data_dir};
use glassbox::models::active;
use glassbox::retrieve::{Mode, SearchOptions};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "glassbox",
    version,
    about = "Chat with your documents, locally, and see how every step works"
)]
struct Cli {
    /// Where the library lives (default: the platform's application-data folder).
    #[arg(long, global = true, env = "GLASSBOX_DATA_DIR", value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Embedding model: a folder or a known id (`glassbox models list`); default: the library's
    /// choice, else the default embedder when downloaded.
    #[arg(long, global = true, value_name = "PATH|ID")]
    embedder: Option<String>,
    /// Re-ranking cross-encoder: a folder, a known id, or `none`.
    #[arg(long, global = true, value_name = "PATH|ID|none")]
    reranker: Option<String>,
    #[command(flatten)]
    llm: llm::LlmFlags,
    /// With no command: open the window, save a picture of it to FILE (PNG) once it has drawn
    /// and settled, and quit (for smoke tests and bug reports).
    #[arg(long, value_name = "FILE")]
    screenshot: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Add folders or files to the library and index them (all known folders when none given).
    Index(IndexArgs),
    /// Search the library.
    Search(SearchArgs),
    /// Show folders, counts and files that failed, with reasons.
    Status {
        #[arg(long)]
        json: bool,
    },
    /// Remove a folder or file (as given to `index`) from the library.
    Remove { path: PathBuf },
    /// Score every search mode on labelled questions (QUESTION<TAB>FILE-NAME per line).
    Eval {
        qrels: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// Answer a question from the library with the local model, citing sources.
    Ask(llm::AskArgs),
    /// A conversation about the library (kept in its database); follow-ups retrieve again.
    Chat(llm::ChatArgs),
    /// Plain generation: only the generated text on stdout.
    Generate(llm::GenerateArgs),
    /// Token ids and pieces of a text under the model's tokenizer.
    Tokenize(llm::TokenizeArgs),
    /// Write a GGUF model in another quantization (q4_0, q4_1, q8_0, q4_k_m, q5_k_m, q6_k),
    /// tensor by tensor as llama.cpp's llama-quantize does.
    Quantize(quantize::QuantizeArgs),
    /// What a concept means (BM25, RRF, KV cache, ...), in Korean or English; all of them
    /// when none is named.
    Explain {
        concept: Option<String>,
        #[arg(long, value_enum, default_value = "en")]
        lang: glassbox::concepts::Lang,
        #[arg(long)]
        json: bool,
    },
    /// Known models: list, download, path, use.
    #[command(subcommand)]
    Models(models::ModelsCommand),
    /// Measure ingestion, query latency and tokenizers (see BENCHMARKS.md).
    #[command(subcommand)]
    Bench(crate::cli::bench::BenchCommand),
}

#[derive(Args)]
struct IndexArgs {
    paths: Vec<PathBuf>,
    /// Target chunk size in tokens (saved in the library; a change re-chunks every file).
    #[arg(long)]
    chunk_tokens: Option<usize>,
    /// Tokens repeated between consecutive chunks.
    #[arg(long)]
    chunk_overlap: Option<usize>,
    /// Files larger than this many MB are recorded as failed instead of read.
    #[arg(long)]
    max_file_mb: Option<u64>,
    /// Keyword analyzer: simple, bigram, morph or morph+bigram.
    #[arg(long, value_parser = parse_analyzer)]
    analyzer: Option<Analyzer>,
    /// Print the summary as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct SearchArgs {
    /// The query (omit with --batch).
    #[arg(required_unless_present = "batch")]
    query: Option<String>,
    /// Number of results.
    #[arg(short, default_value_t = 10)]
    k: usize,
    /// bm25, vector, hybrid or hybrid+rerank (default: the best the installed models allow).
    #[arg(long, value_parser = |s: &str| s.parse::<Mode>().map_err(|e| e.to_string()))]
    mode: Option<Mode>,
    /// RRF k.
    #[arg(long, default_value_t = 60.0)]
    rrf_k: f32,
    /// Weights of the BM25 and vector lists in fusion, e.g. 1,0.5.
    #[arg(long, value_parser = parse_weights, default_value = "1,1")]
    weights: (f32, f32),
    /// Fused candidates the reranker scores.
    #[arg(long, default_value_t = 30)]
    rerank_top: usize,
    /// Show every stage: BM25, vector, fusion, re-ranking, timings.
    #[arg(long)]
    explain: bool,
    /// One JSON object per result (or per query with --batch).
    #[arg(long)]
    json: bool,
    /// Read one query per line from FILE.
    #[arg(long, value_name = "FILE", conflicts_with = "query")]
    batch: Option<PathBuf>,
}

mod bench;

fn parse_weights(text: &str) -> Result<(f32, f32), String> {
    let (a, b) = text
        .split_once(',')
        .ok_or("expected two weights, e.g. 1,0.5")?;
    let parse = |v: &str| v.trim().parse::<f32>().map_err(|e| format!("{v:?}: {e}"));
    Ok((parse(a)?, parse(b)?))
}

fn parse_analyzer(name: &str) -> Result<Analyzer, String> {
    Analyzer::parse(name).ok_or_else(|| {
        format!("unknown analyzer {name:?}; use simple, bigram, morph or morph+bigram")
    })
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let Some(command) = cli.command else {
        return gui(cli.data_dir, &cli.llm, cli.screenshot);
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("error: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    let models = ModelFlags {
        embedder: cli.embedder,
        reranker: cli.reranker,
        llm: cli.llm,
    };
    match runtime.block_on(run(cli.data_dir, models, command)) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// The global model flags.
struct ModelFlags {
    embedder: Option<String>,
    reranker: Option<String>,
    llm: llm::LlmFlags,
}

async fn run(
    data_dir: Option<PathBuf>,
    flags: ModelFlags,
    command: Command,
) -> anyhow::Result<ExitCode> {
    let command = match command {
        Command::Bench(bench) => {
            return bench::run(bench, flags.embedder.as_deref(), &flags.llm).await;
        }
        Command::Tokenize(args) => return llm::tokenize(&flags.llm, &args),
        Command::Quantize(args) => return quantize::run(&args),
        Command::Explain {
            concept,
            lang,
            json,
        } => return explain(concept.as_deref(), lang, json),
        Command::Generate(args) => return llm::generate(&flags.llm, &args),
        Command::Models(models::ModelsCommand::Use { .. }) => command,
        Command::Models(other) => {
            models::run(other)?;
            return Ok(ExitCode::SUCCESS);
        }
        other => other,
    };
    let dir = resolve_data_dir(data_dir)?;
    let mut library = Library::open(&dir)
        .await
        .with_context(|| format!("opening the library in {}", dir.display()))?;
    let code = match command {
        Command::Index(args) => {
            library.set_embedder(active::embedder(&library, flags.embedder.as_deref()).await?);
            index(&mut library, args).await?
        }
        Command::Search(args) => {
            if args.mode != Some(Mode::Bm25) {
                library.set_embedder(active::embedder(&library, flags.embedder.as_deref()).await?);
                library.set_reranker(active::reranker(&library, flags.reranker.as_deref()).await?);
            }
            search(&library, args).await?
        }
        Command::Eval { qrels, json } => {
            library.set_embedder(active::embedder(&library, flags.embedder.as_deref()).await?);
            library.set_reranker(active::reranker(&library, flags.reranker.as_deref()).await?);
            output::eval(&library, &qrels, json).await?;
            ExitCode::SUCCESS
        }
        Command::Models(models::ModelsCommand::Use { model, role }) => {
            models::use_model(&library, &model, &role).await?;
            ExitCode::SUCCESS
        }
        Command::Models(_) => unreachable!("handled above"),
        Command::Status { json } => {
            output::status(&library.status().await?, json)?;
            ExitCode::SUCCESS
        }
        Command::Remove { path } => {
            library.remove(&path).await?;
            println!("removed {}", path.display());
            ExitCode::SUCCESS
        }
        Command::Ask(args) => {
            library.set_embedder(active::embedder(&library, flags.embedder.as_deref()).await?);
            library.set_reranker(active::reranker(&library, flags.reranker.as_deref()).await?);
            llm::ask(&library, &flags.llm, &args).await?
        }
        Command::Chat(args) => {
            library.set_embedder(active::embedder(&library, flags.embedder.as_deref()).await?);
            library.set_reranker(active::reranker(&library, flags.reranker.as_deref()).await?);
            llm::chat(&library, &flags.llm, &args).await?
        }
        Command::Bench(_)
        | Command::Tokenize(_)
        | Command::Quantize(_)
        | Command::Generate(_)
        | Command::Explain { .. } => {
            unreachable!("handled above")
        }
    };
    library.close().await;
    Ok(code)
}

async fn index(library: &mut Library, args: IndexArgs) -> anyhow::Result<ExitCode> {
    let mut settings = *library.settings();
    if let Some(tokens) = args.chunk_tokens {
        settings.chunk.target_tokens = tokens;
    }
    if let Some(overlap) = args.chunk_overlap {
        settings.chunk.overlap_tokens = overlap;
    }
    if let Some(mb) = args.max_file_mb {
        settings.max_file_mb = mb;
    }
    if let Some(analyzer) = args.analyzer {
        settings.analyzer = analyzer;
    }
    library.set_settings(settings).await?;
    let bar = progress::IndexBar::new(!args.json);
    let summary = library
        .index(&args.paths, &IndexOptions::default(), &|p| bar.update(p))
        .await?;
    bar.finish();
    output::summary(&summary, args.json)?;
    if library.embedder().is_some() {
        let bar = progress::EmbedBar::new(!args.json);
        let embedded = library
            .embed_pending(&IndexOptions::default(), &|p| bar.update(p))
            .await?;
        bar.finish();
        output::embed_summary(&embedded, args.json)?;
    }
    Ok(ExitCode::SUCCESS)
}

async fn search(library: &Library, args: SearchArgs) -> anyhow::Result<ExitCode> {
    let opts = SearchOptions {
        k: args.k,
        mode: args.mode,
        rrf_k: args.rrf_k,
        weights: args.weights,
        rerank_top: args.rerank_top,
        ..SearchOptions::default()
    };
    let queries: Vec<String> = match &args.batch {
        Some(file) => std::fs::read_to_string(file)
            .with_context(|| format!("reading queries from {}", file.display()))?
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(str::to_owned)
            .collect(),
        None => args.query.into_iter().collect(),
    };
    for query in &queries {
        let response = library.search(query, &opts).await?;
        if args.batch.is_some() {
            output::batch_results(&response, args.json)?;
        } else {
            output::results(&response.results, args.json)?;
        }
        if args.explain {
            output::explain(library, &response.trace, args.json).await?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn explain(
    key: Option<&str>,
    lang: glassbox::concepts::Lang,
    json: bool,
) -> anyhow::Result<ExitCode> {
    use glassbox::concepts;
    let chosen: Vec<&concepts::Concept> = match key {
        Some(key) => match concepts::find(key) {
            Some(c) => vec![c],
            None => {
                let ids: Vec<&str> = concepts::concepts().iter().map(|c| c.id.as_str()).collect();
                anyhow::bail!("no concept named `{key}`; known: {}", ids.join(", "));
            }
        },
        None => concepts::concepts().iter().collect(),
    };
    if json {
        println!("{}", serde_json::to_string(&chosen)?);
    } else {
        for c in chosen {
            println!("{} ({})\n{}\n", c.name(lang), c.id, c.text(lang));
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// No command: the desktop app, over the same library and model the commands use. Without a
/// downloaded model it still searches.
fn gui(data_dir: Option<PathBuf>, llm: &llm::LlmFlags, screenshot: Option<PathBuf>) -> ExitCode {
    // A model named on the command line wins; else the saved choice; else the default model
    // when it is downloaded.
    let chosen = llm
        .llm
        .as_ref()
        .and_then(|_| llm::resolve(llm.llm.as_deref()).ok());
    let fallback = llm::resolve(None).ok();
    match glassbox::app::run(data_dir, chosen, fallback, screenshot) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!(
                "error: cannot open the window: {err}. Run a command (glassbox --help) to work without one"
            );
            ExitCode::FAILURE
        }
    }
}
