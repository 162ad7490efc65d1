//! `ddpm`: train, sample and inspect the diffusion model natively.

mod eval;
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

fn main() {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Train(args) => train::run(args),
        Command::Sample(args) => sample::run(args),
        Command::Classifier(ClassifierCommand::Train(args)) => eval::train_classifier(args),
        Command::Eval(args) => eval::eval(args),
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
        use ddpm_web::sampler::NoisePredictor;
        let size = model.init_conv.weight.val().dims();
        for batch in [1usize, 16] {
            let x = ddpm_web::noise::NoiseSource::new(0).normal([batch, size[1], 28, 28], &device);
            let labels = vec![None; batch];
            let mut times = Vec::new();
            for i in 0..6 {
                let started = std::time::Instant::now();
                let out = model.predict_noise(x.clone(), 500, &labels);
                let _ = out.into_data(); // waits for the device
                if i > 0 {
                    times.push(started.elapsed().as_secs_f64() * 1000.0);
                }
            }
            times.sort_by(f64::total_cmp);
            println!("forward, batch {batch:>2}: median {:.1} ms (min {:.1}, max {:.1})", times[2], times[0], times[4]);
        }
    }
    Ok(())
}
