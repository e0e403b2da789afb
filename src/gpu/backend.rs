//! The engine's attention on the GPU: an `AttentionBackend` that keeps a copy of the KV cache
//! in GPU buffers (one pair per layer, the same blocks as the engine's pool) and, per call,
//! sends up only the blocks written since (the block of the tokens just appended, when
//! decoding) and the queries, and brings back the outputs (and, for a recorded layer, the
//! probabilities of the heads asked for): one submit and one read back per layer of a step,
//! for all its sequences together. Our kernels have no sliding window: a local layer (Gemma 3)
//! runs its attention on the CPU, and the backend says so.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use half::f16;

use super::attention::{AttentionKernels, AttnShape, GpuKv, Kernel, SCORE_MATRIX};
use super::prepared::run_all;
use super::{GpuContext, GpuError};
use crate::llm::attention::{AttentionBackend, AttnInput, FusedCpuAttention, ProbRow};
use crate::llm::kv::KvShape;

/// One layer's keys and values on the GPU, and the version of each block they hold.
struct LayerCopy {
    k: wgpu::Buffer,
    v: wgpu::Buffer,
    synced: Vec<u64>,
}

pub struct GpuAttention {
    kernels: AttentionKernels,
    ctx: GpuContext,
    shape: KvShape,
    capacity: usize,
    layers: Mutex<Vec<Option<LayerCopy>>>,
    /// Set when the GPU failed: the session goes on with CPU attention, and says why.
    failed: Mutex<Option<String>>,
    /// Set once a sliding-window layer was computed on the CPU.
    windowed: AtomicBool,
}

impl GpuAttention {
    /// Attention on `ctx` for a cache of `shape` and `capacity` blocks.
    pub fn new(ctx: &GpuContext, shape: KvShape, capacity: usize) -> Result<Self, GpuError> {
        let layer_bytes = layer_bytes(shape, capacity);
        let limit = ctx.largest_binding();
        if layer_bytes > limit {
            return Err(GpuError::Shape(
                "the KV cache",
                format!("{layer_bytes} bytes per layer, the GPU binds at most {limit}"),
            ));
        }
        Ok(GpuAttention {
            kernels: AttentionKernels::new(ctx)?,
            ctx: ctx.clone(),
            shape,
            capacity,
            layers: Mutex::new((0..shape.n_layer).map(|_| None).collect()),
            failed: Mutex::new(None),
            windowed: AtomicBool::new(false),
        })
    }

    /// Why the GPU stopped being used, if it did.
    pub fn failure(&self) -> Option<String> {
        self.failed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn layer_copy(&self) -> LayerCopy {
        let bytes = layer_bytes(self.shape, self.capacity);
        let buffer = |label| {
            self.ctx.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some(label),
                size: bytes.max(4),
                usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            })
        };
        LayerCopy {
            k: buffer("k cache"),
            v: buffer("v cache"),
            synced: vec![0; self.capacity],
        }
    }

    /// Sends the blocks of `inputs`' sequences written since they were last sent, then runs
    /// every sequence's attention (and the probabilities asked for) in one submit.
    fn attend_gpu(
        &self,
        inputs: &[AttnInput<'_>],
        out: &mut [f32],
    ) -> Result<Vec<Vec<ProbRow>>, GpuError> {
        self.ctx.checked(|| self.attend_checked(inputs, out))
    }

    fn attend_checked(
        &self,
        inputs: &[AttnInput<'_>],
        out: &mut [f32],
    ) -> Result<Vec<Vec<ProbRow>>, GpuError> {
        let Some(first) = inputs.first() else {
            return Ok(Vec::new());
        };
        let kv = &first.kv;
        let mut layers = self.layers.lock().unwrap_or_else(|e| e.into_inner());
        let copy = layers[kv.layer].get_or_insert_with(|| self.layer_copy());
        let block_len = kv.shape.block_len();
        for &block in inputs.iter().flat_map(|i| i.table) {
            let b = block as usize;
            if copy.synced[b] == kv.versions[b] {
                continue;
            }
            let range = b * block_len..(b + 1) * block_len;
            let offset = (range.start * 2) as u64;
            self.ctx.queue.write_buffer(
                &copy.k,
                offset,
                bytemuck::cast_slice(&kv.k[range.clone()]),
            );
            self.ctx
                .queue
                .write_buffer(&copy.v, offset, bytemuck::cast_slice(&kv.v[range]));
            copy.synced[b] = kv.versions[b];
        }
        let mut calls = Vec::new();
        let mut shapes = Vec::new();
        for input in inputs {
            let shape = AttnShape {
                n_q: input.n_q(),
                n_head: input.n_head,
                n_kv_head: kv.shape.n_kv_head,
                head_dim: kv.shape.head_dim,
                block_size: kv.shape.block_size,
                start: input.start,
            };
            // The queries in the cache's precision, as the CPU backends multiply them.
            let q: Vec<f32> = input.q.iter().map(|&x| f16::from_f32(x).to_f32()).collect();
            let on_gpu = GpuKv {
                k: &copy.k,
                v: &copy.v,
                table: input.table,
            };
            let kernel = Kernel::for_shape(&shape);
            calls.push(self.kernels.prepare(&shape, &q, &on_gpu, kernel)?);
            if !input.capture.is_empty() {
                let probs =
                    self.kernels
                        .prepare_probabilities(&shape, &q, &on_gpu, input.capture)?;
                calls.push(probs);
            }
            shapes.push(shape);
        }
        let mut results = run_all(&calls.iter().collect::<Vec<_>>())?.into_iter();
        let mut rest = out;
        let mut rows = Vec::with_capacity(inputs.len());
        for (input, shape) in inputs.iter().zip(&shapes) {
            let (mine, tail) = std::mem::take(&mut rest).split_at_mut(input.q.len());
            rest = tail;
            mine.copy_from_slice(&results.next().unwrap_or_default());
            rows.push(if input.capture.is_empty() {
                Vec::new()
            } else {
                prob_rows(shape, input.capture, &results.next().unwrap_or_default())
            });
        }
        Ok(rows)
    }
}

/// The rows of `probs` (`n_q x heads x n_keys`), each cut to the keys its query sees.
fn prob_rows(shape: &AttnShape, heads: &[usize], probs: &[f32]) -> Vec<ProbRow> {
    probs
        .chunks_exact(shape.n_keys())
        .enumerate()
        .map(|(i, row)| {
            let pos = shape.start + i / heads.len();
            ProbRow {
                head: heads[i % heads.len()],
                pos,
                probs: row[..=pos].to_vec(),
            }
        })
        .collect()
}

impl AttentionBackend for GpuAttention {
    fn name(&self) -> &'static str {
        if self.failure().is_some() {
            "cpu-fused (the GPU failed)"
        } else {
            "gpu"
        }
    }

    fn notice(&self) -> Option<String> {
        if let Some(e) = self.failure() {
            return Some(format!(
                "GPU attention stopped; the CPU computes it for the rest of the session ({e})"
            ));
        }
        self.windowed.load(Ordering::Relaxed).then(|| {
            "the model's sliding-window layers compute their attention on the CPU (the GPU kernels have no window); its global layers run on the GPU".to_owned()
        })
    }

    fn attend(&self, input: &AttnInput<'_>, out: &mut [f32]) -> Vec<ProbRow> {
        let mut rows = self.attend_all(std::slice::from_ref(input), out);
        rows.pop().unwrap_or_default()
    }

    fn attend_all(&self, inputs: &[AttnInput<'_>], out: &mut [f32]) -> Vec<Vec<ProbRow>> {
        if inputs.iter().any(|i| i.window.is_some()) {
            self.windowed.store(true, Ordering::Relaxed);
            return FusedCpuAttention.attend_all(inputs, out);
        }
        if self.failure().is_none() {
            match self.attend_gpu(inputs, out) {
                Ok(rows) => return rows,
                // Probabilities too many for the GPU to hold at once: this step on the CPU.
                Err(GpuError::Shape(what, _)) if what == SCORE_MATRIX => {}
                Err(e) => {
                    *self.failed.lock().unwrap_or_else(|e| e.into_inner()) = Some(e.to_string())
                }
            }
        }
        FusedCpuAttention.attend_all(inputs, out)
    }
}

/// Bytes of one layer's keys (or values) for a pool of `capacity` blocks, in f16.
fn layer_bytes(shape: KvShape, capacity: usize) -> u64 {
    (shape.block_len() * capacity * std::mem::size_of::<f16>()) as u64
}
