//! `ddpm bench`: the native half of `make bench`. Timings go to stdout as JSON for
//! tools/bench/report.mjs.

use crate::{DeviceArg, load_weights};
use burn::prelude::*;
use ddpm_web::noise::NoiseSource;
use ddpm_web::sampler::NoisePredictor;
use ddpm_web::train::{TrainConfig, Trainer};
use ddpm_web::unet::UNet;
use ddpm_web::weights::ModelDescription;
use serde_json::json;
use std::path::PathBuf;
use std::time::Instant;

#[derive(Clone, Copy, PartialEq, clap::ValueEnum)]
enum Kernels {
    On,
    Off,
    Both,
}

#[derive(clap::Args)]
pub struct Args {
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
    /// Batch sizes of the training timings (0: skip them); the first is reported as `train`, each
    /// in `train_by_batch`.
    #[arg(long, default_value = "16,32", value_delimiter = ',')]
    train_batches: Vec<usize>,
    /// With the U-Net's own kernels, without them (Burn's operations only), or both, the steps
    /// alternated; one side alone is for profiling it.
    #[arg(long, value_enum, default_value = "both")]
    kernels: Kernels,
}

pub fn run(args: Args) -> Result<(), String> {
    let device = args.device.device()?;
    let (model, description) = load_weights(&args.weights, &device)?;
    let (on, off) = (args.kernels != Kernels::Off, args.kernels == Kernels::Both);
    ddpm_web::kernels::set_enabled(on);
    // As sampling runs it (kernels standardised once), with the kernels and without.
    let forwards = |kernels: bool| {
        ddpm_web::kernels::set_enabled(kernels);
        let times = args.batches.iter().map(|&batch| (batch.to_string(), time_forward(&model.for_inference(), batch, args.runs)));
        let times: serde_json::Map<_, _> = times.collect();
        ddpm_web::kernels::set_enabled(on);
        times
    };
    let mut report = json!({
        "device": format!("{:?}", args.device).to_lowercase(),
        "threads": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        "params": model.num_params(),
        "forward_ms": forwards(on),
    });
    if off {
        report["forward_ms_without_kernels"] = json!(forwards(false));
    }
    if matches!(args.device, DeviceArg::Wgpu) {
        // Only CubeCL backends launch kernels: the CPU backend would count nothing.
        let launches = ddpm_web::diagnostics::launches::measure(&model, &description.schedule(), description.unet.image_size)?;
        report["launches"] = serde_json::to_value(launches).unwrap();
        // By part of the network, with the U-Net's own kernels and with Burn's operations alone.
        let size = description.unet.image_size;
        let ours = ddpm_web::diagnostics::launches::by_part(&model, size);
        ddpm_web::kernels::set_enabled(false);
        let burn_ops = ddpm_web::diagnostics::launches::by_part(&model, size);
        ddpm_web::kernels::set_enabled(true);
        report["launches_by_part"] = json!({ "kernels": ours, "burn_ops": burn_ops });
    }
    let mut by_batch = serde_json::Map::new();
    for &batch in args.train_batches.iter().filter(|&&b| b > 0) {
        let mut timings = json!({});
        if off {
            let (with, without) = time_training_paired(model.clone(), &description, batch, args.runs);
            timings["train"] = with;
            timings["train_without_kernels"] = without;
        } else {
            timings["train"] = time_training(model.clone(), &description, batch, args.runs);
        }
        if by_batch.is_empty() {
            for (key, value) in timings.as_object().expect("an object") {
                report[key] = value.clone();
            }
        }
        by_batch.insert(batch.to_string(), timings);
    }
    report["train_by_batch"] = json!(by_batch);
    println!("{report}");
    Ok(())
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

/// One step of Algorithm 1 as `ddpm train` runs it: Adam, clipping, EMA, label dropout.
fn time_training(model: UNet, description: &ModelDescription, batch: usize, runs: usize) -> serde_json::Value {
    let mut step = training_step(model, description, batch);
    training_report(batch, time(runs, &mut step))
}

/// [`time_training`] with the kernels and without them (Burn's operations and optimiser a tensor
/// at a time), their steps taken in turn, as the host's speed drifts within a run: both then see
/// the same drift. Also reports the median of the pairs' ratios.
fn time_training_paired(model: UNet, description: &ModelDescription, batch: usize, runs: usize) -> (serde_json::Value, serde_json::Value) {
    use ddpm_web::kernels::set_enabled;
    let mut with = training_step(model.clone(), description, batch);
    set_enabled(false);
    let mut without = training_step(model, description, batch);
    without();
    set_enabled(true);
    with();
    let (mut ms_with, mut ms_without, mut ratios) = (vec![], vec![], vec![]);
    for _ in 0..runs.max(1) {
        let on = timed(&mut with);
        set_enabled(false);
        let off = timed(&mut without);
        set_enabled(true);
        ms_with.push(on);
        ms_without.push(off);
        ratios.push(off / on);
    }
    ratios.sort_by(f64::total_cmp);
    let mut with = training_report(batch, summary(ms_with));
    with["speedup_over_without_kernels"] = json!(ratios[ratios.len() / 2]);
    (with, training_report(batch, summary(ms_without)))
}

/// A closure taking one training step (waited for) on a fresh trainer of `model`; the kernels'
/// switch decides its optimiser when it is made.
fn training_step(model: UNet, description: &ModelDescription, batch: usize) -> impl FnMut() {
    let config = TrainConfig::new().with_grad_clip(Some(1.0)).with_ema_decay(0.999);
    let mut trainer = Trainer::new(model.train(), description.schedule(), config);
    let autodiff = trainer.model().init_conv.weight.val().device();
    let mut rng = NoiseSource::new(1);
    let x0 = rng.normal(image_dims(trainer.model(), batch), &autodiff).clamp(-1.0, 1.0);
    let labels: Vec<usize> = (0..batch).map(|i| i % 10).collect();
    move || {
        let _ = trainer.step(x0.clone(), &labels).into_data();
    }
}

fn training_report(batch: usize, step: serde_json::Value) -> serde_json::Value {
    let images_per_s = batch as f64 * 1000.0 / step["median"].as_f64().unwrap();
    json!({ "batch": batch, "step_ms": step, "images_per_s": images_per_s })
}

/// Times `f` `runs` times after a warm-up; `f` must wait for the device itself.
fn time(runs: usize, mut f: impl FnMut()) -> serde_json::Value {
    f();
    summary((0..runs.max(1)).map(|_| timed(&mut f)).collect())
}

/// Milliseconds `f` takes.
fn timed(f: &mut impl FnMut()) -> f64 {
    let started = Instant::now();
    f();
    started.elapsed().as_secs_f64() * 1000.0
}

/// Median, min and max of timings in milliseconds.
fn summary(mut ms: Vec<f64>) -> serde_json::Value {
    ms.sort_by(f64::total_cmp);
    json!({ "median": ms[ms.len() / 2], "min": ms[0], "max": ms[ms.len() - 1], "runs": ms.len() })
}

/// The input shape of `model` for a batch of Fashion-MNIST-sized images.
pub fn image_dims(model: &UNet, batch: usize) -> [usize; 4] {
    let channels = model.init_conv.weight.val().dims()[1];
    [batch, channels, 28, 28]
}
