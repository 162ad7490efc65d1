//! `ddpm`: train, sample and inspect the diffusion model natively. One file per subcommand; this
//! one holds the command line, the argument types several commands share, and the dispatch.

mod bench;
mod classifier;
mod convert;
mod eval;
mod export;
mod heap;
mod info;
mod sample;
mod train;

use burn::prelude::*;
use clap::{Parser, Subcommand, ValueEnum};
use ddpm_web::data::{Dataset, Split};
use indicatif::{ProgressBar, ProgressStyle};
use serde::{Deserialize, Serialize};
use std::path::Path;

#[derive(Parser)]
#[command(name = "ddpm", version, about = "Denoising diffusion on Fashion-MNIST, in Rust + Burn")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Train a U-Net with Algorithm 1 (checkpoints as it goes).
    Train(train::Args),
    /// Sample images from trained weights: a PNG grid and an animated GIF of the reverse process.
    Sample(sample::Args),
    /// The Fashion-MNIST classifier whose features the Fréchet distance uses.
    #[command(subcommand)]
    Classifier(ClassifierCommand),
    /// Fréchet distance of samples to the test set, beside its floor and ceiling.
    Eval(eval::Args),
    /// Whether B's FD is really lower than A's: two `eval --resume` journals of one sampler seed,
    /// paired sample by sample, with a bootstrap interval for the difference.
    Compare(eval::compare::Args),
    /// Time the U-Net forward pass and a training step, as JSON (the native half of `make bench`).
    Bench(bench::Args),
    /// Write weights as safetensors in PyTorch's layout, for the reference implementation.
    Export(export::Args),
    /// Describe a weights file (or the default configuration) and count its parameters.
    Info(info::Args),
    /// Store weights at another precision (f16: half the bytes).
    Convert(convert::Args),
}

#[derive(Subcommand)]
enum ClassifierCommand {
    /// Train it (two epochs reach 88.6 % test accuracy, five are needed for 90 %).
    Train(classifier::Args),
}

/// Where tensors live.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum DeviceArg {
    /// Burn's pure-Rust CPU backend (flex).
    Cpu,
    /// Burn's wgpu backend: Vulkan, Metal or DX12 (software Vulkan where there is no GPU).
    Wgpu,
}

impl DeviceArg {
    pub fn device(self) -> Result<Device, String> {
        match self {
            Self::Cpu => Ok(Device::flex()),
            Self::Wgpu => {
                ddpm_web::diagnostics::fusion::turn_off_from_env()?;
                Device::wgpu_options().init().map_err(|e| format!("no wgpu adapter: {e}"))
            }
        }
    }
}

/// The reverse process, as `sample` and `eval` take it (and an eval journal records it, by the
/// same names).
#[derive(Clone, Copy, Debug, PartialEq, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SamplerArg {
    /// Algorithm 2 with σ² = β.
    Ddpm,
    /// Algorithm 2 with σ² = β̃ (the posterior variance).
    DdpmTilde,
    /// DDIM on a subsequence of --steps timesteps.
    Ddim,
    /// DPM-Solver++(2M) in --steps model calls.
    DpmSolver,
}

impl SamplerArg {
    /// `steps` is DDIM's and DPM-Solver's, `eta` DDIM's; DDPM walks all T steps.
    pub fn kind(self, steps: usize, eta: f64) -> ddpm_web::sampler::SamplerKind {
        // The CLI's names are the page's (www/limits.json), so one function reads them.
        let name = self.to_possible_value().expect("no sampler is hidden");
        ddpm_web::sampler::SamplerKind::named(name.get_name(), steps, eta).expect("every CLI sampler has a page name")
    }

    /// Whether --steps applies (else the sampler walks all T steps).
    pub fn takes_steps(self) -> bool {
        matches!(self, Self::Ddim | Self::DpmSolver)
    }
}

/// A float flag's value, finite: clap would take `nan` and `inf`, which then run to the end and
/// write meaningless pictures or weights.
fn finite<T: std::str::FromStr + Copy + Into<f64>>(s: &str) -> Result<T, String> {
    match s.parse::<T>() {
        Ok(x) if x.into().is_finite() => Ok(x),
        Ok(_) => Err(format!("`{s}` is not a finite number")),
        Err(_) => Err(format!("`{s}` is not a number")),
    }
}

/// A finite value inside the flag's meaningful range, named in words for the error.
fn finite_within<T: std::str::FromStr + Copy + Into<f64>>(s: &str, ok: impl Fn(f64) -> bool, range: &str) -> Result<T, String> {
    let x = finite::<T>(s)?;
    if ok(x.into()) { Ok(x) } else { Err(format!("`{s}` is not {range}")) }
}

pub fn finite_f32(s: &str) -> Result<f32, String> {
    finite(s)
}

pub fn positive_f32(s: &str) -> Result<f32, String> {
    finite_within(s, |x| x > 0.0, "a positive number")
}

pub fn positive_f64(s: &str) -> Result<f64, String> {
    finite_within(s, |x| x > 0.0, "a positive number")
}

pub fn non_negative_f64(s: &str) -> Result<f64, String> {
    finite_within(s, |x| x >= 0.0, "a number ≥ 0")
}

pub fn probability_f32(s: &str) -> Result<f32, String> {
    finite_within(s, |x| (0.0..=1.0).contains(&x), "a probability in [0, 1]")
}

/// An EMA decay: at 1 the average never moves (and its bias correction divides by 0).
pub fn decay_f64(s: &str) -> Result<f64, String> {
    finite_within(s, |x| (0.0..1.0).contains(&x), "a decay in [0, 1)")
}

/// Classifier-free guidance as `sample` and `eval` take it.
#[derive(clap::Args)]
pub struct GuidanceArgs {
    /// Classifier-free guidance scale (1: plain conditioning, 0: unconditional).
    #[arg(long, default_value_t = 1.0, value_parser = finite_f32)]
    pub guidance: f32,
    /// Apply the guidance scale only at time indices LO-HI (e.g. 0-600); elsewhere scale 1.
    #[arg(long, value_name = "LO-HI", value_parser = ddpm_web::sampler::parse_interval)]
    pub guidance_interval: Option<std::ops::RangeInclusive<usize>>,
}

impl GuidanceArgs {
    /// Guidance for these labels under a schedule of `timesteps` steps.
    pub fn for_labels(&self, labels: Vec<Option<usize>>, timesteps: usize) -> Result<ddpm_web::sampler::Guidance, String> {
        ddpm_web::sampler::Guidance::new(labels, self.guidance).within(self.guidance_interval.clone(), timesteps)
    }
}

fn main() {
    heap::keep_freed_memory();
    let result = match Cli::parse().command {
        Command::Train(args) => train::run(args),
        Command::Sample(args) => sample::run(args),
        Command::Classifier(ClassifierCommand::Train(args)) => classifier::train(args),
        Command::Eval(args) => eval::run(args),
        Command::Compare(args) => eval::compare::run(args),
        Command::Bench(args) => bench::run(args),
        Command::Export(args) => export::run(args),
        Command::Info(args) => info::run(args),
        Command::Convert(args) => convert::run(args),
    };
    if let Err(message) = result {
        eprintln!("error: {message}");
        std::process::exit(1);
    }
}

/// Reads a weights file, with the path in any error.
pub fn load_weights(path: &Path, device: &Device) -> Result<(ddpm_web::unet::UNet, ddpm_web::weights::ModelDescription), String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    ddpm_web::weights::from_bytes(&bytes, device).map_err(|e| format!("{}: {e}", path.display()))
}

/// Reads one split of the IDX files in `dir`.
pub fn load_data(dir: &Path, split: Split) -> Result<Dataset, String> {
    Dataset::load(dir, split).map_err(|e| e.to_string())
}

/// The progress bar every long command shows (hidden without a terminal).
pub fn progress_bar(len: usize) -> ProgressBar {
    let bar = ProgressBar::new(len as u64);
    bar.set_style(ProgressStyle::with_template("{bar:40} {pos}/{len} [{elapsed_precise}<{eta_precise}] {msg}").unwrap());
    bar
}
