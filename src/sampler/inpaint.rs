//! Repaint (inpainting as in RePaint, Lugmayr et al. 2022): the pixels to keep follow the forward
//! process of the original image, the painted ones come from the model. After every reverse step
//! the kept pixels of x are replaced by a fresh draw of q(x_t | original) at the step's new t, so
//! the model sees them as it would any image at that t and fills the painted ones to match. This
//! shapes a run, beside the samplers: any sampler can follow it.

use crate::diffusion::q_sample;
use crate::noise::NoiseSource;
use crate::schedule::Schedule;
use burn::prelude::*;
use burn::tensor::Bool;

pub struct Inpaint {
    schedule: Schedule,
    original: Tensor<4>,
    /// True where the original is kept.
    keep: Tensor<4, Bool>,
    /// Its own stream, so that a run with nothing kept draws exactly what plain sampling does.
    noise: NoiseSource,
    /// RePaint's resampling: each reverse step is taken this many times, noising its result back
    /// to the step's t in between, so that the painted and kept parts have time to agree.
    pub resample: usize,
}

impl Inpaint {
    /// `original` in [−1, 1] and `painted` (1 where the model paints, 0 where the original stays)
    /// share the run's shape.
    pub fn new(schedule: Schedule, original: Tensor<4>, painted: Tensor<4>, seed: u64) -> Self {
        assert_eq!(original.dims(), painted.dims(), "one mask value per pixel");
        let keep = painted.lower_elem(0.5);
        // Another stream than the run's (which is seeded with `seed` itself).
        Self { schedule, original, keep, noise: NoiseSource::new(seed ^ 0x5245_5041_494e_5421), resample: 1 }
    }

    /// Each reverse step taken `times` times (1: once, plain RePaint without resampling).
    pub fn resampling(self, times: usize) -> Self {
        Self { resample: times.max(1), ..self }
    }

    /// x at time index `from` diffused forward to the noisier `to`: q(x_to | x_from).
    pub fn renoise(&mut self, x: Tensor<4>, from: usize, to: usize) -> Tensor<4> {
        let ratio = self.schedule.alphas_cumprod[to] / self.schedule.alphas_cumprod[from];
        let noise = self.noise.normal(x.dims(), &x.device());
        x * ratio.sqrt() as f32 + noise * (1.0 - ratio).sqrt() as f32
    }

    /// `x` at time index `t` (`None`: the clean end) with the kept pixels from q(x_t | original).
    pub fn apply(&mut self, x: Tensor<4>, t: Option<usize>) -> Tensor<4> {
        let known = match t {
            None => self.original.clone(),
            Some(t) => {
                let dims = self.original.dims();
                let noise = self.noise.normal(dims, &self.original.device());
                q_sample(&self.schedule, self.original.clone(), &vec![t; dims[0]], noise)
            }
        };
        x.mask_where(self.keep.clone(), known)
    }
}
