//! Our attention kernels on a `GpuContext`: the flash kernels of
//! `shaders/flash_attention.wgsl` (what the engine runs) and the naive three-pass kernels of
//! `shaders/naive_attention.wgsl` (what they are measured against, and the pass that records
//! probabilities). The paged keys and values (f16 pairs in u32 words, as the engine's cache
//! holds them), the block table and the queries go up; outputs or probabilities come back.

use super::prepared::{Prepared, Step};
use super::variant::{Variant, naive_source};
use super::{GpuContext, GpuError};

/// Keys per range of the decode kernel (`SPLIT` in the shader).
const SPLIT: usize = 256;
/// The largest head dimension the kernels hold (`MAX_QUADS` x 4 in the shader).
pub const MAX_HEAD_DIM: usize = 128;
/// Invocations per workgroup in every kernel.
const GROUP: u32 = 64;
/// Workgroups per dispatch dimension every adapter allows (`MAX_GROUPS` in the naive shader).
const MAX_GROUPS: usize = 65_535;

/// What the naive kernel's score matrix is called in the error when the adapter cannot hold it.
pub const SCORE_MATRIX: &str = "the score matrix";

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    n_q: u32,
    n_head: u32,
    n_kv_head: u32,
    head_dim: u32,
    block_size: u32,
    start: u32,
    kv_base: u32,
    n_splits: u32,
    scale: f32,
    n_sel: u32,
    pad: [u32; 2],
}

/// One attention call: `n_q` query rows of `n_head` heads at positions `start..start + n_q`,
/// over the keys `0..start + n_q` of one sequence.
#[derive(Clone, Copy, Debug)]
pub struct AttnShape {
    pub n_q: usize,
    pub n_head: usize,
    pub n_kv_head: usize,
    pub head_dim: usize,
    pub block_size: usize,
    pub start: usize,
}

impl AttnShape {
    pub fn n_keys(&self) -> usize {
        self.start + self.n_q
    }

    fn rows(&self) -> usize {
        self.n_q * self.n_head
    }
}

/// One layer of a paged cache as the kernels read it: f16 pairs in u32 words, laid out
/// `[block][kv_head][slot][head_dim / 2]`, and the sequence's block table.
pub struct PagedKv<'a> {
    pub k: &'a [u32],
    pub v: &'a [u32],
    pub table: &'a [u32],
}

/// One layer of a paged cache already on the GPU (as `PagedKv`, in buffers), and the
/// sequence's block table.
pub struct GpuKv<'a> {
    pub k: &'a wgpu::Buffer,
    pub v: &'a wgpu::Buffer,
    pub table: &'a [u32],
}

/// Which kernel runs: the flash kernel's tiles of query rows (prompts) or key ranges merged
/// afterwards (a few rows, as in decoding, where tiles of rows would leave the GPU idle); or
/// the naive three passes over a materialised score matrix.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kernel {
    Prefill,
    Decode,
    Naive,
}

impl Kernel {
    /// The flash kernel for a shape: decode while the rows of one KV head fill less than one
    /// workgroup.
    pub fn for_shape(shape: &AttnShape) -> Kernel {
        let rows_per_kv_head = shape.rows() / shape.n_kv_head;
        if rows_per_kv_head < GROUP as usize {
            Kernel::Decode
        } else {
            Kernel::Prefill
        }
    }

    /// Floats the kernel works in besides its inputs and output, in its two working bindings:
    /// the decode kernel's partial outputs and their (m, l) per key range; the naive kernel's
    /// score matrix, which grows with the square of the sequence.
    pub fn scratch_floats(self, shape: &AttnShape) -> [usize; 2] {
        match self {
            Kernel::Prefill => [0, 0],
            Kernel::Decode => {
                let n = n_splits(shape);
                [n * shape.rows() * shape.head_dim, n * shape.rows() * 2]
            }
            Kernel::Naive => [score_len(shape, shape.n_head), 0],
        }
    }

    pub fn scratch_bytes(self, shape: &AttnShape) -> u64 {
        (self.scratch_floats(shape).iter().sum::<usize>() * 4) as u64
    }
}

/// Key ranges of the decode kernel.
fn n_splits(shape: &AttnShape) -> usize {
    shape.n_keys().div_ceil(SPLIT)
}

/// Query heads per decode workgroup (`MAX_GROUP` in the shader).
const MAX_GROUP: usize = 8;

/// Decode workgroups per key range: one per query row, KV head and chunk of its query heads.
fn decode_groups(shape: &AttnShape) -> usize {
    let group = shape.n_head / shape.n_kv_head;
    shape.n_q * shape.n_kv_head * group.div_ceil(MAX_GROUP)
}

/// Floats of the naive kernel's score matrix for `n_sel` heads.
fn score_len(shape: &AttnShape, n_sel: usize) -> usize {
    shape.n_q * n_sel * shape.n_keys()
}

/// The compiled kernels.
pub struct AttentionKernels {
    ctx: GpuContext,
    variant: Variant,
    layout: wgpu::BindGroupLayout,
    prefill: wgpu::ComputePipeline,
    decode: wgpu::ComputePipeline,
    merge: wgpu::ComputePipeline,
    scores: wgpu::ComputePipeline,
    softmax: wgpu::ComputePipeline,
    weighted: wgpu::ComputePipeline,
}

impl AttentionKernels {
    /// The best build of the kernels for the adapter (`Variant::best`).
    pub fn new(ctx: &GpuContext) -> Result<AttentionKernels, GpuError> {
        Self::with(ctx, Variant::best(ctx))
    }

    /// A given build, so that tests can force each one an adapter may get.
    pub fn with(ctx: &GpuContext, variant: Variant) -> Result<AttentionKernels, GpuError> {
        variant.check(ctx)?;
        ctx.checked(|| Ok(Self::build(ctx, variant)))
    }

    fn build(ctx: &GpuContext, variant: Variant) -> AttentionKernels {
        let device = &ctx.device;
        let layout = bind_group_layout(device);
        let pipeline_layout = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
            label: Some("attention"),
            bind_group_layouts: &[Some(&layout)],
            immediate_size: 0,
        });
        let module = |label, source: String| {
            device.create_shader_module(wgpu::ShaderModuleDescriptor {
                label: Some(label),
                source: wgpu::ShaderSource::Wgsl(source.into()),
            })
        };
        let flash = module("flash_attention", variant.flash_source());
        let naive = module("naive_attention", naive_source());
        let pipeline = |module: &wgpu::ShaderModule, entry: &str| {
            device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                label: Some(entry),
                layout: Some(&pipeline_layout),
                module,
                entry_point: Some(entry),
                compilation_options: Default::default(),
                cache: None,
            })
        };
        AttentionKernels {
            ctx: ctx.clone(),
            variant,
            prefill: pipeline(&flash, "prefill"),
            decode: pipeline(&flash, "decode"),
            merge: pipeline(&flash, "merge"),
            scores: pipeline(&naive, "scores_pass"),
            softmax: pipeline(&naive, "softmax"),
            weighted: pipeline(&naive, "weighted"),
            layout,
        }
    }

    pub fn variant(&self) -> Variant {
        self.variant
    }

    /// Attention outputs, `n_q x n_head x head_dim`, computed by `kernel`, with the keys and
    /// values sent up for this call.
    pub fn run(
        &self,
        shape: &AttnShape,
        q: &[f32],
        kv: &PagedKv<'_>,
        kernel: Kernel,
    ) -> Result<Vec<f32>, GpuError> {
        self.with_uploaded(kv, |on_gpu| self.run_on(shape, q, on_gpu, kernel))
    }

    /// As `run`, over keys and values already on the GPU.
    pub fn run_on(
        &self,
        shape: &AttnShape,
        q: &[f32],
        kv: &GpuKv<'_>,
        kernel: Kernel,
    ) -> Result<Vec<f32>, GpuError> {
        self.prepare(shape, q, kv, kernel)?.run()
    }

    /// Softmax probabilities, `n_q x heads.len() x (start + n_q)` (keys a row does not see are
    /// 0), by the naive kernel's first two passes for the given heads only.
    pub fn probabilities(
        &self,
        shape: &AttnShape,
        q: &[f32],
        kv: &PagedKv<'_>,
        heads: &[usize],
    ) -> Result<Vec<f32>, GpuError> {
        self.with_uploaded(kv, |on_gpu| self.probabilities_on(shape, q, on_gpu, heads))
    }

    /// As `probabilities`, over keys and values already on the GPU.
    pub fn probabilities_on(
        &self,
        shape: &AttnShape,
        q: &[f32],
        kv: &GpuKv<'_>,
        heads: &[usize],
    ) -> Result<Vec<f32>, GpuError> {
        self.prepare_probabilities(shape, q, kv, heads)?.run()
    }

    /// `probabilities_on`, ready to run.
    pub fn prepare_probabilities(
        &self,
        shape: &AttnShape,
        q: &[f32],
        kv: &GpuKv<'_>,
        heads: &[usize],
    ) -> Result<Prepared, GpuError> {
        if let Some(&h) = heads.iter().find(|&&h| h >= shape.n_head) {
            return Err(GpuError::Shape(
                "the heads to record",
                format!("head {h} of {}", shape.n_head),
            ));
        }
        self.ctx
            .checked(|| self.prepare_naive(shape, q, kv, heads, false))
    }

    fn with_uploaded<T>(
        &self,
        kv: &PagedKv<'_>,
        f: impl FnOnce(&GpuKv<'_>) -> Result<T, GpuError>,
    ) -> Result<T, GpuError> {
        self.ctx.checked(|| {
            let storage = wgpu::BufferUsages::STORAGE;
            let k = self.buffer("k", bytemuck::cast_slice(kv.k), storage);
            let v = self.buffer("v", bytemuck::cast_slice(kv.v), storage);
            f(&GpuKv {
                k: &k,
                v: &v,
                table: kv.table,
            })
        })
    }

    /// Everything one call of `kernel` needs on the GPU, ready to run (or to time) as often as
    /// wanted. The output starts as NaN, so an element a kernel forgot to write cannot pass for
    /// a result.
    pub fn prepare(
        &self,
        shape: &AttnShape,
        q: &[f32],
        kv: &GpuKv<'_>,
        kernel: Kernel,
    ) -> Result<Prepared, GpuError> {
        self.ctx.checked(|| match kernel {
            Kernel::Naive => {
                let all: Vec<usize> = (0..shape.n_head).collect();
                self.prepare_naive(shape, q, kv, &all, true)
            }
            _ => self.prepare_flash(shape, q, kv, kernel),
        })
    }

    fn prepare_flash(
        &self,
        shape: &AttnShape,
        q: &[f32],
        kv: &GpuKv<'_>,
        kernel: Kernel,
    ) -> Result<Prepared, GpuError> {
        check(shape, q, kv.table)?;
        let n_splits = match kernel {
            Kernel::Decode => n_splits(shape),
            _ => 1,
        };
        let rows = shape.rows();
        let out_len = rows * shape.head_dim;
        let [partial_o, partial_ml] = kernel.scratch_floats(shape);
        let partial_o = self.scratch("partial_o", (partial_o * 4) as u64)?;
        let partial_ml = self.scratch("partial_ml", (partial_ml * 4) as u64)?;
        let out = self.output(out_len);
        let steps = match kernel {
            Kernel::Decode => vec![
                Step::new(&self.decode, [n_splits, decode_groups(shape), 1]),
                Step::new(&self.merge, [rows, 1, 1]),
            ],
            _ => {
                let rows_per_kv = rows / shape.n_kv_head;
                let x = rows_per_kv.div_ceil(GROUP as usize);
                vec![Step::new(&self.prefill, [x, shape.n_kv_head, 1])]
            }
        };
        self.assemble(
            params(shape, n_splits, 0),
            q,
            kv,
            [out, partial_o, partial_ml],
            steps,
            (0, out_len),
        )
    }

    /// The naive kernel for `heads`: probabilities only (the first two passes, read back from
    /// the score matrix), or with `outputs` the whole attention (then `heads` are all heads).
    fn prepare_naive(
        &self,
        shape: &AttnShape,
        q: &[f32],
        kv: &GpuKv<'_>,
        heads: &[usize],
        outputs: bool,
    ) -> Result<Prepared, GpuError> {
        check(shape, q, kv.table)?;
        let pairs = shape.n_q * heads.len();
        let score_len = score_len(shape, heads.len());
        let scores = self.scratch(SCORE_MATRIX, (score_len * 4) as u64)?;
        let heads_words: Vec<u32> = heads.iter().map(|&h| h as u32).collect();
        let heads_buffer = self.buffer(
            "heads",
            bytemuck::cast_slice(&heads_words),
            wgpu::BufferUsages::STORAGE,
        );
        let out_len = if outputs { pairs * shape.head_dim } else { 1 };
        let out = self.output(out_len);
        let y = pairs.min(MAX_GROUPS);
        let z = pairs.div_ceil(MAX_GROUPS);
        let mut steps = vec![
            Step::new(
                &self.scores,
                [shape.n_keys().div_ceil(GROUP as usize), y, z],
            ),
            Step::new(&self.softmax, [1, y, z]),
        ];
        let result = if outputs {
            steps.push(Step::new(&self.weighted, [1, y, z]));
            (0, out_len)
        } else {
            (1, score_len)
        };
        self.assemble(
            params(shape, 1, heads.len()),
            q,
            kv,
            [out, scores, heads_buffer],
            steps,
            result,
        )
    }

    /// Binds `params`, the queries, the cache and `[out, binding 6, binding 7]`; the result is
    /// `len` floats of the first (0) or second (1) of those.
    fn assemble(
        &self,
        params: Params,
        q: &[f32],
        kv: &GpuKv<'_>,
        own: [wgpu::Buffer; 3],
        steps: Vec<Step>,
        (result, len): (usize, usize),
    ) -> Result<Prepared, GpuError> {
        let device = &self.ctx.device;
        let storage = wgpu::BufferUsages::STORAGE;
        let uniform = self.buffer(
            "params",
            bytemuck::bytes_of(&params),
            wgpu::BufferUsages::UNIFORM,
        );
        let q = self.buffer("q", bytemuck::cast_slice(q), storage);
        let table = self.buffer("table", bytemuck::cast_slice(kv.table), storage);
        let [out, six, seven] = own;
        let buffers = [&uniform, &q, kv.k, kv.v, &table, &out, &six, &seven];
        let entries: Vec<wgpu::BindGroupEntry> = buffers
            .iter()
            .enumerate()
            .map(|(i, b)| wgpu::BindGroupEntry {
                binding: i as u32,
                resource: b.as_entire_binding(),
            })
            .collect();
        let bind = device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some("attention"),
            layout: &self.layout,
            entries: &entries,
        });
        let result = if result == 0 { out } else { six };
        Ok(Prepared::new(self.ctx.clone(), bind, steps, result, len))
    }

    /// A buffer holding `bytes`, written through the queue: unlike a buffer mapped at creation,
    /// this does not panic in wgpu when the device has been lost (the error comes back instead).
    fn buffer(&self, label: &str, bytes: &[u8], usage: wgpu::BufferUsages) -> wgpu::Buffer {
        // A binding may not be empty.
        let padded;
        let bytes = if bytes.is_empty() {
            padded = [0u8; 4];
            &padded[..]
        } else {
            bytes
        };
        let buffer = self.ctx.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(label),
            size: bytes.len() as u64,
            usage: usage | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        self.ctx.queue.write_buffer(&buffer, 0, bytes);
        buffer
    }

    /// The output, poisoned with NaN.
    fn output(&self, len: usize) -> wgpu::Buffer {
        self.buffer(
            "out",
            bytemuck::cast_slice(&vec![f32::NAN; len]),
            wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC,
        )
    }

    /// A working buffer of `bytes`, if the adapter can bind that much.
    fn scratch(&self, label: &'static str, bytes: u64) -> Result<wgpu::Buffer, GpuError> {
        let limit = self.ctx.largest_binding();
        if bytes > limit {
            return Err(GpuError::Shape(
                label,
                format!(
                    "{:.1} MiB; the GPU binds at most {:.1} MiB",
                    mib(bytes),
                    mib(limit)
                ),
            ));
        }
        Ok(self.ctx.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(label),
            size: bytes.max(4),
            usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC,
            mapped_at_creation: false,
        }))
    }
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

fn params(shape: &AttnShape, n_splits: usize, n_sel: usize) -> Params {
    Params {
        n_q: shape.n_q as u32,
        n_head: shape.n_head as u32,
        n_kv_head: shape.n_kv_head as u32,
        head_dim: shape.head_dim as u32,
        block_size: shape.block_size as u32,
        start: shape.start as u32,
        kv_base: 0,
        n_splits: n_splits as u32,
        scale: 1.0 / (shape.head_dim as f32).sqrt(),
        n_sel: n_sel as u32,
        pad: [0; 2],
    }
}

/// Binding 0 the parameters, 1 to 4 read-only inputs, 5 to 7 written (see `paged_kv.wgsl`).
fn bind_group_layout(device: &wgpu::Device) -> wgpu::BindGroupLayout {
    let entries: Vec<wgpu::BindGroupLayoutEntry> = (0..8)
        .map(|binding| wgpu::BindGroupLayoutEntry {
            binding,
            visibility: wgpu::ShaderStages::COMPUTE,
            ty: wgpu::BindingType::Buffer {
                ty: match binding {
                    0 => wgpu::BufferBindingType::Uniform,
                    1..=4 => wgpu::BufferBindingType::Storage { read_only: true },
                    _ => wgpu::BufferBindingType::Storage { read_only: false },
                },
                has_dynamic_offset: false,
                min_binding_size: None,
            },
            count: None,
        })
        .collect();
    device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
        label: Some("attention"),
        entries: &entries,
    })
}

/// The shapes the kernels can take, checked before anything goes to the GPU.
fn check(shape: &AttnShape, q: &[f32], table: &[u32]) -> Result<(), GpuError> {
    let fail = |what: &'static str, detail: String| Err(GpuError::Shape(what, detail));
    if shape.head_dim > MAX_HEAD_DIM || !shape.head_dim.is_multiple_of(16) {
        return fail(
            "the head dimension",
            format!(
                "{} (at most {MAX_HEAD_DIM}, a multiple of 16)",
                shape.head_dim
            ),
        );
    }
    if shape.n_kv_head == 0 || !shape.n_head.is_multiple_of(shape.n_kv_head) {
        return fail(
            "the head grouping",
            format!("{} heads over {} KV heads", shape.n_head, shape.n_kv_head),
        );
    }
    if q.len() != shape.n_q * shape.n_head * shape.head_dim {
        return fail("the query", format!("{} values for {shape:?}", q.len()));
    }
    let blocks = (shape.start + shape.n_q).div_ceil(shape.block_size);
    if table.len() < blocks {
        return fail(
            "the sequence",
            format!("{} blocks in its table, {blocks} needed", table.len()),
        );
    }
    Ok(())
}
