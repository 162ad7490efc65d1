//! `ddpm`: train, sample and inspect the diffusion model natively.

mod bench;
mod compare;
mod eval;
mod journal;
mod sample;
mod train;

use burn::prelude::*;
use clap::{Parser, Subcommand, ValueEnum};

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
    Eval(eval::EvalArgs),
    /// Whether B's FD is really lower than A's: two `eval --resume` journals of one sampler seed,
    /// paired sample by sample, with a bootstrap interval for the difference.
    Compare(compare::CompareArgs),
    /// Time the U-Net forward pass and a training step, as JSON (the native half of `make bench`).
    Bench(bench::BenchArgs),
    /// Write weights as safetensors in PyTorch's layout, for the reference implementation.
    Export(bench::ExportArgs),
    /// Describe a weights file (or the default configuration) and count its parameters.
    Info {
        /// A weights file written by `ddpm train`.
        weights: Option<std::path::PathBuf>,
        /// Also time one forward pass at batch 1 and 16 (median of 5, after a warm-up).
        #[arg(long)]
        time: bool,
        #[arg(long, value_enum, default_value = "cpu")]
        device: DeviceArg,
    },
}

#[derive(Subcommand)]
enum ClassifierCommand {
    /// Train it (two epochs reach 88.6 % test accuracy, five are needed for 90 %).
    Train(eval::ClassifierArgs),
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
            Self::Wgpu => Device::wgpu_options().init().map_err(|e| format!("no wgpu adapter: {e}")),
        }
    }
}

/// The reverse process, as `sample` and `eval` take it.
#[derive(Clone, Copy, ValueEnum)]
pub enum SamplerArg {
    /// Algorithm 2 with σ² = β.
    Ddpm,
    /// Algorithm 2 with σ² = β̃ (the posterior variance).
    DdpmTilde,
    /// DDIM on a subsequence of --steps timesteps.
    Ddim,
}

impl SamplerArg {
    /// `steps` and `eta` are DDIM's; DDPM walks all T steps.
    pub fn kind(self, steps: usize, eta: f64) -> ddpm_web::sampler::SamplerKind {
        use ddpm_web::sampler::{DdpmVariance, SamplerKind};
        match self {
            Self::Ddpm => SamplerKind::Ddpm(DdpmVariance::Beta),
            Self::DdpmTilde => SamplerKind::Ddpm(DdpmVariance::BetaTilde),
            Self::Ddim => SamplerKind::Ddim { steps, eta },
        }
    }
}

/// Classifier-free guidance as `sample` and `eval` take it.
#[derive(clap::Args)]
pub struct GuidanceArgs {
    /// Classifier-free guidance scale (1: plain conditioning, 0: unconditional).
    #[arg(long, default_value_t = 1.0)]
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
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Train(args) => train::run(args),
        Command::Sample(args) => sample::run(args),
        Command::Classifier(ClassifierCommand::Train(args)) => eval::train_classifier(args),
        Command::Eval(args) => eval::eval(args),
        Command::Compare(args) => compare::compare(args),
        Command::Bench(args) => bench::bench(args),
        Command::Export(args) => bench::export(args),
        Command::Info { weights, time, device } => info(weights, time, device),
    };
    if let Err(message) = result {
        eprintln!("error: {message}");
        std::process::exit(1);
    }
}

/// Reads a weights file, with the path in any error.
pub fn load_weights(
    path: &std::path::Path,
    device: &Device,
) -> Result<(ddpm_web::unet::UNet, ddpm_web::weights::ModelDescription), String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    ddpm_web::weights::from_bytes(&bytes, device).map_err(|e| format!("{}: {e}", path.display()))
}

fn info(weights: Option<std::path::PathBuf>, time: bool, device: DeviceArg) -> Result<(), String> {
    use burn::module::Module;
    let device = device.device()?;
    let (model, text) = match weights {
        Some(path) => {
            let (model, description) = load_weights(&path, &device)?;
            (model, serde_json::to_string_pretty(&description).unwrap())
        }
        None => {
            let config = ddpm_web::unet::UNetConfig::new();
            (config.init(&device), serde_json::to_string_pretty(&config).unwrap())
        }
    };
    println!("{text}\nparameters: {}", model.num_params());
    if time {
        for batch in [1usize, 16] {
            let t = bench::time_forward(&model.for_inference(), batch, 5);
            let ms = |k: &str| t[k].as_f64().unwrap_or(f64::NAN);
            println!("forward, batch {batch:>2}: median {:.1} ms (min {:.1}, max {:.1})", ms("median"), ms("min"), ms("max"));
        }
    }
    Ok(())
}
