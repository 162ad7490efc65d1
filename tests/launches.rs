//! Kernel launches of the shipped model on native wgpu (lavapipe where there is no GPU). The GPU
//! path is launch-bound, so a change that adds launches is a regression even when every output is
//! right. Counts are deterministic; this is not a timed test. Its own test binary, so no other
//! test's kernels reach the process-wide launch observer.

use burn::prelude::*;
use ddpm_web::{launches, weights};

/// The counts recorded in docs/benchmarks.md (burn 0.22.1, CubeCL 0.11.3, no fusion). Autotune's
/// choices move them by under 1 % between runs. A count that falls is progress: record the new
/// figure. One that grows past 10 % fails.
const RECORDED: [(&str, usize); 4] = [
    ("forward, batch 1", 1138),
    ("forward, batch 16", 1140),
    ("guided DDIM step, batch 4", 1162),
    ("training step, batch 16", 11357),
];

#[test]
fn kernel_launches_stay_within_ten_percent_of_the_recorded_counts() {
    let device = Device::wgpu_options().init().expect("a wgpu adapter (lavapipe on machines without a GPU)");
    let bytes = std::fs::read("www/assets/model.ddpm").expect("the shipped weights");
    let (model, description) = weights::from_bytes(&bytes, &device).expect("readable weights");
    let measure = || launches::measure(&model, &description.schedule(), description.unet.image_size).unwrap();
    let counts = measure();
    let totals = |c: &std::collections::BTreeMap<&str, launches::Launches>| c.iter().map(|(k, v)| (k.to_string(), v.total)).collect::<Vec<_>>();
    assert_eq!(totals(&measure()), totals(&counts), "the same work twice launches the same kernels");
    let mut over = vec![];
    for (name, recorded) in RECORDED {
        let n = counts[name].total;
        println!("{name}: {n} launches (recorded {recorded})");
        if n * 10 > recorded * 11 {
            over.push(format!("{name}: {n} launches, recorded {recorded}"));
        }
    }
    assert!(over.is_empty(), "more than 10 % over the recorded counts: {over:?}");
}
