//! `ddpm compare A.jsonl B.jsonl`: is B's FD really lower than A's? Two `eval --resume` journals
//! of the same sampler seed hold samples that began from the same noise, pair by pair, so their
//! difference is measured far more sharply than either FD alone: a paired bootstrap says how sharply.

use crate::DeviceArg;
use crate::eval::{fingerprint, load_classifier, load_data, test_reference};
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

/// The value of `key` in a journal's settings ("…, batch 25, seed 0").
fn setting<'a>(settings: &'a str, key: &str) -> Option<&'a str> {
    settings.split(", ").find_map(|part| part.strip_prefix(key)?.strip_prefix(' ').filter(|v| !v.contains(' ')))
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
    // The features are the classifier's: FDs in two feature spaces do not compare.
    let classifier = format!("classifier {}", fingerprint(&args.classifier)?);
    for (name, settings) in [("A", &settings_a), ("B", &settings_b)] {
        if !settings.split(", ").any(|part| part == classifier) {
            return Err(format!("{name} was measured with another classifier than {} ({settings})", args.classifier.display()));
        }
    }

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
    // Each batch draws its noise from seed + batch index, so both must match for pairs to share it.
    let noise = |s: &str| (setting(s, "seed").map(str::to_owned), setting(s, "batch").map(str::to_owned));
    if noise(&settings_a) != noise(&settings_b) {
        println!("note: A and B differ in sampler seed or batch size, so their samples began from different noise: an unpaired comparison, with a wide interval");
    }
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

#[cfg(test)]
mod tests {
    #[test]
    fn reads_a_setting_from_a_journal_header() {
        let s = "weights 1 bytes crc32 0, DDPM 1000 steps, guidance at t 0-600, guidance 1.5, count 500, batch 25, seed 3";
        assert_eq!((super::setting(s, "batch"), super::setting(s, "seed"), super::setting(s, "guidance")), (Some("25"), Some("3"), Some("1.5")));
        assert_eq!(super::setting(s, "eta"), None);
    }
}
