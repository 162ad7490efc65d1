//! DPM-Solver++(2M) (Lu et al. 2022): a second-order multistep solver of the diffusion ODE in
//! log-SNR λ_t = ln(α_t/σ_t), with the model's output read as a data prediction x̂_0 (which is what
//! clipping acts on). Each step reuses the previous step's x̂_0, so it costs one model call.
//!
//! From s to t, h = λ_t − λ_s:  x_t = (σ_t/σ_s) x_s − α_t (e^{−h} − 1) D, where D = x̂_0(s) on the
//! first step (DDIM's update) and D = (1 + 1/2r) x̂_0(s) − (1/2r) x̂_0(previous) after it, with r
//! the previous step's h over this one's.

use super::{Sampler, Step, X0, predict_x0_at};
use crate::noise::NoiseSource;
use crate::schedule::Schedule;
use burn::prelude::*;

pub struct DpmSolver {
    schedule: Schedule,
    x0: X0,
    timesteps: Vec<usize>,
    /// The previous step's x̂_0 and its h (`None` before the first step).
    previous: Option<(Tensor<4>, f64)>,
}

impl DpmSolver {
    /// `steps` model calls at time indices evenly spaced in λ from T−1 down to 0 (the paper's
    /// choice for low-resolution images: in t, a linear β schedule crowds λ's range into the last
    /// few steps, where the multistep extrapolation then overshoots); the last one's x̂_0 is the sample.
    pub fn new(schedule: Schedule, steps: usize, x0: X0) -> Result<Self, String> {
        let total = schedule.len();
        if steps == 0 || steps > total {
            return Err(format!("DPM-Solver steps must lie in 1..={total} (got {steps})"));
        }
        let lambdas: Vec<f64> = (0..total).map(|t| lambda(alpha_sigma(&schedule, t))).collect();
        let (high, low) = (lambdas[total - 1], lambdas[0]);
        let mut timesteps = Vec::with_capacity(steps);
        for i in 0..steps {
            let wanted = if steps == 1 { high } else { high + (low - high) * i as f64 / (steps - 1) as f64 };
            // λ falls as t grows: the nearest index, kept below the one before and above the ones to come.
            let nearest = lambdas.partition_point(|&l| l > wanted).min(total - 1);
            let nearest = if nearest > 0 && lambdas[nearest - 1] - wanted < wanted - lambdas[nearest] { nearest - 1 } else { nearest };
            let below_previous = timesteps.last().map_or(total - 1, |&p: &usize| p - 1);
            timesteps.push(nearest.min(below_previous).max(steps - 1 - i));
        }
        Ok(Self { schedule, x0, timesteps, previous: None })
    }
}

/// (α, σ) of time index `t`: x_t = α x_0 + σ ε.
fn alpha_sigma(schedule: &Schedule, t: usize) -> (f64, f64) {
    (schedule.sqrt_alphas_cumprod[t], schedule.sqrt_one_minus_alphas_cumprod[t])
}

fn lambda((alpha, sigma): (f64, f64)) -> f64 {
    (alpha / sigma).ln()
}

impl Sampler for DpmSolver {
    fn timesteps(&self) -> &[usize] {
        &self.timesteps
    }

    fn step(&mut self, i: usize, x_s: Tensor<4>, eps: Tensor<4>, _: &mut NoiseSource) -> Step {
        let s = self.timesteps[i];
        let x0 = predict_x0_at(&self.schedule, x_s.clone(), s, eps, self.x0);
        let Some(&t) = self.timesteps.get(i + 1) else {
            // σ = 0 at the clean end: the update is x̂_0 itself, whatever the order.
            return Step { t: s, x_prev: x0.clone(), x0 };
        };
        let ((alpha_s, sigma_s), (alpha_t, sigma_t)) = (alpha_sigma(&self.schedule, s), alpha_sigma(&self.schedule, t));
        let h = lambda((alpha_t, sigma_t)) - lambda((alpha_s, sigma_s));
        let d = match self.previous.take() {
            Some((x0_prev, h_prev)) => {
                let half_over_r = 0.5 * h / h_prev;
                x0.clone() * (1.0 + half_over_r) as f32 - x0_prev * half_over_r as f32
            }
            None => x0.clone(),
        };
        let x_prev = x_s * (sigma_t / sigma_s) as f32 - d * (alpha_t * (-h).exp_m1()) as f32;
        self.previous = Some((x0.clone(), h));
        Step { t: s, x_prev, x0 }
    }
}
