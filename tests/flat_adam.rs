//! The flat optimiser (src/train/flat_adam.rs) against Burn's own: Adam with per-tensor clipping
//! and the EMA, step for step, on wgpu (its two kernels) and on the CPU (its pass over the flat
//! buffers); and its saved state read by Burn's optimiser and the other way round.

use burn::grad_clipping::GradientClippingConfig;
use burn::module::{Module, Param};
use burn::optim::{AdamConfig, GradientsParams, ModuleOptimizer};
use burn::prelude::*;
use ddpm_web::diagnostics::launches;
use ddpm_web::noise::NoiseSource;
use ddpm_web::train::ema_update;
use ddpm_web::train::flat_adam::FlatAdam;
use ddpm_web::unet::blocks::ResBlock;
use ddpm_web::unet::{UNet, UNetConfig};
use ddpm_web::weights::flat_params;

mod common;
use common::wgpu;

const CLIP: f32 = 0.05;
const LR: f64 = 1e-2;

fn model(device: &Device) -> UNet {
    UNetConfig::new().with_dim(8).with_dim_mults(vec![1, 2]).with_num_classes(10).with_attn_heads(2).with_attn_dim_head(8).with_image_size(8).init(device)
}

/// A loss whose gradients reach every parameter: the predicted noise's mean square.
fn grads(model: &UNet, step: usize) -> GradientsParams {
    let device = model.init_conv.weight.val().device();
    let x = NoiseSource::new(step as u64).normal([2, 1, 8, 8], &device);
    let eps = model.forward_indexed(x, &[10, 600], &[Some(3), None]);
    GradientsParams::from_grads((eps.clone() * eps).mean().backward(), model)
}

fn values(model: &UNet) -> Vec<f32> {
    Tensor::cat(flat_params(&model.valid()), 0).into_data().try_into_vec::<f32>().unwrap()
}

/// Equal to within a thousandth of one step's size (Adam moves a weight by about LR a step).
fn assert_close(what: &str, a: &[f32], b: &[f32]) {
    assert_eq!(a.len(), b.len());
    let worst = a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0f32, f32::max);
    assert!(worst < 1e-3 * LR as f32, "{what}: differ by up to {worst}");
}

/// Steps `burn` and `flat` side by side from the same model, comparing weights and EMA.
fn side_by_side(device: &Device, steps: usize) -> (UNet, FlatAdam, UNet, ModuleOptimizer) {
    let start = model(device);
    let (mut ours, mut theirs) = (start.clone(), start.clone());
    let mut flat = FlatAdam::new(&ours, Some(CLIP), true);
    let mut burn = AdamConfig::new().with_grad_clipping(Some(GradientClippingConfig::Norm(CLIP))).init();
    let (mut ema_ours, mut ema_theirs) = (Some(ours.valid()), ours.valid());
    for step in 0..steps {
        let decay = if step == 0 { 0.0 } else { 0.9 };
        let g = grads(&ours, step);
        ours = flat.step(LR, ours, g, Some(decay));
        ema_ours = flat.average(ema_ours.unwrap());
        let g = grads(&theirs, step);
        theirs = burn.step(LR, theirs, g);
        ema_theirs = ema_update(ema_theirs, &theirs.valid(), decay);
        assert_close(&format!("weights after step {}", step + 1), &values(&ours), &values(&theirs));
        assert_close(&format!("EMA after step {}", step + 1), &values(ema_ours.as_ref().unwrap()), &values(&ema_theirs));
        assert!(values(&ours) != values(&start), "the step moved the weights");
    }
    // The model keeps training: its parameters are leaves that take a gradient.
    assert!(ours.init_conv.weight.val().is_require_grad());
    (ours, flat, theirs, burn)
}

#[test]
fn flat_adam_is_burns_adam_with_clipping_and_ema_on_wgpu() {
    let (device, _lock) = wgpu();
    side_by_side(&device.autodiff(), 3);
}

/// The whole flat buffers on wgpu after a few steps, padding between tensors included: finite,
/// and zero in the padding, so a whole-buffer check or norm may read them.
#[test]
fn the_flat_buffers_padding_is_zero_and_everything_finite_on_wgpu() {
    let (device, _lock) = wgpu();
    let (_, flat, ..) = side_by_side(&device.autodiff(), 2);
    let (state, segments) = flat.buffers();
    let mut inside = vec![false; state.params.dims()[0]];
    segments.ranges().for_each(|r| inside[r].fill(true));
    assert!(inside.iter().any(|i| !i), "the layout has padding to check");
    for (name, t) in
        [("weights", &state.params), ("first moment", &state.moment_1), ("second moment", &state.moment_2), ("average", state.average.as_ref().unwrap())]
    {
        let v = t.clone().into_data().try_into_vec::<f32>().unwrap();
        assert!(v.iter().all(|x| x.is_finite()), "{name}: a value that is not finite");
        assert!(v.iter().zip(&inside).all(|(x, &i)| i || *x == 0.0), "{name}: padding that is not zero");
    }
}

#[test]
fn flat_adam_is_burns_adam_with_clipping_and_ema_on_the_cpu() {
    side_by_side(&Device::flex().autodiff(), 3);
}

#[test]
fn its_state_and_burns_are_one_format() {
    let (device, _lock) = wgpu();
    let (ours, flat, theirs, burn) = side_by_side(&device.autodiff(), 2);

    // Ours, saved, continues in Burn's optimiser exactly as in ours.
    let mut burn_from_ours = AdamConfig::new().with_grad_clipping(Some(GradientClippingConfig::Norm(CLIP))).init();
    burn_from_ours = burn_from_ours.from_bytes(burn::tensor::Bytes::from_bytes_vec(flat.to_bytes().unwrap())).unwrap();
    // Burn's, saved, continues in ours exactly as in Burn's.
    let mut ours_from_burn = FlatAdam::new(&theirs, Some(CLIP), false);
    ours_from_burn.load_bytes(&burn.into_bytes().unwrap()).unwrap();

    let a = burn_from_ours.step(LR, ours.clone(), grads(&ours, 2));
    let b = ours_from_burn.step(LR, theirs.clone(), grads(&theirs, 2), None);
    let mut reference = flat;
    let c = reference.step(LR, ours.clone(), grads(&ours, 2), None);
    assert_close("Burn's optimiser from our state", &values(&a), &values(&c));
    assert_close("ours from Burn's state", &values(&b), &values(&c));

    let mut other = FlatAdam::new(&ours, None, false);
    let bad = other.load_bytes(b"not a burnpack");
    assert!(bad.is_err(), "a corrupt state is an error, not zeros");
}

#[test]
fn an_update_is_a_launch_per_six_tensors_and_four_more_and_the_weights_are_views() {
    let (device, _lock) = wgpu();
    let m = model(&device.autodiff());
    let tensors = {
        let mut n = 0;
        m.clone().map(&mut Count(&mut n));
        n
    };
    let mut flat = FlatAdam::new(&m, Some(CLIP), true);
    let mut m = flat.step(LR, m.clone(), grads(&m, 0), Some(0.0)); // the first step tunes nothing, but warms
    let g = grads(&m, 1);
    let (_, counted) = launches::count(|| {
        m = flat.step(LR, m.clone(), g, Some(0.9));
        m.init_conv.weight.val().inner().device().sync().unwrap();
    });
    // One zero-filled buffer, the gradients gathered into it six a launch (all of them row-major
    // here: strided ones would take launches of their own), the clipping factors, the moments and
    // the weights; the new weights are views.
    let kernel = |name: &str| counted.by_kernel.get(name).copied().unwrap_or(0);
    assert_eq!([kernel("ClipFactorsKernel"), kernel("MomentsKernel"), kernel("ParamsKernel")], [1, 1, 1], "{:?}", counted.by_kernel);
    assert_eq!(kernel("GatherKernel"), tensors.div_ceil(6), "{:?}", counted.by_kernel);
    assert_eq!(counted.total, tensors.div_ceil(6) + 4, "{} launches for {tensors} parameter tensors: {:?}", counted.total, counted.by_kernel);
}

struct Count<'a>(&'a mut usize);

impl burn::module::ModuleMapper for Count<'_> {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        *self.0 += 1;
        param
    }
}

#[test]
fn a_strided_gradient_steps_as_its_row_major_copy() {
    let (device, _lock) = wgpu();
    let m = model(&device.autodiff());
    let ResBlock::Resnet(block) = &m.downs[0].block1 else { panic!("a ResNet block") };
    let id = block.block1.proj.conv.weight.id;
    // The same values with the last two axes' strides swapped: copied transposed, then viewed back.
    let mut strided = grads(&m, 0);
    let w: Tensor<4> = strided.remove(id).unwrap();
    let [o, i, kh, kw] = w.dims();
    strided.register(id, w.swap_dims(2, 3).reshape([o * i * kh * kw]).reshape([o, i, kw, kh]).swap_dims(2, 3));
    let step = |g| values(&FlatAdam::new(&m, Some(CLIP), true).step(LR, m.clone(), g, Some(0.0)));
    assert_close("weights after a step from a strided gradient", &step(strided), &step(grads(&m, 0)));
}
