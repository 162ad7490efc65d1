//! `ddpm compare A.jsonl B.jsonl`: is B's FD really lower than A's? Two `eval --resume` journals
//! of the same sampler seed hold samples that began from the same noise, pair by pair, so their
//! difference is measured far more sharply than either FD alone: a paired bootstrap says how sharply.
//! More pairs of journals (other sampler seeds) are compared each, then averaged: the mean FD over
//! seeds is what a quality bar reads, and its difference is measured as sharply as the pairs allow.
//! Rows of one setting alone (--a-alone, --b-alone) join them in a mean over every draw of noise.

use super::TestSet;
use super::journal::Journal;
use super::settings::{NOISE, Settings, fingerprint};
use crate::{DeviceArg, load_data};
use ddpm_web::data::{DEFAULT_DIR, Split};
use ddpm_web::eval::classifier::FEATURES;
use ddpm_web::eval::draws::{mean_and_sd, over_draws};
use ddpm_web::eval::frechet::{PairedDifference, paired_difference};
use std::path::{Path, PathBuf};

#[derive(clap::Args)]
pub struct Args {
    /// A.jsonl B.jsonl: `ddpm eval --resume` journals of one --count, --batch and --seed, so that
    /// their samples pair. More pairs (A2 B2 …, other seeds of the same two settings) are compared
    /// each and averaged.
    #[arg(required = true, num_args = 2.., value_name = "JOURNAL")]
    journals: Vec<PathBuf>,
    /// A journal of A's setting on a draw of noise (seed, batch) that B has no row on; repeatable.
    /// With any of these or --b-alone, or more than one pair of one n, both settings are also read
    /// over every draw, with standard errors (`draws.rs`).
    #[arg(long, value_name = "JOURNAL")]
    a_alone: Vec<PathBuf>,
    /// A journal of B's setting on a draw of noise that A has no row on; repeatable.
    #[arg(long, value_name = "JOURNAL")]
    b_alone: Vec<PathBuf>,
    /// The classifier every journal was measured with.
    #[arg(long, default_value = "assets/classifier.bpk")]
    classifier: PathBuf,
    #[arg(long, default_value = DEFAULT_DIR)]
    data: PathBuf,
    /// Bootstrap draws (each computes two FDs per pair).
    #[arg(long, default_value_t = 1000)]
    draws: usize,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    #[arg(long, value_enum, default_value = "cpu")]
    device: DeviceArg,
}

pub fn run(args: Args) -> Result<(), String> {
    if args.draws < 100 {
        return Err("--draws must be at least 100 for a 95 % interval".into());
    }
    if !args.journals.len().is_multiple_of(2) {
        return Err(format!("journals come in pairs (A B, then A2 B2 …); {} given", args.journals.len()));
    }
    let rows = Rows::read(&args)?;
    let pairs: Vec<Pair> = rows.journals.chunks(2).map(|p| Ok((&p[0], &p[1], common_prefix(&p[0], &p[1])?))).collect::<Result<_, String>>()?;
    let one_n = pairs.iter().all(|p| p.2 == pairs[0].2);
    let lone_rows = !(rows.a_alone.is_empty() && rows.b_alone.is_empty());
    if lone_rows {
        rows.all_at(pairs[0].2, &pairs)?;
    }
    let device = args.device.device()?;
    let classifier = crate::classifier::load(&args.classifier, &device)?;
    let test_set = TestSet::new(&classifier, &load_data(&args.data, Split::Test)?, &device);
    let parts = compare_pairs(&pairs, &test_set, args.draws, args.seed);
    if parts.len() > 1 {
        print_mean(&pairs, &parts, one_n, args.draws);
    }
    // Over every draw: with lone rows, or more pairs than one, all of one n (a half-finished pair's
    // FD reads higher, which a mean over draws would take for a harder draw).
    if lone_rows || (parts.len() > 1 && one_n) {
        print_over_draws(&rows, &parts, &test_set, pairs[0].2)?;
    }
    Ok(())
}

/// One journal's settings, and its samples' features and asked classes, in sample order.
struct Samples {
    path: PathBuf,
    settings: Settings,
    features: Vec<f32>,
    asked: Vec<Option<usize>>,
}

impl Samples {
    /// Reads a journal, refusing one measured with another classifier than `classifier` (whose
    /// fingerprint is `measured_with`): FDs in two feature spaces do not compare.
    fn read(path: &Path, classifier: &Path, measured_with: &str) -> Result<Self, String> {
        let (settings, batches) = Journal::read(path)?;
        if settings.classifier != measured_with {
            return Err(format!("{} was measured with another classifier than {} ({settings})", path.display(), classifier.display()));
        }
        let features = batches.iter().flat_map(|r| r.features.iter().copied()).collect();
        let asked = batches.iter().flat_map(|r| r.asked.iter().copied()).collect();
        Ok(Samples { path: path.to_path_buf(), settings, features, asked })
    }

    /// Where its noise came from: each batch draws from seed + batch index, so both must match for
    /// samples to share it.
    fn noise(&self) -> (u64, usize) {
        (self.settings.seed, self.settings.batch)
    }

    /// How `self` samples differently from `other` beyond its noise, if it does.
    fn sampling_differs(&self, other: &Samples) -> Option<String> {
        self.settings.differences(&other.settings, &NOISE)
    }
}

/// A journal of A, one of B, and how many of their samples pair up.
type Pair<'a> = (&'a Samples, &'a Samples, usize);

/// The journals of a comparison: pairs (A B, A2 B2 …), and rows of one setting alone.
struct Rows {
    journals: Vec<Samples>,
    a_alone: Vec<Samples>,
    b_alone: Vec<Samples>,
}

impl Rows {
    /// Reads them all, refusing rows that a mean over draws of noise of two settings cannot hold.
    fn read(args: &Args) -> Result<Self, String> {
        let measured_with = fingerprint(&args.classifier)?;
        let read_all = |paths: &[PathBuf]| paths.iter().map(|p| Samples::read(p, &args.classifier, &measured_with)).collect::<Result<Vec<_>, _>>();
        let journals = read_all(&args.journals)?;
        // A mean over pairs is a mean over draws of noise of two settings, not of anything at hand.
        for (side, offset) in [("A", 0), ("B", 1)] {
            let first = &journals[offset];
            if let Some((other, differ)) = journals.iter().skip(offset).step_by(2).find_map(|j| Some((j, first.sampling_differs(j)?))) {
                let (a, b) = (first.path.display(), other.path.display());
                return Err(format!("the {side} journals sample differently, beyond seed, batch and count: {a} and {b} differ in {differ}"));
            }
        }
        let rows = Rows { a_alone: read_all(&args.a_alone)?, b_alone: read_all(&args.b_alone)?, journals };
        for (side, first, alone) in [("A", &rows.journals[0], &rows.a_alone), ("B", &rows.journals[1], &rows.b_alone)] {
            if let Some((other, differ)) = alone.iter().find_map(|j| Some((j, first.sampling_differs(j)?))) {
                let (a, b) = (first.path.display(), other.path.display());
                return Err(format!("{b} samples differently from the {side} journals, beyond seed, batch and count: {a} and it differ in {differ}"));
            }
        }
        rows.each_draw_once()?;
        Ok(rows)
    }

    /// Two rows of one setting on one draw of noise are one draw counted twice: the mean's interval
    /// would be too narrow. A row of each on one draw is a pair.
    fn each_draw_once(&self) -> Result<(), String> {
        let rows: Vec<&Samples> = self.journals.iter().step_by(2).chain(&self.a_alone).chain(&self.b_alone).collect();
        match (1..rows.len()).find(|&k| rows[..k].iter().any(|r| r.noise() == rows[k].noise())) {
            Some(k) => Err(format!(
                "{} begins from the same noise (seed, batch) as an earlier row: each draw of noise goes in once, and A and B on one draw go in as a pair",
                rows[k].path.display()
            )),
            None => Ok(()),
        }
    }

    /// A mean over draws needs every row at one n, `n`: FD reads higher at smaller n.
    fn all_at(&self, n: usize, pairs: &[Pair]) -> Result<(), String> {
        let mut counts = pairs.iter().map(|p| (p.0, p.2)).chain(self.a_alone.iter().chain(&self.b_alone).map(|r| (r, r.asked.len())));
        match counts.find(|c| c.1 != n) {
            Some((r, m)) => {
                Err(format!("a mean over draws needs every row at one n (FD reads higher at smaller n): {} has {m}, the first pair {n}", r.path.display()))
            }
            None => Ok(()),
        }
    }
}

/// Compares each pair on the samples it pairs, printing what it finds, and returns the differences.
fn compare_pairs(pairs: &[Pair], test_set: &TestSet, draws: usize, seed: u64) -> Vec<PairedDifference> {
    let mut parts = Vec::new();
    for (k, &(a, b, n)) in pairs.iter().enumerate() {
        let (fa, fb) = (&a.features[..n * FEATURES], &b.features[..n * FEATURES]);
        // Seeded apart so that the pairs' bootstraps are independent, as their mean needs.
        let d = paired_difference(fa, fb, test_set.gaussian(), FEATURES, draws, seed + k as u64);
        let mean = |f: &dyn Fn(usize) -> f64| (0..n).map(f).sum::<f64>() / n as f64;
        // Index i and i + 10 ask for the same class (classes cycle), but began from different noise.
        let paired = mean(&|i| cosine(row(fa, i), row(fb, i)));
        let unpaired = mean(&|i| cosine(row(fa, i), row(fb, (i + 10) % n)));
        if k > 0 {
            println!();
        }
        println!("A: {} ({})", a.path.display(), a.settings);
        println!("B: {} ({})", b.path.display(), b.settings);
        if a.noise() != b.noise() {
            println!(
                "note: A and B differ in sampler seed or batch size, so their samples began from different noise: an unpaired comparison, with a wide interval"
            );
        }
        println!(
            "pairs: {n} (A has {}, B {}); feature cosine of a pair {paired:.3}, of same-class samples from other noise {unpaired:.3}",
            a.asked.len(),
            b.asked.len()
        );
        println!("FD A {:>9.3}   B {:>9.3}   (n = {n}, to all test images)", d.fd_a, d.fd_b);
        print_difference(&d, draws);
        parts.push(d);
    }
    parts
}

fn print_mean(pairs: &[Pair], parts: &[PairedDifference], one_n: bool, draws: usize) {
    let m = PairedDifference::mean(parts);
    println!();
    println!("mean of {} pairs: FD A {:>9.3}   B {:>9.3}", parts.len(), m.fd_a, m.fd_b);
    if !one_n {
        let counts: Vec<String> = pairs.iter().map(|p| p.2.to_string()).collect();
        // FD's small-sample bias grows as n shrinks; it cancels in a difference, not in a mean.
        println!(
            "note: the pairs hold {} samples, and FD reads higher at smaller n: these mean FDs do not compare with rows of other n; their difference does",
            join(&counts)
        );
    }
    print_difference(&m, draws);
}

/// Both settings' mean FD over every draw of noise, pairs and lone rows, with standard errors.
fn print_over_draws(rows: &Rows, parts: &[PairedDifference], test_set: &TestSet, n: usize) -> Result<(), String> {
    let fd = |rows: &[Samples]| rows.iter().map(|r| test_set.fd(&r.features)).collect::<Vec<_>>();
    let delta = PairedDifference::mean(parts);
    let (_, spread) = mean_and_sd(&delta.draws);
    let fd_pairs: Vec<(f64, f64)> = parts.iter().map(|d| (d.fd_a, d.fd_b)).collect();
    let o = over_draws(&fd_pairs, &fd(&rows.a_alone), &fd(&rows.b_alone), spread)?;
    println!();
    println!(
        "over {} draws of noise ({} with both, {} with A alone, {} with B alone; each draw read at one level, B's rows less B − A):",
        o.draws,
        parts.len(),
        rows.a_alone.len(),
        rows.b_alone.len()
    );
    println!(
        "FD A {:>9.3} ± {:.3}   B {:>9.3} ± {:.3}   (n = {n}; ± one standard error; the draws' levels scatter by {:.3})",
        o.fd_a, o.se_a, o.fd_b, o.se_b, o.scatter
    );
    Ok(())
}

fn row(x: &[f32], k: usize) -> &[f32] {
    &x[k * FEATURES..(k + 1) * FEATURES]
}

fn cosine(u: &[f32], v: &[f32]) -> f64 {
    let dot = |x: &[f32], y: &[f32]| x.iter().zip(y).map(|(a, b)| (*a as f64) * (*b as f64)).sum::<f64>();
    dot(u, v) / (dot(u, u) * dot(v, v)).sqrt().max(f64::MIN_POSITIVE)
}

/// How many samples of A and B pair up: their common prefix (a half-finished journal is compared
/// on what it has), asking for the same classes.
fn common_prefix(a: &Samples, b: &Samples) -> Result<usize, String> {
    let n = a.asked.len().min(b.asked.len());
    if n < FEATURES {
        return Err(format!("{n} pairs; an FD over {FEATURES} features needs at least {FEATURES} (finish the journals first)"));
    }
    if let Some(i) = (0..n).find(|&i| a.asked[i] != b.asked[i]) {
        return Err(format!("sample {i} asks for class {:?} in A and {:?} in B: the journals do not pair (same --count and --batch?)", a.asked[i], b.asked[i]));
    }
    Ok(n)
}

/// "500 and 250", "500, 500 and 250".
fn join(items: &[String]) -> String {
    match items.split_last() {
        Some((last, rest)) if !rest.is_empty() => format!("{} and {last}", rest.join(", ")),
        _ => items.concat(),
    }
}

fn print_difference(d: &PairedDifference, draws: usize) {
    println!(
        "B − A {:>+9.3}   95 % interval [{:+.3}, {:+.3}] (paired bootstrap, {draws} draws); B lower in {:.1} % of draws",
        d.difference(),
        d.quantile(0.025),
        d.quantile(0.975),
        100.0 * d.share_b_lower()
    );
}
