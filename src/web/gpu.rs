//! Acquiring a WebGPU device ourselves (rather than letting Burn do it) so that the page can draw
//! with the same device, hear when it is lost, and acquire a fresh one to recover.

use crate::gpu_request::needed_features;
use burn::tensor::wgpu::{WgpuSetup, wgpu};

/// An adapter and a device with WebGPU's default limits, which every device grants, so that what
/// runs here runs on a phone too (tests/limits.rs holds the engine's work to them), and the
/// features CubeCL reads ([`needed_features`]).
pub async fn acquire() -> Result<WgpuSetup, String> {
    let instance =
        wgpu::Instance::new(wgpu::InstanceDescriptor { backends: wgpu::Backends::BROWSER_WEBGPU, ..wgpu::InstanceDescriptor::new_without_display_handle() });
    let adapter = instance
        .request_adapter(&wgpu::RequestAdapterOptions { power_preference: wgpu::PowerPreference::HighPerformance, ..Default::default() })
        .await
        .map_err(|e| format!("WebGPU offers no adapter ({e})"))?;
    let (device, queue) = adapter
        .request_device(&wgpu::DeviceDescriptor {
            label: Some("ddpm-web"),
            required_features: needed_features(adapter.features()),
            required_limits: wgpu::Limits::default(),
            memory_hints: wgpu::MemoryHints::MemoryUsage,
            ..Default::default()
        })
        .await
        .map_err(|e| format!("the WebGPU adapter refused a device with the default limits: {}", js_reason(&e)))?;
    // A lost device cannot be used again; the page restarts the engine on a new one.
    device.set_device_lost_callback(|reason, message| {
        super::call_global("ddpmOnDeviceLost", &format!("{reason:?}: {message}"));
    });
    device.on_uncaptured_error(std::sync::Arc::new(|error: wgpu::Error| {
        super::call_global("ddpmOnGpuError", &error.to_string());
    }));
    Ok(WgpuSetup { instance, adapter, device, queue, backend: wgpu::Backend::BrowserWebGpu })
}

/// Whether the adapter is a software renderer (SwiftShader), where WebGPU is far slower than wasm.
pub fn is_software(setup: &WgpuSetup) -> bool {
    setup.adapter.get_info().device_type == wgpu::DeviceType::Cpu
}

/// The first line of a browser error as wgpu reports it ("JsValue(OperationError: …\n<stack>)").
fn js_reason(error: &impl std::fmt::Display) -> String {
    let text = error.to_string();
    let line = text.lines().next().unwrap_or_default();
    line.trim_start_matches("JsValue(").trim_end_matches(')').to_string()
}
