//! Ancestral sampling, Algorithm 2 of Ho et al.:
//! x_{t−1} = 1/√α_t (x_t − β_t/√(1−ᾱ_t) ε̂) + σ_t z, with σ_t² = β_t or β̃_t and no noise at the last step.
//! With x̂_0 clipped, the mean is that of q(x_{t−1} | x_t, x̂_0) (the same mean when nothing is clipped).

use super::{Sampler, Step, X0, predict_x0_at};
use crate::diffusion::q_posterior;
use crate::noise::NoiseSource;
use crate::schedule::Schedule;
use burn::prelude::*;

/// The two choices of σ_t² from the paper; both give similar samples.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DdpmVariance {
    /// σ² = β_t: optimal for x_0 ~ N(0, I).
    Beta,
    /// σ² = β̃_t: optimal for x_0 fixed to one point.
    BetaTilde,
}

pub struct Ddpm {
    schedule: Schedule,
    variance: DdpmVariance,
    x0: X0,
    timesteps: Vec<usize>,
}

impl Ddpm {
    pub fn new(schedule: Schedule, variance: DdpmVariance, x0: X0) -> Self {
        let timesteps = (0..schedule.len()).rev().collect();
        Self { schedule, variance, x0, timesteps }
    }
}

impl Sampler for Ddpm {
    fn timesteps(&self) -> &[usize] {
        &self.timesteps
    }

    fn step(&mut self, i: usize, x_t: Tensor<4>, eps: Tensor<4>, noise: &mut NoiseSource) -> Step {
        let s = &self.schedule;
        let t = self.timesteps[i];
        let x0 = predict_x0_at(s, x_t.clone(), t, eps.clone(), self.x0);
        let mean = match self.x0 {
            X0::Raw => {
                let eps_coef = s.betas[t] / s.sqrt_one_minus_alphas_cumprod[t];
                (x_t.clone() - eps * eps_coef as f32) * s.sqrt_recip_alphas[t] as f32
            }
            X0::Clipped => q_posterior(s, x0.clone(), x_t.clone(), &vec![t; x_t.dims()[0]]).0,
        };
        let x_prev = if t == 0 {
            mean
        } else {
            let var = match self.variance {
                DdpmVariance::Beta => s.betas[t],
                DdpmVariance::BetaTilde => s.posterior_variance[t],
            };
            mean + noise.normal(x_t.dims(), &x_t.device()) * var.sqrt() as f32
        };
        Step { t, x_prev, x0 }
    }
}
