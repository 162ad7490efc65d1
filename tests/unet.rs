//! The Burn U-Net against the blog's PyTorch implementation (fixtures written by
//! tools/fixtures/make-unet-fixture.py), and the CPU backend against the wgpu backend.

use burn::module::Module;
use burn::prelude::*;
use burn::store::{ModuleSnapshot, ModuleStore, PyTorchToBurnAdapter, SafetensorsStore};
use ddpm_web::noise::NoiseSource;
use ddpm_web::unet::{BlockKind, UNet, UNetConfig};
use serde_json::Value;
use std::path::PathBuf;

fn fixture(name: &str) -> PathBuf {
    // Read when the test runs, not when it is built: cargo reuses test binaries from the shared
    // target dir (~/.cache/ddpm-web) across checkouts, and a built-in path names the first one.
    let root = std::env::var_os("CARGO_MANIFEST_DIR").map_or_else(|| PathBuf::from("."), PathBuf::from);
    root.join("tests/fixtures").join(name)
}

fn meta(name: &str) -> Value {
    serde_json::from_str(&std::fs::read_to_string(fixture(name)).unwrap()).unwrap()
}

fn config_from(meta: &Value) -> UNetConfig {
    let get = |k: &str, d: u64| meta.get(k).and_then(Value::as_u64).unwrap_or(d) as usize;
    UNetConfig::new()
        .with_dim(get("dim", 28))
        .with_channels(get("channels", 1))
        .with_image_size(get("image_size", 28))
        .with_dim_mults(meta["dim_mults"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as usize).collect())
        .with_attn_heads(get("heads", 4))
        .with_attn_dim_head(get("dim_head", 32))
        .with_num_classes(get("num_classes", 0))
        .with_block(if meta.get("use_convnext").and_then(Value::as_bool) == Some(true) { BlockKind::ConvNext } else { BlockKind::Resnet })
}

fn max_abs_diff(a: Tensor<4>, b: Tensor<4>) -> f32 {
    let a = a.into_data().try_into_vec::<f32>().unwrap();
    let b = b.into_data().try_into_vec::<f32>().unwrap();
    assert_eq!(a.len(), b.len());
    a.iter().zip(&b).fold(0f32, |m, (x, y)| m.max((x - y).abs()))
}

#[test]
fn blog_configuration_has_the_reference_parameter_count() {
    let expected = meta("unet_blog_params.json")["params"].as_u64().unwrap() as usize;
    let model = UNetConfig::new().init(&Device::flex());
    assert_eq!(model.num_params(), expected);
}

/// The wgpu device, started once per process (a second start is refused).
fn wgpu() -> Device {
    static DEVICE: std::sync::OnceLock<Device> = std::sync::OnceLock::new();
    DEVICE
        .get_or_init(|| {
            ddpm_web::diagnostics::fusion::turn_off_from_env().unwrap();
            Device::wgpu_options().init().expect("a wgpu adapter (lavapipe on machines without a GPU)")
        })
        .clone()
}

fn check_against_pytorch(name: &str, device: Device) {
    let meta = meta(&format!("unet_{name}.json"));
    let config = config_from(&meta);
    let mut model = config.init(&device);
    assert_eq!(model.num_params() as u64, meta["params"].as_u64().unwrap(), "parameter count");

    let path = fixture(&format!("unet_{name}.safetensors"));
    let mut store = SafetensorsStore::from_file(path.clone()).with_from_adapter(PyTorchToBurnAdapter).skip_enum_variants(true).allow_partial(true);
    let result = model.load_from(&mut store).expect("fixture loads");
    assert!(result.missing.is_empty(), "tensors missing from fixture: {:?}", result.missing);
    assert!(result.errors.is_empty(), "{:?}", result.errors);
    let unused: Vec<_> = result.unused.iter().filter(|k| !k.starts_with("input.") && !k.starts_with("output.")).collect();
    assert!(unused.is_empty(), "fixture tensors the model did not take: {unused:?}");

    let read = |store: &mut SafetensorsStore, key: &str| burn::store::bridge::to_data(store.get_tensor(key).unwrap().expect(key)).unwrap();
    let mut store = SafetensorsStore::from_file(path);
    let x = Tensor::<4>::from_data(read(&mut store, "input.x"), &device);
    let t = Tensor::<1>::from_data(read(&mut store, "input.t"), &device);
    let expected = Tensor::<4>::from_data(read(&mut store, "output.eps"), &device);
    let labels = (config.num_classes > 0).then(|| Tensor::<1, Int>::from_data(read(&mut store, "input.labels"), &device));
    let out = model.forward(x.clone(), t.clone(), labels.clone());
    assert_eq!(out.dims(), expected.dims());
    let err = max_abs_diff(out, expected.clone());
    assert!(err < 1e-4, "{name}: max |burn − torch| = {err}");
    // The sampling copy, with its kernels standardised once, computes the same ε.
    let err = max_abs_diff(model.for_inference().forward(x, t, labels), expected);
    assert!(err < 1e-4, "{name}, for_inference: max |burn − torch| = {err}");
}

#[test]
fn resnet_unet_matches_pytorch() {
    check_against_pytorch("resnet", Device::flex());
}

#[test]
fn convnext_unet_matches_pytorch() {
    check_against_pytorch("convnext", Device::flex());
}

/// The GPU path's kernels (fused ones too, when the `fusion` feature is on) against the same probe.
#[test]
fn resnet_unet_matches_pytorch_on_wgpu() {
    check_against_pytorch("resnet", wgpu());
}

#[test]
fn convnext_unet_matches_pytorch_on_wgpu() {
    check_against_pytorch("convnext", wgpu());
}

#[test]
fn output_shape_equals_input_shape() {
    let device = Device::flex();
    let configs = [
        UNetConfig::new().with_dim(8).with_dim_mults(vec![1]).with_image_size(5),
        UNetConfig::new().with_dim(8).with_dim_mults(vec![1, 2]).with_image_size(12).with_channels(3),
        UNetConfig::new().with_dim(8).with_dim_mults(vec![1, 2, 2]).with_image_size(16).with_block(BlockKind::ConvNext),
        UNetConfig::new().with_dim(8).with_dim_mults(vec![1, 2]).with_image_size(8).with_num_classes(10),
    ];
    for config in configs {
        let model: UNet = config.init(&device);
        let shape = [2, config.channels, config.image_size, config.image_size];
        let x = NoiseSource::new(0).normal(shape, &device);
        let t = Tensor::<1>::from_data(TensorData::new(vec![3.0f32, 900.0], [2]), &device);
        let labels = (config.num_classes > 0).then(|| Tensor::<1, Int>::from_data(TensorData::new(vec![1i64, 10], [2]), &device));
        assert_eq!(model.forward(x, t, labels).dims(), shape, "{config:?}");
    }
}

#[test]
fn invalid_configurations_are_errors_not_panics() {
    assert!(UNetConfig::new().with_image_size(30).with_dim_mults(vec![1, 2, 4]).validate().is_err());
    assert!(UNetConfig::new().with_dim(6).validate().is_err(), "6 channels in 4 groups");
    assert!(UNetConfig::new().with_dim_mults(vec![]).validate().is_err());
    assert!(UNetConfig::new().validate().is_ok());
}

#[test]
fn cpu_and_wgpu_backends_agree() {
    let cpu = Device::flex();
    let gpu = wgpu();
    let config = UNetConfig::new().with_dim(8).with_dim_mults(vec![1, 2]).with_image_size(8).with_num_classes(10);
    let model = config.init(&cpu);
    let x = NoiseSource::new(4).normal([2, 1, 8, 8], &cpu);
    let t = Tensor::<1>::from_data(TensorData::new(vec![10.0f32, 600.0], [2]), &cpu);
    let labels = Tensor::<1, Int>::from_data(TensorData::new(vec![3i64, 10], [2]), &cpu);
    let on_cpu = model.forward(x.clone(), t.clone(), Some(labels.clone()));
    let model = model.to_device(&gpu);
    let on_gpu = model.forward(x.to_device(&gpu), t.to_device(&gpu), Some(labels.to_device(&gpu)));
    let err = max_abs_diff(on_cpu, on_gpu.to_device(&cpu));
    assert!(err < 1e-4, "max |flex − wgpu| = {err}");
}

/// The page's start-up check (src/self_check.rs) on the shipped model: the CPU and wgpu agree
/// within its tolerance, by far, and a wrong answer or a NaN fails it.
#[test]
fn the_self_check_passes_the_shipped_model_on_wgpu_and_fails_a_wrong_answer() {
    use ddpm_web::self_check::{Agreement, probe};
    let root = std::env::var_os("CARGO_MANIFEST_DIR").map_or_else(|| PathBuf::from("."), PathBuf::from);
    let bytes = std::fs::read(root.join("www/assets/model.ddpm")).unwrap();
    let cpu = Device::flex();
    let (model, description) = ddpm_web::weights::from_bytes(&bytes, &cpu).unwrap();
    let (size, channels) = (description.unet.image_size, description.unet.channels);
    let reference = probe(&model.for_inference(), size, channels, &cpu).into_data().try_into_vec::<f32>().unwrap();
    let (model, _) = ddpm_web::weights::from_bytes(&bytes, &wgpu()).unwrap();
    let answer = probe(&model.for_inference(), size, channels, &wgpu()).into_data().try_into_vec::<f32>().unwrap();
    let agreement = Agreement::of(&answer, &reference);
    assert!(agreement.ok(), "{agreement:?}");
    assert!(agreement.max_diff < agreement.tolerance / 10.0, "rounding alone should be far inside the tolerance: {agreement:?}");
    let mut wrong = answer.clone();
    wrong[100] += 0.1;
    assert!(!Agreement::of(&wrong, &reference).ok(), "one value off by 0.1");
    wrong[100] = f32::NAN;
    assert!(!Agreement::of(&wrong, &reference).ok(), "a NaN");
    assert!(!Agreement::of(&answer[1..], &reference).ok(), "a short answer");
}
