//! Command-line interface. Presentation only: every command is one library call plus printing.

mod output;
mod progress;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use glassbox::Library;
use glassbox::index::Analyzer;
use glassbox::library::{IndexOptions, resolve_data_dir};
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
    #[arg(long, default_value = "bm25", value_parser = |s: &str| s.parse::<Mode>().map_err(|e| e.to_string()))]
    mode: Mode,
    /// One JSON object per result (or per query with --batch).
    #[arg(long)]
    json: bool,
    /// Read one query per line from FILE.
    #[arg(long, value_name = "FILE", conflicts_with = "query")]
    batch: Option<PathBuf>,
}

mod bench;

fn parse_analyzer(name: &str) -> Result<Analyzer, String> {
    Analyzer::parse(name).ok_or_else(|| {
        format!("unknown analyzer {name:?}; use simple, bigram, morph or morph+bigram")
    })
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let Some(command) = cli.command else {
        use clap::CommandFactory;
        Cli::command().print_long_help().ok();
        return ExitCode::SUCCESS;
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("error: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli.data_dir, command)) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(data_dir: Option<PathBuf>, command: Command) -> anyhow::Result<ExitCode> {
    if let Command::Bench(bench) = command {
        return bench::run(bench).await;
    }
    let dir = resolve_data_dir(data_dir)?;
    let mut library = Library::open(&dir)
        .await
        .with_context(|| format!("opening the library in {}", dir.display()))?;
    let code = match command {
        Command::Index(args) => index(&mut library, args).await?,
        Command::Search(args) => search(&library, args).await?,
        Command::Status { json } => {
            output::status(&library.status().await?, json)?;
            ExitCode::SUCCESS
        }
        Command::Remove { path } => {
            library.remove(&path).await?;
            println!("removed {}", path.display());
            ExitCode::SUCCESS
        }
        Command::Bench(_) => unreachable!("handled above"),
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
    Ok(ExitCode::SUCCESS)
}

async fn search(library: &Library, args: SearchArgs) -> anyhow::Result<ExitCode> {
    let opts = SearchOptions {
        k: args.k,
        mode: args.mode,
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
        let results = library.search(query, &opts).await?;
        if args.batch.is_some() {
            output::batch_results(query, &results, args.json)?;
        } else {
            output::results(&results, args.json)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
