//! The fixed forward process: a variance schedule β_1..β_T and every constant derived from it.
//!
//! Everything is computed once, in f64, on the host. The samplers and the loss read scalars from
//! here, so the same numbers drive the native CLI and the browser.

use serde::{Deserialize, Serialize};
use std::f64::consts::PI;

/// The shape of β_t over t.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BetaSchedule {
    /// β linear from 1e-4 to 0.02 (Ho et al.).
    Linear,
    /// ᾱ from a squared cosine (Nichol & Dhariwal, s = 0.008), β clipped to 0.999.
    Cosine,
    /// √β linear between √1e-4 and √0.02.
    Quadratic,
    /// β follows a sigmoid over [-6, 6] between 1e-4 and 0.02.
    Sigmoid,
}

impl BetaSchedule {
    pub const ALL: [BetaSchedule; 4] = [Self::Linear, Self::Cosine, Self::Quadratic, Self::Sigmoid];

    pub fn name(self) -> &'static str {
        match self {
            Self::Linear => "linear",
            Self::Cosine => "cosine",
            Self::Quadratic => "quadratic",
            Self::Sigmoid => "sigmoid",
        }
    }

    pub fn parse(s: &str) -> Result<Self, String> {
        Self::ALL.into_iter().find(|b| b.name() == s).ok_or_else(|| format!("unknown schedule {s:?}: expected linear, cosine, quadratic or sigmoid"))
    }

    /// β_1..β_T (index 0 is the first step).
    pub fn betas(self, timesteps: usize) -> Vec<f64> {
        assert!(timesteps >= 1, "a schedule needs at least one timestep");
        const START: f64 = 1e-4;
        const END: f64 = 0.02;
        match self {
            Self::Linear => linspace(START, END, timesteps),
            Self::Quadratic => linspace(START.sqrt(), END.sqrt(), timesteps).into_iter().map(|b| b * b).collect(),
            Self::Sigmoid => linspace(-6.0, 6.0, timesteps).into_iter().map(|x| 1.0 / (1.0 + (-x).exp()) * (END - START) + START).collect(),
            Self::Cosine => {
                let f = |t: f64| cosine_alpha_bar(t / timesteps as f64);
                (1..=timesteps).map(|t| (1.0 - f(t as f64) / f(t as f64 - 1.0)).clamp(0.0, MAX_COSINE_BETA)).collect()
            }
        }
    }
}

/// Nichol & Dhariwal clip β so that the last steps stay invertible.
pub const MAX_COSINE_BETA: f64 = 0.999;
const COSINE_S: f64 = 0.008;

/// The un-normalised ᾱ(u) of the cosine schedule, u = t/T ∈ [0, 1]; ᾱ_t = f(t/T)/f(0).
pub fn cosine_alpha_bar(u: f64) -> f64 {
    (((u + COSINE_S) / (1.0 + COSINE_S)) * PI / 2.0).cos().powi(2)
}

/// Like numpy/torch `linspace`: `n` points from `a` to `b` inclusive (just `a` when n = 1).
fn linspace(a: f64, b: f64, n: usize) -> Vec<f64> {
    if n == 1 {
        return vec![a];
    }
    (0..n).map(|i| a + (b - a) * i as f64 / (n - 1) as f64).collect()
}

/// A schedule with its derived constants. Index `t` in `0..T` is the paper's step t+1.
#[derive(Clone, Debug)]
pub struct Schedule {
    pub kind: BetaSchedule,
    pub betas: Vec<f64>,
    pub alphas: Vec<f64>,
    pub alphas_cumprod: Vec<f64>,
    /// ᾱ_{t-1}, with ᾱ_{-1} = 1.
    pub alphas_cumprod_prev: Vec<f64>,
    pub sqrt_alphas_cumprod: Vec<f64>,
    pub sqrt_one_minus_alphas_cumprod: Vec<f64>,
    pub sqrt_recip_alphas: Vec<f64>,
    /// β̃_t = β_t (1 − ᾱ_{t−1}) / (1 − ᾱ_t), the variance of q(x_{t−1} | x_t, x_0).
    pub posterior_variance: Vec<f64>,
    /// log β̃_t with β̃_0 (which is 0) replaced by β̃_1, as in Ho et al.'s code.
    pub posterior_log_variance_clipped: Vec<f64>,
    /// Mean of q(x_{t−1} | x_t, x_0) = coef1 · x_0 + coef2 · x_t.
    pub posterior_mean_coef1: Vec<f64>,
    pub posterior_mean_coef2: Vec<f64>,
}

impl Schedule {
    pub fn new(kind: BetaSchedule, timesteps: usize) -> Self {
        Self::from_betas(kind, kind.betas(timesteps))
    }

    pub fn from_betas(kind: BetaSchedule, betas: Vec<f64>) -> Self {
        let alphas: Vec<f64> = betas.iter().map(|b| 1.0 - b).collect();
        let alphas_cumprod: Vec<f64> = alphas
            .iter()
            .scan(1.0, |acc, a| {
                *acc *= a;
                Some(*acc)
            })
            .collect();
        let alphas_cumprod_prev: Vec<f64> = std::iter::once(1.0).chain(alphas_cumprod.iter().copied()).take(betas.len()).collect();
        let n = betas.len();
        let posterior_variance: Vec<f64> = (0..n).map(|t| betas[t] * (1.0 - alphas_cumprod_prev[t]) / (1.0 - alphas_cumprod[t])).collect();
        let first_nonzero = if n > 1 { posterior_variance[1] } else { betas[0] };
        let posterior_log_variance_clipped = (0..n).map(|t| if t == 0 { first_nonzero.ln() } else { posterior_variance[t].ln() }).collect();
        Self {
            kind,
            sqrt_alphas_cumprod: alphas_cumprod.iter().map(|a| a.sqrt()).collect(),
            sqrt_one_minus_alphas_cumprod: alphas_cumprod.iter().map(|a| (1.0 - a).sqrt()).collect(),
            sqrt_recip_alphas: alphas.iter().map(|a| 1.0 / a.sqrt()).collect(),
            posterior_mean_coef1: (0..n).map(|t| betas[t] * alphas_cumprod_prev[t].sqrt() / (1.0 - alphas_cumprod[t])).collect(),
            posterior_mean_coef2: (0..n).map(|t| (1.0 - alphas_cumprod_prev[t]) * alphas[t].sqrt() / (1.0 - alphas_cumprod[t])).collect(),
            posterior_variance,
            posterior_log_variance_clipped,
            betas,
            alphas,
            alphas_cumprod,
            alphas_cumprod_prev,
        }
    }

    /// T, the number of diffusion steps.
    pub fn len(&self) -> usize {
        self.betas.len()
    }

    pub fn is_empty(&self) -> bool {
        self.betas.is_empty()
    }
}
