//! `ddpm convert`: the same weights stored at another precision (f16 halves what the page
//! downloads; the model card says what it costs in quality).

use crate::load_weights;
use burn::prelude::*;
use ddpm_web::weights::{ModelDescription, Precision, to_bytes};
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct Args {
    /// A weights file written by `ddpm train`.
    weights: PathBuf,
    #[arg(long, value_enum)]
    precision: PrecisionArg,
    /// The weights file to write.
    #[arg(long, short)]
    out: PathBuf,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum PrecisionArg {
    F32,
    F16,
}

pub fn run(args: Args) -> Result<(), String> {
    let (model, description) = load_weights(&args.weights, &Device::flex())?;
    let precision = match args.precision {
        PrecisionArg::F32 => Precision::F32,
        PrecisionArg::F16 => Precision::F16,
    };
    let bytes = to_bytes(&model, &ModelDescription { precision, ..description }).map_err(|e| e.to_string())?;
    std::fs::write(&args.out, &bytes).map_err(|e| format!("{}: {e}", args.out.display()))?;
    println!("wrote {} ({} bytes, {precision:?})", args.out.display(), bytes.len());
    Ok(())
}
