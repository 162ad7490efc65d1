//! The Fréchet distance against closed forms.

use ddpm_web::frechet::frechet_between;
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
    use ddpm_web::classifier::{Classifier, FEATURES, dataset_features, noise_features};
    use ddpm_web::data::{DEFAULT_DIR, Dataset, Split};
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
    use ddpm_web::frechet::{frechet_distance, frechet_infinity, gaussian_fit};
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
