//! `ddpm info`: what a weights file holds (or the default configuration), and optionally how fast
//! its forward pass runs.

use crate::{DeviceArg, load_weights};
use burn::module::Module;
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct Args {
    /// A weights file written by `ddpm train`.
    weights: Option<PathBuf>,
    /// Also time one forward pass at batch 1 and 16 (median of 5, after a warm-up).
    #[arg(long)]
    time: bool,
    #[arg(long, value_enum, default_value = "cpu")]
    device: DeviceArg,
}

pub fn run(args: Args) -> Result<(), String> {
    let device = args.device.device()?;
    let (model, text) = match args.weights {
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
    if args.time {
        for batch in [1usize, 16] {
            let t = crate::bench::time_forward(&model.for_inference(), batch, 5);
            let ms = |k: &str| t[k].as_f64().unwrap_or(f64::NAN);
            println!("forward, batch {batch:>2}: median {:.1} ms (min {:.1}, max {:.1})", ms("median"), ms("min"), ms("max"));
        }
    }
    Ok(())
}
