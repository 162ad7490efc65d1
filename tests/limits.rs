//! The GPU path within WebGPU's default limits, which every device grants (many phones no more):
//! at most 8 storage buffers a kernel, 16,384 bytes of workgroup memory, 65,535 workgroups a
//! dimension, 256 units a workgroup. A wgpu device asking for exactly those, as the page does
//! (with the features `gpu_request` names), refuses any kernel over them (a validation error), so
//! running the page's and training's work on one checks them all, Burn's kernels with ours: the
//! U-Net's forward at batch 1 and 32 (sampling, guided at batch 16), and a training step of the shipped model at batch
//! 8 (in the tab) and 32 (natively), and of the page's small model at batch 8. lavapipe's adapter
//! allows 1,024 units a workgroup, and CubeCL sizes some of Burn's kernels by the adapter's limits,
//! not the device's: this shows it stays within the device's here.

use burn::prelude::*;
use burn::tensor::wgpu::{WgpuSetup, wgpu};
use ddpm_web::gpu_request::needed_features;
use ddpm_web::noise::NoiseSource;
use ddpm_web::schedule::{BetaSchedule, Schedule};
use ddpm_web::train::{TrainConfig, Trainer};
use ddpm_web::unet::{UNet, UNetConfig};
use std::sync::{Arc, Mutex};

/// A wgpu device (lavapipe here) with WebGPU's default limits, and the validation errors it reports.
fn default_limits_device() -> (Device, Arc<Mutex<Vec<String>>>) {
    let instance = wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle());
    let adapter = futures_lite::future::block_on(instance.request_adapter(&wgpu::RequestAdapterOptions::default()))
        .expect("a wgpu adapter (lavapipe on machines without a GPU)");
    let (device, queue) = futures_lite::future::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
        label: Some("WebGPU's default limits"),
        required_features: needed_features(adapter.features()),
        required_limits: wgpu::Limits::default(),
        ..Default::default()
    }))
    .expect("a device with WebGPU's default limits");
    let errors = Arc::new(Mutex::new(Vec::new()));
    let seen = errors.clone();
    device.on_uncaptured_error(Arc::new(move |e: wgpu::Error| seen.lock().unwrap().push(e.to_string())));
    let backend = adapter.get_info().backend;
    let setup = WgpuSetup { instance, adapter, device, queue, backend };
    let device = Device::wgpu_options().setup(setup).init().expect("Burn starts on the device");
    (device, errors)
}

fn shipped(device: &Device) -> UNet {
    let root = std::env::var_os("CARGO_MANIFEST_DIR").map_or_else(|| std::path::PathBuf::from("."), std::path::PathBuf::from);
    let bytes = std::fs::read(root.join("www/assets/model.ddpm")).unwrap();
    ddpm_web::weights::from_bytes(&bytes, device).unwrap().0
}

fn train_steps(model: UNet, batch: usize, device: &Device) {
    let mut trainer = Trainer::new(model, Schedule::new(BetaSchedule::Linear, 1000), TrainConfig::new().with_grad_clip(Some(1.0)).with_ema_decay(0.99));
    let x = NoiseSource::new(1).normal([batch, 1, 28, 28], device).clamp(-1.0, 1.0);
    let labels: Vec<usize> = (0..batch).map(|i| i % 10).collect();
    let loss = trainer.step(x, &labels).into_scalar::<f32>();
    assert!(loss.is_finite(), "batch {batch}: loss {loss}");
}

#[test]
fn sampling_and_training_fit_webgpus_default_limits() {
    let (device, errors) = default_limits_device();
    let model = shipped(&device).for_inference();
    for batch in [1, 32] {
        let x = NoiseSource::new(0).normal([batch, 1, 28, 28], &device);
        let labels: Vec<Option<usize>> = (0..batch).map(|i| (i % 2 == 0).then_some(7)).collect();
        let eps = model.forward_indexed(x, &vec![500; batch], &labels).into_data().try_into_vec::<f32>().unwrap();
        assert!(eps.iter().all(|v| v.is_finite()), "forward at batch {batch}");
    }
    let autodiff = device.clone().autodiff();
    for batch in [8, 32] {
        train_steps(shipped(&autodiff), batch, &autodiff);
    }
    train_steps(UNetConfig::small().init(&autodiff), 8, &autodiff);
    device.sync().unwrap();
    assert_eq!(*errors.lock().unwrap(), Vec::<String>::new(), "wgpu refused work under WebGPU's default limits");
}
