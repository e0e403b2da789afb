//! `glassbox tokenize | generate | ask | chat`: the language model from the command line.

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::Args;
use glassbox::Library;
use glassbox::answer::{self, Answer, AskOptions, LlmCacheUse};
use glassbox::llm::tokenizer::LlmTokenizer;
use glassbox::llm::{
    AttentionKind, CaptureSpec, Engine, EngineOptions, GenerateRequest, Message, Role,
    SamplingParams,
};
use glassbox::models::{self, Hub};

/// Global flags choosing and running the language model.
#[derive(Args, Clone)]
pub struct LlmFlags {
    /// Language model: a .gguf file or a known id (`glassbox models list`).
    #[arg(long, global = true, value_name = "PATH.gguf|ID")]
    pub llm: Option<String>,
    /// Attention implementation.
    #[arg(long, global = true, value_enum, default_value_t)]
    pub attention: AttentionKind,
    /// Compute threads for the model (default: all cores).
    #[arg(long, global = true)]
    pub threads: Option<usize>,
}

impl LlmFlags {
    pub fn engine(&self) -> anyhow::Result<Engine> {
        let path = resolve(self.llm.as_deref())?;
        let options = EngineOptions {
            threads: self.threads,
            attention: self.attention,
            ..EngineOptions::default()
        };
        let engine =
            Engine::load(&path, &options).with_context(|| format!("loading {}", path.display()))?;
        for notice in [engine.attention_notice(), engine.quant_notice()]
            .into_iter()
            .flatten()
        {
            eprintln!("note: {notice}");
        }
        Ok(engine)
    }
}

/// The GGUF file for `--llm`: a file, a folder holding one, or a downloaded known model;
/// without the flag, the default model if downloaded, else any downloaded one.
pub fn resolve(choice: Option<&str>) -> anyhow::Result<PathBuf> {
    let hub = Hub::from_env();
    let in_cache = |spec: &models::ModelSpec| {
        hub.cached_dir(spec)
            .map(|dir| dir.join(&spec.files[0].name))
    };
    let Some(choice) = choice else {
        let mut known: Vec<_> = models::known()
            .into_iter()
            .filter(|m| m.role == models::Role::Llm)
            .collect();
        known.sort_by_key(|m| !m.default);
        return known.iter().find_map(in_cache).ok_or_else(|| {
            anyhow::anyhow!(
                "no language model: pass --llm PATH.gguf, or run `glassbox models download {}`",
                known.first().map_or("ID", |m| m.id.as_str())
            )
        });
    };
    let path = Path::new(choice);
    if path.is_file() {
        return Ok(path.to_owned());
    }
    if path.is_dir() {
        let ggufs: Vec<PathBuf> = std::fs::read_dir(path)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "gguf"))
            .collect();
        if let [one] = ggufs.as_slice() {
            return Ok(one.clone());
        }
        bail!(
            "{} holds {} .gguf files; name one",
            path.display(),
            ggufs.len()
        );
    }
    let spec = models::find(choice)?;
    in_cache(&spec).ok_or_else(|| {
        anyhow::anyhow!("{choice} is not downloaded; run `glassbox models download {choice}`")
    })
}

#[derive(Args)]
pub struct TokenizeArgs {
    pub text: String,
    /// One JSON object: {"ids": [...], "pieces": [...]}.
    #[arg(long)]
    pub json: bool,
}

/// Token ids and pieces; needs only the vocabulary, so vocab-only GGUF files work.
pub fn tokenize(flags: &LlmFlags, args: &TokenizeArgs) -> anyhow::Result<ExitCode> {
    let path = resolve(flags.llm.as_deref())?;
    let gguf = glassbox::llm::gguf::Gguf::open(&path)?;
    let tokenizer = LlmTokenizer::from_gguf(&gguf)?;
    let mut ids = Vec::new();
    if tokenizer.add_bos
        && let Some(bos) = tokenizer.bos
    {
        ids.push(bos);
    }
    ids.extend(tokenizer.encode(&args.text, true)?);
    let pieces: Vec<String> = ids.iter().map(|&id| tokenizer.piece(id)).collect();
    if args.json {
        println!("{}", serde_json::json!({ "ids": ids, "pieces": pieces }));
    } else {
        println!("{} tokens", ids.len());
        for (id, piece) in ids.iter().zip(&pieces) {
            println!("{id:>8}  {piece:?}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(Args)]
pub struct GenerateArgs {
    #[arg(long)]
    pub prompt: String,
    #[arg(long, default_value_t = 256)]
    pub max_tokens: usize,
    /// 0 is greedy.
    #[arg(long, default_value_t = 0.0)]
    pub temperature: f32,
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    #[arg(long, default_value_t = 40)]
    pub top_k: usize,
    #[arg(long, default_value_t = 0.95)]
    pub top_p: f32,
    #[arg(long, default_value_t = 0.05)]
    pub min_p: f32,
    #[arg(long, default_value_t = 1.0)]
    pub repetition_penalty: f32,
    /// Stop when this text appears (repeatable).
    #[arg(long)]
    pub stop: Vec<String>,
    /// Use the prompt as it is, without the chat template.
    #[arg(long)]
    pub raw: bool,
}

/// Only the generated text goes to stdout, streamed.
pub fn generate(flags: &LlmFlags, args: &GenerateArgs) -> anyhow::Result<ExitCode> {
    let mut engine = flags.engine()?;
    let prompt = if args.raw {
        engine.tokenizer.encode_prompt(&args.prompt)?
    } else {
        engine.chat_prompt(&[Message::new(Role::User, args.prompt.clone())])?
    };
    let req = GenerateRequest {
        prompt,
        sampling: SamplingParams {
            temperature: args.temperature,
            top_k: args.top_k,
            top_p: args.top_p,
            min_p: args.min_p,
            repetition_penalty: args.repetition_penalty,
            seed: args.seed,
            ..SamplingParams::default()
        },
        max_tokens: args.max_tokens,
        stop: args.stop.clone(),
        capture: CaptureSpec::default(),
    };
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let generation = engine.generate(&req, None, &mut |text| {
        out.write_all(text.as_bytes()).ok();
        out.flush().ok();
    })?;
    writeln!(out)?;
    let t = &generation.timings;
    eprintln!(
        "[{} prompt tokens in {:.2} s, {} tokens at {:.1} tokens/s, stop: {:?}]",
        t.prompt_tokens,
        t.prefill_s,
        generation.ids.len(),
        t.decode_tokens_per_s(),
        generation.stop
    );
    Ok(ExitCode::SUCCESS)
}

#[derive(Args)]
pub struct AskArgs {
    pub question: String,
    /// Print one JSON object (answer, citations, sources, timings) instead of streaming.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub answer: AnswerArgs,
}

/// How answers are made (`ask` and `chat`).
#[derive(Args)]
pub struct AnswerArgs {
    /// Sources to put in the prompt.
    #[arg(short, long, default_value_t = 5)]
    pub k: usize,
    #[arg(long, default_value_t = 512)]
    pub max_tokens: usize,
    #[arg(long, default_value_t = 0.2)]
    pub temperature: f32,
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Always run the model: neither give nor keep answers in the LLM cache.
    #[arg(long)]
    pub no_cache: bool,
}

impl AnswerArgs {
    fn options(&self) -> AskOptions {
        AskOptions {
            sources: self.k,
            max_tokens: self.max_tokens,
            sampling: SamplingParams {
                temperature: self.temperature,
                seed: self.seed,
                ..SamplingParams::default()
            },
            cache: !self.no_cache,
            ..AskOptions::default()
        }
    }
}

pub async fn ask(library: &Library, flags: &LlmFlags, args: &AskArgs) -> anyhow::Result<ExitCode> {
    let mut engine = flags.engine()?;
    let answer = ask_once(
        library,
        &mut engine,
        &[],
        &args.question,
        &args.answer.options(),
        args.json,
    )
    .await?;
    if args.json {
        println!("{}", serde_json::to_string(&answer_json(&answer))?);
    }
    Ok(ExitCode::SUCCESS)
}

async fn ask_once(
    library: &Library,
    engine: &mut Engine,
    history: &[Message],
    question: &str,
    opts: &AskOptions,
    quiet: bool,
) -> anyhow::Result<Answer> {
    let stdout = std::io::stdout();
    let answer = tokio::task::block_in_place(|| {
        let handle = tokio::runtime::Handle::current();
        let mut out = stdout.lock();
        handle.block_on(answer::ask(
            library,
            engine,
            history,
            question,
            opts,
            None,
            &mut |t| {
                if !quiet {
                    out.write_all(t.as_bytes()).ok();
                    out.flush().ok();
                }
            },
        ))
    })?;
    if !quiet {
        print_sources(&answer);
    }
    Ok(answer)
}

fn print_sources(answer: &Answer) {
    println!();
    for note in &answer.notes {
        println!("({note})");
    }
    if let LlmCacheUse::Hit { generation_s, .. } = answer.llm_cache {
        println!("(From the LLM cache: generating this answer took {generation_s:.1} s.)");
    }
    if answer.plan.sources.is_empty() {
        println!("\nNo passages in the library matched the question.");
        return;
    }
    println!("\nSources:");
    for s in &answer.plan.sources {
        let mark = if answer.citations.contains(&s.n) {
            "*"
        } else {
            " "
        };
        println!("{mark}[{}] {} ({})", s.n, s.chunk.title, s.location());
    }
    let t = &answer.timings;
    eprintln!(
        "[first token after {:.2} s: retrieve {:.2} s (rerank {:.2} s), prefill {:.2} s of {} tokens ({} cached); {:.1} tokens/s]",
        t.first_token_s,
        t.retrieve_s,
        t.rerank_s,
        t.prefill_s,
        t.prompt_tokens,
        t.cached_tokens,
        t.decode_tokens_per_s
    );
}

fn answer_json(answer: &Answer) -> serde_json::Value {
    let sources: Vec<serde_json::Value> = answer
        .plan
        .sources
        .iter()
        .map(|s| {
            serde_json::json!({
                "n": s.n,
                "path": s.chunk.path,
                "title": s.chunk.title,
                "heading": s.chunk.heading,
                "page": s.chunk.page,
                "lines": [s.chunk.lines.0, s.chunk.lines.1],
                "chunk_id": s.chunk.chunk_id,
                "score": s.score,
                "cited": answer.citations.contains(&s.n),
            })
        })
        .collect();
    serde_json::json!({
        "question": answer.question,
        "answer": answer.text,
        "citations": answer.citations,
        "sources": sources,
        "dropped_sources": answer.plan.dropped_sources.len(),
        "dropped_messages": answer.plan.dropped_messages,
        "notes": answer.notes,
        "stop": answer.stop,
        "llm_cache": answer.llm_cache,
        "model": answer.model,
        "timings": answer.timings,
        "mode": answer.trace.mode,
    })
}

#[derive(Args)]
pub struct ChatArgs {
    /// Continue this chat (see --list); default: a new chat.
    #[arg(long)]
    pub id: Option<i64>,
    /// List chats and exit.
    #[arg(long)]
    pub list: bool,
    /// Send this one message and exit (otherwise read messages from stdin, one per line).
    #[arg(long)]
    pub message: Option<String>,
    #[command(flatten)]
    pub answer: AnswerArgs,
}

/// A conversation kept in the library's database; each question retrieves again.
pub async fn chat(
    library: &Library,
    flags: &LlmFlags,
    args: &ChatArgs,
) -> anyhow::Result<ExitCode> {
    let catalog = library.catalog();
    if args.list {
        for c in catalog.chats().await? {
            println!("{:>5}  {:>3} messages  {}", c.id, c.messages, c.title);
        }
        return Ok(ExitCode::SUCCESS);
    }
    if let Some(id) = args.id
        && !catalog.chats().await?.iter().any(|c| c.id == id)
    {
        bail!("there is no chat {id}; `glassbox chat --list` shows the chats");
    }
    let mut engine = flags.engine()?;
    let opts = args.answer.options();
    let mut chat_id = args.id;
    let questions: Box<dyn Iterator<Item = String>> = match &args.message {
        Some(m) => Box::new(std::iter::once(m.clone())),
        None => Box::new(std::io::stdin().lock().lines().map_while(Result::ok)),
    };
    for question in questions {
        let question = question.trim().to_owned();
        if question.is_empty() {
            continue;
        }
        let id = match chat_id {
            Some(id) => id,
            None => {
                let title: String = question.chars().take(60).collect();
                let id = catalog.create_chat(&title).await?;
                eprintln!("[chat {id}]");
                chat_id = Some(id);
                id
            }
        };
        let history = catalog.messages(id).await?;
        let answer = ask_once(library, &mut engine, &history, &question, &opts, false).await?;
        catalog.record_turn(id, &question, &answer).await?;
    }
    Ok(ExitCode::SUCCESS)
}
