//! Grounded answers (RAG): retrieve passages for a question, build a prompt that numbers them,
//! stream the model's answer, and read back which sources it cited.

pub mod cache;
pub mod prompt;

pub use cache::LlmCacheUse;

pub use prompt::{PromptPlan, Source, citations};

use std::sync::atomic::AtomicBool;
use std::time::Instant;

use serde::Serialize;

use crate::Library;
use crate::error::Result;
use crate::llm::kv::CacheStats;
use crate::llm::model::AttnRecord;
use crate::llm::{
    CaptureSpec, Engine, GenerateRequest, Generation, Message, SamplingParams, StopReason,
};
use crate::retrieve::{SearchOptions, SearchTrace};

#[derive(Clone, Debug)]
pub struct AskOptions {
    /// Passages put in the prompt (at most; fewer when the window is small).
    pub sources: usize,
    pub search: SearchOptions,
    pub max_tokens: usize,
    pub sampling: SamplingParams,
    pub capture: CaptureSpec,
    /// Give an answer already generated for the same prompt and settings (the LLM cache), and
    /// keep new answers there.
    pub cache: bool,
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
            cache: true,
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
    /// Whether the answer came from the LLM cache.
    pub llm_cache: LlmCacheUse,
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

/// Answer `question` after `history`, retrieving first. With `opts.cache`, an answer already
/// generated for the same prompt and settings comes from the LLM cache instead of the model.
/// Generation runs on the calling thread (call from a background thread or `spawn_blocking` in
/// interactive programs).
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
    let prompt = Prompt::build(engine, history, question, sources, trace, opts)?;
    let mut answer = if opts.cache {
        cache::answer(library.catalog(), engine, prompt, cancel, on_text).await?
    } else {
        prompt.generate(engine, cancel, on_text)?
    };
    answer.timings.retrieve_s = retrieve_s;
    answer.timings.first_token_s += retrieve_s;
    Ok(answer)
}

/// A question's prompt, built from its retrieved sources, and the request to generate from it.
pub struct Prompt {
    question: String,
    plan: PromptPlan,
    trace: SearchTrace,
    request: GenerateRequest,
    /// Seconds building the prompt took.
    prompt_s: f64,
}

impl Prompt {
    pub fn build(
        engine: &Engine,
        history: &[Message],
        question: &str,
        sources: Vec<Source>,
        trace: SearchTrace,
        opts: &AskOptions,
    ) -> Result<Prompt> {
        let start = Instant::now();
        let window = engine.window();
        let max_tokens = opts.max_tokens.min(window / 2);
        let plan = prompt::build(engine, history, question, sources, window - max_tokens)?;
        let request = GenerateRequest {
            prompt: plan.ids.clone(),
            sampling: opts.sampling.clone(),
            max_tokens,
            stop: vec![],
            capture: opts.capture.clone(),
        };
        Ok(Prompt {
            question: question.to_owned(),
            plan,
            trace,
            request,
            prompt_s: start.elapsed().as_secs_f64(),
        })
    }

    /// Runs the model.
    pub fn generate(
        self,
        engine: &mut Engine,
        cancel: Option<&AtomicBool>,
        on_text: &mut dyn FnMut(&str),
    ) -> Result<Answer> {
        let Generation {
            ids,
            text,
            stop,
            timings: t,
            attention,
            token_times,
            cache,
        } = engine.generate(&self.request, cancel, on_text)?;
        let mut answer = self.answer(engine, text, ids, stop);
        answer.timings.prefill_s = t.prefill_s;
        answer.timings.first_token_s += t.prefill_s;
        answer.timings.cached_tokens = t.cached_tokens;
        answer.timings.decode_tokens_per_s = t.decode_tokens_per_s();
        answer.attention = attention;
        answer.token_times = token_times;
        answer.cache = cache;
        Ok(answer)
    }

    /// The answer to this prompt with `text` (and its token `ids`), before any timing of the
    /// model: what a generated and a cached answer have in common.
    fn answer(self, engine: &Engine, text: String, ids: Vec<u32>, stop: StopReason) -> Answer {
        Answer {
            question: self.question,
            citations: citations(&text, self.plan.sources.len()),
            notes: self.plan.notes(),
            timings: AnswerTimings {
                rerank_s: self.trace.timings.rerank_ms / 1000.0,
                prompt_s: self.prompt_s,
                first_token_s: self.prompt_s,
                prompt_tokens: self.plan.prompt_tokens,
                answer_tokens: ids.len(),
                ..AnswerTimings::default()
            },
            text,
            stop,
            model: engine.model.config.name.clone(),
            plan: self.plan,
            trace: self.trace,
            attention: Vec::new(),
            ids,
            token_times: Vec::new(),
            cache: engine.cache_stats(),
            llm_cache: LlmCacheUse::Off,
        }
    }
}
