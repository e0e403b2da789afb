//! Our own GPU compute, through wgpu on whatever the machine has (Vulkan, Metal, DX12): the
//! device and queue (`GpuContext`), and the attention kernels of `shaders/` (`attention`).

pub mod attention;
pub mod backend;
pub mod prepared;
pub mod variant;

use std::sync::Arc;

/// Why there is no GPU to compute on, or why a computation failed on it.
#[derive(Debug, thiserror::Error)]
pub enum GpuError {
    #[error(
        "no GPU adapter was found{0}; attention runs on the CPU (install the GPU's Vulkan, Metal or DX12 driver to use it)"
    )]
    NoAdapter(&'static str),
    #[error("the GPU ({adapter}) refused a device: {detail}")]
    Device { adapter: String, detail: String },
    #[error("the GPU failed: {0}")]
    Failed(String),
    #[error("{0} does not fit the attention kernels: {1}")]
    Shape(&'static str, String),
}

/// Which adapters count: a software one (Mesa's lavapipe, for tests) only when asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AdapterChoice {
    HardwareOnly,
    AllowSoftware,
}

/// A device and its queue, with what the adapter is and can do.
#[derive(Clone, Debug)]
pub struct GpuContext {
    pub device: Arc<wgpu::Device>,
    pub queue: Arc<wgpu::Queue>,
    pub info: wgpu::AdapterInfo,
    pub limits: wgpu::Limits,
}

impl GpuContext {
    /// The best adapter `choice` allows (a discrete or integrated GPU before a software one),
    /// with the adapter's own limits rather than the defaults, so large caches fit.
    pub fn new(choice: AdapterChoice) -> Result<GpuContext, GpuError> {
        let instance =
            wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle_from_env());
        let adapters = pollster::block_on(instance.enumerate_adapters(wgpu::Backends::all()));
        let rank = |a: &wgpu::Adapter| match a.get_info().device_type {
            wgpu::DeviceType::DiscreteGpu => 0,
            wgpu::DeviceType::IntegratedGpu => 1,
            wgpu::DeviceType::VirtualGpu | wgpu::DeviceType::Other => 2,
            wgpu::DeviceType::Cpu => 3,
        };
        let adapter = adapters
            .into_iter()
            .filter(|a| choice == AdapterChoice::AllowSoftware || rank(a) < 3)
            .min_by_key(rank)
            .ok_or(GpuError::NoAdapter(match choice {
                AdapterChoice::HardwareOnly => " (software adapters were not asked for)",
                AdapterChoice::AllowSoftware => "",
            }))?;
        let info = adapter.get_info();
        let limits = adapter.limits();
        let descriptor = wgpu::DeviceDescriptor {
            label: Some("glassbox"),
            required_limits: limits.clone(),
            // The optional features the kernels use when they are there.
            required_features: adapter.features()
                & (wgpu::Features::SUBGROUP | wgpu::Features::SHADER_F16),
            ..Default::default()
        };
        let (device, queue) =
            pollster::block_on(adapter.request_device(&descriptor)).map_err(|e| {
                GpuError::Device {
                    adapter: info.name.clone(),
                    detail: e.to_string(),
                }
            })?;
        Ok(GpuContext {
            device: Arc::new(device),
            queue: Arc::new(queue),
            info,
            limits,
        })
    }

    /// The adapter in words, e.g. "llvmpipe (LLVM 15.0.6, 256 bits) (Vulkan, Cpu)".
    pub fn describe(&self) -> String {
        format!(
            "{} ({:?}, {:?})",
            self.info.name, self.info.backend, self.info.device_type
        )
    }

    /// Runs `f`, which uses the device, with its validation and out-of-memory errors caught
    /// and returned (uncaught, wgpu would panic on them, as it does once the device is lost).
    pub fn checked<T>(&self, f: impl FnOnce() -> Result<T, GpuError>) -> Result<T, GpuError> {
        let memory = self.device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        let validation = self.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let result = f();
        let validation = pollster::block_on(validation.pop());
        let memory = pollster::block_on(memory.pop());
        match validation.or(memory) {
            Some(e) => Err(GpuError::Failed(e.to_string())),
            None => result,
        }
    }

    /// The most bytes one buffer binding may hold on this adapter.
    pub fn largest_binding(&self) -> u64 {
        self.limits
            .max_storage_buffer_binding_size
            .min(self.limits.max_buffer_size)
    }

    /// Whether the device has these optional features.
    pub fn has(&self, features: wgpu::Features) -> bool {
        self.device.features().contains(features)
    }

    /// Whether the adapter is a software one (the CPU drawing).
    pub fn is_software(&self) -> bool {
        self.info.device_type == wgpu::DeviceType::Cpu
    }
}
