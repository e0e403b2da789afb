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
        let device = &self.ctx.device;
        let scope = device.push_error_scope(wgpu::ErrorFilter::Validation);
        let size = (self.result_len * 4) as u64;
        let staging = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("read back"),
            size,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let mut encoder = self.encode();
        encoder.copy_buffer_to_buffer(&self.result, 0, &staging, 0, size);
        self.ctx.queue.submit([encoder.finish()]);
        let slice = staging.slice(..);
        let (tx, rx) = std::sync::mpsc::channel();
        slice.map_async(wgpu::MapMode::Read, move |r| {
            let _ = tx.send(r);
        });
        self.wait()?;
        let failed = |e: &dyn std::fmt::Display| GpuError::Failed(e.to_string());
        rx.recv().map_err(|e| failed(&e))?.map_err(|e| failed(&e))?;
        let view = slice.get_mapped_range().map_err(|e| failed(&e))?;
        let data = bytemuck::cast_slice(&view).to_vec();
        drop(view);
        staging.unmap();
        match pollster::block_on(scope.pop()) {
            Some(e) => Err(failed(&e)),
            None => Ok(data),
        }
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
        {
            let mut pass = encoder.begin_compute_pass(&Default::default());
            pass.set_bind_group(0, &self.bind, &[]);
            for step in &self.steps {
                pass.set_pipeline(&step.pipeline);
                let [x, y, z] = step.groups;
                pass.dispatch_workgroups(x, y, z);
            }
        }
        encoder
    }

    fn wait(&self) -> Result<(), GpuError> {
        self.ctx
            .device
            .poll(wgpu::PollType::wait_indefinitely())
            .map(|_| ())
            .map_err(|e| GpuError::Failed(e.to_string()))
    }
}
