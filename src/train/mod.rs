//! Algorithm 1 of Ho et al. as a plain loop that works on any autodiff device: pick t uniformly,
//! noise the batch in closed form, regress the noise. Nothing in a step reads a tensor back
//! synchronously, so the same step runs in the browser; callers read the returned loss when
//! they choose (asynchronously on the web).

pub mod flat_adam;

use crate::diffusion::{LossKind, noise_loss, q_sample};
use crate::noise::NoiseSource;
use crate::schedule::Schedule;
use crate::unet::UNet;
use crate::weights::flat_params;
use burn::grad_clipping::GradientClippingConfig;
use burn::module::{ModuleMapper, Param};
use burn::optim::{AdamConfig, GradientsParams, ModuleOptimizer};
use burn::prelude::*;
use flat_adam::FlatAdam;

#[derive(Config, Debug)]
pub struct TrainConfig {
    #[config(default = 1e-3)]
    pub lr: f64,
    /// Linear learning-rate warm-up over this many steps (0: none).
    #[config(default = 0)]
    pub warmup_steps: usize,
    /// After warm-up, a cosine decay of the learning rate that reaches 0 at this step (0: none).
    #[config(default = 0)]
    pub decay_steps: usize,
    /// Clip each gradient to this L2 norm (none when absent).
    #[config(default = "None")]
    pub grad_clip: Option<f32>,
    #[config(default = "LossKind::L2")]
    pub loss: LossKind,
    /// Decay of the exponential moving average of the weights (0: no EMA).
    #[config(default = 0.999)]
    pub ema_decay: f64,
    /// Probability of replacing a label by "no class", which teaches the unconditional
    /// prediction that classifier-free guidance needs.
    #[config(default = 0.1)]
    pub cond_drop_prob: f32,
    #[config(default = 0)]
    pub seed: u64,
}

impl TrainConfig {
    /// The learning rate at `step` (0-based): linear warm-up, then constant or cosine decay.
    pub fn lr_at(&self, step: usize) -> f64 {
        let warm = if self.warmup_steps == 0 { 1.0 } else { ((step + 1) as f64 / self.warmup_steps as f64).min(1.0) };
        let decay = if self.decay_steps <= self.warmup_steps {
            1.0
        } else {
            let p = (step.saturating_sub(self.warmup_steps) as f64 / (self.decay_steps - self.warmup_steps) as f64).min(1.0);
            0.5 * (1.0 + (std::f64::consts::PI * p).cos())
        };
        self.lr * warm * decay
    }

    /// The EMA's decay at its `n`-th update (1-based). The average is bias-corrected as Adam's
    /// moments are: Σ (1−d) dⁿ⁻ⁱ wᵢ / (1 − dⁿ) over the updated weights only. Seeded with the
    /// initial weights instead, a short run's average would stay mostly random init (a share dⁿ of
    /// it after n steps). A loaded model's EMA counts its training steps
    /// ([`Trainer::ema_updates`]), so n is large and d is d.
    pub fn ema_decay_at(&self, n: usize) -> f64 {
        let d = self.ema_decay;
        let n = i32::try_from(n.max(1)).unwrap_or(i32::MAX);
        d * (1.0 - d.powi(n - 1)) / (1.0 - d.powi(n))
    }
}

/// The model being trained, its optimiser and its EMA twin.
pub struct Trainer {
    model: UNet,
    ema: Option<UNet>,
    pub schedule: Schedule,
    pub config: TrainConfig,
    pub steps_done: usize,
    /// How many updates the EMA already averages: 0 for a fresh model, so its random init does not
    /// count; a loaded model's training steps, so its EMA is kept as the average it is.
    pub ema_updates: usize,
    optim: Optimiser,
    rng: NoiseSource,
}

/// Adam with clipping and the EMA: Burn's, a tensor at a time, or over one flat buffer where the
/// U-Net's own kernels run (a few launches on a GPU, one pass on the CPU). Boxed: its five
/// tensor handles take 3.4 kB, Burn's optimiser 64 bytes.
enum Optimiser {
    Burn(ModuleOptimizer),
    Flat(Box<FlatAdam>),
}

impl Trainer {
    /// `model` must live on an autodiff device (`Device::…().autodiff()`).
    pub fn new(model: UNet, schedule: Schedule, config: TrainConfig) -> Self {
        let ema = (config.ema_decay > 0.0).then(|| model.valid());
        let weight = model.init_conv.weight.val().inner();
        let optim = if crate::kernels::on_kernel_device(&weight) || crate::kernels::on_cpu_device(&weight) {
            Optimiser::Flat(Box::new(FlatAdam::new(&model, config.grad_clip, ema.is_some())))
        } else {
            let mut adam = AdamConfig::new();
            if let Some(norm) = config.grad_clip {
                adam = adam.with_grad_clipping(Some(GradientClippingConfig::Norm(norm)));
            }
            Optimiser::Burn(adam.init())
        };
        Self { rng: NoiseSource::new(config.seed), optim, model, ema, schedule, config, steps_done: 0, ema_updates: 0 }
    }

    /// One optimisation step on a batch of clean images `x0` in [-1, 1]; returns the loss tensor
    /// without reading it.
    pub fn step(&mut self, x0: Tensor<4>, labels: &[usize]) -> Tensor<1> {
        let device = x0.device();
        let [batch, c, h, w] = x0.dims();
        let t: Vec<usize> = (0..batch).map(|_| self.rng.below(self.schedule.len())).collect();
        let noise = self.rng.normal([batch, c, h, w], &device);
        let x_t = q_sample(&self.schedule, x0, &t, noise.clone());
        let labels: Vec<Option<usize>> = match self.model.null_class() {
            Some(_) => labels.iter().map(|&l| (self.rng.uniform() >= self.config.cond_drop_prob).then_some(l)).collect(),
            None => vec![None; batch],
        };
        let predicted = self.model.forward_indexed(x_t, &t, &labels);
        let loss = noise_loss(self.config.loss, predicted, noise);
        let grads = GradientsParams::from_grads(loss.backward(), &self.model);
        let lr = self.config.lr_at(self.steps_done);
        self.steps_done += 1;
        let decay = self.ema.is_some().then(|| {
            self.ema_updates += 1;
            self.config.ema_decay_at(self.ema_updates)
        });
        match &mut self.optim {
            Optimiser::Burn(optim) => {
                self.model = optim.step(lr, self.model.clone(), grads);
                if let (Some(ema), Some(decay)) = (self.ema.take(), decay) {
                    self.ema = Some(ema_update(ema, &self.model.valid(), decay));
                }
            }
            Optimiser::Flat(optim) => {
                self.model = optim.step(lr, self.model.clone(), grads, decay);
                self.ema = self.ema.take().and_then(|ema| optim.average(ema));
            }
        }
        loss.detach()
    }

    /// The model being trained (on its autodiff device).
    pub fn model(&self) -> &UNet {
        &self.model
    }

    /// Continues the EMA from `ema` (a resumed run's average) instead of the model's weights.
    pub fn set_ema(&mut self, ema: UNet) {
        if let Optimiser::Flat(optim) = &mut self.optim {
            optim.set_average(&ema);
        }
        self.ema = Some(ema);
    }

    /// Whether the optimiser runs over one flat buffer (see [`FlatAdam`]) rather than Burn's.
    pub fn is_flat(&self) -> bool {
        matches!(self.optim, Optimiser::Flat(_))
    }

    /// Restarts the random source of t, ε and label dropout: `ddpm train` seeds it from the step
    /// number, so a resumed run draws what an uninterrupted one would.
    pub fn reseed(&mut self, seed: u64) {
        self.rng = NoiseSource::new(seed);
    }

    /// Adam's moments (a burnpack, keyed by the parameters' ids, which weights files keep).
    pub fn optimizer_state(&self) -> Result<Vec<u8>, String> {
        match &self.optim {
            Optimiser::Burn(optim) => optim.into_bytes().map(|b| b.to_vec()).map_err(|e| e.to_string()),
            Optimiser::Flat(optim) => optim.to_bytes(),
        }
    }

    /// Restores [`Trainer::optimizer_state`]; the model must come from the same run's weights.
    pub fn load_optimizer_state(&mut self, bytes: &[u8]) -> Result<(), String> {
        match &mut self.optim {
            Optimiser::Burn(optim) => {
                let bytes = burn::tensor::Bytes::from_bytes_vec(bytes.to_vec());
                *optim = optim.clone().from_bytes(bytes).map_err(|e| e.to_string())?;
                Ok(())
            }
            Optimiser::Flat(optim) => optim.load_bytes(bytes),
        }
    }

    /// The weights to sample from: the EMA when there is one.
    pub fn inference_model(&self) -> UNet {
        self.ema.clone().unwrap_or_else(|| self.model.valid())
    }
}

/// ema ← decay · ema + (1 − decay) · live, parameter by parameter (both have the same layout).
pub fn ema_update(ema: UNet, live: &UNet, decay: f64) -> UNet {
    struct Blend {
        live: std::vec::IntoIter<Tensor<1>>,
        decay: f64,
    }
    impl ModuleMapper for Blend {
        fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
            let live = self.live.next().expect("EMA and model have the same parameters");
            let decay = self.decay;
            param.map(|ema| {
                let dims = ema.dims();
                ema * decay + live.reshape(dims) * (1.0 - decay)
            })
        }
    }
    ema.map(&mut Blend { live: flat_params(live).into_iter(), decay })
}

/// A fixed evaluation batch: images, time indices and noise chosen once from a seed, so the loss
/// on it can be compared across steps (and across backends).
pub struct EvalBatch {
    pub x0: Tensor<4>,
    pub labels: Vec<usize>,
    pub t: Vec<usize>,
    pub noise: Tensor<4>,
}

impl EvalBatch {
    pub fn new(x0: Tensor<4>, labels: Vec<usize>, timesteps: usize, seed: u64) -> Self {
        let mut rng = NoiseSource::new(seed);
        let dims = x0.dims();
        let t = (0..dims[0]).map(|_| rng.below(timesteps)).collect();
        let noise = rng.normal(dims, &x0.device());
        Self { x0, labels, t, noise }
    }

    /// The ε-loss of `model` on this batch (labels given, no dropout), not yet read back.
    pub fn loss(&self, model: &UNet, schedule: &Schedule, kind: LossKind) -> Tensor<1> {
        let x_t = q_sample(schedule, self.x0.clone(), &self.t, self.noise.clone());
        let labels: Vec<Option<usize>> = self.labels.iter().map(|&l| Some(l)).collect();
        noise_loss(kind, model.forward_indexed(x_t, &self.t, &labels), self.noise.clone())
    }
}
