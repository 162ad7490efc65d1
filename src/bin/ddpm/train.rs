//! `ddpm train`: Algorithm 1 on Fashion-MNIST with progress, checkpoints and resume.

use crate::DeviceArg;
use burn::prelude::*;
use ddpm_web::data::{DEFAULT_DIR, Dataset, Split};
use ddpm_web::diffusion::LossKind;
use ddpm_web::noise::NoiseSource;
use ddpm_web::schedule::BetaSchedule;
use ddpm_web::train::{TrainConfig, Trainer};
use ddpm_web::unet::{BlockKind, UNetConfig};
use crate::load_weights;
use ddpm_web::weights::{ModelDescription, Precision, to_bytes};
use indicatif::{ProgressBar, ProgressStyle};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Steps between reads of the loss.
const LOSS_EVERY: usize = 10;
/// The steps (counted from the run's start) over which a --minutes run measures its speed.
const FIT_FROM: usize = 10;
const FIT_TO: usize = 50;

#[derive(Clone, Copy, PartialEq, clap::ValueEnum)]
enum LrSchedule {
    Constant,
    Cosine,
}

#[derive(clap::Args)]
pub struct Args {
    /// Directory with the IDX files.
    #[arg(long, default_value = DEFAULT_DIR)]
    data: PathBuf,
    /// Where the weights go (the EMA weights; the raw ones and Adam's moments go to OUT.raw and
    /// OUT.optim for --resume).
    #[arg(long, short, default_value = "model.ddpm")]
    out: PathBuf,
    /// Optimisation steps (overrides --epochs).
    #[arg(long)]
    steps: Option<usize>,
    /// Stop after this many minutes of training, saving a checkpoint. Without --steps the run's
    /// length is fitted to them from the speed of its first steps (and so is a cosine decay;
    /// --epochs is then ignored).
    #[arg(long)]
    minutes: Option<f64>,
    #[arg(long, default_value_t = 1)]
    epochs: usize,
    #[arg(long, default_value_t = 128)]
    batch: usize,
    #[arg(long, default_value_t = 1e-3)]
    lr: f64,
    #[arg(long, default_value_t = 0)]
    warmup: usize,
    /// constant, or cosine: decays to 0 at the run's last step (--steps or --epochs; give the
    /// same ones when resuming).
    #[arg(long, value_enum, default_value = "constant")]
    lr_schedule: LrSchedule,
    /// Clip each gradient to this L2 norm.
    #[arg(long)]
    clip: Option<f32>,
    #[arg(long, default_value = "l2", value_parser = LossKind::parse)]
    loss: LossKind,
    #[arg(long, default_value = "linear", value_parser = BetaSchedule::parse)]
    schedule: BetaSchedule,
    #[arg(long, default_value_t = 1000)]
    timesteps: usize,
    #[arg(long, default_value_t = 28)]
    dim: usize,
    /// Channel multipliers per level, e.g. 1,2,4.
    #[arg(long, default_value = "1,2,4", value_delimiter = ',')]
    dim_mults: Vec<usize>,
    #[arg(long, value_enum, default_value = "resnet")]
    block: BlockArg,
    #[arg(long, default_value_t = 4)]
    attn_heads: usize,
    #[arg(long, default_value_t = 32)]
    attn_dim_head: usize,
    /// Train without class labels (no guidance possible).
    #[arg(long)]
    unconditional: bool,
    /// Probability of dropping the label (classifier-free guidance).
    #[arg(long, default_value_t = 0.1)]
    cond_drop: f32,
    /// EMA decay of the weights (0: none).
    #[arg(long, default_value_t = 0.999)]
    ema: f64,
    /// Train without random left-right flips. Fashion-MNIST's shoes all face left: a model
    /// trained with flips draws half of them facing right, which the test set never shows.
    #[arg(long)]
    no_flips: bool,
    /// Use only the first N training images.
    #[arg(long)]
    limit: Option<usize>,
    #[arg(long, value_enum, default_value = "cpu")]
    device: DeviceArg,
    #[arg(long, default_value_t = 1000)]
    checkpoint_every: usize,
    /// Continue from OUT, OUT.raw and OUT.optim (Adam's moments).
    #[arg(long)]
    resume: bool,
    /// Store the weights as f16 (half the size).
    #[arg(long)]
    f16: bool,
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum BlockArg {
    Resnet,
    Convnext,
}

fn sibling(out: &Path, suffix: &str) -> PathBuf {
    let mut s = out.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

fn raw_path(out: &Path) -> PathBuf {
    sibling(out, ".raw")
}

/// Adam's moments, beside the raw weights.
fn optim_path(out: &Path) -> PathBuf {
    sibling(out, ".optim")
}

/// Every random draw of step `step` comes from its own stream, so a run resumed at any
/// checkpoint goes on exactly as the uninterrupted run would have.
fn step_seed(seed: u64, stream: u64, step: usize) -> u64 {
    seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ (stream << 48) ^ step as u64
}

pub fn run(args: Args) -> Result<(), String> {
    let device = args.device.device()?.autodiff();
    let mut data = Dataset::load(&args.data, Split::Train).map_err(|e| e.to_string())?;
    if let Some(n) = args.limit {
        data = data.take(n);
    }
    if data.is_empty() || args.batch == 0 {
        return Err("nothing to train on: the data set or the batch is empty".into());
    }
    let unet = UNetConfig::new()
        .with_dim(args.dim)
        .with_dim_mults(args.dim_mults.clone())
        .with_image_size(data.rows)
        .with_block(match args.block {
            BlockArg::Resnet => BlockKind::Resnet,
            BlockArg::Convnext => BlockKind::ConvNext,
        })
        .with_attn_heads(args.attn_heads)
        .with_attn_dim_head(args.attn_dim_head)
        .with_num_classes(if args.unconditional { 0 } else { 10 });
    unet.validate()?;
    let mut description = ModelDescription {
        unet: unet.clone(),
        schedule: args.schedule,
        timesteps: args.timesteps,
        train_steps: 0,
        data_checksum: Some(data.checksum()),
        precision: if args.f16 { Precision::F16 } else { Precision::F32 },
    };
    let steps_per_epoch = data.len().div_ceil(args.batch);
    let cosine = args.lr_schedule == LrSchedule::Cosine;
    let budget = match args.minutes {
        Some(m) if m.is_finite() && m > 0.0 => Some(Duration::from_secs_f64(m * 60.0)),
        Some(m) => return Err(format!("--minutes must be a positive number of minutes (got {m})")),
        None => None,
    };
    // With a time budget and no --steps, the run's length is only known once its speed is.
    let fitted = budget.is_some() && args.steps.is_none();
    let minutes = args.minutes.unwrap_or_default();
    if fitted && cosine && args.resume {
        return Err("a resumed cosine run needs the first run's --steps: its decay must keep its length".into());
    }
    let mut total = if fitted { usize::MAX } else { args.steps.unwrap_or(args.epochs * steps_per_epoch) };
    let config = TrainConfig::new()
        .with_lr(args.lr)
        .with_warmup_steps(args.warmup)
        .with_decay_steps(if cosine && !fitted { total } else { 0 })
        .with_grad_clip(args.clip)
        .with_loss(args.loss)
        .with_ema_decay(args.ema)
        .with_cond_drop_prob(args.cond_drop)
        .with_seed(args.seed);
    let (model, ema) = if args.resume {
        // The checkpoint fixes the model; this run's data and storage precision still apply.
        let (raw, saved) = load_weights(&raw_path(&args.out), &device)?;
        let (ema, _) = load_weights(&args.out, &device.clone().without_autodiff())?;
        description = ModelDescription { data_checksum: description.data_checksum, precision: description.precision, ..saved };
        (raw, Some(ema))
    } else {
        // Seeded, so that the same command reproduces the same file on the same backend.
        device.seed(args.seed);
        (unet.init(&device), None)
    };
    let mut trainer = Trainer::new(model, description.schedule(), config);
    if let (Some(ema), true) = (ema, args.ema > 0.0) {
        trainer.ema = Some(ema);
    }
    trainer.steps_done = description.train_steps;
    trainer.ema_updates = description.train_steps;
    if args.resume {
        let path = optim_path(&args.out);
        match std::fs::read(&path) {
            Ok(bytes) => trainer.load_optimizer_state(&bytes).map_err(|e| format!("{}: {e}", path.display()))?,
            Err(e) => eprintln!("warning: {}: {e}; Adam's moments start afresh", path.display()),
        }
    }
    let start_step = trainer.steps_done;
    if total <= start_step {
        return Err(format!("already trained {start_step} steps (asked for {total})"));
    }
    let length = if fitted { format!("{minutes} minutes") } else { format!("{total} steps") };
    println!(
        "training {} parameters on {} images ({:?}), from step {start_step} for {length}, batch {}",
        burn::module::Module::num_params(&trainer.model),
        data.len(),
        args.device,
        args.batch
    );
    let bar = ProgressBar::new(if fitted { 0 } else { (total - start_step) as u64 });
    bar.set_style(ProgressStyle::with_template("{bar:40} {pos}/{len} [{elapsed_precise}<{eta_precise}] {msg}").unwrap());
    let mut order: Vec<usize> = Vec::new();
    let started = Instant::now();
    let mut smoothed = None;
    // Losses are read back in groups: a read waits for the device, and on a GPU waiting every
    // step leaves it idle while the next step is recorded.
    let mut pending: Vec<Tensor<1>> = Vec::new();
    let mut calibration = None;
    let mut step = start_step;
    while step < total {
        let (epoch, epoch_pos) = (step / steps_per_epoch, step % steps_per_epoch);
        // A resumed run starts mid-epoch: rebuild that epoch's order first.
        if epoch_pos == 0 || step == start_step {
            order = (0..data.len()).collect();
            NoiseSource::new(step_seed(args.seed, 1, epoch)).shuffle(&mut order);
        }
        let idx: Vec<usize> = (0..args.batch).map(|k| order[(epoch_pos * args.batch + k) % order.len()]).collect();
        let mut flips = (!args.no_flips).then(|| NoiseSource::new(step_seed(args.seed, 2, step)));
        let (x, y) = data.batch(&idx, flips.as_mut(), &device);
        trainer.reseed(step_seed(args.seed, 3, step));
        pending.push(trainer.step(x, &y));
        step += 1;
        let done = step - start_step;
        let out_of_time = budget.is_some_and(|b| started.elapsed() >= b);
        if done % LOSS_EVERY == 0 || done == 1 || step == total || out_of_time {
            let losses = Tensor::cat(std::mem::take(&mut pending), 0).into_data().try_into_vec::<f32>().map_err(|e| format!("{e:?}"))?;
            for (k, &loss) in losses.iter().enumerate() {
                if !loss.is_finite() {
                    let at = step - losses.len() + k;
                    return Err(format!("the loss diverged at step {at} ({loss}); try a smaller --lr or --clip 1"));
                }
                smoothed = Some(smoothed.map_or(loss, |s: f32| 0.98 * s + 0.02 * loss));
            }
            // The first steps compile kernels; the speed is taken from the ones after.
            if fitted && done == FIT_FROM {
                calibration = Some((step, Instant::now()));
            } else if let (true, FIT_TO, Some((from, at)), Some(budget)) = (fitted, done, calibration, budget) {
                let per_sec = (step - from) as f64 / at.elapsed().as_secs_f64();
                let left = budget.saturating_sub(started.elapsed()).as_secs_f64();
                // A little short of the budget, so that the last checkpoint lands inside it.
                total = step + (0.98 * left * per_sec) as usize;
                if cosine {
                    trainer.config.decay_steps = total;
                }
                bar.set_length((total - start_step) as u64);
                // The steps so far ran undecayed: only when they were all warm-up does
                // --steps repeat the run exactly.
                let repeat = if args.warmup >= FIT_TO || !cosine { format!("--steps {total} repeats this run") } else { format!("--warmup {FIT_TO} or more makes it repeatable") };
                bar.suspend(|| println!("{per_sec:.2} steps/s: {minutes} minutes are {total} steps ({repeat})"));
            }
            let rate = (done * args.batch) as f64 / started.elapsed().as_secs_f64();
            let s = smoothed.unwrap_or(f32::NAN);
            bar.set_message(format!("loss {s:.4}  {rate:.1} img/s"));
            // Without a terminal (a log file, CI) the bar is hidden: print a line now and then.
            if bar.is_hidden() && (step % 100 == 0 || done == 1) {
                let of = if total == usize::MAX { "?".to_string() } else { total.to_string() };
                println!("step {step}/{of}  loss {s:.4}  {rate:.1} img/s");
            }
        }
        bar.inc(1);
        if step % args.checkpoint_every == 0 || step == total || out_of_time {
            description.train_steps = step;
            save(&trainer, &description, &args.out)?;
        }
        if out_of_time {
            if step < total && trainer.config.decay_steps > step {
                println!("the {minutes} minutes ran out at step {step}, before the cosine decay's end ({total})");
            }
            break;
        }
    }
    bar.finish();
    let secs = started.elapsed().as_secs_f64();
    println!(
        "done: {} steps in {:.1} s ({:.1} img/s), final loss {:.4}; weights in {}",
        step - start_step,
        secs,
        ((step - start_step) * args.batch) as f64 / secs,
        smoothed.unwrap_or(f32::NAN),
        args.out.display()
    );
    Ok(())
}

fn save(trainer: &Trainer, description: &ModelDescription, out: &Path) -> Result<(), String> {
    let write = |path: &Path, bytes: Vec<u8>| {
        // Write then rename, so an interrupted save never leaves a half file behind.
        let tmp = path.with_extension("partial");
        std::fs::write(&tmp, bytes).and_then(|_| std::fs::rename(&tmp, path)).map_err(|e| format!("{}: {e}", path.display()))
    };
    let ema = to_bytes(&trainer.inference_model(), description).map_err(|e| e.to_string())?;
    // The raw weights are for resuming: always full precision, whatever the EMA file's storage.
    let full = ModelDescription { precision: Precision::F32, ..description.clone() };
    let raw = to_bytes(&trainer.model.valid(), &full).map_err(|e| e.to_string())?;
    write(out, ema)?;
    write(&raw_path(out), raw)?;
    write(&optim_path(out), trainer.optimizer_state()?)
}
