//! DDIM (Song et al.): a non-Markovian reverse process on a subsequence of the timesteps.
//! η = 0 is deterministic; η = 1 on every step is DDPM with σ² = β̃.

use super::{Sampler, Step, X0, predict_x0_at};
use crate::noise::NoiseSource;
use crate::schedule::Schedule;
use burn::prelude::*;

pub struct Ddim {
    schedule: Schedule,
    eta: f64,
    x0: X0,
    timesteps: Vec<usize>,
}

impl Ddim {
    /// `steps` must divide T: the visited time indices are T−c, T−2c, …, 0 with c = T/steps.
    pub fn new(schedule: Schedule, steps: usize, eta: f64, x0: X0) -> Result<Self, String> {
        let total = schedule.len();
        if steps == 0 || steps > total || !total.is_multiple_of(steps) {
            return Err(format!("DDIM steps must divide T = {total} (got {steps})"));
        }
        if !(0.0..=1.0).contains(&eta) {
            return Err(format!("DDIM η must lie in [0, 1] (got {eta})"));
        }
        let stride = total / steps;
        let timesteps = (0..steps).rev().map(|k| k * stride).collect();
        Ok(Self { schedule, eta, x0, timesteps })
    }

    fn alpha_bar_prev(&self, i: usize) -> f64 {
        match self.timesteps.get(i + 1) {
            Some(&t_prev) => self.schedule.alphas_cumprod[t_prev],
            None => 1.0,
        }
    }
}

impl Sampler for Ddim {
    fn timesteps(&self) -> &[usize] {
        &self.timesteps
    }

    fn step(&mut self, i: usize, x_t: Tensor<4>, eps: Tensor<4>, noise: &mut NoiseSource) -> Step {
        let s = &self.schedule;
        let t = self.timesteps[i];
        // Clipped, ε̂ is recomputed from x̂_0 (diffusers' `use_clipped_model_output`), else the two disagree.
        let x0 = predict_x0_at(s, x_t.clone(), t, eps.clone(), self.x0);
        let (a_t, a_prev) = (s.alphas_cumprod[t], self.alpha_bar_prev(i));
        let eps = match self.x0 {
            X0::Raw => eps,
            X0::Clipped => (x_t.clone() - x0.clone() * a_t.sqrt() as f32) / (1.0 - a_t).sqrt() as f32,
        };
        let sigma = self.eta * ((1.0 - a_prev) / (1.0 - a_t) * (1.0 - a_t / a_prev)).sqrt();
        let direction = (1.0 - a_prev - sigma * sigma).max(0.0).sqrt();
        let mut x_prev = x0.clone() * a_prev.sqrt() as f32 + eps * direction as f32;
        if sigma > 0.0 {
            x_prev = x_prev + noise.normal(x_t.dims(), &x_t.device()) * sigma as f32;
        }
        Step { t, x_prev, x0 }
    }
}
