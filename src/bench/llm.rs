//! `glassbox bench llm`: prompt processing and decode speed, batched decoding, the prefix
//! cache's effect on time to first token, and decode speed with a core kept busy.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use serde::Serialize;

use crate::llm::model::SeqStep;
use crate::llm::{CaptureSpec, Engine, GenerateRequest, LlmResult, Message, Role, SamplingParams};

#[derive(Clone, Debug, Serialize)]
pub struct LlmBench {
    pub model: String,
    pub threads: usize,
    pub attention: String,
    pub prompt_tokens: usize,
    pub prompt_tokens_per_s: f64,
    pub decode_tokens: usize,
    pub decode_tokens_per_s: f64,
    /// Aggregate tokens/s of 8 sequences decoding together, and that over one sequence's.
    pub batch8_tokens_per_s: f64,
    pub batch8_speedup: f64,
    /// Time to first token of a question, and of a second one over the same system prompt and
    /// sources (their blocks come from the prefix cache).
    pub first_question_ttft_s: f64,
    pub second_question_ttft_s: f64,
    pub peak_rss_bytes: u64,
    /// Bytes of weights read per decoded token, and the rate that makes at the decode speed.
    pub weight_bytes_per_token: usize,
    pub decode_weight_read_gb_per_s: f64,
    /// What a plain summing loop reads per second on the same number of threads: how close
    /// decoding is to being memory-bound.
    pub memory_read_gb_per_s: f64,
}

/// Options of one benchmark run.
pub struct LlmBenchOptions {
    pub prompt_tokens: usize,
    pub decode_tokens: usize,
    pub repeats: usize,
}

impl Default for LlmBenchOptions {
    fn default() -> Self {
        Self {
            prompt_tokens: 512,
            decode_tokens: 128,
            repeats: 3,
        }
    }
}

pub fn llm(engine: &mut Engine, opts: &LlmBenchOptions) -> LlmResult<LlmBench> {
    // The decode runs start from the first 16 prompt tokens.
    let prompt = filler_tokens(engine, opts.prompt_tokens.max(16))?;
    let prefill = median(
        (0..opts.repeats)
            .map(|_| time_prefill(engine, &prompt))
            .collect::<LlmResult<_>>()?,
    );
    let decode = median(
        (0..opts.repeats)
            .map(|_| decode_rate(engine, &prompt[..16], opts.decode_tokens, 1))
            .collect::<LlmResult<_>>()?,
    );
    // The same steps as the single sequence, so that both attend over the same lengths.
    let batch8 = decode_rate(engine, &prompt[..16], opts.decode_tokens, 8)?;
    let (first, second) = prefix_cache_ttft(engine)?;
    Ok(LlmBench {
        model: engine.path().display().to_string(),
        threads: engine.threads(),
        attention: engine.attention_name().to_owned(),
        prompt_tokens: prompt.len(),
        prompt_tokens_per_s: prompt.len() as f64 / prefill,
        decode_tokens: opts.decode_tokens,
        decode_tokens_per_s: decode,
        batch8_tokens_per_s: batch8,
        batch8_speedup: batch8 / decode,
        first_question_ttft_s: first,
        second_question_ttft_s: second,
        peak_rss_bytes: super::peak_rss_mb().map_or(0, |mb| (mb * 1024.0 * 1024.0) as u64),
        weight_bytes_per_token: engine.model.weight_bytes(),
        decode_weight_read_gb_per_s: engine.model.weight_bytes() as f64 * decode / 1e9,
        memory_read_gb_per_s: read_bandwidth(engine.threads()),
    })
}

/// Best of three passes of summing 256 MB per thread (more than any cache), in GB/s.
fn read_bandwidth(threads: usize) -> f64 {
    // 256 MB per thread, at most 1 GB in all.
    let words = (256usize << 20).min((1 << 30) / threads.max(1)) / 8;
    let buffers: Vec<Vec<u64>> = (0..threads).map(|_| vec![1u64; words]).collect();
    let mut best = 0f64;
    for _ in 0..3 {
        let start = Instant::now();
        std::thread::scope(|s| {
            for b in &buffers {
                s.spawn(move || {
                    let mut acc = [0u64; 8];
                    for c in b.chunks_exact(8) {
                        for (a, v) in acc.iter_mut().zip(c) {
                            *a = a.wrapping_add(*v);
                        }
                    }
                    std::hint::black_box(acc);
                });
            }
        });
        let bytes = (threads * words * 8) as f64;
        best = best.max(bytes / start.elapsed().as_secs_f64() / 1e9);
    }
    best
}

/// `n` tokens of ordinary English text.
fn filler_tokens(engine: &Engine, n: usize) -> LlmResult<Vec<u32>> {
    let text = "Retrieval augmented generation finds passages in the user's documents and puts \
                them in the prompt, so that the model answers from them and cites its sources. ";
    let mut ids = Vec::new();
    while ids.len() < n {
        ids.extend(engine.tokenizer.encode(text, false)?);
    }
    ids.truncate(n);
    Ok(ids)
}

fn time_prefill(engine: &mut Engine, prompt: &[u32]) -> LlmResult<f64> {
    let start = Instant::now();
    engine.logits(prompt, false)?;
    Ok(start.elapsed().as_secs_f64())
}

/// Aggregate decode tokens/s of `batch` sequences stepping together (greedy, no early stop).
fn decode_rate(engine: &mut Engine, prompt: &[u32], tokens: usize, batch: usize) -> LlmResult<f64> {
    let seqs: Vec<u64> = (0..batch).map(|_| engine.cache.begin(&[]).0).collect();
    let result = (|| {
        let mut last: Vec<Vec<u32>> = vec![prompt.to_vec(); batch];
        let mut start = Instant::now();
        for i in 0..=tokens {
            if i == 1 {
                start = Instant::now(); // decode only: the first step was the prompt
            }
            let steps: Vec<SeqStep<'_>> = seqs
                .iter()
                .zip(&last)
                .map(|(&seq, t)| SeqStep {
                    seq,
                    tokens: t,
                    all_logits: false,
                })
                .collect();
            let out = engine.forward(&steps, &CaptureSpec::default())?;
            last = out
                .logits
                .iter()
                .map(|l| vec![crate::llm::sampler::argmax(l)])
                .collect();
        }
        Ok((tokens * batch) as f64 / start.elapsed().as_secs_f64())
    })();
    seqs.into_iter().for_each(|s| engine.cache.end(s));
    result
}

/// Time to first token for two questions sharing a system prompt and five retrieved sources
/// of 256 tokens each (a grounded answer's usual prompt).
fn prefix_cache_ttft(engine: &mut Engine) -> LlmResult<(f64, f64)> {
    let source = filler_tokens(engine, 256)?;
    let source = engine.tokenizer.decode(&source, false);
    let mut system = String::from("Answer from these sources and cite them as [n].");
    for n in 1..=5 {
        system.push_str(&format!("\n[{n}] {source}"));
    }
    let mut ttft = Vec::new();
    for question in ["What does retrieval find?", "Why cite sources?"] {
        let messages = [
            Message::new(Role::System, system.clone()),
            Message::new(Role::User, question),
        ];
        let req = GenerateRequest {
            prompt: engine.chat_prompt(&messages)?,
            sampling: SamplingParams::greedy(),
            max_tokens: 1,
            stop: vec![],
            capture: CaptureSpec::default(),
        };
        ttft.push(engine.generate(&req, None, &mut |_| {})?.timings.prefill_s);
    }
    Ok((ttft[0], ttft[1]))
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// A thread spinning on one core until dropped: the "other work" a desktop app always has.
pub struct BusyCore {
    stop: Arc<AtomicBool>,
    handle: Option<std::thread::JoinHandle<()>>,
}

impl BusyCore {
    /// Spin on CPU `core` (pinned on Linux).
    pub fn start(core: usize) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let handle = std::thread::spawn(move || {
            pin_to_core(core);
            let mut x = 0u64;
            while !flag.load(Ordering::Relaxed) {
                x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
            }
        });
        Self {
            stop,
            handle: Some(handle),
        }
    }
}

impl Drop for BusyCore {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            h.join().ok();
        }
    }
}

#[cfg(target_os = "linux")]
fn pin_to_core(core: usize) {
    // SAFETY: a zeroed cpu_set_t is valid; the call affects only this thread.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(core, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
    }
}

#[cfg(not(target_os = "linux"))]
fn pin_to_core(_core: usize) {}
