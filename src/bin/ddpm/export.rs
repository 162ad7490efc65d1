//! `ddpm export`: weights as safetensors in PyTorch's layout, so that the PyTorch reference (and
//! its ONNX export) run the very same weights `make bench` times here.

use crate::bench::image_dims;
use crate::load_weights;
use burn::prelude::*;
use burn::store::{BurnToPyTorchAdapter, ModuleSnapshot, SafetensorsStore};
use ddpm_web::noise::NoiseSource;
use ddpm_web::unet::UNet;
use serde_json::json;
use std::path::{Path, PathBuf};

#[derive(clap::Args)]
pub struct Args {
    #[arg(long, default_value = "www/assets/model.ddpm")]
    weights: PathBuf,
    /// The safetensors file to write: PyTorch's layout, tensors named by their Burn module path.
    /// Beside it, OUT.probe.json: an input and this model's output, to check the other side against.
    #[arg(long, short)]
    out: PathBuf,
}

pub fn run(args: Args) -> Result<(), String> {
    let device = Device::flex();
    let (model, description) = load_weights(&args.weights, &device)?;
    let mut store = SafetensorsStore::from_file(args.out.clone())
        .with_to_adapter(BurnToPyTorchAdapter)
        .skip_enum_variants(true)
        .metadata("ddpm.description", serde_json::to_string(&description).unwrap())
        .overwrite(true);
    model.save_into(&mut store).map_err(|e| format!("{}: {e}", args.out.display()))?;
    let probe = args.out.with_extension("probe.json");
    write_probe(&model, &probe, &device)?;
    println!("wrote {} and {}", args.out.display(), probe.display());
    Ok(())
}

/// An input and this model's noise prediction, so that the PyTorch copy and the ONNX export can be
/// checked to compute the same function before they are timed.
fn write_probe(model: &UNet, path: &Path, device: &Device) -> Result<(), String> {
    let batch = 2;
    let x = NoiseSource::new(7).normal(image_dims(model, batch), device);
    let (t, labels) = ([999usize, 250], [Some(7), None]);
    let eps = model.forward_indexed(x.clone(), &t, &labels);
    let null = model.null_class().unwrap_or(0);
    let floats = |x: Tensor<4>| x.into_data().try_to_vec::<f32>().unwrap();
    let probe = json!({
        "shape": x.dims(), "t": t, "labels": labels.map(|l| l.unwrap_or(null)),
        "x": floats(x), "eps": floats(eps),
    });
    std::fs::write(path, probe.to_string()).map_err(|e| format!("{}: {e}", path.display()))
}
