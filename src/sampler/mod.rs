//! Reverse-process samplers, in the style of diffusers' schedulers: a sampler owns its timestep
//! sequence and its update rule; the model only predicts noise. A new sampler is a new file.

mod ddim;
mod ddpm;
mod dpm_solver;
mod inpaint;
mod morph;

pub use ddim::Ddim;
pub use ddpm::{Ddpm, DdpmVariance};
pub use dpm_solver::DpmSolver;
pub use inpaint::Inpaint;
pub use morph::{morph_noise, slerp};

use crate::noise::NoiseSource;
use crate::schedule::Schedule;
use burn::prelude::*;
use std::ops::RangeInclusive;

/// Anything that predicts the noise ε in x_t: the U-Net, or an analytic oracle in tests.
pub trait NoisePredictor {
    /// ε̂(x_t, t) for a batch at one time index `t` (0-based); `labels[i] = None` asks for the
    /// unconditional prediction of image `i`.
    fn predict_noise(&self, x_t: Tensor<4>, t: usize, labels: &[Option<usize>]) -> Tensor<4>;
}

/// One reverse step's result: the next, less noisy x and the clean image predicted on the way.
pub struct Step {
    /// The time index that was just denoised.
    pub t: usize,
    pub x_prev: Tensor<4>,
    pub x0: Tensor<4>,
}

pub trait Sampler {
    /// Time indices visited, from noisiest to cleanest.
    fn timesteps(&self) -> &[usize];

    /// Applies the update rule at position `i` of [`Sampler::timesteps`], drawing any noise it
    /// needs from `noise`. Steps come in order, once each (a multistep sampler remembers the last).
    fn step(&mut self, i: usize, x_t: Tensor<4>, eps: Tensor<4>, noise: &mut NoiseSource) -> Step;
}

/// What a step does with its estimate x̂_0 of the clean image.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum X0 {
    /// Used as predicted: the paper's Algorithm 2 and DDIM's update, exactly.
    Raw,
    /// Clamped to the data range [−1, 1] first, as Ho et al.'s released code and diffusers'
    /// `clip_sample` do: early steps' x̂_0 overshoots far outside the range, and the clamp keeps
    /// that error out of x_{t−1}.
    Clipped,
}

/// x̂_0 for a batch that shares one time index.
fn predict_x0_at(s: &Schedule, x_t: Tensor<4>, t: usize, eps: Tensor<4>, x0: X0) -> Tensor<4> {
    let batch = x_t.dims()[0];
    let raw = crate::diffusion::predict_x0(s, x_t, &vec![t; batch], eps);
    match x0 {
        X0::Raw => raw,
        X0::Clipped => raw.clamp(-1.0, 1.0),
    }
}

/// What the user asks a sampler for.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum SamplerKind {
    Ddpm(DdpmVariance),
    Ddim { steps: usize, eta: f64 },
    DpmSolver { steps: usize },
}

impl SamplerKind {
    /// Whether a step may be taken again from another x (a multistep sampler remembers the last
    /// step it took, so RePaint's resampling needs a single-step one).
    pub fn is_single_step(self) -> bool {
        !matches!(self, Self::DpmSolver { .. })
    }

    /// Whether the reverse process draws no noise, so that x_T alone decides the image (a morph
    /// needs this).
    pub fn is_deterministic(self) -> bool {
        match self {
            Self::Ddpm(_) => false,
            Self::Ddim { eta, .. } => eta == 0.0,
            Self::DpmSolver { .. } => true,
        }
    }

    /// The sampler the page names (www/limits.json): `ddpm` (σ² = β), `ddpm-tilde` (σ² = β̃) or
    /// `ddim` (with `steps` and `eta`) or `dpm-solver` (DPM-Solver++(2M), with `steps`).
    pub fn named(name: &str, steps: usize, eta: f64) -> Result<Self, String> {
        match name {
            "ddpm" => Ok(Self::Ddpm(DdpmVariance::Beta)),
            "ddpm-tilde" => Ok(Self::Ddpm(DdpmVariance::BetaTilde)),
            "ddim" => Ok(Self::Ddim { steps, eta }),
            "dpm-solver" => Ok(Self::DpmSolver { steps }),
            other => Err(format!("unknown sampler {other:?}")),
        }
    }

    pub fn build(self, schedule: &Schedule, x0: X0) -> Result<Box<dyn Sampler>, String> {
        Ok(match self {
            Self::Ddpm(variance) => Box::new(Ddpm::new(schedule.clone(), variance, x0)),
            Self::Ddim { steps, eta } => Box::new(Ddim::new(schedule.clone(), steps, eta, x0)?),
            Self::DpmSolver { steps } => Box::new(DpmSolver::new(schedule.clone(), steps, x0)?),
        })
    }
}

/// Class conditioning with classifier-free guidance:
/// ε = ε(∅) + w · (ε(c) − ε(∅)); w = 1 is plain conditioning, w = 0 ignores the class.
#[derive(Clone, Debug, PartialEq)]
pub struct Guidance {
    pub labels: Vec<Option<usize>>,
    pub scale: f32,
    /// The time indices where the scale applies; elsewhere w = 1. Kynkäänniemi et al. (2024):
    /// guidance at the noisiest steps mostly removes diversity, at the last ones does little.
    pub interval: Option<RangeInclusive<usize>>,
}

impl Guidance {
    /// Guidance at every step.
    pub fn new(labels: Vec<Option<usize>>, scale: f32) -> Self {
        Self { labels, scale, interval: None }
    }

    pub fn unconditional(batch: usize) -> Self {
        Self::new(vec![None; batch], 1.0)
    }

    /// Guidance only at the time indices `interval` (`None`: every step) of a schedule with `total` steps.
    pub fn within(mut self, interval: Option<RangeInclusive<usize>>, total: usize) -> Result<Self, String> {
        if let Some(i) = &interval
            && (i.is_empty() || *i.end() >= total)
        {
            return Err(format!("guidance interval {}-{} must be LO-HI with LO ≤ HI < T = {total}", i.start(), i.end()));
        }
        self.interval = interval;
        Ok(self)
    }

    /// The scale in effect at time index `t`.
    pub fn scale_at(&self, t: usize) -> f32 {
        match &self.interval {
            Some(interval) if !interval.contains(&t) => 1.0,
            _ => self.scale,
        }
    }
}

/// An interval of time indices written `LO-HI`, inclusive (0 the least noisy, T − 1 pure noise).
pub fn parse_interval(s: &str) -> Result<RangeInclusive<usize>, String> {
    let parsed = s.split_once('-').and_then(|(lo, hi)| Some((lo.trim().parse().ok()?, hi.trim().parse().ok()?)));
    match parsed {
        Some((lo, hi)) if lo <= hi => Ok(lo..=hi),
        _ => Err(format!("expected LO-HI with LO ≤ HI, e.g. 0-600, not {s:?}")),
    }
}

/// The one place guidance is applied, for every sampler. The conditional and unconditional
/// predictions share a single forward pass of twice the batch.
pub fn guided_noise(model: &impl NoisePredictor, x_t: Tensor<4>, t: usize, guidance: &Guidance) -> Tensor<4> {
    let conditioned = guidance.labels.iter().any(Option::is_some);
    let scale = guidance.scale_at(t);
    if !conditioned || scale == 1.0 {
        return model.predict_noise(x_t, t, &guidance.labels);
    }
    let batch = guidance.labels.len();
    let mut labels = guidance.labels.clone();
    labels.extend(std::iter::repeat_n(None, batch));
    let both = model.predict_noise(Tensor::cat(vec![x_t.clone(), x_t], 0), t, &labels);
    let cond = both.clone().narrow(0, 0, batch);
    let uncond = both.narrow(0, batch, batch);
    uncond.clone() + (cond - uncond) * scale
}

/// A reverse process in progress, advanced one step at a time so a caller (the page, the CLI's
/// GIF writer) can look at every intermediate image.
pub struct SamplingRun {
    sampler: Box<dyn Sampler>,
    noise: NoiseSource,
    guidance: Guidance,
    x: Tensor<4>,
    next: usize,
    inpaint: Option<Inpaint>,
}

impl SamplingRun {
    /// Starts from x_T ~ N(0, I) drawn from `seed`; the same seed gives the same image anywhere.
    pub fn new(sampler: Box<dyn Sampler>, shape: [usize; 4], guidance: Guidance, seed: u64, device: &Device) -> Self {
        let mut noise = NoiseSource::new(seed);
        let x = noise.normal(shape, device);
        Self::starting_at(sampler, x, guidance, noise)
    }

    /// Starts from a given x_T (a morph's interpolated noises); any noise the steps draw comes
    /// from `seed`.
    pub fn from_noise(sampler: Box<dyn Sampler>, x: Tensor<4>, guidance: Guidance, seed: u64) -> Self {
        Self::starting_at(sampler, x, guidance, NoiseSource::new(seed))
    }

    fn starting_at(sampler: Box<dyn Sampler>, x: Tensor<4>, guidance: Guidance, noise: NoiseSource) -> Self {
        assert_eq!(guidance.labels.len(), x.dims()[0], "one label per image");
        Self { sampler, noise, guidance, x, next: 0, inpaint: None }
    }

    /// Repaints: from here on the kept pixels follow the original's forward process (x_T's too).
    pub fn inpainting(mut self, mut inpaint: Inpaint) -> Self {
        let t = self.sampler.timesteps().get(self.next).copied();
        self.x = inpaint.apply(self.x, t);
        self.inpaint = Some(inpaint);
        self
    }

    pub fn total_steps(&self) -> usize {
        self.sampler.timesteps().len()
    }

    pub fn steps_done(&self) -> usize {
        self.next
    }

    pub fn is_done(&self) -> bool {
        self.next >= self.total_steps()
    }

    /// The current x_t (x_T before the first step, x_0 after the last).
    pub fn current(&self) -> Tensor<4> {
        self.x.clone()
    }

    /// Runs one reverse step; `None` once finished.
    pub fn step(&mut self, model: &impl NoisePredictor) -> Option<Step> {
        if self.is_done() {
            return None;
        }
        let t = self.sampler.timesteps()[self.next];
        let eps = guided_noise(model, self.x.clone(), t, &self.guidance);
        let mut step = self.sampler.step(self.next, self.x.clone(), eps, &mut self.noise);
        let t_next = self.sampler.timesteps().get(self.next + 1).copied();
        if let Some(inpaint) = &mut self.inpaint {
            step.x_prev = inpaint.apply(step.x_prev, t_next);
            // RePaint's resampling: back to t and down again; not at the clean end.
            for _ in 1..inpaint.resample {
                let Some(t_next) = t_next else { break };
                let x_t = inpaint.renoise(step.x_prev, t_next, t);
                let eps = guided_noise(model, x_t.clone(), t, &self.guidance);
                step = self.sampler.step(self.next, x_t, eps, &mut self.noise);
                step.x_prev = inpaint.apply(step.x_prev, Some(t_next));
            }
        }
        self.next += 1;
        self.x = step.x_prev.clone();
        Some(step)
    }

    /// Runs to the end and returns x_0.
    pub fn finish(mut self, model: &impl NoisePredictor) -> Tensor<4> {
        while self.step(model).is_some() {}
        self.x
    }
}
