//! The flash-attention kernels of `shaders/flash_attention.wgsl` on a `GpuContext`: the paged
//! keys and values (f16 pairs in u32 words, as the engine's cache holds them), the block table
//! and the queries go up, the outputs come back.

use wgpu::util::DeviceExt;

use super::{GpuContext, GpuError};

/// The WGSL source; validated by the tests with naga.
pub const SHADER: &str = include_str!("../../shaders/flash_attention.wgsl");
/// Keys per range of the decode kernel (`SPLIT` in the shader).
const SPLIT: usize = 256;
/// The largest head dimension the kernels hold (`MAX_DIM` in the shader).
pub const MAX_HEAD_DIM: usize = 128;
const GROUP: u32 = 64;

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
    pad: [u32; 3],
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

/// Which kernel runs: tiles of query rows (prompts), or key ranges merged afterwards (a few
/// rows, as in decoding, where tiles of rows would leave the GPU idle).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kernel {
    Prefill,
    Decode,
}

impl Kernel {
    /// Decode while the rows of one KV head fill less than one workgroup.
    pub fn for_shape(shape: &AttnShape) -> Kernel {
        let rows_per_kv_head = shape.n_q * shape.n_head / shape.n_kv_head;
        if rows_per_kv_head < GROUP as usize {
            Kernel::Decode
        } else {
            Kernel::Prefill
        }
    }
}

pub struct FlashAttention {
    ctx: GpuContext,
    layout: wgpu::BindGroupLayout,
    prefill: wgpu::ComputePipeline,
    decode: wgpu::ComputePipeline,
    merge: wgpu::ComputePipeline,
}

impl FlashAttention {
    pub fn new(ctx: &GpuContext) -> Result<FlashAttention, GpuError> {
        let device = &ctx.device;
        let scope = device.push_error_scope(wgpu::ErrorFilter::Validation);
        let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
            label: Some("flash_attention"),
            source: wgpu::ShaderSource::Wgsl(SHADER.into()),
        });
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
        let layout = device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
            label: Some("flash_attention"),
            entries: &entries,
        });
        let pipeline_layout = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
            label: Some("flash_attention"),
            bind_group_layouts: &[Some(&layout)],
            immediate_size: 0,
        });
        let pipeline = |entry: &str| {
            device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                label: Some(entry),
                layout: Some(&pipeline_layout),
                module: &module,
                entry_point: Some(entry),
                compilation_options: Default::default(),
                cache: None,
            })
        };
        let kernels = FlashAttention {
            ctx: ctx.clone(),
            prefill: pipeline("prefill"),
            decode: pipeline("decode"),
            merge: pipeline("merge"),
            layout,
        };
        match pollster::block_on(scope.pop()) {
            Some(e) => Err(GpuError::Failed(e.to_string())),
            None => Ok(kernels),
        }
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
        let storage = wgpu::BufferUsages::STORAGE;
        let k = self.buffer("k", bytemuck::cast_slice(kv.k), storage);
        let v = self.buffer("v", bytemuck::cast_slice(kv.v), storage);
        let on_gpu = GpuKv {
            k: &k,
            v: &v,
            table: kv.table,
        };
        self.run_on(shape, q, &on_gpu, kernel)
    }

    /// As `run`, over keys and values already on the GPU. The output buffer starts as NaN, so
    /// an element a kernel forgot to write cannot pass for a result.
    pub fn run_on(
        &self,
        shape: &AttnShape,
        q: &[f32],
        kv: &GpuKv<'_>,
        kernel: Kernel,
    ) -> Result<Vec<f32>, GpuError> {
        check(shape, q, kv.table)?;
        let device = &self.ctx.device;
        let scope = device.push_error_scope(wgpu::ErrorFilter::Validation);
        let n_keys = shape.start + shape.n_q;
        let n_splits = match kernel {
            Kernel::Prefill => 1,
            Kernel::Decode => n_keys.div_ceil(SPLIT),
        };
        let params = Params {
            n_q: shape.n_q as u32,
            n_head: shape.n_head as u32,
            n_kv_head: shape.n_kv_head as u32,
            head_dim: shape.head_dim as u32,
            block_size: shape.block_size as u32,
            start: shape.start as u32,
            kv_base: 0,
            n_splits: n_splits as u32,
            scale: 1.0 / (shape.head_dim as f32).sqrt(),
            pad: [0; 3],
        };
        let out_len = shape.n_q * shape.n_head * shape.head_dim;
        let rows = shape.n_q * shape.n_head;
        let (partial_o, partial_ml) = match kernel {
            Kernel::Prefill => (1, 2),
            Kernel::Decode => (n_splits * rows * shape.head_dim, n_splits * rows * 2),
        };
        let uniform = self.buffer(
            "params",
            bytemuck::bytes_of(&params),
            wgpu::BufferUsages::UNIFORM,
        );
        let storage = wgpu::BufferUsages::STORAGE;
        let table = self.buffer("table", bytemuck::cast_slice(kv.table), storage);
        let q = self.buffer("q", bytemuck::cast_slice(q), storage);
        let out = self.buffer(
            "out",
            bytemuck::cast_slice(&vec![f32::NAN; out_len]),
            storage | wgpu::BufferUsages::COPY_SRC,
        );
        let zeros = |n: usize| vec![0f32; n];
        let partial_o = self.buffer(
            "partial_o",
            bytemuck::cast_slice(&zeros(partial_o)),
            storage,
        );
        let partial_ml = self.buffer(
            "partial_ml",
            bytemuck::cast_slice(&zeros(partial_ml)),
            storage,
        );
        let buffers = [
            &uniform,
            &q,
            kv.k,
            kv.v,
            &table,
            &out,
            &partial_o,
            &partial_ml,
        ];
        let entries: Vec<wgpu::BindGroupEntry> = buffers
            .iter()
            .enumerate()
            .map(|(i, b)| wgpu::BindGroupEntry {
                binding: i as u32,
                resource: b.as_entire_binding(),
            })
            .collect();
        let bind = device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some("flash_attention"),
            layout: &self.layout,
            entries: &entries,
        });
        let mut encoder = device.create_command_encoder(&Default::default());
        {
            let mut pass = encoder.begin_compute_pass(&Default::default());
            pass.set_bind_group(0, &bind, &[]);
            match kernel {
                Kernel::Prefill => {
                    let rows_per_kv = (rows / shape.n_kv_head) as u32;
                    pass.set_pipeline(&self.prefill);
                    pass.dispatch_workgroups(
                        rows_per_kv.div_ceil(GROUP),
                        shape.n_kv_head as u32,
                        1,
                    );
                }
                Kernel::Decode => {
                    pass.set_pipeline(&self.decode);
                    pass.dispatch_workgroups(n_splits as u32, rows as u32, 1);
                    pass.set_pipeline(&self.merge);
                    pass.dispatch_workgroups(rows as u32, 1, 1);
                }
            }
        }
        let out = self.read_back(encoder, &out, out_len)?;
        match pollster::block_on(scope.pop()) {
            Some(e) => Err(GpuError::Failed(e.to_string())),
            None => Ok(out),
        }
    }

    pub(crate) fn buffer(
        &self,
        label: &str,
        bytes: &[u8],
        usage: wgpu::BufferUsages,
    ) -> wgpu::Buffer {
        // A binding may not be empty.
        let padded;
        let bytes = if bytes.is_empty() {
            padded = [0u8; 4];
            &padded[..]
        } else {
            bytes
        };
        self.ctx
            .device
            .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some(label),
                contents: bytes,
                usage,
            })
    }

    /// Submits `encoder` with a copy of `source` to a mappable buffer, waits, and reads it.
    fn read_back(
        &self,
        mut encoder: wgpu::CommandEncoder,
        source: &wgpu::Buffer,
        len: usize,
    ) -> Result<Vec<f32>, GpuError> {
        let size = (len * 4) as u64;
        let staging = self.ctx.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("read back"),
            size,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        encoder.copy_buffer_to_buffer(source, 0, &staging, 0, size);
        self.ctx.queue.submit([encoder.finish()]);
        let slice = staging.slice(..);
        let (tx, rx) = std::sync::mpsc::channel();
        slice.map_async(wgpu::MapMode::Read, move |r| {
            let _ = tx.send(r);
        });
        self.ctx
            .device
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| GpuError::Failed(e.to_string()))?;
        rx.recv()
            .map_err(|e| GpuError::Failed(e.to_string()))?
            .map_err(|e| GpuError::Failed(e.to_string()))?;
        let view = slice
            .get_mapped_range()
            .map_err(|e| GpuError::Failed(e.to_string()))?;
        let data = bytemuck::cast_slice(&view).to_vec();
        drop(view);
        staging.unmap();
        Ok(data)
    }
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
