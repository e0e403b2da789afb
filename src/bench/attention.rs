//! `glassbox bench attention`: our flash kernels against the naive three-pass kernel on the
//! same adapter, for prompts (prefill) and single-token decoding over sequences of given
//! lengths, with the working memory each needs; and the round trip of one small call (what
//! every layer of every decoded token pays when attention runs on the GPU and the rest of the
//! model on the CPU).

use std::time::{Duration, Instant};

use half::f16;
use serde::Serialize;

use wgpu::util::DeviceExt;

use crate::gpu::attention::{AttentionKernels, AttnShape, GpuKv, Kernel};
use crate::gpu::variant::Variant;
use crate::gpu::{GpuContext, GpuError};
use crate::rng::Rng;

/// The engine's block size (tokens per KV block).
const BLOCK: usize = 16;

pub struct AttentionBenchOptions {
    pub seqs: Vec<usize>,
    pub n_head: usize,
    pub n_kv_head: usize,
    pub head_dim: usize,
    /// Timed runs per case, fewer when one run takes longer than `budget`.
    pub reps: usize,
    pub budget: Duration,
    /// The build of the kernels; none: the adapter's best.
    pub variant: Option<Variant>,
}

impl Default for AttentionBenchOptions {
    /// SmolLM2-135M's attention: 9 query heads over 3 KV heads of 64 dimensions.
    fn default() -> Self {
        Self {
            seqs: vec![512, 2048, 8192],
            n_head: 9,
            n_kv_head: 3,
            head_dim: 64,
            reps: 5,
            budget: Duration::from_secs(20),
            variant: None,
        }
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct KernelTiming {
    /// "flash" or "naive".
    pub kernel: &'static str,
    /// Median wall time of a submit of the dispatches, waited for; none when it could not run.
    pub ms: Option<f64>,
    pub runs: usize,
    /// Working memory besides the inputs and the output.
    pub scratch_bytes: u64,
    /// Queries, keys, values, outputs and working memory.
    pub total_bytes: u64,
    /// Relative difference of its outputs from the flash kernel's.
    pub relative_difference: Option<f64>,
    pub error: Option<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct AttentionCase {
    /// "prefill" (every position of a prompt of `seq` tokens) or "decode" (one query after
    /// `seq - 1` cached keys).
    pub mode: &'static str,
    pub seq: usize,
    pub flash: KernelTiming,
    pub naive: KernelTiming,
}

#[derive(Clone, Debug, Serialize)]
pub struct AttentionBench {
    pub adapter: String,
    pub software: bool,
    /// The build of the kernels: tile, reduction, tile storage.
    pub variant: String,
    pub n_head: usize,
    pub n_kv_head: usize,
    pub head_dim: usize,
    /// Median time of one decode call over one key with its output read back: the least a
    /// layer pays per token.
    pub round_trip_us: f64,
    /// The same call as the engine makes it, its buffers and bindings made anew.
    pub call_us: f64,
    pub cases: Vec<AttentionCase>,
}

pub fn attention(
    ctx: &GpuContext,
    opts: &AttentionBenchOptions,
) -> Result<AttentionBench, GpuError> {
    let kernels = AttentionKernels::with(ctx, opts.variant.unwrap_or(Variant::best(ctx)))?;
    let mut rng = Rng::new(42);
    let mut cases = Vec::new();
    let (round_trip, call) = {
        let input = Inputs::new(&mut rng, opts, 1);
        let kv = input.upload(ctx);
        let (shape, q) = (input.shape(0, 1), input.q(1));
        let prepared = kernels.prepare(&shape, &q, &kv.on_gpu(), Kernel::Decode)?;
        prepared.run()?;
        let round_trip = time_us(|| prepared.run().map(drop))?;
        let call = time_us(|| {
            kernels
                .run_on(&shape, &q, &kv.on_gpu(), Kernel::Decode)
                .map(drop)
        })?;
        (round_trip, call)
    };
    for &seq in &opts.seqs {
        let input = Inputs::new(&mut rng, opts, seq);
        let kv = input.upload(ctx);
        for (mode, start, n_q) in [("prefill", 0, seq), ("decode", seq - 1, 1)] {
            let shape = input.shape(start, n_q);
            let q = input.q(n_q);
            let run = |kernel| measure(&kernels, &shape, &q, &kv.on_gpu(), kernel, opts);
            let (flash, flash_out) = run(Kernel::for_shape(&shape));
            let (mut naive, naive_out) = run(Kernel::Naive);
            naive.kernel = "naive";
            if let (Some(a), Some(b)) = (&flash_out, &naive_out) {
                naive.relative_difference = Some(relative_difference(b, a));
            }
            let io = input.io_bytes(&shape);
            cases.push(AttentionCase {
                mode,
                seq,
                flash: KernelTiming {
                    total_bytes: flash.total_bytes + io,
                    ..flash
                },
                naive: KernelTiming {
                    total_bytes: naive.total_bytes + io,
                    ..naive
                },
            });
        }
    }
    Ok(AttentionBench {
        adapter: ctx.describe(),
        software: ctx.is_software(),
        variant: format!("{:?}", kernels.variant()),
        n_head: opts.n_head,
        n_kv_head: opts.n_kv_head,
        head_dim: opts.head_dim,
        round_trip_us: round_trip,
        call_us: call,
        cases,
    })
}

/// Times one kernel; its outputs come along for the comparison.
fn measure(
    kernels: &AttentionKernels,
    shape: &AttnShape,
    q: &[f32],
    kv: &GpuKv<'_>,
    kernel: Kernel,
    opts: &AttentionBenchOptions,
) -> (KernelTiming, Option<Vec<f32>>) {
    let mut timing = KernelTiming {
        kernel: "flash",
        ms: None,
        runs: 0,
        scratch_bytes: kernel.scratch_bytes(shape),
        total_bytes: kernel.scratch_bytes(shape),
        relative_difference: None,
        error: None,
    };
    let result = kernels.prepare(shape, q, kv, kernel).and_then(|prepared| {
        // The first run compiles and warms; its outputs are kept.
        let out = prepared.run()?;
        let mut runs = Vec::new();
        let started = Instant::now();
        while runs.len() < opts.reps.max(1) && (runs.is_empty() || started.elapsed() < opts.budget)
        {
            runs.extend(prepared.time(1)?);
        }
        timing.runs = runs.len();
        timing.ms = Some(median_ms(runs));
        Ok(out)
    });
    match result {
        Ok(out) => (timing, Some(out)),
        Err(e) => {
            timing.error = Some(e.to_string());
            (timing, None)
        }
    }
}

/// Random queries, keys and values in the engine's layout: one sequence, blocks in order.
struct Inputs {
    heads: (usize, usize, usize),
    seq: usize,
    q: Vec<f32>,
    k: Vec<u32>,
    v: Vec<u32>,
    table: Vec<u32>,
}

struct Uploaded<'a> {
    k: wgpu::Buffer,
    v: wgpu::Buffer,
    table: &'a [u32],
}

impl Uploaded<'_> {
    fn on_gpu(&self) -> GpuKv<'_> {
        GpuKv {
            k: &self.k,
            v: &self.v,
            table: self.table,
        }
    }
}

impl Inputs {
    fn new(rng: &mut Rng, opts: &AttentionBenchOptions, seq: usize) -> Inputs {
        let (h, kvh, hd) = (opts.n_head, opts.n_kv_head, opts.head_dim);
        let blocks = seq.div_ceil(BLOCK);
        let mut words = |n: usize| -> Vec<u32> {
            (0..n)
                .map(|_| {
                    let mut half = || f16::from_f32(rng.next_f32() * 2.0 - 1.0).to_bits() as u32;
                    half() | (half() << 16)
                })
                .collect()
        };
        let kv_words = blocks * BLOCK * kvh * hd / 2;
        let (k, v) = (words(kv_words), words(kv_words));
        let q = (0..seq * h * hd)
            .map(|_| rng.next_f32() * 2.0 - 1.0)
            .collect();
        Inputs {
            heads: (h, kvh, hd),
            seq,
            q,
            k,
            v,
            table: (0..blocks as u32).collect(),
        }
    }

    fn shape(&self, start: usize, n_q: usize) -> AttnShape {
        let (n_head, n_kv_head, head_dim) = self.heads;
        AttnShape {
            n_q,
            n_head,
            n_kv_head,
            head_dim,
            block_size: BLOCK,
            start,
        }
    }

    fn q(&self, n_q: usize) -> Vec<f32> {
        let (h, _, hd) = self.heads;
        self.q[(self.seq - n_q) * h * hd..].to_vec()
    }

    fn upload(&self, ctx: &GpuContext) -> Uploaded<'_> {
        let buffer = |words: &[u32]| {
            ctx.device
                .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                    label: Some("bench kv"),
                    contents: bytemuck::cast_slice(words),
                    usage: wgpu::BufferUsages::STORAGE,
                })
        };
        Uploaded {
            k: buffer(&self.k),
            v: buffer(&self.v),
            table: &self.table,
        }
    }

    /// Bytes of the queries, the keys and values the call reads, and the outputs.
    fn io_bytes(&self, shape: &AttnShape) -> u64 {
        let q_and_out = 2 * shape.n_q * shape.n_head * shape.head_dim * 4;
        let kv = 2 * shape.n_keys() * shape.n_kv_head * shape.head_dim * 2;
        (q_and_out + kv) as u64
    }
}

/// Median microseconds of 50 calls of `f`.
fn time_us(mut f: impl FnMut() -> Result<(), GpuError>) -> Result<f64, GpuError> {
    let runs: Vec<Duration> = (0..50)
        .map(|_| {
            let started = Instant::now();
            f().map(|_| started.elapsed())
        })
        .collect::<Result<_, _>>()?;
    Ok(median_ms(runs) * 1000.0)
}

fn median_ms(mut runs: Vec<Duration>) -> f64 {
    runs.sort();
    runs[runs.len() / 2].as_secs_f64() * 1000.0
}

fn relative_difference(got: &[f32], want: &[f32]) -> f64 {
    let diff: f64 = got
        .iter()
        .zip(want)
        .map(|(&a, &b)| (a as f64 - b as f64).powi(2))
        .sum();
    let norm: f64 = want.iter().map(|&b| (b as f64).powi(2)).sum();
    (diff / norm).sqrt()
}
