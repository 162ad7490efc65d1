//! `ddpm classifier train` and `ddpm eval`: a feature extractor, and the Fréchet distance of
//! generated samples to the test set beside its floor (train vs test) and ceiling (noise).

use crate::{DeviceArg, GuidanceArgs, SamplerArg};
use burn::module::Module;
use burn::optim::{AdamConfig, GradientsParams};
use burn::prelude::*;
use burn::store::{BurnpackStore, ModuleSnapshot};
use burn::tensor::loss::cross_entropy_with_logits;
use ddpm_web::classifier::{Classifier, FEATURES, dataset_features, noise_features, test_reference};
use ddpm_web::data::{DEFAULT_DIR, Dataset, Split};
use ddpm_web::draws::mean_and_sd;
use ddpm_web::floor::real_sets;
use ddpm_web::frechet::{frechet_infinity, frechet_to};
use ddpm_web::noise::NoiseSource;
use ddpm_web::sampler::{SamplingRun, X0};
use crate::journal::{BatchResult, Journal};
use crate::load_weights;
use indicatif::{ProgressBar, ProgressStyle};
use std::path::{Path, PathBuf};

#[derive(clap::Args)]
pub struct ClassifierArgs {
    #[arg(long, default_value = DEFAULT_DIR)]
    data: PathBuf,
    #[arg(long, short, default_value = "classifier.bpk")]
    out: PathBuf,
    #[arg(long, default_value_t = 5)]
    epochs: usize,
    #[arg(long, default_value_t = 128)]
    batch: usize,
    #[arg(long, value_enum, default_value = "cpu")]
    device: DeviceArg,
}

#[derive(clap::Args)]
pub struct EvalArgs {
    #[arg(long, short, default_value = "model.ddpm")]
    weights: PathBuf,
    #[arg(long, default_value = "classifier.bpk")]
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

fn bar(len: usize) -> ProgressBar {
    let b = ProgressBar::new(len as u64);
    b.set_style(ProgressStyle::with_template("{bar:40} {pos}/{len} [{elapsed_precise}<{eta_precise}] {msg}").unwrap());
    b
}

/// Names a file by its size and CRC-32, so a journal is never resumed for other weights.
pub fn fingerprint(path: &Path) -> Result<String, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut crc = flate2::Crc::new();
    crc.update(&bytes);
    Ok(format!("{} bytes crc32 {:08x}", bytes.len(), crc.sum()))
}

pub fn load_data(dir: &Path, split: Split) -> Result<Dataset, String> {
    Dataset::load(dir, split).map_err(|e| e.to_string())
}

pub fn load_classifier(path: &Path, device: &Device) -> Result<Classifier, String> {
    let mut classifier = Classifier::new(device);
    let mut store = BurnpackStore::from_file(path);
    classifier.load_from(&mut store).map_err(|e| format!("{}: {e} (make one with `ddpm classifier train`)", path.display()))?;
    Ok(classifier)
}

pub fn train_classifier(args: ClassifierArgs) -> Result<(), String> {
    let device = args.device.device()?.autodiff();
    let train = load_data(&args.data, Split::Train)?;
    let test = load_data(&args.data, Split::Test)?;
    let mut model = Classifier::new(&device);
    let mut optim = AdamConfig::new().init();
    let mut rng = NoiseSource::new(1);
    let steps = train.len().div_ceil(args.batch);
    let progress = bar(args.epochs * steps);
    for _ in 0..args.epochs {
        let mut order: Vec<usize> = (0..train.len()).collect();
        rng.shuffle(&mut order);
        for chunk in order.chunks(args.batch) {
            let (x, y) = train.batch(chunk, Some(&mut rng), &device);
            let y = Tensor::<1, Int>::from_data(TensorData::new(y.iter().map(|&v| v as i64).collect::<Vec<_>>(), [y.len()]), &device);
            let targets = y.one_hot::<2>(10).float();
            let loss = cross_entropy_with_logits(model.forward(x), targets);
            let grads = GradientsParams::from_grads(loss.backward(), &model);
            model = optim.step(1e-3, model, grads);
            progress.inc(1);
        }
    }
    progress.finish_and_clear();
    let model = model.valid();
    let acc = accuracy(&model, &test, &device.clone().without_autodiff());
    println!("test accuracy {:.2} %", acc * 100.0);
    if acc < 0.9 {
        eprintln!("warning: below the 90 % a useful feature space needs; train longer (--epochs)");
    }
    let mut store = BurnpackStore::from_file(&args.out).overwrite(true);
    model.save_into(&mut store).map_err(|e| format!("{}: {e}", args.out.display()))?;
    println!("classifier → {}", args.out.display());
    Ok(())
}

fn accuracy(model: &Classifier, data: &Dataset, device: &Device) -> f64 {
    let idx: Vec<usize> = (0..data.len()).collect();
    let hits: usize = idx
        .chunks(500)
        .map(|c| {
            let (x, labels) = data.batch(c, None, device);
            model.predict(x).iter().zip(&labels).filter(|(p, l)| p == l).count()
        })
        .sum();
    hits as f64 / data.len() as f64
}

/// Disjoint draws of real images the floor at n averages: its standard error is then ~0.08 at n = 500.
const FLOOR_DRAWS: usize = 40;

pub fn eval(args: EvalArgs) -> Result<(), String> {
    let device = args.device.device()?;
    let (model, description) = load_weights(&args.weights, &device)?;
    let model = model.for_inference();
    if description.unet.image_size != 28 || description.unet.channels != 1 {
        return Err("eval compares 28×28 grey images (Fashion-MNIST); these weights make other images".into());
    }
    let classifier = load_classifier(&args.classifier, &device)?;
    let train = load_data(&args.data, Split::Train)?;
    let test = load_data(&args.data, Split::Test)?;
    let n = args.count.min(test.len());
    if n < 2 {
        return Err("--count must be at least 2".into());
    }
    // Every FD is to all 10,000 test images, so only the n-sample side carries small-sample bias.
    let reference = test_reference(&classifier, &test, &device);
    let reference = (&reference.0, &reference.1);
    let to_test = |features: &[f32]| frechet_to(features, reference, FEATURES);
    // The classes the samples ask for, by position: the floor's real images follow the same plan.
    let conditional = model.null_class().is_some();
    let plan = |count: usize| (0..count).map(|i| conditional.then_some(i % 10)).collect::<Vec<_>>();
    // The floor: train images, n of them as for the samples (the mean over disjoint draws), and as
    // many as the test set. Train and test images come from one distribution, so the floor is all
    // small-sample bias: it shrinks towards 0 as n grows.
    let real_fd = |set: &Vec<usize>| to_test(&dataset_features(&classifier, &train, set, &device));
    let asked = plan(n);
    let floors: Vec<f64> = real_sets(&train.labels, &asked, FLOOR_DRAWS).iter().map(real_fd).collect();
    let large = test.len().min(train.len());
    let too_few = |count: usize| format!("the train set ({} images) holds too few of some class for a floor of {count} images", train.len());
    if floors.is_empty() {
        return Err(too_few(n));
    }
    let floor_large = real_sets(&train.labels, &plan(large), 1).first().map(real_fd).ok_or_else(|| too_few(large))?;
    let (floor, floor_sd) = mean_and_sd(&floors);
    // The ceiling: pure noise, clamped to the image range.
    let ceiling = to_test(&noise_features(&classifier, n, 28, args.seed ^ 0xce11, &device));

    // DDIM deterministic (η = 0): the settings a journal records name no η.
    let kind = args.sampler.kind(args.steps, 0.0);
    let schedule = description.schedule();
    let mut sampler = match args.sampler {
        SamplerArg::Ddpm => format!("DDPM {} steps", schedule.len()),
        SamplerArg::DdpmTilde => format!("DDPM (σ² = β̃) {} steps", schedule.len()),
        SamplerArg::Ddim => format!("DDIM {} steps", args.steps),
    };
    let x0 = if args.clip_x0 { X0::Clipped } else { X0::Raw };
    if args.clip_x0 {
        sampler += ", x̂0 clipped";
    }
    // Part of the sampler's name, so a journal is resumed only with the same interval.
    if let Some(i) = &args.guide.guidance_interval {
        sampler += &format!(", guidance at t {}-{}", i.start(), i.end());
    }
    let mut journal = match &args.resume {
        None => Journal::none(),
        Some(path) => {
            let settings = format!(
                "weights {}, classifier {}, {sampler}, guidance {}, count {n}, batch {}, seed {}",
                fingerprint(&args.weights)?,
                fingerprint(&args.classifier)?,
                args.guide.guidance,
                args.batch,
                args.seed
            );
            Journal::open(path, &settings)?
        }
    };
    let batches = n.div_ceil(args.batch);
    if !journal.done.is_empty() {
        eprintln!("resuming: {} of {batches} batches already done", journal.done.len());
    }
    let progress = bar(n);
    for (b, start) in (0..n).step_by(args.batch).enumerate() {
        let size = (start + args.batch).min(n) - start;
        if journal.done.contains_key(&b) {
            progress.inc(size as u64);
            continue;
        }
        let labels = asked[start..start + size].to_vec();
        let guidance = args.guide.for_labels(labels.clone(), schedule.len())?;
        let run = SamplingRun::new(kind.build(&schedule, x0)?, [size, 1, 28, 28], guidance, args.seed + b as u64, &device);
        let x = run.finish(&model).clamp(-1.0, 1.0);
        let (features, predicted) = (classifier.feature_vec(x.clone()), classifier.predict(x));
        journal.record(BatchResult { batch: b, features, predicted, asked: labels })?;
        progress.inc(size as u64);
    }
    progress.finish_and_clear();
    let batches = journal.done.values();
    let generated: Vec<f32> = batches.clone().flat_map(|r| r.features.iter().copied()).collect();
    let (asked, got): (Vec<_>, Vec<_>) = batches.flat_map(|r| r.asked.iter().copied().zip(r.predicted.iter().copied())).unzip();
    let fd = (to_test(&generated), frechet_infinity(&generated, reference, FEATURES, args.seed));
    println!("samples: {n} ({sampler}, guidance {}); every FD is to all {} test images", args.guide.guidance, test.len());
    println!("FD of the samples      {:>9.3}   (n = {n})", fd.0);
    match fd.1 {
        Some(inf) => println!("FD∞ of the samples     {inf:>9.3}   (bias-corrected: what n → ∞ would give)"),
        None => println!("FD∞ of the samples     needs n ≥ {}", 3 * FEATURES),
    }
    println!("floor: train images    {floor:>9.3}   (n = {n});  {floor_large:.3} with n = {large}");
    println!(
        "  (train images of the classes the samples asked for, in the same numbers; the floor at n = {n} is the mean of {} disjoint draws, which scatter by {floor_sd:.3})",
        floors.len()
    );
    println!("ceiling: noise         {ceiling:>9.3}   (n = {n})");
    println!("samples / floor        {:>8.2}×   (n = {n})", fd.0 / floor);
    // A perfect model's samples would read the floor at any n; ours add FD∞ to it.
    if let Some(inf) = fd.1 {
        println!("samples / floor        {:>8.2}×   (n = {large}, estimated: (FD∞ + floor) / floor)", (inf + floor_large) / floor_large);
    }
    if conditional {
        let hits = asked.iter().zip(&got).filter(|(a, g)| a.is_some_and(|a| a == **g)).count();
        println!("class accuracy of guided samples: {:.2} %", 100.0 * hits as f64 / n as f64);
    }
    Ok(())
}
