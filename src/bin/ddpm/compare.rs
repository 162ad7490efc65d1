//! `ddpm compare A.jsonl B.jsonl`: is B's FD really lower than A's? Two `eval --resume` journals
//! of the same sampler seed hold samples that began from the same noise, pair by pair, so their
//! difference is measured far more sharply than either FD alone: a paired bootstrap says how sharply.

use crate::DeviceArg;
use crate::eval::{load_classifier, load_data, test_reference};
use crate::journal::{BatchResult, Journal};
use ddpm_web::classifier::FEATURES;
use ddpm_web::data::{DEFAULT_DIR, Split};
use ddpm_web::frechet::paired_difference;
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct CompareArgs {
    /// The journal to compare against (`ddpm eval --resume A`).
    a: PathBuf,
    /// The journal compared (same --count, --batch and --seed as A for the pairs to share noise).
    b: PathBuf,
    /// The classifier both journals were measured with.
    #[arg(long, default_value = "classifier.bpk")]
    classifier: PathBuf,
    #[arg(long, default_value = DEFAULT_DIR)]
    data: PathBuf,
    /// Bootstrap draws (each computes two FDs).
    #[arg(long, default_value_t = 1000)]
    draws: usize,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    #[arg(long, value_enum, default_value = "cpu")]
    device: DeviceArg,
}

/// Features and asked classes of a journal's samples, in sample order.
fn samples(batches: &[BatchResult]) -> (Vec<f32>, Vec<Option<usize>>) {
    (batches.iter().flat_map(|r| r.features.iter().copied()).collect(), batches.iter().flat_map(|r| r.asked.iter().copied()).collect())
}

fn row(x: &[f32], k: usize) -> &[f32] {
    &x[k * FEATURES..(k + 1) * FEATURES]
}

fn cosine(u: &[f32], v: &[f32]) -> f64 {
    let dot = |x: &[f32], y: &[f32]| x.iter().zip(y).map(|(a, b)| (*a as f64) * (*b as f64)).sum::<f64>();
    dot(u, v) / (dot(u, u) * dot(v, v)).sqrt().max(f64::MIN_POSITIVE)
}

pub fn compare(args: CompareArgs) -> Result<(), String> {
    if args.draws < 100 {
        return Err("--draws must be at least 100 for a 95 % interval".into());
    }
    let (settings_a, batches_a) = Journal::read(&args.a)?;
    let (settings_b, batches_b) = Journal::read(&args.b)?;
    let ((fa, asked_a), (fb, asked_b)) = (samples(&batches_a), samples(&batches_b));
    // Only a common prefix pairs up; a half-finished journal is compared on what it has.
    let n = asked_a.len().min(asked_b.len());
    if n < FEATURES {
        return Err(format!("{n} pairs; an FD over {FEATURES} features needs at least {FEATURES} (finish the journals first)"));
    }
    if let Some(i) = (0..n).find(|&i| asked_a[i] != asked_b[i]) {
        return Err(format!("sample {i} asks for class {:?} in A and {:?} in B: the journals do not pair (same --count and --batch?)", asked_a[i], asked_b[i]));
    }
    let (fa, fb) = (&fa[..n * FEATURES], &fb[..n * FEATURES]);

    let device = args.device.device()?;
    let classifier = load_classifier(&args.classifier, &device)?;
    let reference = test_reference(&classifier, &load_data(&args.data, Split::Test)?, &device);
    let d = paired_difference(fa, fb, (&reference.0, &reference.1), FEATURES, args.draws, args.seed);

    let mean = |f: &dyn Fn(usize) -> f64| (0..n).map(f).sum::<f64>() / n as f64;
    // Index i and i + 10 ask for the same class (classes cycle), but began from different noise.
    let paired = mean(&|i| cosine(row(fa, i), row(fb, i)));
    let unpaired = mean(&|i| cosine(row(fa, i), row(fb, (i + 10) % n)));
    println!("A: {} ({settings_a})", args.a.display());
    println!("B: {} ({settings_b})", args.b.display());
    println!("pairs: {n} (A has {}, B {}); feature cosine of a pair {paired:.3}, of same-class samples from other noise {unpaired:.3}", asked_a.len(), asked_b.len());
    println!("FD A {:>9.3}   B {:>9.3}   (n = {n}, to all test images)", d.fd_a, d.fd_b);
    println!(
        "B − A {:>+9.3}   95 % interval [{:+.3}, {:+.3}] (paired bootstrap, {} draws); B lower in {:.1} % of draws",
        d.difference(),
        d.quantile(0.025),
        d.quantile(0.975),
        args.draws,
        100.0 * d.share_b_lower()
    );
    Ok(())
}
