//! Acquiring a WebGPU device ourselves (rather than letting Burn do it) so that the page can draw
//! with the same device, hear when it is lost, and acquire a fresh one to recover.

use burn::tensor::wgpu::{WgpuSetup, wgpu};

/// An adapter and device with everything the adapter offers, as Burn's own set-up requests; if
/// the adapter refuses its own advertised limits (some drivers do), WebGPU's defaults, which
/// every adapter must grant and which this model fits in. The note says when that happened.
pub async fn acquire() -> Result<(WgpuSetup, Option<String>), String> {
    let instance = wgpu::Instance::new(wgpu::InstanceDescriptor {
        backends: wgpu::Backends::BROWSER_WEBGPU,
        ..wgpu::InstanceDescriptor::new_without_display_handle()
    });
    let adapter = instance
        .request_adapter(&wgpu::RequestAdapterOptions {
            power_preference: wgpu::PowerPreference::HighPerformance,
            ..Default::default()
        })
        .await
        .map_err(|e| format!("WebGPU offers no adapter ({e})"))?;
    let request = |limits: wgpu::Limits| {
        adapter.request_device(&wgpu::DeviceDescriptor {
            label: Some("ddpm-web"),
            required_features: adapter.features().difference(wgpu::Features::MAPPABLE_PRIMARY_BUFFERS),
            required_limits: limits,
            memory_hints: wgpu::MemoryHints::MemoryUsage,
            ..Default::default()
        })
    };
    let (device, queue, note) = match request(adapter.limits()).await {
        Ok((device, queue)) => (device, queue, None),
        Err(refused) => {
            let (device, queue) = request(wgpu::Limits::default())
                .await
                .map_err(|e| format!("the WebGPU adapter refused a device: {}", js_reason(&e)))?;
            let note = format!(
                "The WebGPU adapter refused its own limits ({}); running with WebGPU's default limits.",
                js_reason(&refused)
            );
            (device, queue, Some(note))
        }
    };
    // A lost device cannot be used again; the page restarts the engine on a new one.
    device.set_device_lost_callback(|reason, message| {
        super::call_global("ddpmOnDeviceLost", &format!("{reason:?}: {message}"));
    });
    device.on_uncaptured_error(std::sync::Arc::new(|error: wgpu::Error| {
        super::call_global("ddpmOnGpuError", &error.to_string());
    }));
    let setup = WgpuSetup { instance, adapter, device, queue, backend: wgpu::Backend::BrowserWebGpu };
    Ok((setup, note))
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
