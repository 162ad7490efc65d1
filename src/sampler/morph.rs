//! A morph between two garments. With a deterministic sampler (DDIM with η = 0, DPM-Solver++) the
//! reverse process is a fixed map from x_T to x_0, so starting noises spherically interpolated
//! between two seeds' give images that pass smoothly from one garment to the other. This shapes
//! the start of a run, beside the samplers: any deterministic sampler can follow it.

use crate::noise::NoiseSource;
use burn::prelude::*;

/// Spherical interpolation (Shoemake 1985) from `a` (t = 0) to `b` (t = 1): high-dimensional
/// Gaussian noise lies near a sphere, which the straight line between two draws cuts inside.
pub fn slerp(a: &[f32], b: &[f32], t: f64) -> Vec<f32> {
    assert_eq!(a.len(), b.len(), "slerp between vectors of one length");
    let dot = |x: &[f32], y: &[f32]| x.iter().zip(y).map(|(&p, &q)| p as f64 * q as f64).sum::<f64>();
    let cos = dot(a, b) / (dot(a, a) * dot(b, b)).sqrt();
    let theta = cos.clamp(-1.0, 1.0).acos();
    let (wa, wb) = if theta.sin().abs() < 1e-6 {
        (1.0 - t, t) // (anti)parallel: no plane to turn in; the line is as good.
    } else {
        (((1.0 - t) * theta).sin() / theta.sin(), (t * theta).sin() / theta.sin())
    };
    a.iter().zip(b).map(|(&p, &q)| (wa * p as f64 + wb * q as f64) as f32).collect()
}

/// The starting noise of a strip of `count` images from seed `a` to seed `b`, as one batch: its
/// ends are the x_T that [`super::SamplingRun::new`] draws for one image of `shape` from each seed.
pub fn morph_noise(seeds: (u64, u64), count: usize, shape: [usize; 3], device: &Device) -> Tensor<4> {
    assert!(count >= 2, "a morph has two ends");
    let draw = |seed| NoiseSource::new(seed).normal_vec(shape.iter().product());
    let (a, b) = (draw(seeds.0), draw(seeds.1));
    let values: Vec<f32> = (0..count)
        .flat_map(|i| match i {
            0 => a.clone(),
            i if i + 1 == count => b.clone(),
            i => slerp(&a, &b, i as f64 / (count - 1) as f64),
        })
        .collect();
    let [c, h, w] = shape;
    Tensor::from_data(TensorData::new(values, [count, c, h, w]), device)
}
