//! Seeded Gaussian noise drawn on the host.
//!
//! Backends draw random numbers differently, so a seed given to a device would give a different
//! image on the CPU, on Vulkan and in the browser. Drawing on the host with a portable generator
//! (ChaCha8) makes `seed → image` the same everywhere, up to float rounding.

use burn::prelude::*;
use rand::{SeedableRng, rngs::ChaCha8Rng};
use rand_distr::{Distribution, StandardNormal};

pub struct NoiseSource {
    rng: ChaCha8Rng,
}

impl NoiseSource {
    pub fn new(seed: u64) -> Self {
        Self { rng: ChaCha8Rng::seed_from_u64(seed) }
    }

    /// `n` draws from N(0, 1).
    pub fn normal_vec(&mut self, n: usize) -> Vec<f32> {
        (0..n).map(|_| StandardNormal.sample(&mut self.rng)).collect()
    }

    /// A tensor of N(0, 1) draws with the given shape.
    pub fn normal<const D: usize>(&mut self, shape: [usize; D], device: &Device) -> Tensor<D> {
        let data = self.normal_vec(shape.iter().product());
        Tensor::from_data(TensorData::new(data, shape), device)
    }

    /// A uniform integer in `0..n`.
    pub fn below(&mut self, n: usize) -> usize {
        use rand::RngExt;
        self.rng.random_range(0..n)
    }

    /// Shuffles `items` in place (Fisher–Yates).
    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            items.swap(i, self.below(i + 1));
        }
    }

    /// A uniform float in [0, 1).
    pub fn uniform(&mut self) -> f32 {
        use rand::RngExt;
        self.rng.random::<f32>()
    }
}
