//! The forward process and its posterior against independent derivations.

use burn::prelude::*;
use ddpm_web::diffusion::{LossKind, noise_loss, predict_x0, q_posterior, q_sample};
use ddpm_web::noise::NoiseSource;
use ddpm_web::schedule::{BetaSchedule, Schedule};

fn values(t: Tensor<4>) -> Vec<f32> {
    t.into_data().try_into_vec::<f32>().unwrap()
}

fn scalar_tensor(v: f32, device: &Device) -> Tensor<4> {
    Tensor::from_data(TensorData::new(vec![v], [1, 1, 1, 1]), device)
}

#[test]
fn marginal_variance_equals_iterated_one_step_noise() {
    for kind in BetaSchedule::ALL {
        let s = Schedule::new(kind, 1000);
        // x_t = √α_t x_{t−1} + √β_t ε: track the coefficient of x_0 and the noise variance.
        let (mut coef, mut var) = (1.0f64, 0.0f64);
        for t in 0..s.len() {
            coef *= s.alphas[t].sqrt();
            var = s.alphas[t] * var + s.betas[t];
            assert!((coef - s.sqrt_alphas_cumprod[t]).abs() < 1e-12, "{kind:?} mean coef at {t}");
            assert!((var - (1.0 - s.alphas_cumprod[t])).abs() < 1e-12, "{kind:?} variance at {t}");
        }
    }
}

#[test]
fn q_sample_matches_the_chain_in_distribution() {
    // Running the one-step chain for 300 steps and jumping there in closed form give the same
    // mean and variance.
    let device = Device::flex();
    let s = Schedule::new(BetaSchedule::Linear, 1000);
    let (n, t) = (20_000usize, 299usize);
    let mut noise = NoiseSource::new(7);
    let x0 = 0.7f32;
    let mut chain = vec![x0; n];
    for step in 0..=t {
        let z = noise.normal_vec(n);
        let (a, b) = (s.alphas[step].sqrt() as f32, s.betas[step].sqrt() as f32);
        for (x, z) in chain.iter_mut().zip(z) {
            *x = a * *x + b * z;
        }
    }
    let x0s = Tensor::<4>::full([n, 1, 1, 1], x0, &device);
    let eps = noise.normal([n, 1, 1, 1], &device);
    let jumped = values(q_sample(&s, x0s, &vec![t; n], eps));
    let stats = |v: &[f32]| {
        let m = v.iter().map(|&x| x as f64).sum::<f64>() / v.len() as f64;
        let var = v.iter().map(|&x| (x as f64 - m).powi(2)).sum::<f64>() / v.len() as f64;
        (m, var)
    };
    let ((m1, v1), (m2, v2)) = (stats(&chain), stats(&jumped));
    let expected_mean = s.sqrt_alphas_cumprod[t] * x0 as f64;
    let expected_var = 1.0 - s.alphas_cumprod[t];
    for (m, v) in [(m1, v1), (m2, v2)] {
        assert!((m - expected_mean).abs() < 0.02, "mean {m} vs {expected_mean}");
        assert!((v / expected_var - 1.0).abs() < 0.04, "variance {v} vs {expected_var}");
    }
}

#[test]
fn posterior_is_bayes_rule_for_gaussians() {
    let device = Device::flex();
    let s = Schedule::new(BetaSchedule::Cosine, 1000);
    for &t in &[1usize, 10, 500, 999] {
        for &(x0, xt) in &[(0.3f64, -1.2f64), (-0.9, 0.4), (1.0, 2.5)] {
            // Prior x_{t−1} | x_0 ~ N(√ᾱ_{t−1} x_0, 1 − ᾱ_{t−1}); likelihood x_t | x_{t−1} ~
            // N(√α_t x_{t−1}, β_t). Multiply the two Gaussians in x_{t−1}.
            let (ab_prev, a, b) = (s.alphas_cumprod_prev[t], s.alphas[t], s.betas[t]);
            let precision = 1.0 / (1.0 - ab_prev) + a / b;
            let var = 1.0 / precision;
            let mean = var * (ab_prev.sqrt() * x0 / (1.0 - ab_prev) + a.sqrt() * xt / b);
            let (m, v) = q_posterior(&s, scalar_tensor(x0 as f32, &device), scalar_tensor(xt as f32, &device), &[t]);
            let (m, v) = (values(m)[0] as f64, values(v)[0] as f64);
            assert!((m - mean).abs() < 1e-5, "t={t}: mean {m} vs {mean}");
            assert!((v / var - 1.0).abs() < 1e-5, "t={t}: variance {v} vs {var}");
            assert!((s.posterior_log_variance_clipped[t] - var.ln()).abs() < 1e-9);
        }
    }
}

#[test]
fn predict_x0_inverts_q_sample_per_sample() {
    let device = Device::flex();
    let s = Schedule::new(BetaSchedule::Linear, 1000);
    let mut noise = NoiseSource::new(3);
    let x0 = noise.normal([3, 1, 4, 4], &device);
    let eps = noise.normal([3, 1, 4, 4], &device);
    let t = [0usize, 400, 999];
    let xt = q_sample(&s, x0.clone(), &t, eps.clone());
    let back = values(predict_x0(&s, xt, &t, eps));
    for (a, b) in back.iter().zip(values(x0)) {
        assert!((a - b).abs() < 2e-3, "{a} vs {b}");
    }
}

#[test]
fn losses_match_their_definitions() {
    let device = Device::flex();
    let diffs = [0.5f32, -2.0, 0.1, 3.0];
    let pred = Tensor::<4>::from_data(TensorData::new(diffs.to_vec(), [1, 1, 2, 2]), &device);
    let zero = Tensor::<4>::zeros([1, 1, 2, 2], &device);
    let l1 = diffs.iter().map(|d| d.abs()).sum::<f32>() / 4.0;
    let l2 = diffs.iter().map(|d| d * d).sum::<f32>() / 4.0;
    let huber = diffs.iter().map(|d| if d.abs() < 1.0 { 0.5 * d * d } else { d.abs() - 0.5 }).sum::<f32>() / 4.0;
    for (kind, expected) in [(LossKind::L1, l1), (LossKind::L2, l2), (LossKind::Huber, huber)] {
        let got = noise_loss(kind, pred.clone(), zero.clone()).into_scalar::<f32>();
        assert!((got - expected).abs() < 1e-6, "{kind:?}: {got} vs {expected}");
    }
}
