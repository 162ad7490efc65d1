//! `ddpm eval`: the Fréchet distance of generated samples to the test set, beside its floor (train
//! images at the same n) and its ceiling (noise), in the feature space of `ddpm classifier train`.

pub mod compare;
mod journal;
mod settings;

use crate::{DeviceArg, GuidanceArgs, SamplerArg, load_data, load_weights, progress_bar};
use burn::prelude::*;
use ddpm_web::data::{DEFAULT_DIR, Dataset, Split};
use ddpm_web::eval::classifier::{Classifier, FEATURES, dataset_features, noise_features, test_reference};
use ddpm_web::eval::draws::mean_and_sd;
use ddpm_web::eval::floor::real_sets;
use ddpm_web::eval::frechet::{frechet_infinity, frechet_to};
use ddpm_web::sampler::{SamplingRun, X0};
use ddpm_web::schedule::Schedule;
use ddpm_web::unet::UNet;
use ddpm_web::weights::ModelDescription;
use journal::{BatchResult, Journal};
use nalgebra::{DMatrix, DVector};
use settings::{Settings, fingerprint};
use std::path::{Path, PathBuf};

#[derive(clap::Args)]
pub struct Args {
    #[arg(long, short, default_value = "model.ddpm")]
    weights: PathBuf,
    #[arg(long, default_value = "assets/classifier.bpk")]
    classifier: PathBuf,
    #[arg(long, default_value = DEFAULT_DIR)]
    data: PathBuf,
    /// How many samples to generate (balanced over the ten classes for a class-conditional
    /// model); they are compared as a set with all 10,000 test images
    /// (FD∞ needs at least 384).
    #[arg(long, default_value_t = 10_000)]
    count: usize,
    #[arg(long, value_enum, default_value = "ddim")]
    sampler: SamplerArg,
    #[arg(long, default_value_t = 50)]
    steps: usize,
    /// Clamp each step's x̂_0 to [−1, 1] (Ho et al.'s released code; the paper's Algorithm 2 does not).
    #[arg(long)]
    clip_x0: bool,
    #[command(flatten)]
    guide: GuidanceArgs,
    #[arg(long, default_value_t = 250)]
    batch: usize,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    #[arg(long, value_enum, default_value = "cpu")]
    device: DeviceArg,
    /// Keep each finished batch in this file and, run again with the same settings, go on from
    /// where it stopped (DDPM's 1000 steps take hours on a CPU).
    #[arg(long, value_name = "FILE")]
    resume: Option<PathBuf>,
}

/// Disjoint draws of real images the floor at n averages, so that one lucky or unlucky draw does
/// not set every ratio.
const FLOOR_DRAWS: usize = 40;

pub fn run(args: Args) -> Result<(), String> {
    let device = args.device.device()?;
    let (model, description) = load_model(&args.weights, &device)?;
    let classifier = crate::classifier::load(&args.classifier, &device)?;
    let train = load_data(&args.data, Split::Train)?;
    let test = load_data(&args.data, Split::Test)?;
    let n = args.count.min(test.len());
    if n < 2 {
        return Err("--count must be at least 2".into());
    }
    let test_set = TestSet::new(&classifier, &test, &device);
    let conditional = model.null_class().is_some();
    let floor = Floor::measure(&classifier, &train, &test_set, conditional, n, &device)?;
    // Pure noise, clamped to the image range.
    let ceiling = test_set.fd(&noise_features(&classifier, n, 28, args.seed ^ 0xce11, &device));
    let schedule = description.schedule();
    let settings = settings(&args, schedule.len(), n)?;
    let journal = match &args.resume {
        None => Journal::none(),
        Some(path) => Journal::open(path, &settings)?,
    };
    let journal = sample(&args, journal, &model, &schedule, &classifier, &class_plan(conditional, n), &device)?;
    report(&settings, &journal, &test_set, &floor, ceiling, conditional);
    Ok(())
}

/// The weights, ready for inference: eval's classifier reads 28×28 grey images only.
fn load_model(path: &Path, device: &Device) -> Result<(UNet, ModelDescription), String> {
    let (model, description) = load_weights(path, device)?;
    if description.unet.image_size != 28 || description.unet.channels != 1 {
        return Err("eval compares 28×28 grey images (Fashion-MNIST); these weights make other images".into());
    }
    Ok((model.for_inference(), description))
}

/// The classes the samples ask for, by position (a fixed rotation); the floor's real images follow
/// the same plan.
fn class_plan(conditional: bool, count: usize) -> Vec<Option<usize>> {
    (0..count).map(|i| conditional.then_some(i % 10)).collect()
}

/// What this run samples and measures with, as its journal records it.
fn settings(args: &Args, timesteps: usize, n: usize) -> Result<Settings, String> {
    Ok(Settings {
        weights: fingerprint(&args.weights)?,
        classifier: fingerprint(&args.classifier)?,
        sampler: args.sampler,
        steps: if args.sampler.takes_steps() { args.steps } else { timesteps },
        clip_x0: args.clip_x0,
        guidance: args.guide.guidance,
        guidance_interval: args.guide.guidance_interval.as_ref().map(|i| (*i.start(), *i.end())),
        count: n,
        batch: args.batch,
        seed: args.seed,
    })
}

/// The test set's features as a Gaussian. Every FD is to all of its images, so that only the
/// n-sample side carries small-sample bias.
pub(crate) struct TestSet {
    mean: DVector<f64>,
    covariance: DMatrix<f64>,
    len: usize,
}

impl TestSet {
    pub(crate) fn new(classifier: &Classifier, test: &Dataset, device: &Device) -> Self {
        let (mean, covariance) = test_reference(classifier, test, device);
        Self { mean, covariance, len: test.len() }
    }

    pub(crate) fn gaussian(&self) -> (&DVector<f64>, &DMatrix<f64>) {
        (&self.mean, &self.covariance)
    }

    pub(crate) fn fd(&self, features: &[f32]) -> f64 {
        frechet_to(features, self.gaussian(), FEATURES)
    }
}

/// What train images score: n of them (the mean over disjoint draws), and as many as the test set.
/// Train and test images come from one distribution, so the floor is all small-sample bias: it
/// shrinks towards 0 as n grows.
struct Floor {
    at_n: f64,
    sd: f64,
    draws: usize,
    large: f64,
    large_n: usize,
}

impl Floor {
    fn measure(classifier: &Classifier, train: &Dataset, test_set: &TestSet, conditional: bool, n: usize, device: &Device) -> Result<Self, String> {
        let real_fd = |set: &Vec<usize>| test_set.fd(&dataset_features(classifier, train, set, device));
        let too_few = |count: usize| format!("the train set ({} images) holds too few of some class for a floor of {count} images", train.len());
        let floors: Vec<f64> = real_sets(&train.labels, &class_plan(conditional, n), FLOOR_DRAWS).iter().map(real_fd).collect();
        if floors.is_empty() {
            return Err(too_few(n));
        }
        let large_n = test_set.len.min(train.len());
        let large = real_sets(&train.labels, &class_plan(conditional, large_n), 1).first().map(real_fd).ok_or_else(|| too_few(large_n))?;
        let (at_n, sd) = mean_and_sd(&floors);
        Ok(Self { at_n, sd, draws: floors.len(), large, large_n })
    }
}

/// Draws the samples the journal does not hold yet, a batch at a time (each from seed + batch
/// index), and keeps their features and predicted classes in it.
fn sample(
    args: &Args,
    mut journal: Journal,
    model: &UNet,
    schedule: &Schedule,
    classifier: &Classifier,
    asked: &[Option<usize>],
    device: &Device,
) -> Result<Journal, String> {
    let n = asked.len();
    if !journal.done.is_empty() {
        eprintln!("resuming: {} of {} batches already done", journal.done.len(), n.div_ceil(args.batch));
    }
    // DDIM deterministic (η = 0): the settings a journal records name no η.
    let kind = args.sampler.kind(args.steps, 0.0);
    let x0 = if args.clip_x0 { X0::Clipped } else { X0::Raw };
    let progress = progress_bar(n);
    for (b, start) in (0..n).step_by(args.batch).enumerate() {
        let size = (start + args.batch).min(n) - start;
        if !journal.done.contains_key(&b) {
            let labels = asked[start..start + size].to_vec();
            let guidance = args.guide.for_labels(labels.clone(), schedule.len())?;
            let run = SamplingRun::new(kind.build(schedule, x0)?, [size, 1, 28, 28], guidance, args.seed + b as u64, device);
            let x = run.finish(model).clamp(-1.0, 1.0);
            let (features, predicted) = (classifier.feature_vec(x.clone()), classifier.predict(x));
            journal.record(BatchResult { batch: b, features, predicted, asked: labels })?;
        }
        progress.inc(size as u64);
    }
    progress.finish_and_clear();
    Ok(journal)
}

/// The samples' FD beside the floor and the ceiling, and how often a guided sample shows its class.
fn report(settings: &Settings, journal: &Journal, test_set: &TestSet, floor: &Floor, ceiling: f64, conditional: bool) {
    let (n, large) = (settings.count, floor.large_n);
    let generated: Vec<f32> = journal.done.values().flat_map(|r| r.features.iter().copied()).collect();
    let fd = test_set.fd(&generated);
    let fd_infinity = frechet_infinity(&generated, test_set.gaussian(), FEATURES, settings.seed);
    println!("samples: {n} ({}, guidance {}); every FD is to all {} test images", settings.sampling(), settings.guidance, test_set.len);
    println!("FD of the samples      {fd:>9.3}   (n = {n})");
    match fd_infinity {
        Some(inf) => println!("FD∞ of the samples     {inf:>9.3}   (bias-corrected: what n → ∞ would give)"),
        None => println!("FD∞ of the samples     needs n ≥ {}", 3 * FEATURES),
    }
    println!("floor: train images    {:>9.3}   (n = {n});  {:.3} with n = {large}", floor.at_n, floor.large);
    println!(
        "  (train images of the classes the samples asked for, in the same numbers; the floor at n = {n} is the mean of {} disjoint draws, which scatter by {:.3})",
        floor.draws, floor.sd
    );
    println!("ceiling: noise         {ceiling:>9.3}   (n = {n})");
    println!("samples / floor        {:>8.2}×   (n = {n})", fd / floor.at_n);
    // A perfect model's samples would read the floor at any n; ours add FD∞ to it.
    if let Some(inf) = fd_infinity {
        println!("samples / floor        {:>8.2}×   (n = {large}, estimated: (FD∞ + floor) / floor)", (inf + floor.large) / floor.large);
    }
    if conditional {
        let results = journal.done.values().flat_map(|r| r.asked.iter().zip(&r.predicted));
        let hits = results.filter(|(asked, got)| asked.is_some_and(|a| a == **got)).count();
        println!("class accuracy of guided samples: {:.2} %", 100.0 * hits as f64 / n as f64);
    }
}
