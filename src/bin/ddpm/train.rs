//! `ddpm train`: Algorithm 1 on Fashion-MNIST with progress, checkpoints and resume.

use crate::{DeviceArg, load_data, load_weights, progress_bar};
use burn::prelude::*;
use ddpm_web::data::{DEFAULT_DIR, Dataset, Split};
use ddpm_web::diffusion::LossKind;
use ddpm_web::noise::NoiseSource;
use ddpm_web::schedule::BetaSchedule;
use ddpm_web::train::{TrainConfig, Trainer};
use ddpm_web::unet::{BlockKind, UNetConfig};
use ddpm_web::weights::{ModelDescription, Precision, to_bytes};
use indicatif::ProgressBar;
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
    #[arg(long, value_parser = crate::positive_f64)]
    minutes: Option<f64>,
    #[arg(long, default_value_t = 1)]
    epochs: usize,
    #[arg(long, default_value_t = 128)]
    batch: usize,
    #[arg(long, default_value_t = 1e-3, value_parser = crate::positive_f64)]
    lr: f64,
    #[arg(long, default_value_t = 0)]
    warmup: usize,
    /// constant, or cosine: decays to 0 at the run's last step (--steps or --epochs; give the
    /// same ones when resuming).
    #[arg(long, value_enum, default_value = "constant")]
    lr_schedule: LrSchedule,
    /// Clip each gradient to this L2 norm.
    #[arg(long, value_parser = crate::positive_f32)]
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
    #[arg(long, default_value_t = 0.1, value_parser = crate::probability_f32)]
    cond_drop: f32,
    /// EMA decay of the weights (0: none).
    #[arg(long, default_value_t = 0.999, value_parser = crate::decay_f64)]
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
    let data = training_data(&args)?;
    let unet = unet_config(&args, data.rows)?;
    let length = Length::plan(&args, data.len().div_ceil(args.batch))?;
    let (trainer, description) = build_trainer(&args, unet, &data, length.decay_steps(), &device)?;
    let mut run = Run::start(&args, &data, trainer, description, length, device)?;
    while run.step < run.length.total && run.advance()? {}
    run.finish();
    Ok(())
}

/// The training images (the first --limit of them).
fn training_data(args: &Args) -> Result<Dataset, String> {
    let mut data = load_data(&args.data, Split::Train)?;
    if let Some(n) = args.limit {
        data = data.take(n);
    }
    if data.is_empty() || args.batch == 0 {
        return Err("nothing to train on: the data set or the batch is empty".into());
    }
    Ok(data)
}

fn unet_config(args: &Args, image_size: usize) -> Result<UNetConfig, String> {
    let unet = UNetConfig::new()
        .with_dim(args.dim)
        .with_dim_mults(args.dim_mults.clone())
        .with_image_size(image_size)
        .with_block(match args.block {
            BlockArg::Resnet => BlockKind::Resnet,
            BlockArg::Convnext => BlockKind::ConvNext,
        })
        .with_attn_heads(args.attn_heads)
        .with_attn_dim_head(args.attn_dim_head)
        .with_num_classes(if args.unconditional { 0 } else { 10 });
    unet.validate()?;
    Ok(unet)
}

/// How long the run is: a number of steps, or a time budget.
struct Length {
    /// The step to stop at; `usize::MAX` until a fitted run knows its speed.
    total: usize,
    budget: Option<Duration>,
    /// With a time budget and no --steps, the run's length is only known once its speed is.
    fitted: bool,
    cosine: bool,
    minutes: f64,
}

impl Length {
    fn plan(args: &Args, steps_per_epoch: usize) -> Result<Self, String> {
        let cosine = args.lr_schedule == LrSchedule::Cosine;
        // The parser took only positive minutes; a Duration still has an end.
        let budget = match args.minutes {
            Some(m) => Some(Duration::try_from_secs_f64(m * 60.0).map_err(|_| format!("--minutes {m:e} is longer than a timer holds"))?),
            None => None,
        };
        let fitted = budget.is_some() && args.steps.is_none();
        if fitted && cosine && args.resume {
            return Err("a resumed cosine run needs the first run's --steps: its decay must keep its length".into());
        }
        let total = if fitted { usize::MAX } else { args.steps.unwrap_or(args.epochs * steps_per_epoch) };
        Ok(Self { total, budget, fitted, cosine, minutes: args.minutes.unwrap_or_default() })
    }

    /// Where a cosine decay ends: unknown yet (0) for a fitted run.
    fn decay_steps(&self) -> usize {
        if self.cosine && !self.fitted { self.total } else { 0 }
    }
}

/// A fresh model, or the checkpoint at --out with Adam's moments, in a trainer.
fn build_trainer(args: &Args, unet: UNetConfig, data: &Dataset, decay_steps: usize, device: &Device) -> Result<(Trainer, ModelDescription), String> {
    let mut description = ModelDescription {
        unet: unet.clone(),
        schedule: args.schedule,
        timesteps: args.timesteps,
        train_steps: 0,
        data_checksum: Some(data.checksum()),
        precision: if args.f16 { Precision::F16 } else { Precision::F32 },
    };
    let (model, ema) = if args.resume {
        // The checkpoint fixes the model; this run's data and storage precision still apply.
        let (raw, saved) = load_weights(&raw_path(&args.out), device)?;
        let (ema, _) = load_weights(&args.out, &device.clone().without_autodiff())?;
        description = ModelDescription { data_checksum: description.data_checksum, precision: description.precision, ..saved };
        (raw, Some(ema))
    } else {
        // Seeded, so that the same command reproduces the same file on the same backend.
        device.seed(args.seed);
        (unet.init(device), None)
    };
    let mut trainer = Trainer::new(model, description.schedule(), train_config(args, decay_steps));
    if let (Some(ema), true) = (ema, args.ema > 0.0) {
        trainer.set_ema(ema);
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
    Ok((trainer, description))
}

fn train_config(args: &Args, decay_steps: usize) -> TrainConfig {
    TrainConfig::new()
        .with_lr(args.lr)
        .with_warmup_steps(args.warmup)
        .with_decay_steps(decay_steps)
        .with_grad_clip(args.clip)
        .with_loss(args.loss)
        .with_ema_decay(args.ema)
        .with_cond_drop_prob(args.cond_drop)
        .with_seed(args.seed)
}

/// A run under way: the trainer, where it is, and what it shows.
struct Run<'a> {
    args: &'a Args,
    data: &'a Dataset,
    device: Device,
    trainer: Trainer,
    description: ModelDescription,
    length: Length,
    steps_per_epoch: usize,
    start_step: usize,
    step: usize,
    /// This epoch's order of the images.
    order: Vec<usize>,
    /// Losses are read back in groups: a read waits for the device, and on a GPU waiting every
    /// step leaves it idle while the next step is recorded.
    pending: Vec<Tensor<1>>,
    smoothed: Option<f32>,
    /// Where a fitted run started timing its speed (step, time).
    calibration: Option<(usize, Instant)>,
    started: Instant,
    bar: ProgressBar,
}

impl<'a> Run<'a> {
    fn start(args: &'a Args, data: &'a Dataset, trainer: Trainer, description: ModelDescription, length: Length, device: Device) -> Result<Self, String> {
        let start_step = trainer.steps_done;
        if length.total <= start_step {
            return Err(format!("already trained {start_step} steps (asked for {})", length.total));
        }
        let planned = if length.fitted { format!("{} minutes", length.minutes) } else { format!("{} steps", length.total) };
        println!(
            "training {} parameters on {} images ({:?}), from step {start_step} for {planned}, batch {}",
            burn::module::Module::num_params(trainer.model()),
            data.len(),
            args.device,
            args.batch
        );
        let bar = progress_bar(if length.fitted { 0 } else { length.total - start_step });
        let steps_per_epoch = data.len().div_ceil(args.batch);
        let (order, pending, smoothed, calibration, started) = (Vec::new(), Vec::new(), None, None, Instant::now());
        Ok(Self {
            args,
            data,
            device,
            trainer,
            description,
            length,
            steps_per_epoch,
            start_step,
            step: start_step,
            order,
            pending,
            smoothed,
            calibration,
            started,
            bar,
        })
    }

    /// Steps taken by this run (not counting those it resumed from).
    fn done(&self) -> usize {
        self.step - self.start_step
    }

    /// One step, with the loss read, the length fitted, the progress shown and a checkpoint saved
    /// when they are due; false when the time budget has run out.
    fn advance(&mut self) -> Result<bool, String> {
        self.train_step();
        let out_of_time = self.length.budget.is_some_and(|b| self.started.elapsed() >= b);
        let done = self.done();
        if done.is_multiple_of(LOSS_EVERY) || done == 1 || self.step == self.length.total || out_of_time {
            self.read_losses()?;
            if self.length.fitted {
                self.fit_length();
            }
            self.show_progress();
        }
        self.bar.inc(1);
        if self.step.is_multiple_of(self.args.checkpoint_every) || self.step == self.length.total || out_of_time {
            self.description.train_steps = self.step;
            save(&self.trainer, &self.description, &self.args.out)?;
        }
        if out_of_time && self.step < self.length.total && self.trainer.config.decay_steps > self.step {
            println!("the {} minutes ran out at step {}, before the cosine decay's end ({})", self.length.minutes, self.step, self.length.total);
        }
        Ok(!out_of_time)
    }

    /// Records one optimisation step (its loss is read later).
    fn train_step(&mut self) {
        let (seed, step) = (self.args.seed, self.step);
        let (epoch, epoch_pos) = (step / self.steps_per_epoch, step % self.steps_per_epoch);
        // A resumed run starts mid-epoch: rebuild that epoch's order first.
        if epoch_pos == 0 || step == self.start_step {
            self.order = (0..self.data.len()).collect();
            NoiseSource::new(step_seed(seed, 1, epoch)).shuffle(&mut self.order);
        }
        let batch = self.args.batch;
        let idx: Vec<usize> = (0..batch).map(|k| self.order[(epoch_pos * batch + k) % self.order.len()]).collect();
        let mut flips = (!self.args.no_flips).then(|| NoiseSource::new(step_seed(seed, 2, step)));
        let (x, y) = self.data.batch(&idx, flips.as_mut(), &self.device);
        self.trainer.reseed(step_seed(seed, 3, step));
        self.pending.push(self.trainer.step(x, &y));
        self.step += 1;
    }

    /// Reads the pending losses back: a diverged run stops, the others update the smoothed loss.
    fn read_losses(&mut self) -> Result<(), String> {
        let pending = std::mem::take(&mut self.pending);
        let losses = Tensor::cat(pending, 0).into_data().try_into_vec::<f32>().map_err(|e| format!("{e:?}"))?;
        for (k, &loss) in losses.iter().enumerate() {
            if !loss.is_finite() {
                let at = self.step - losses.len() + k;
                return Err(format!("the loss diverged at step {at} ({loss}); try a smaller --lr or --clip 1"));
            }
            self.smoothed = Some(self.smoothed.map_or(loss, |s: f32| 0.98 * s + 0.02 * loss));
        }
        Ok(())
    }

    /// A fitted run times steps FIT_FROM to FIT_TO (the first ones compile kernels), then sets its
    /// length, and a cosine decay's, to fill the time budget.
    fn fit_length(&mut self) {
        let done = self.done();
        if done == FIT_FROM {
            self.calibration = Some((self.step, Instant::now()));
            return;
        }
        let (FIT_TO, Some((from, at)), Some(budget)) = (done, self.calibration, self.length.budget) else { return };
        let per_sec = (self.step - from) as f64 / at.elapsed().as_secs_f64();
        let left = budget.saturating_sub(self.started.elapsed()).as_secs_f64();
        // A little short of the budget, so that the last checkpoint lands inside it.
        let total = self.step + (0.98 * left * per_sec) as usize;
        self.length.total = total;
        if self.length.cosine {
            self.trainer.config.decay_steps = total;
        }
        self.bar.set_length((total - self.start_step) as u64);
        // The steps so far ran undecayed: only when they were all warm-up does --steps repeat the
        // run exactly.
        let repeat = if self.args.warmup >= FIT_TO || !self.length.cosine {
            format!("--steps {total} repeats this run")
        } else {
            format!("--warmup {FIT_TO} or more makes it repeatable")
        };
        let minutes = self.length.minutes;
        self.bar.suspend(|| println!("{per_sec:.2} steps/s: {minutes} minutes are {total} steps ({repeat})"));
    }

    fn show_progress(&self) {
        let done = self.done();
        let rate = (done * self.args.batch) as f64 / self.started.elapsed().as_secs_f64();
        let s = self.smoothed.unwrap_or(f32::NAN);
        self.bar.set_message(format!("loss {s:.4}  {rate:.1} img/s"));
        // Without a terminal (a log file, CI) the bar is hidden: print a line now and then.
        if self.bar.is_hidden() && (self.step.is_multiple_of(100) || done == 1) {
            let of = if self.length.total == usize::MAX { "?".to_string() } else { self.length.total.to_string() };
            println!("step {}/{of}  loss {s:.4}  {rate:.1} img/s", self.step);
        }
    }

    fn finish(self) {
        self.bar.finish();
        let secs = self.started.elapsed().as_secs_f64();
        println!(
            "done: {} steps in {:.1} s ({:.1} img/s), final loss {:.4}; weights in {}",
            self.done(),
            secs,
            (self.done() * self.args.batch) as f64 / secs,
            self.smoothed.unwrap_or(f32::NAN),
            self.args.out.display()
        );
    }
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
    let raw = to_bytes(&trainer.model().valid(), &full).map_err(|e| e.to_string())?;
    write(out, ema)?;
    write(&raw_path(out), raw)?;
    write(&optim_path(out), trainer.optimizer_state()?)
}
