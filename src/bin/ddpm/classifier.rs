//! `ddpm classifier train`: the Fashion-MNIST classifier whose features `ddpm eval` measures the
//! Fréchet distance in (an Inception network's role for ImageNet).

use crate::{DeviceArg, load_data, progress_bar};
use burn::module::Module;
use burn::optim::{AdamConfig, GradientsParams};
use burn::prelude::*;
use burn::store::{BurnpackStore, ModuleSnapshot};
use burn::tensor::loss::cross_entropy_with_logits;
use ddpm_web::data::{DEFAULT_DIR, Dataset, Split};
use ddpm_web::eval::classifier::Classifier;
use ddpm_web::noise::NoiseSource;
use std::path::{Path, PathBuf};

#[derive(clap::Args)]
pub struct Args {
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

pub fn train(args: Args) -> Result<(), String> {
    let device = args.device.device()?.autodiff();
    let train = load_data(&args.data, Split::Train)?;
    let test = load_data(&args.data, Split::Test)?;
    let model = fit(&train, args.epochs, args.batch, &device).valid();
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

/// Reads a classifier written by `ddpm classifier train`.
pub fn load(path: &Path, device: &Device) -> Result<Classifier, String> {
    let mut classifier = Classifier::new(device);
    let mut store = BurnpackStore::from_file(path);
    classifier.load_from(&mut store).map_err(|e| format!("{}: {e} (make one with `ddpm classifier train`)", path.display()))?;
    Ok(classifier)
}

/// Adam on cross-entropy over shuffled, randomly flipped batches (seeded: one command, one file).
fn fit(train: &Dataset, epochs: usize, batch: usize, device: &Device) -> Classifier {
    let mut model = Classifier::new(device);
    let mut optim = AdamConfig::new().init();
    let mut rng = NoiseSource::new(1);
    let progress = progress_bar(epochs * train.len().div_ceil(batch));
    for _ in 0..epochs {
        let mut order: Vec<usize> = (0..train.len()).collect();
        rng.shuffle(&mut order);
        for chunk in order.chunks(batch) {
            let (x, y) = train.batch(chunk, Some(&mut rng), device);
            let y = Tensor::<1, Int>::from_data(TensorData::new(y.iter().map(|&v| v as i64).collect::<Vec<_>>(), [y.len()]), device);
            let loss = cross_entropy_with_logits(model.forward(x), y.one_hot::<2>(10).float());
            let grads = GradientsParams::from_grads(loss.backward(), &model);
            model = optim.step(1e-3, model, grads);
            progress.inc(1);
        }
    }
    progress.finish_and_clear();
    model
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
