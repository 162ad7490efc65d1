//! The forward process q(x_t | x_0), its posterior q(x_{t−1} | x_t, x_0), and the ε-loss.
//!
//! Time indices are per sample (`t[i]` for image `i`), so the same functions serve training
//! (random t across the batch) and sampling (one t for all).

use crate::schedule::Schedule;
use burn::prelude::*;
use serde::{Deserialize, Serialize};

/// Which distance between the true and predicted noise is minimised.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LossKind {
    L1,
    L2,
    /// Smooth L1 with δ = 1, as torch's `smooth_l1_loss`.
    Huber,
}

impl LossKind {
    pub fn parse(s: &str) -> Result<Self, String> {
        match s {
            "l1" => Ok(Self::L1),
            "l2" => Ok(Self::L2),
            "huber" => Ok(Self::Huber),
            _ => Err(format!("unknown loss {s:?}: expected l1, l2 or huber")),
        }
    }
}

/// Gathers `values[t[i]]` into a `[B, 1, 1, 1]` tensor that broadcasts over images.
pub fn extract(values: &[f64], t: &[usize], device: &Device) -> Tensor<4> {
    let picked: Vec<f32> = t.iter().map(|&i| values[i] as f32).collect();
    Tensor::from_data(TensorData::new(picked, [t.len(), 1, 1, 1]), device)
}

/// x_t = √ᾱ_t x_0 + √(1−ᾱ_t) ε: a sample of q(x_t | x_0) in closed form.
pub fn q_sample(s: &Schedule, x0: Tensor<4>, t: &[usize], noise: Tensor<4>) -> Tensor<4> {
    let device = x0.device();
    x0 * extract(&s.sqrt_alphas_cumprod, t, &device) + noise * extract(&s.sqrt_one_minus_alphas_cumprod, t, &device)
}

/// x̂_0 = (x_t − √(1−ᾱ_t) ε̂) / √ᾱ_t: the clean image implied by a noise prediction.
pub fn predict_x0(s: &Schedule, x_t: Tensor<4>, t: &[usize], eps: Tensor<4>) -> Tensor<4> {
    let device = x_t.device();
    (x_t - eps * extract(&s.sqrt_one_minus_alphas_cumprod, t, &device)) / extract(&s.sqrt_alphas_cumprod, t, &device)
}

/// Mean and variance of q(x_{t−1} | x_t, x_0); the variance is per sample, `[B, 1, 1, 1]`.
pub fn q_posterior(s: &Schedule, x0: Tensor<4>, x_t: Tensor<4>, t: &[usize]) -> (Tensor<4>, Tensor<4>) {
    let device = x_t.device();
    let mean = x0 * extract(&s.posterior_mean_coef1, t, &device) + x_t * extract(&s.posterior_mean_coef2, t, &device);
    (mean, extract(&s.posterior_variance, t, &device))
}

/// The mean ε-loss over every pixel of the batch.
pub fn noise_loss(kind: LossKind, predicted: Tensor<4>, target: Tensor<4>) -> Tensor<1> {
    let diff = predicted - target;
    match kind {
        LossKind::L1 => diff.abs().mean(),
        LossKind::L2 => diff.powf_scalar(2.0).mean(),
        LossKind::Huber => {
            let a = diff.abs();
            let quadratic = a.clone().clamp_max(1.0);
            // 0.5 q² + (|d| − q): quadratic inside δ = 1, linear outside.
            (quadratic.clone().powf_scalar(2.0) * 0.5 + (a - quadratic)).mean()
        }
    }
}
