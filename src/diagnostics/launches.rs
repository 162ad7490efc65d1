//! Kernel launches, counted: on a GPU the U-Net's cost is set by how many compute dispatches it
//! issues far more than by its arithmetic, so these counts are the GPU path's cost model.
//! `ddpm bench` reports them and tests/launches.rs holds them to their recorded figures.
//!
//! CubeCL reports every kernel it issues to one process-wide observer, so the counts cover only
//! CubeCL backends (wgpu); the CPU backend (`flex`) launches nothing.

use crate::noise::NoiseSource;
use crate::sampler::{Guidance, NoisePredictor, SamplerKind, SamplingRun, X0};
use crate::schedule::Schedule;
use crate::train::{TrainConfig, Trainer};
use crate::unet::{Part, Probe, UNet};
use burn::prelude::*;
use cubecl::config::{TypeNameFormatLevel, type_name_format};
use cubecl::logging::{LaunchObservation, LaunchObserver};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

/// The launches some work issued, in all and by kernel (named as CubeCL's profiler names it).
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Launches {
    pub total: usize,
    pub by_kernel: BTreeMap<String, usize>,
}

#[derive(Default)]
struct Tally(Mutex<BTreeMap<&'static str, usize>>);

impl LaunchObserver for Tally {
    fn launched(&self, kernel: &'static str) {
        *self.0.lock().unwrap().entry(kernel).or_default() += 1;
    }
}

/// Runs `work` and counts the kernels it launches. Work elsewhere in the process at the same time
/// is counted too: count on one thread, with nothing else running.
pub fn count<R>(work: impl FnOnce() -> R) -> (R, Launches) {
    let tally = Arc::new(Tally::default());
    let observation = LaunchObservation::new(tally.clone());
    let result = work();
    drop(observation);
    let mut launches = Launches::default();
    for (kernel, n) in std::mem::take(&mut *tally.0.lock().unwrap()) {
        launches.total += n;
        *launches.by_kernel.entry(type_name_format(kernel, TypeNameFormatLevel::Short)).or_default() += n;
    }
    (result, launches)
}

/// Counts `work` after `warm_up` uncounted runs of it: the first run of a shape autotunes its
/// kernels, benchmarking every candidate through the same launch path. Each run ends with a sync,
/// as a fused device only launches when its queued operations are needed.
fn warm_count<R>(device: &Device, warm_up: usize, mut work: impl FnMut() -> R) -> Launches {
    let mut run = || {
        let out = work();
        device.sync().expect("the device finishes its work");
        out
    };
    for _ in 0..warm_up {
        let _ = run();
    }
    count(run).1
}

/// The units the GPU path's cost is judged by, named as `ddpm bench` reports them: a U-Net
/// forward (as sampling runs it) at batch 1 and 16, one guided DDIM step at batch 4 (one forward
/// of twice the batch, then the update), and one training step at batch 16 (forward, backward,
/// clipping, Adam, EMA).
pub fn measure(model: &UNet, schedule: &Schedule, size: usize) -> Result<BTreeMap<&'static str, Launches>, String> {
    let device = model.init_conv.weight.val().device();
    let channels = model.init_conv.weight.val().dims()[1];
    let inference = model.for_inference();
    let mut out = BTreeMap::new();
    for (name, batch) in [("forward, batch 1", 1), ("forward, batch 16", 16)] {
        let x = NoiseSource::new(0).normal([batch, channels, size, size], &device);
        let labels = vec![None; batch];
        out.insert(name, warm_count(&device, 1, || inference.predict_noise(x.clone(), 500, &labels)));
    }

    let batch = 4;
    let sampler = SamplerKind::Ddim { steps: 50, eta: 0.0 }.build(schedule, X0::Clipped)?;
    let guidance = Guidance::new(vec![Some(7); batch], 2.0);
    let mut run = SamplingRun::new(sampler, [batch, channels, size, size], guidance, 0, &device);
    out.insert("guided DDIM step, batch 4", warm_count(&device, 1, || run.step(&inference)));

    let batch = 16;
    let config = TrainConfig::new().with_grad_clip(Some(1.0)).with_ema_decay(0.999);
    let mut trainer = Trainer::new(model.clone().train(), schedule.clone(), config);
    let autodiff = trainer.model().init_conv.weight.val().device();
    let x0 = NoiseSource::new(1).normal([batch, channels, size, size], &autodiff).clamp(-1.0, 1.0);
    let labels: Vec<usize> = (0..batch).map(|i| i % 10).collect();
    // Two: Adam's first step creates its moments, and only the second runs (and tunes) the
    // update every later step runs.
    out.insert("training step, batch 16", warm_count(&autodiff, 2, || trainer.step(x0.clone(), &labels)));
    Ok(out)
}

/// A U-Net forward at batch 1 (as sampling runs it), its launches by part of the network: the
/// time and class embedding, the ResNet blocks, the linear attentions, the attention, the
/// resamplings, and the rest (the first and last convolutions, the skip concatenations).
/// [`UNet::forward_with`] runs it, so the parts sum to that forward's count (tests/launches.rs).
pub fn by_part(model: &UNet, size: usize) -> BTreeMap<&'static str, usize> {
    let m = model.for_inference();
    let device = m.init_conv.weight.val().device();
    let channels = m.init_conv.weight.val().dims()[1];
    let x = NoiseSource::new(0).normal([1, channels, size, size], &device);
    let forward = |counter: &mut PartCounter| {
        // The inputs, made as `UNet::forward_indexed` makes them, count with the embedding.
        let (t, labels) = counter.step(Part::Embedding, || {
            let t = Tensor::<1>::from_data(TensorData::new(vec![500f32], [1]), &device);
            let labels = m.null_class().map(|null| Tensor::<1, Int>::from_data(TensorData::new(vec![null as i64], [1]), &device));
            (t, labels)
        });
        m.forward_with(x.clone(), t, labels, counter)
    };
    let mut counter = PartCounter { device: device.clone(), parts: BTreeMap::new() };
    let _ = forward(&mut counter); // the first run tunes; count the second
    counter.parts.clear();
    let _ = forward(&mut counter);
    counter.parts
}

/// The part names `ddpm bench` reports.
fn name(part: Part) -> &'static str {
    match part {
        Part::Embedding => "time and class embedding",
        Part::Block => "ResNet blocks",
        Part::LinearAttention => "linear attention",
        Part::Attention => "attention",
        Part::Resampling => "resampling",
        Part::Rest => "rest",
    }
}

/// Counts each step's launches, by part.
struct PartCounter {
    device: Device,
    parts: BTreeMap<&'static str, usize>,
}

impl Probe for PartCounter {
    fn step<T>(&mut self, part: Part, step: impl FnOnce() -> T) -> T {
        let (out, launches) = count(|| {
            let out = step();
            self.device.sync().expect("the device finishes its work");
            out
        });
        *self.parts.entry(name(part)).or_default() += launches.total;
        out
    }
}
