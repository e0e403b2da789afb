//! `glassbox bench ...`: runs the library's benchmarks and prints a report.

use clap::Subcommand;
use glassbox::Library;
use glassbox::app::bench::{FrameReport, Script};
use glassbox::bench;
use glassbox::index::Analyzer;
use glassbox::library::IndexOptions;
use glassbox::viz::space::Method;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Subcommand)]
pub enum BenchCommand {
    /// Generate a mixed corpus, index it cold, then again with nothing changed.
    Ingest {
        #[arg(long, default_value_t = 20)]
        size_mb: usize,
        /// Keep the corpus and library here (default: a temporary folder).
        #[arg(long)]
        work_dir: Option<PathBuf>,
    },
    /// BM25 query latency over a library of at least `--chunks` chunks (generated if needed).
    Query {
        #[arg(long, default_value_t = 100_000)]
        chunks: usize,
        #[arg(long, default_value_t = 500)]
        queries: usize,
        #[arg(long)]
        work_dir: Option<PathBuf>,
    },
    /// Vector and hybrid latency and memory over an indexed library (see `bench query`), with
    /// the global --embedder for queries.
    Vectors {
        #[arg(long)]
        work_dir: PathBuf,
        #[arg(long, default_value_t = 200)]
        queries: usize,
    },
    /// Embedding throughput: chunks/s of a model folder at a given chunk length.
    Embed {
        /// Model folder (config.json, tokenizer.json, model.safetensors).
        model: PathBuf,
        #[arg(long, default_value_t = 256)]
        tokens: usize,
        #[arg(long, default_value_t = 128)]
        chunks: usize,
    },
    /// Re-ranking time: a cross-encoder folder scoring candidates of a given length.
    Rerank {
        model: PathBuf,
        #[arg(long, default_value_t = 256)]
        tokens: usize,
        #[arg(long, default_value_t = 30)]
        candidates: usize,
    },
    /// Language-model speed: prompt processing, decode, batched decode, prefix cache (the
    /// global --llm, --threads and --attention apply).
    Llm {
        /// Keep one core busy with a spinning thread while measuring.
        #[arg(long)]
        busy_core: bool,
        #[arg(long, default_value_t = 512)]
        prompt_tokens: usize,
        #[arg(long, default_value_t = 128)]
        decode_tokens: usize,
        #[arg(long)]
        json: bool,
    },
    /// Attention kernels on the GPU (a software adapter such as lavapipe when there is no
    /// other): our flash kernels against a naive three-pass kernel, prefill and decode, with the
    /// memory each needs, and the round trip one layer pays per token.
    Attention {
        /// Sequence lengths, comma-separated.
        #[arg(long, value_delimiter = ',', default_values_t = [512, 2048, 8192])]
        seq: Vec<usize>,
        #[arg(long, default_value_t = 9)]
        heads: usize,
        #[arg(long, default_value_t = 3)]
        kv_heads: usize,
        #[arg(long, default_value_t = 64)]
        head_dim: usize,
        #[arg(long, default_value_t = 5)]
        reps: usize,
        /// The core build (f32 tiles, reductions through workgroup memory) even where the
        /// adapter has f16 and subgroup operations.
        #[arg(long)]
        core: bool,
        #[arg(long)]
        json: bool,
    },
    /// UI frame times of the real window (run it under a display, e.g. xvfb-run) while it
    /// indexes a generated corpus (with the global --embedder) and then answers a question (with
    /// the global --llm).
    Ui {
        #[arg(long, default_value_t = 20)]
        size_mb: usize,
        #[arg(
            long,
            default_value = "How do you revive a neglected sourdough starter?"
        )]
        question: String,
        #[arg(long, default_value_t = 64)]
        max_tokens: usize,
    },
    /// Embedding-space pictures: the time PCA and UMAP take for `--points` synthetic clustered
    /// vectors and, with `--window` (run it under a display), the window's frame times while
    /// the pointer pans, zooms and hovers over the picture for `--frames` frames.
    Space {
        #[arg(long, default_value_t = 100_000)]
        points: usize,
        #[arg(long, default_value_t = 384)]
        dims: usize,
        /// Also time UMAP (minutes at 100,000 points on two cores).
        #[arg(long)]
        umap: bool,
        #[arg(long)]
        window: bool,
        #[arg(long, default_value_t = 600)]
        frames: usize,
    },
    /// hit@1/hit@5 of each keyword analyzer on a labelled Korean question set.
    Tokenizers {
        #[arg(long, default_value = "tests/data/ko-corpus")]
        corpus: PathBuf,
        #[arg(long, default_value = "tests/data/ko-queries.tsv")]
        queries: PathBuf,
    },
}

fn print_frames(report: &FrameReport) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string(report)?);
    println!(
        "| phase | frames | seconds | CPU p50 ms | CPU p95 ms | CPU max ms | interval p95 ms |\n|---|---|---|---|---|---|---|"
    );
    for (name, p) in report.phases() {
        println!(
            "| {name} | {} | {:.1} | {:.2} | {:.2} | {:.2} | {:.1} |",
            p.frames, p.seconds, p.cpu_p50_ms, p.cpu_p95_ms, p.cpu_max_ms, p.interval_p95_ms
        );
    }
    Ok(())
}

fn print_attention(r: &bench::attention::AttentionBench) {
    println!(
        "{} ({}), kernels {}; {} heads over {} KV heads of {} dims",
        r.adapter,
        if r.software { "software" } else { "hardware" },
        r.variant,
        r.n_head,
        r.n_kv_head,
        r.head_dim
    );
    println!(
        "round trip of one small call (dispatch, wait, read back): {:.0} us; with its buffers made anew, as the engine calls it: {:.0} us",
        r.round_trip_us, r.call_us
    );
    println!(
        "| mode | seq | flash ms | naive ms | naive / flash | flash memory MiB | naive memory MiB | naive scores MiB | naive vs flash |\n|---|---|---|---|---|---|---|---|---|"
    );
    let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
    let ms = |t: &bench::attention::KernelTiming| match (t.ms, &t.error) {
        (Some(ms), _) => format!("{ms:.2}"),
        (None, Some(e)) => format!("does not run: {e}"),
        (None, None) => "-".into(),
    };
    for c in &r.cases {
        let ratio = match (c.flash.ms, c.naive.ms) {
            (Some(f), Some(n)) => format!("{:.2}x", n / f),
            _ => "-".into(),
        };
        let agreement = c
            .naive
            .relative_difference
            .map_or("-".into(), |d| format!("{d:.1e}"));
        println!(
            "| {} | {} | {} | {} | {ratio} | {:.2} | {:.2} | {:.1} | {agreement} |",
            c.mode,
            c.seq,
            ms(&c.flash),
            ms(&c.naive),
            mib(c.flash.total_bytes),
            mib(c.naive.total_bytes),
            mib(c.naive.scratch_bytes),
        );
    }
}

fn work_dir(given: Option<PathBuf>) -> anyhow::Result<(PathBuf, Option<tempfile::TempDir>)> {
    match given {
        Some(dir) => Ok((dir, None)),
        None => {
            let tmp = tempfile::tempdir()?;
            Ok((tmp.path().to_owned(), Some(tmp)))
        }
    }
}

pub async fn run(
    command: BenchCommand,
    embedder: Option<&str>,
    llm: &super::llm::LlmFlags,
) -> anyhow::Result<ExitCode> {
    match command {
        BenchCommand::Llm {
            busy_core,
            prompt_tokens,
            decode_tokens,
            json,
        } => {
            let _busy = busy_core.then(|| bench::llm::BusyCore::start(0));
            let mut engine = llm.engine()?;
            let opts = bench::llm::LlmBenchOptions {
                prompt_tokens,
                decode_tokens,
                ..Default::default()
            };
            let r = bench::llm::llm(&mut engine, &opts)?;
            if json {
                println!("{}", serde_json::to_string(&r)?);
            } else {
                println!("model              {}", r.model);
                println!(
                    "threads            {} (attention: {})",
                    r.threads, r.attention
                );
                println!(
                    "prompt processing  {:.1} tokens/s ({} tokens)",
                    r.prompt_tokens_per_s, r.prompt_tokens
                );
                println!(
                    "decode             {:.1} tokens/s ({} tokens)",
                    r.decode_tokens_per_s, r.decode_tokens
                );
                println!(
                    "batch of 8 decode  {:.1} tokens/s in total ({:.2}x one sequence)",
                    r.batch8_tokens_per_s, r.batch8_speedup
                );
                println!(
                    "time to 1st token  {:.3} s, then {:.3} s for a second question over the same sources",
                    r.first_question_ttft_s, r.second_question_ttft_s
                );
                println!("peak RSS           {:.0} MB", r.peak_rss_bytes as f64 / 1e6);
                println!(
                    "weights read       {:.1} GB/s while decoding; a plain read loop: {:.1} GB/s",
                    r.decode_weight_read_gb_per_s, r.memory_read_gb_per_s
                );
            }
        }
        BenchCommand::Attention {
            seq,
            heads,
            kv_heads,
            head_dim,
            reps,
            core,
            json,
        } => {
            let ctx = glassbox::gpu::GpuContext::new(glassbox::gpu::AdapterChoice::AllowSoftware)?;
            let opts = bench::attention::AttentionBenchOptions {
                seqs: seq,
                n_head: heads,
                n_kv_head: kv_heads,
                head_dim,
                reps,
                variant: core.then(|| glassbox::gpu::variant::Variant::core(&ctx)),
                ..Default::default()
            };
            let r = bench::attention::attention(&ctx, &opts)?;
            if json {
                println!("{}", serde_json::to_string(&r)?);
            } else {
                print_attention(&r);
            }
        }
        BenchCommand::Vectors { work_dir, queries } => {
            let mut library = Library::open(&work_dir.join("library")).await?;
            let active = glassbox::models::active::embedder(&library, embedder).await?;
            library.set_embedder(active);
            let report = bench::vectors(&library, queries).await?;
            println!("{}", serde_json::to_string(&report)?);
            println!(
                "{} chunks x {} dims ({} synthetic vectors): load {:.2} s, {:.0} MB of vectors, RSS {:.0} -> {:.0} MB",
                report.chunks,
                report.dims,
                report.synthetic_vectors,
                report.load_seconds,
                report.vector_memory_mb,
                report.rss_before_mb.unwrap_or(f64::NAN),
                report.rss_after_mb.unwrap_or(f64::NAN)
            );
            println!(
                "vector top-10 p50 {:.2} ms p95 {:.2} ms; hybrid p50 {:.2} ms p95 {:.2} ms (query embedding p50 {:.2} ms)",
                report.vector_top10.p50_ms,
                report.vector_top10.p95_ms,
                report.hybrid.p50_ms,
                report.hybrid.p95_ms,
                report.embed_query.p50_ms
            );
            library.close().await;
        }
        BenchCommand::Ingest {
            size_mb,
            work_dir: dir,
        } => {
            let (dir, _tmp) = work_dir(dir)?;
            let corpus = dir.join("corpus");
            if !corpus.exists() {
                bench::corpus::generate(&corpus, size_mb << 20, 42)?;
            }
            let report = bench::ingest(&corpus, &dir.join("library")).await?;
            let mb = report.bytes as f64 / 1e6;
            println!("{}", serde_json::to_string(&report)?);
            println!(
                "cold: {} files, {:.1} MB, {} chunks in {:.2} s = {:.2} MB/s, {:.0} files/s",
                report.files,
                mb,
                report.chunks,
                report.cold_seconds,
                mb / report.cold_seconds,
                report.files as f64 / report.cold_seconds
            );
            println!(
                "extraction + chunking alone (no storage): {:.2} s = {:.2} MB/s",
                report.extract_seconds,
                mb / report.extract_seconds
            );
            println!(
                "of which SQLite writes {:.2} s ({:.0}%), keyword index {:.2} s ({:.0}%)",
                report.catalog_seconds,
                100.0 * report.catalog_seconds / report.cold_seconds,
                report.index_seconds,
                100.0 * report.index_seconds / report.cold_seconds
            );
            println!(
                "incremental (nothing changed): {:.3} s = {:.1}% of cold; peak RSS {:.0} MB",
                report.incremental_seconds,
                100.0 * report.incremental_seconds / report.cold_seconds,
                report.peak_rss_mb.unwrap_or(f64::NAN)
            );
        }
        BenchCommand::Query {
            chunks,
            queries,
            work_dir: dir,
        } => {
            let (dir, _tmp) = work_dir(dir)?;
            let library = Library::open(&dir.join("library")).await?;
            // Generate in rounds, sizing each from the chunks per byte seen so far.
            let mut generated = 0usize;
            let mut round = 0u64;
            loop {
                let have = library.search_index().num_chunks() as usize;
                if have >= chunks {
                    break;
                }
                let size = if have == 0 {
                    16 << 20
                } else {
                    ((chunks - have) as f64 * generated as f64 / have as f64 * 1.05) as usize
                        + (64 << 10)
                };
                let corpus = dir.join(format!("corpus-{round}"));
                bench::corpus::generate(&corpus, size, round)?;
                generated += size;
                round += 1;
                library
                    .index(&[corpus], &IndexOptions::default(), &|_| {})
                    .await?;
                eprintln!("{} chunks so far", library.search_index().num_chunks());
            }
            let report = bench::query(&library, queries, 7).await?;
            println!("{}", serde_json::to_string(&report)?);
            println!(
                "{} chunks, {} queries: BM25 p50 {:.2} ms, p95 {:.2} ms; full search p50 {:.2} ms, p95 {:.2} ms",
                report.chunks,
                report.queries,
                report.bm25.p50_ms,
                report.bm25.p95_ms,
                report.full_search.p50_ms,
                report.full_search.p95_ms
            );
            library.close().await;
        }
        BenchCommand::Embed {
            model,
            tokens,
            chunks,
        } => {
            let report = bench::embedding(&model, tokens, chunks)?;
            println!("{}", serde_json::to_string(&report)?);
            println!(
                "{} chunks of {} tokens, batch {}, {} threads: {:.2} s = {:.1} chunks/s",
                report.chunks,
                report.tokens,
                report.batch,
                report.threads,
                report.seconds,
                report.chunks_per_second
            );
        }
        BenchCommand::Rerank {
            model,
            tokens,
            candidates,
        } => {
            let report = bench::reranking(&model, tokens, candidates)?;
            println!("{}", serde_json::to_string(&report)?);
            println!(
                "{} candidates of {} tokens: {:.0} ms (median of {} runs)",
                report.candidates, report.tokens, report.median_ms, report.runs
            );
        }
        BenchCommand::Ui {
            size_mb,
            question,
            max_tokens,
        } => {
            let work = tempfile::tempdir()?;
            let (corpus, data) = (work.path().join("corpus"), work.path().join("data"));
            bench::corpus::generate(&corpus, size_mb * 1_000_000, 7)?;
            if let Some(embedder) = embedder {
                let library = glassbox::Library::open(&data).await?;
                library.catalog().set_setting("embedder", embedder).await?;
                library.close().await;
            }
            let settings = glassbox::app::Settings {
                llm: llm
                    .llm
                    .as_ref()
                    .and_then(|_| super::llm::resolve(llm.llm.as_deref()).ok()),
                max_tokens,
                lang: glassbox::app::Lang::En,
                ..Default::default()
            };
            let script = Script::IndexAndAnswer { corpus, question };
            let report = glassbox::app::bench::run(data, script, settings)
                .map_err(|e| anyhow::anyhow!(e))?;
            print_frames(&report)?;
        }
        BenchCommand::Space {
            points,
            dims,
            umap,
            window,
            frames,
        } => {
            let methods: &[Method] = if umap {
                &[Method::Pca, Method::Umap]
            } else {
                &[Method::Pca]
            };
            let mut last = None;
            for &method in methods {
                let (time, space) = bench::space::projection(points, dims, method)?;
                println!("{}", serde_json::to_string(&time)?);
                println!(
                    "{}: {} points of {} dimensions in {:.1} s",
                    time.method, time.points, time.dims, time.seconds
                );
                last = space;
            }
            if let (true, Some(space)) = (window, last) {
                let work = tempfile::tempdir()?;
                let script = Script::Explore {
                    space: std::sync::Arc::new(space),
                    frames,
                };
                let settings = glassbox::app::Settings {
                    lang: glassbox::app::Lang::En,
                    ..Default::default()
                };
                let report = glassbox::app::bench::run(work.path().join("data"), script, settings)
                    .map_err(|e| anyhow::anyhow!(e))?;
                print_frames(&report)?;
            }
        }
        BenchCommand::Tokenizers { corpus, queries } => {
            let questions = glassbox::retrieve::eval::read_qrels(&queries)?;
            println!(
                "| analyzer | questions | hit@1 | hit@5 | MRR@10 | nDCG@10 |\n|---|---|---|---|---|---|"
            );
            for analyzer in Analyzer::ALL {
                let tmp = tempfile::tempdir()?;
                let score =
                    bench::score_analyzer(analyzer, &corpus, &questions, tmp.path()).await?;
                let m = score.metrics;
                println!(
                    "| {} | {} | {:.3} | {:.3} | {:.3} | {:.3} |",
                    analyzer.name(),
                    score.questions,
                    m.hit_at_1,
                    m.hit_at_5,
                    m.mrr_at_10,
                    m.ndcg_at_10
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
