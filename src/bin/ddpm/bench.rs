//! `ddpm bench` and `ddpm export`: the native half of `make bench`. Timings go to stdout as JSON
//! for tools/bench_report.mjs; the export lets the PyTorch reference run the very same weights.

use crate::{DeviceArg, load_weights};
use burn::prelude::*;
use burn::store::{BurnToPyTorchAdapter, ModuleSnapshot, SafetensorsStore};
use ddpm_web::noise::NoiseSource;
use ddpm_web::sampler::NoisePredictor;
use ddpm_web::train::{TrainConfig, Trainer};
use ddpm_web::unet::UNet;
use serde_json::json;
use std::path::PathBuf;
use std::time::Instant;

#[derive(clap::Args)]
pub struct BenchArgs {
    #[arg(long, default_value = "www/assets/model.ddpm")]
    weights: PathBuf,
    #[arg(long, value_enum, default_value = "cpu")]
    device: DeviceArg,
    /// Timed repetitions of each measurement (after one untimed warm-up).
    #[arg(long, default_value_t = 5)]
    runs: usize,
    /// Batch sizes of the forward timings.
    #[arg(long, default_value = "1,16", value_delimiter = ',')]
    batches: Vec<usize>,
    /// Batch size of the training timing (0: skip it).
    #[arg(long, default_value_t = 16)]
    train_batch: usize,
}

#[derive(clap::Args)]
pub struct ExportArgs {
    #[arg(long, default_value = "www/assets/model.ddpm")]
    weights: PathBuf,
    /// The safetensors file to write: PyTorch's layout, tensors named by their Burn module path.
    /// Beside it, OUT.probe.json: an input and this model's output, to check the other side against.
    #[arg(long, short)]
    out: PathBuf,
}

/// Median, min and max of timings in milliseconds.
fn summary(mut ms: Vec<f64>) -> serde_json::Value {
    ms.sort_by(f64::total_cmp);
    json!({ "median": ms[ms.len() / 2], "min": ms[0], "max": ms[ms.len() - 1], "runs": ms.len() })
}

/// Times `f` `runs` times after a warm-up; `f` must wait for the device itself.
fn time(runs: usize, mut f: impl FnMut()) -> serde_json::Value {
    f();
    summary(
        (0..runs.max(1))
            .map(|_| {
                let started = Instant::now();
                f();
                started.elapsed().as_secs_f64() * 1000.0
            })
            .collect(),
    )
}

fn image_dims(model: &UNet, batch: usize) -> [usize; 4] {
    let channels = model.init_conv.weight.val().dims()[1];
    [batch, channels, 28, 28]
}

/// One forward pass of the U-Net per call, as one reverse step of the page makes (no guidance).
pub fn time_forward(model: &UNet, batch: usize, runs: usize) -> serde_json::Value {
    let device = model.init_conv.weight.val().device();
    let x = NoiseSource::new(0).normal(image_dims(model, batch), &device);
    let labels = vec![None; batch];
    time(runs, || {
        let _ = model.predict_noise(x.clone(), 500, &labels).into_data();
    })
}

pub fn bench(args: BenchArgs) -> Result<(), String> {
    let device = args.device.device()?;
    let (model, description) = load_weights(&args.weights, &device)?;
    let mut forward = serde_json::Map::new();
    for &batch in &args.batches {
        // As sampling runs it (kernels standardised once).
        forward.insert(batch.to_string(), time_forward(&model.for_inference(), batch, args.runs));
    }
    let mut report = json!({
        "device": format!("{:?}", args.device).to_lowercase(),
        "threads": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        "params": model.num_params(),
        "forward_ms": forward,
    });
    if matches!(args.device, DeviceArg::Wgpu) {
        // Only CubeCL backends launch kernels: the CPU backend would count nothing.
        let launches = ddpm_web::launches::measure(&model, &description.schedule(), description.unet.image_size)?;
        report["launches"] = serde_json::to_value(launches).unwrap();
    }
    if args.train_batch > 0 {
        // Algorithm 1 as `ddpm train` runs it: Adam, clipping, EMA, label dropout.
        let batch = args.train_batch;
        let config = TrainConfig::new().with_grad_clip(Some(1.0)).with_ema_decay(0.999);
        let mut trainer = Trainer::new(model.train(), description.schedule(), config);
        let autodiff = trainer.model.init_conv.weight.val().device();
        let mut rng = NoiseSource::new(1);
        let x0 = rng.normal(image_dims(&trainer.model, batch), &autodiff).clamp(-1.0, 1.0);
        let labels: Vec<usize> = (0..batch).map(|i| i % 10).collect();
        let step = time(args.runs, || {
            let _ = trainer.step(x0.clone(), &labels).into_data();
        });
        let images_per_s = batch as f64 * 1000.0 / step["median"].as_f64().unwrap();
        report["train"] = json!({ "batch": batch, "step_ms": step, "images_per_s": images_per_s });
    }
    println!("{report}");
    Ok(())
}

pub fn export(args: ExportArgs) -> Result<(), String> {
    let device = Device::flex();
    let (model, description) = load_weights(&args.weights, &device)?;
    let mut store = SafetensorsStore::from_file(args.out.clone())
        .with_to_adapter(BurnToPyTorchAdapter)
        .skip_enum_variants(true)
        .metadata("ddpm.description", serde_json::to_string(&description).unwrap())
        .overwrite(true);
    model.save_into(&mut store).map_err(|e| format!("{}: {e}", args.out.display()))?;
    // A probe beside it: an input and this model's noise prediction, so the PyTorch copy and the
    // ONNX export can be checked to compute the same function before they are timed.
    let batch = 2;
    let x = NoiseSource::new(7).normal(image_dims(&model, batch), &device);
    let (t, labels) = ([999usize, 250], [Some(7), None]);
    let eps = model.forward_indexed(x.clone(), &t, &labels);
    let null = model.null_class().unwrap_or(0);
    let floats = |x: Tensor<4>| x.into_data().try_to_vec::<f32>().unwrap();
    let probe = json!({
        "shape": x.dims(), "t": t, "labels": labels.map(|l| l.unwrap_or(null)),
        "x": floats(x), "eps": floats(eps),
    });
    let path = args.out.with_extension("probe.json");
    std::fs::write(&path, probe.to_string()).map_err(|e| format!("{}: {e}", path.display()))?;
    println!("wrote {} and {}", args.out.display(), path.display());
    Ok(())
}
