//! Kernel launches of the shipped model on native wgpu (lavapipe where there is no GPU). The GPU
//! path is launch-bound, so a change that adds launches is a regression even when every output is
//! right. Counts are deterministic; this is not a timed test. Its own test binary, so no other
//! test's kernels reach the process-wide launch observer.

use burn::prelude::*;
use ddpm_web::diagnostics::launches;
use ddpm_web::weights;

/// The counts recorded in docs/benchmarks.md (burn 0.22.1, CubeCL 0.11.3, no fusion, the U-Net's
/// own kernels of src/kernels/, training through their backward and the flat optimiser). Autotune's choices move them by under 1 % between runs. A count
/// that falls is progress: record the new figure. One that grows past 10 % fails.
const RECORDED: [(&str, usize); 4] =
    [("forward, batch 1", 154), ("forward, batch 16", 154), ("guided DDIM step, batch 4", 169), ("training step, batch 16", 760)];

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

    // The parts of a forward add up to the whole, and the whole is smaller with the U-Net's own
    // kernels than with Burn's operations alone. (A part may cost a copy more: the kernels hand on
    // a convolution's channels-last layout, which the resampling's reshapes then copy.)
    let size = description.unet.image_size;
    let parts = launches::by_part(&model, size);
    ddpm_web::kernels::set_enabled(false);
    let burn_ops = launches::by_part(&model, size);
    ddpm_web::kernels::set_enabled(true);
    for (part, n) in &parts {
        println!("{part}: {n} launches (Burn's operations alone: {})", burn_ops[part]);
    }
    let (ours, theirs) = (parts.values().sum::<usize>(), burn_ops.values().sum::<usize>());
    assert!(ours * 3 < theirs, "a forward: {ours} launches with the kernels, {theirs} with Burn's operations alone");
    assert_eq!(parts.values().sum::<usize>(), counts["forward, batch 1"].total, "the parts of a forward add up to it");
}
