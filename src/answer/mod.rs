//! Grounded answers (RAG): retrieve passages for a question, build a prompt that numbers them,
//! stream the model's answer, and read back which sources it cited.

pub mod prompt;

pub use prompt::{PromptPlan, Source, citations};

use std::sync::atomic::AtomicBool;
use std::time::Instant;

use serde::Serialize;

use crate::Library;
use crate::error::Result;
use crate::llm::kv::CacheStats;
use crate::llm::model::AttnRecord;
use crate::llm::{CaptureSpec, Engine, GenerateRequest, Message, SamplingParams, StopReason};
use crate::retrieve::{SearchOptions, SearchTrace};

#[derive(Clone, Debug)]
pub struct AskOptions {
    /// Passages put in the prompt (at most; fewer when the window is small).
    pub sources: usize,
    pub search: SearchOptions,
    pub max_tokens: usize,
    pub sampling: SamplingParams,
    pub capture: CaptureSpec,
}

impl Default for AskOptions {
    fn default() -> Self {
        Self {
            sources: 5,
            search: SearchOptions::default(),
            max_tokens: 512,
            sampling: SamplingParams {
                temperature: 0.2,
                ..SamplingParams::default()
            },
            capture: CaptureSpec::default(),
        }
    }
}

/// Where the time to the first token went.
#[derive(Clone, Debug, Default, Serialize)]
pub struct AnswerTimings {
    pub retrieve_s: f64,
    /// Part of `retrieve_s` spent re-ranking.
    pub rerank_s: f64,
    pub prompt_s: f64,
    pub prefill_s: f64,
    /// From the question to the first answer token.
    pub first_token_s: f64,
    pub prompt_tokens: usize,
    pub cached_tokens: usize,
    pub answer_tokens: usize,
    pub decode_tokens_per_s: f64,
}

#[derive(Clone, Debug, Serialize)]
pub struct Answer {
    pub question: String,
    pub text: String,
    /// Source numbers the answer cites, in order of first citation.
    pub citations: Vec<usize>,
    pub plan: PromptPlan,
    /// Messages about trimming the prompt, to show with the answer.
    pub notes: Vec<String>,
    pub stop: StopReason,
    pub model: String,
    pub timings: AnswerTimings,
    pub trace: SearchTrace,
    #[serde(skip)]
    pub attention: Vec<AttnRecord>,
    /// The answer's token ids, as generated.
    #[serde(skip)]
    pub ids: Vec<u32>,
    /// Seconds from the start of generation to each answer token.
    #[serde(skip)]
    pub token_times: Vec<f32>,
    /// The KV cache at the answer's last token.
    pub cache: CacheStats,
}

/// Retrieve passages for `question` (the library's best mode: hybrid+rerank when it can).
pub async fn retrieve(
    library: &Library,
    question: &str,
    opts: &AskOptions,
) -> Result<(Vec<Source>, SearchTrace)> {
    let search = SearchOptions {
        k: opts.sources,
        ..opts.search
    };
    let response = library.search(question, &search).await?;
    let sources = response
        .results
        .into_iter()
        .enumerate()
        .map(|(i, r)| Source {
            n: i + 1,
            chunk: r.chunk,
            score: r.score,
        })
        .collect();
    Ok((sources, response.trace))
}

/// Answer `question` after `history`, retrieving first. Generation runs on the calling thread
/// (call from a background thread or `spawn_blocking` in interactive programs).
pub async fn ask(
    library: &Library,
    engine: &mut Engine,
    history: &[Message],
    question: &str,
    opts: &AskOptions,
    cancel: Option<&AtomicBool>,
    on_text: &mut dyn FnMut(&str),
) -> Result<Answer> {
    let start = Instant::now();
    let (sources, trace) = retrieve(library, question, opts).await?;
    let retrieve_s = start.elapsed().as_secs_f64();
    let mut answer = generate(
        engine, history, question, sources, trace, opts, cancel, on_text,
    )?;
    answer.timings.retrieve_s = retrieve_s;
    answer.timings.first_token_s += retrieve_s;
    Ok(answer)
}

/// Build the prompt from already retrieved `sources` and generate the answer.
#[allow(clippy::too_many_arguments)]
pub fn generate(
    engine: &mut Engine,
    history: &[Message],
    question: &str,
    sources: Vec<Source>,
    trace: SearchTrace,
    opts: &AskOptions,
    cancel: Option<&AtomicBool>,
    on_text: &mut dyn FnMut(&str),
) -> Result<Answer> {
    let start = Instant::now();
    let window = engine.window();
    let max_tokens = opts.max_tokens.min(window / 2);
    let plan = prompt::build(engine, history, question, sources, window - max_tokens)?;
    let prompt_s = start.elapsed().as_secs_f64();
    let req = GenerateRequest {
        prompt: plan.ids.clone(),
        sampling: opts.sampling.clone(),
        max_tokens,
        stop: vec![],
        capture: opts.capture.clone(),
    };
    let generation = engine.generate(&req, cancel, on_text)?;
    let t = &generation.timings;
    Ok(Answer {
        question: question.to_owned(),
        citations: citations(&generation.text, plan.sources.len()),
        notes: plan.notes(),
        timings: AnswerTimings {
            retrieve_s: 0.0,
            rerank_s: trace.timings.rerank_ms / 1000.0,
            prompt_s,
            prefill_s: t.prefill_s,
            first_token_s: prompt_s + t.prefill_s,
            prompt_tokens: t.prompt_tokens,
            cached_tokens: t.cached_tokens,
            answer_tokens: generation.ids.len(),
            decode_tokens_per_s: t.decode_tokens_per_s(),
        },
        text: generation.text,
        stop: generation.stop,
        model: engine.model.config.name.clone(),
        plan,
        trace,
        attention: generation.attention,
        ids: generation.ids,
        token_times: generation.token_times,
        cache: generation.cache,
    })
}
