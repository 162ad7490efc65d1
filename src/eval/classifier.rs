//! A small Fashion-MNIST classifier whose penultimate layer is the feature space of the
//! Fréchet distance (the role Inception plays in FID), and whose predictions check that guided
//! samples show the class that was asked for.

use crate::data::Dataset;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::pool::{MaxPool2d, MaxPool2dConfig};
use burn::nn::{Linear, LinearConfig, PaddingConfig2d};
use burn::prelude::*;
use burn::tensor::activation::relu;

/// Width of the feature vector.
pub const FEATURES: usize = 128;

#[derive(Module, Debug)]
pub struct Classifier {
    pub conv1: Conv2d,
    pub conv2: Conv2d,
    pub pool: MaxPool2d,
    pub fc: Linear,
    pub head: Linear,
}

impl Classifier {
    pub fn new(device: &Device) -> Self {
        let conv = |i, o| Conv2dConfig::new([i, o], [3, 3]).with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1)).init(device);
        Self {
            conv1: conv(1, 32),
            conv2: conv(32, 64),
            pool: MaxPool2dConfig::new([2, 2]).with_strides([2, 2]).init(),
            fc: LinearConfig::new(64 * 7 * 7, FEATURES).init(device),
            head: LinearConfig::new(FEATURES, 10).init(device),
        }
    }

    /// `[B, 1, 28, 28]` in [-1, 1] → `[B, FEATURES]`.
    pub fn features(&self, x: Tensor<4>) -> Tensor<2> {
        let x = self.pool.forward(relu(self.conv1.forward(x)));
        let x = self.pool.forward(relu(self.conv2.forward(x)));
        let [b, c, h, w] = x.dims();
        relu(self.fc.forward(x.reshape([b, c * h * w])))
    }

    /// Class logits.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        self.head.forward(self.features(x))
    }

    /// The features of a batch, read back row after row.
    pub fn feature_vec(&self, x: Tensor<4>) -> Vec<f32> {
        self.features(x).into_data().try_into_vec::<f32>().unwrap()
    }

    /// The most likely class of each image of a batch.
    pub fn predict(&self, x: Tensor<4>) -> Vec<usize> {
        let logits = self.forward(x).into_data().try_into_vec::<f32>().unwrap();
        logits.chunks(10).map(|row| (0..10).max_by(|&a, &b| row[a].total_cmp(&row[b])).unwrap()).collect()
    }
}

/// Classifier features of the given images of a data set, computed 500 at a time.
pub fn dataset_features(model: &Classifier, data: &Dataset, indices: &[usize], device: &Device) -> Vec<f32> {
    indices.chunks(500).flat_map(|c| model.feature_vec(data.batch(c, None, device).0)).collect()
}

/// The Gaussian of all test images' features, which every FD is measured against.
pub fn test_reference(model: &Classifier, test: &Dataset, device: &Device) -> (nalgebra::DVector<f64>, nalgebra::DMatrix<f64>) {
    super::frechet::gaussian_fit(&dataset_features(model, test, &(0..test.len()).collect::<Vec<_>>(), device), FEATURES)
}

/// Features of `n` images of pure noise clamped to [-1, 1]: the far end of any distance scale.
pub fn noise_features(model: &Classifier, n: usize, size: usize, seed: u64, device: &Device) -> Vec<f32> {
    let mut rng = crate::noise::NoiseSource::new(seed);
    (0..n)
        .step_by(500)
        .flat_map(|s| {
            let x = rng.normal([(s + 500).min(n) - s, 1, size, size], device).clamp(-1.0, 1.0);
            model.feature_vec(x)
        })
        .collect()
}
