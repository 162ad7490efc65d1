//! One fixed forward of the U-Net, and whether two devices agree on it: the page's start-up check
//! of the reader's GPU against the CPU path. A driver's shader compiler or a path only a real GPU
//! takes can give wrong numbers with no error; one batch-1 forward shows it.

use crate::noise::NoiseSource;
use crate::unet::UNet;
use burn::prelude::*;

/// The time index checked: mid-way, where every part of the U-Net carries signal.
const T: usize = 500;
const SEED: u64 = 0x5e1f;

/// The U-Net's prediction for fixed noise at t = 500, guided by a class where the model has
/// classes (the guided and unguided paths share every kernel but the class embedding's).
pub fn probe(model: &UNet, image_size: usize, channels: usize, device: &Device) -> Tensor<4> {
    let x = NoiseSource::new(SEED).normal_vec(channels * image_size * image_size);
    let x = Tensor::<4>::from_data(TensorData::new(x, [1, channels, image_size, image_size]), device);
    let label = model.null_class().map(|_| 7);
    model.forward(
        x,
        Tensor::<1>::from_data(TensorData::new(vec![T as f32], [1]), device),
        label.map(|l| Tensor::<1, Int>::from_data(TensorData::new(vec![l as i64], [1]), device)),
    )
}

/// How far one device's probe is from another's.
#[derive(Debug, Clone, Copy)]
pub struct Agreement {
    pub max_diff: f32,
    pub tolerance: f32,
}

impl Agreement {
    /// f32 on two devices differs by rounding only (1e-5 to 1e-4 on the shipped model); a wrong
    /// kernel moves the prediction by tenths.
    pub fn of(values: &[f32], reference: &[f32]) -> Self {
        let scale = reference.iter().fold(1f32, |m, v| m.max(v.abs()));
        let max_diff = if values.len() != reference.len() {
            f32::INFINITY
        } else {
            values.iter().zip(reference).fold(0f32, |m, (a, b)| if (a - b).is_nan() { f32::INFINITY } else { m.max((a - b).abs()) })
        };
        Self { max_diff, tolerance: 2e-3 * scale }
    }

    pub fn ok(&self) -> bool {
        self.max_diff <= self.tolerance
    }
}
