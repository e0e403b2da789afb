//! One kernel call with everything bound: run it and read its result back, or time it.

use std::time::{Duration, Instant};

use super::{GpuContext, GpuError};

/// One dispatch of a pipeline.
pub struct Step {
    pipeline: wgpu::ComputePipeline,
    groups: [u32; 3],
}

impl Step {
    pub fn new(pipeline: &wgpu::ComputePipeline, groups: [usize; 3]) -> Step {
        Step {
            pipeline: pipeline.clone(),
            groups: groups.map(|g| g as u32),
        }
    }
}

pub struct Prepared {
    ctx: GpuContext,
    bind: wgpu::BindGroup,
    steps: Vec<Step>,
    result: wgpu::Buffer,
    result_len: usize,
}

impl Prepared {
    pub(crate) fn new(
        ctx: GpuContext,
        bind: wgpu::BindGroup,
        steps: Vec<Step>,
        result: wgpu::Buffer,
        result_len: usize,
    ) -> Prepared {
        Prepared {
            ctx,
            bind,
            steps,
            result,
            result_len,
        }
    }

    /// Dispatches, one submit, and the result read back.
    pub fn run(&self) -> Result<Vec<f32>, GpuError> {
        let mut results = run_all(&[self])?;
        Ok(results.swap_remove(0))
    }

    /// Wall time of each of `reps` submits of the dispatches alone, each waited for (nothing
    /// goes up or comes back).
    pub fn time(&self, reps: usize) -> Result<Vec<Duration>, GpuError> {
        (0..reps)
            .map(|_| {
                let started = Instant::now();
                self.ctx.queue.submit([self.encode().finish()]);
                self.wait()?;
                Ok(started.elapsed())
            })
            .collect()
    }

    fn encode(&self) -> wgpu::CommandEncoder {
        let mut encoder = self.ctx.device.create_command_encoder(&Default::default());
        self.record(&mut encoder);
        encoder
    }

    fn record(&self, encoder: &mut wgpu::CommandEncoder) {
        let mut pass = encoder.begin_compute_pass(&Default::default());
        pass.set_bind_group(0, &self.bind, &[]);
        for step in &self.steps {
            pass.set_pipeline(&step.pipeline);
            let [x, y, z] = step.groups;
            pass.dispatch_workgroups(x, y, z);
        }
    }

    fn wait(&self) -> Result<(), GpuError> {
        self.ctx
            .device
            .poll(wgpu::PollType::wait_indefinitely())
            .map(|_| ())
            .map_err(|e| GpuError::Failed(e.to_string()))
    }
}

/// Several calls (on one device) in one submit with one read back: a GPU round trip costs far
/// more than a small dispatch, so the engine makes one for all sequences of a step and layer.
pub fn run_all(calls: &[&Prepared]) -> Result<Vec<Vec<f32>>, GpuError> {
    let Some(first) = calls.first() else {
        return Ok(Vec::new());
    };
    first.ctx.checked(|| submit_and_read(first, calls))
}

fn submit_and_read(first: &Prepared, calls: &[&Prepared]) -> Result<Vec<Vec<f32>>, GpuError> {
    let device = &first.ctx.device;
    let failed = |e: &dyn std::fmt::Display| GpuError::Failed(e.to_string());
    let total: usize = calls.iter().map(|c| c.result_len).sum();
    let staging = device.create_buffer(&wgpu::BufferDescriptor {
        label: Some("read back"),
        size: (total * 4).max(4) as u64,
        usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    });
    let mut encoder = device.create_command_encoder(&Default::default());
    let mut offset = 0;
    for call in calls {
        call.record(&mut encoder);
        let size = (call.result_len * 4) as u64;
        encoder.copy_buffer_to_buffer(&call.result, 0, &staging, offset, size);
        offset += size;
    }
    first.ctx.queue.submit([encoder.finish()]);
    let slice = staging.slice(..);
    let (tx, rx) = std::sync::mpsc::channel();
    slice.map_async(wgpu::MapMode::Read, move |r| {
        let _ = tx.send(r);
    });
    first.wait()?;
    rx.recv().map_err(|e| failed(&e))?.map_err(|e| failed(&e))?;
    let view = slice.get_mapped_range().map_err(|e| failed(&e))?;
    let data: &[f32] = bytemuck::cast_slice(&view);
    let mut rest = data;
    let results = calls
        .iter()
        .map(|call| {
            let (mine, tail) = rest.split_at(call.result_len);
            rest = tail;
            mine.to_vec()
        })
        .collect();
    drop(view);
    staging.unmap();
    Ok(results)
}
