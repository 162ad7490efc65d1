//! The Fréchet distance against closed forms.

use ddpm_web::eval::frechet::frechet_between;
use ddpm_web::noise::NoiseSource;

#[test]
fn a_set_against_itself_is_zero() {
    let x = NoiseSource::new(1).normal_vec(2000 * 8);
    assert!(frechet_between(&x, &x, 8) < 1e-8);
}

#[test]
fn a_shift_of_the_mean_adds_its_squared_length() {
    let x = NoiseSource::new(2).normal_vec(3000 * 6);
    let shift = [1.0f32, -2.0, 0.5, 0.0, 0.0, 3.0];
    let y: Vec<f32> = x.iter().enumerate().map(|(i, v)| v + shift[i % 6]).collect();
    let expected: f64 = shift.iter().map(|s| (*s as f64).powi(2)).sum();
    let fd = frechet_between(&x, &y, 6);
    assert!((fd - expected).abs() < 1e-6, "{fd} vs {expected}");
}

#[test]
fn scaled_isotropic_gaussians_match_the_closed_form() {
    // N(0, I) vs N(0, s² I) in d dimensions: FD = d (1 − s)².
    let (d, s) = (5usize, 2.0f64);
    let x = NoiseSource::new(3).normal_vec(40_000 * d);
    let y: Vec<f32> = NoiseSource::new(4).normal_vec(40_000 * d).iter().map(|v| v * s as f32).collect();
    let fd = frechet_between(&x, &y, d);
    let expected = d as f64 * (1.0 - s).powi(2);
    assert!((fd - expected).abs() < 0.15, "{fd} vs {expected}");
}

#[test]
fn real_images_sit_at_the_floor_far_below_noise() {
    // Train and test images are two samples of one distribution; noise is not. Even through an
    // untrained feature extractor the floor must be far below the ceiling.
    use burn::prelude::*;
    use ddpm_web::data::{DEFAULT_DIR, Dataset, Split};
    use ddpm_web::eval::classifier::{Classifier, FEATURES, dataset_features, noise_features};
    let device = Device::flex();
    let model = Classifier::new(&device);
    let train = Dataset::load(DEFAULT_DIR.as_ref(), Split::Train).unwrap();
    let test = Dataset::load(DEFAULT_DIR.as_ref(), Split::Test).unwrap();
    let n = 1000;
    let test_f = dataset_features(&model, &test, &(0..n).collect::<Vec<_>>(), &device);
    let train_f = dataset_features(&model, &train, &(train.len() - n..train.len()).collect::<Vec<_>>(), &device);
    let floor = frechet_between(&train_f, &test_f, FEATURES);
    let ceiling = frechet_between(&noise_features(&model, n, 28, 5, &device), &test_f, FEATURES);
    assert!(floor > 0.0 && floor < 0.05 * ceiling, "floor {floor}, ceiling {ceiling}");
}

#[test]
fn fd_infinity_removes_most_of_the_small_sample_bias() {
    // 400 samples of N(0, s² I) in 32 dimensions against N(0, I) known exactly: the true FD is
    // d (1 − s)², and the raw FD of 400 samples sits well above it.
    use ddpm_web::eval::frechet::{frechet_distance, frechet_infinity, gaussian_fit};
    use nalgebra::{DMatrix, DVector};
    let (d, s, n) = (32usize, 1.5f64, 400usize);
    let truth = d as f64 * (1.0 - s).powi(2);
    let reference = (DVector::<f64>::zeros(d), DMatrix::<f64>::identity(d, d));
    let (mut raw_err, mut inf_err) = (0.0, 0.0);
    for seed in 0..5 {
        let x: Vec<f32> = NoiseSource::new(10 + seed).normal_vec(n * d).iter().map(|v| v * s as f32).collect();
        let (m, c) = gaussian_fit(&x, d);
        let raw = frechet_distance((&m, &c), (&reference.0, &reference.1));
        let inf = frechet_infinity(&x, (&reference.0, &reference.1), d, seed).unwrap();
        println!("raw {raw:.3} FD∞ {inf:.3} truth {truth:.3}");
        raw_err += (raw - truth).abs();
        inf_err += (inf - truth).abs();
    }
    assert!(raw_err / 5.0 > 0.5, "the raw FD should be visibly biased here: {}", raw_err / 5.0);
    assert!(inf_err < 0.5 * raw_err, "FD∞ error {inf_err} vs raw {raw_err}");
    assert!(frechet_infinity(&NoiseSource::new(1).normal_vec(95 * d), (&reference.0, &reference.1), d, 0).is_none());
}

mod paired {
    use ddpm_web::eval::frechet::{PairedDifference, gaussian_fit, paired_difference};
    use ddpm_web::noise::NoiseSource;

    const D: usize = 8;
    const N: usize = 500;

    fn reference() -> (nalgebra::DVector<f64>, nalgebra::DMatrix<f64>) {
        gaussian_fit(&NoiseSource::new(10).normal_vec(5000 * D), D)
    }

    fn shifted(x: &[f32], shift: &[f32]) -> Vec<f32> {
        x.iter().enumerate().map(|(i, v)| v + shift[i % D]).collect()
    }

    fn sd(v: &[f64]) -> f64 {
        let mean = v.iter().sum::<f64>() / v.len() as f64;
        (v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (v.len() - 1) as f64).sqrt()
    }

    #[test]
    fn a_set_against_itself_differs_by_nothing_in_every_draw() {
        let r = reference();
        let x = NoiseSource::new(11).normal_vec(N * D);
        let d = paired_difference(&x, &x, (&r.0, &r.1), D, 50, 0);
        assert!(d.difference().abs() < 1e-9 && d.draws.iter().all(|v| v.abs() < 1e-9));
    }

    #[test]
    fn a_shift_changes_fd_by_the_closed_form() {
        // Covariances are untouched, so FD(a + c) − FD(a) = ‖μa + c − μr‖² − ‖μa − μr‖².
        let r = reference();
        let x = NoiseSource::new(12).normal_vec(N * D);
        let c = [0.3f32, -0.2, 0.0, 0.1, 0.0, 0.0, 0.4, 0.0];
        let (ma, _) = gaussian_fit(&x, D);
        let expected: f64 = (0..D).map(|j| (ma[j] + c[j] as f64 - r.0[j]).powi(2) - (ma[j] - r.0[j]).powi(2)).sum();
        let d = paired_difference(&x, &shifted(&x, &c), (&r.0, &r.1), D, 200, 0);
        assert!((d.difference() - expected).abs() < 1e-6, "{} vs {expected}", d.difference());
    }

    #[test]
    fn the_bootstrap_keeps_pairs_together() {
        // B = A + c: each draw is 2c·(μ* − μr) + ‖c‖² for the draw's mean μ*, whose spread is
        // 2‖c‖σ/√n. Drawing A's and B's rows apart would add two independent covariance
        // fluctuations and spread the draws several times wider.
        let r = reference();
        let x = NoiseSource::new(13).normal_vec(N * D);
        let mut c = [0.0f32; D];
        c[0] = 0.1;
        let d = paired_difference(&x, &shifted(&x, &c), (&r.0, &r.1), D, 400, 1);
        let sd = sd(&d.draws);
        let column: Vec<f64> = x.iter().step_by(D).map(|&v| v as f64).collect();
        let m0 = column.iter().sum::<f64>() / N as f64;
        let sigma = (column.iter().map(|v| (v - m0).powi(2)).sum::<f64>() / (N - 1) as f64).sqrt();
        let expected = 2.0 * 0.1 * sigma / (N as f64).sqrt();
        assert!((sd / expected - 1.0).abs() < 0.2, "spread {sd} vs {expected}");
    }

    #[test]
    fn a_real_difference_is_resolved_and_none_is_not_invented() {
        let r = reference();
        let x = NoiseSource::new(16).normal_vec(N * D);
        // B worse than A by a shift, with a little noise of its own per pair.
        let jitter = NoiseSource::new(17).normal_vec(N * D);
        let mut c = [0.0f32; D];
        c[2] = 0.4;
        let b: Vec<f32> = shifted(&x, &c).iter().zip(&jitter).map(|(v, j)| v + 0.05 * j).collect();
        let d = paired_difference(&x, &b, (&r.0, &r.1), D, 400, 1);
        assert!(d.quantile(0.025) > 0.0 && d.share_b_lower() < 0.025, "[{}, {}]", d.quantile(0.025), d.quantile(0.975));
        // Two independent sets of one distribution: the interval holds 0.
        let y = NoiseSource::new(18).normal_vec(N * D);
        let same = paired_difference(&x, &y, (&r.0, &r.1), D, 400, 1);
        assert!(same.quantile(0.025) < 0.0 && same.quantile(0.975) > 0.0, "[{}, {}]", same.quantile(0.025), same.quantile(0.975));
    }

    #[test]
    fn a_mean_over_independent_comparisons_is_root_two_sharper() {
        // Two sampler seeds' comparisons of one shift c: each draw's spread is 2‖c‖σ/√n (σ = 1
        // here), their mean's that over √2. Averaging the draws in sorted order would keep one
        // comparison's spread.
        let r = reference();
        let mut c = [0.0f32; D];
        c[0] = 0.1;
        let parts: Vec<PairedDifference> = [(13, 1), (14, 2)]
            .iter()
            .map(|&(data, bootstrap)| {
                let x = NoiseSource::new(data).normal_vec(N * D);
                paired_difference(&x, &shifted(&x, &c), (&r.0, &r.1), D, 400, bootstrap)
            })
            .collect();
        let m = PairedDifference::mean(&parts);
        assert!((m.fd_a - (parts[0].fd_a + parts[1].fd_a) / 2.0).abs() < 1e-12 && (m.fd_b - (parts[0].fd_b + parts[1].fd_b) / 2.0).abs() < 1e-12);
        assert!((m.difference() - (parts[0].difference() + parts[1].difference()) / 2.0).abs() < 1e-12);
        let expected = 2.0 * 0.1 / (N as f64).sqrt() / 2f64.sqrt();
        assert!((sd(&m.draws) / expected - 1.0).abs() < 0.2, "spread {} vs {expected}", sd(&m.draws));
    }
}
