//! The U-Net's own kernels (src/kernels/) against the same math through Burn's operations, on the
//! same device: the CubeCL kernels on native wgpu (lavapipe where there is no GPU), and the CPU
//! kernels (the convolution, GroupNorm) on flex, through the same cases.

use burn::nn::{GroupNorm, GroupNormConfig};
use burn::prelude::*;
use ddpm_web::diagnostics::launches;
use ddpm_web::kernels::{self, NormAct, ScaleShift};
use ddpm_web::noise::NoiseSource;

mod common;
use common::wgpu;

/// Gaussians seeded by their shape and parameters: every run checks the same values.
fn normal<const D: usize>(shape: [usize; D], mean: f32, std: f32, device: &Device) -> Tensor<D> {
    let seed = shape.iter().fold(u64::from(mean.to_bits()) << 32 | u64::from(std.to_bits()), |h, &d| h.rotate_left(7) ^ d as u64);
    NoiseSource::new(seed).normal(shape, device) * std + mean
}

/// A GroupNorm with an affine far from its initial (1, 0).
fn norm(groups: usize, channels: usize, device: &Device) -> GroupNorm {
    let mut norm = GroupNormConfig::new(groups, channels).init(device);
    norm.gamma = Some(burn::module::Param::from_tensor(normal([channels], 1.0, 0.5, device)));
    norm.beta = Some(burn::module::Param::from_tensor(normal([channels], 0.0, 0.5, device)));
    norm
}

/// The same values in a channels-last buffer seen as NCHW, the layout Burn's convolutions return.
fn channels_last(x: Tensor<4>) -> Tensor<4> {
    let device = x.device();
    Tensor::<4>::from_data(x.permute([0, 2, 3, 1]).into_data(), &device).permute([0, 3, 1, 2])
}

fn max_abs_diff(a: Tensor<4>, b: Tensor<4>) -> f32 {
    (a - b).abs().max().into_scalar::<f32>()
}

#[test]
fn group_norm_act_equals_burns_operations_for_every_combination() {
    let (device, _lock) = wgpu();
    assert!(kernels::on_kernel_device(&normal([1, 1, 1, 1], 0.0, 1.0, &device)));
    group_norm_act_equals_burns_operations(&device);
}

#[test]
fn cpu_group_norm_act_equals_burns_operations_for_every_combination() {
    let device = Device::flex();
    assert!(kernels::on_cpu_kernels(&normal([1, 1, 1, 1], 0.0, 1.0, &device)));
    group_norm_act_equals_burns_operations(&device);
}

fn group_norm_act_equals_burns_operations(device: &Device) {
    let device = device.clone();
    // The U-Net's shapes: 4 groups of 7 channels at 28×28, one group of 112 at 7×7; and an odd
    // size whose group length is not a multiple of the cube's 64 units.
    for (batch, groups, channels, side) in [(2, 4, 28, 28), (3, 1, 112, 7), (1, 2, 6, 5)] {
        let norm = norm(groups, channels, &device);
        // Mean and spread away from 0 and 1, as between layers.
        let x = normal([batch, channels, side, side], 0.7, 2.5, &device);
        for (scale_shift, silu, residual) in [(false, false, false), (true, true, false), (false, true, true), (true, true, true)] {
            let act = NormAct {
                // Inside a wider table, as sampling's one projection for every block hands it.
                scale_shift: scale_shift.then(|| ScaleShift { table: normal([batch, 2 * channels + 10], 0.0, 0.5, &device), column: 7 }),
                silu,
                residual: residual.then(|| normal([batch, channels, side, side], 0.0, 1.0, &device)),
            };
            let reference = kernels::naive::group_norm_act(x.clone(), &norm, act.clone());
            let case = format!("batch {batch}, {groups} groups of {channels} channels at {side}², scale/shift {scale_shift}, SiLU {silu}, residual {residual}");
            for (layout, x) in [("row-major", x.clone()), ("channels-last", channels_last(x.clone()))] {
                let err = max_abs_diff(kernels::group_norm_act(x, &norm, act.clone()), reference.clone());
                assert!(err < 1e-4, "{case}, {layout}: max |kernel − Burn| = {err}");
            }
        }
    }
    // A mean far from zero beside a small spread: the one-pass variance must not cancel.
    let norm = norm(4, 28, &device);
    let x = normal([2, 28, 28, 28], 40.0, 0.5, &device);
    let act = NormAct { scale_shift: None, silu: false, residual: None };
    let err = max_abs_diff(kernels::group_norm_act(x.clone(), &norm, act.clone()), kernels::naive::group_norm_act(x, &norm, act));
    assert!(err < 1e-3, "mean 40, spread 0.5: max |kernel − Burn| = {err}");
}

#[test]
fn each_kernel_is_one_launch_where_burn_takes_many() {
    let (device, _lock) = wgpu();
    let norm = norm(4, 28, &device);
    let x = normal([2, 28, 28, 28], 0.0, 1.0, &device);
    let act = NormAct { scale_shift: Some(ScaleShift::whole(normal([2, 56], 0.0, 0.5, &device))), silu: true, residual: Some(x.clone()) };
    let run = |f: &dyn Fn() -> Tensor<4>| {
        let _ = f(); // the first run compiles; count the second
        device.sync().unwrap();
        launches::count(|| {
            let out = f();
            device.sync().unwrap();
            out
        })
        .1
        .total
    };
    let fused = run(&|| kernels::group_norm_act(x.clone(), &norm, act.clone()));
    // Channels-last in, as from a convolution: no copy before the kernel.
    let from_conv = channels_last(x.clone());
    assert_eq!(run(&|| kernels::group_norm_act(from_conv.clone(), &norm, act.clone())), 1, "no copy of a channels-last input");
    let reference = run(&|| kernels::naive::group_norm_act(x.clone(), &norm, act.clone()));
    assert_eq!(fused, 1, "one kernel launch");
    assert!(reference >= 10, "Burn's operations took {reference} launches");

    let qkv = normal([2, 384, 14, 14], 0.0, 1.0, &device);
    assert_eq!(run(&|| kernels::linear_attention(qkv.clone(), 4, 32)), 1, "linear attention: one launch");
    assert_eq!(run(&|| kernels::attention(qkv.clone(), 4, 32)), 1, "attention: one launch");
    let reference = run(&|| kernels::naive::linear_attention(qkv.clone(), 4, 32));
    assert!(reference >= 8, "Burn's operations took {reference} launches for linear attention");
}

#[test]
fn attention_kernels_equal_burns_operations() {
    let (device, _lock) = wgpu();
    attention_equals_burns_operations(&device);
}

#[test]
fn cpu_attention_kernels_equal_burns_operations() {
    attention_equals_burns_operations(&Device::flex());
}

fn attention_equals_burns_operations(device: &Device) {
    let device = device.clone();
    // The U-Net's levels (28², 14², 7²) with its 4 heads of 32, a narrower head, and a side whose
    // pixels do not fill the last tile.
    for (batch, heads, dim_head, side) in [(2, 4, 32, 28), (1, 4, 32, 14), (2, 4, 32, 7), (1, 2, 16, 9)] {
        let qkv = normal([batch, 3 * heads * dim_head, side, side], 0.0, 2.0, &device);
        let case = format!("batch {batch}, {heads} heads of {dim_head} at {side}²");
        let linear = kernels::naive::linear_attention(qkv.clone(), heads, dim_head);
        let softmax = kernels::naive::attention(qkv.clone(), heads, dim_head);
        for (layout, qkv) in [("row-major", qkv.clone()), ("channels-last", channels_last(qkv))] {
            let err = max_abs_diff(kernels::linear_attention(qkv.clone(), heads, dim_head), linear.clone());
            assert!(err < 1e-4, "linear attention, {case}, {layout}: max |kernel − Burn| = {err}");
            let err = max_abs_diff(kernels::attention(qkv, heads, dim_head), softmax.clone());
            assert!(err < 1e-4, "attention, {case}, {layout}: max |kernel − Burn| = {err}");
        }
    }
}

#[test]
fn the_kernels_stay_off_the_cpu_and_take_autodiff_through_their_backward() {
    let (device, _lock) = wgpu();
    let x = normal([1, 4, 2, 2], 0.0, 1.0, &device);
    assert!(kernels::on_kernel_device(&x));
    assert!(!kernels::on_kernel_device(&x.clone().to_device(&Device::flex())));
    assert!(!kernels::on_kernel_backend(&x.clone().to_device(&Device::flex().autodiff())));
    // Training's tensors: the kernels with a backward pass take them.
    let tracked = normal([1, 4, 2, 2], 0.0, 1.0, &device.clone().autodiff());
    assert!(!kernels::on_kernel_device(&tracked));
    assert!(kernels::on_kernel_backend(&tracked));
    // The CPU kernels take flex's tensors, tracked or not, and nothing on the GPU.
    assert!(kernels::on_cpu_kernels(&x.clone().to_device(&Device::flex())));
    assert!(kernels::on_cpu_kernels(&x.clone().to_device(&Device::flex().autodiff())));
    assert!(!kernels::on_cpu_kernels(&x));
}

/// Every input's gradient of `Σ w · f(x, …)` for a fixed random `w`, through `f`.
/// With `nhwc`, x reaches `f` as a channels-last buffer (a copy inside the graph).
fn group_norm_grads(
    f: fn(Tensor<4>, &GroupNorm, NormAct) -> Tensor<4>,
    x: &Tensor<4>,
    nhwc: bool,
    norm: &GroupNorm,
    act: &NormAct,
    w: &Tensor<4>,
) -> Vec<(&'static str, Tensor<1>)> {
    let leaf = |t: Tensor<4>| Tensor::<4>::from_data(t.into_data(), &w.device()).require_grad();
    let x = leaf(x.clone());
    let input = if nhwc { (x.clone().permute([0, 2, 3, 1]) * 1.0).permute([0, 3, 1, 2]) } else { x.clone() };
    let mut norm = norm.clone();
    let gamma = norm.gamma.as_ref().unwrap().val().inner();
    let beta = norm.beta.as_ref().unwrap().val().inner();
    let (gamma, beta) = (Tensor::from_inner(gamma).require_grad(), Tensor::from_inner(beta).require_grad());
    norm.gamma = Some(burn::module::Param::from_tensor(gamma.clone()));
    norm.beta = Some(burn::module::Param::from_tensor(beta.clone()));
    let table = act.scale_shift.as_ref().map(|e| Tensor::<2>::from_data(e.table.clone().into_data(), &w.device()).require_grad());
    let residual = act.residual.clone().map(leaf);
    let tracked = NormAct {
        scale_shift: table.clone().map(|table| ScaleShift { table, column: act.scale_shift.as_ref().unwrap().column }),
        silu: act.silu,
        residual: residual.clone(),
    };
    let grads = (f(input, &norm, tracked) * w.clone()).sum().backward();
    let flat = |t: Option<Tensor<4>>| t.map(|t| t.flatten::<1>(0, 3));
    let mut out = vec![("x", flat(x.grad(&grads).map(Tensor::from_inner)).unwrap())];
    out.push(("γ", Tensor::from_inner(gamma.grad(&grads).unwrap())));
    out.push(("β", Tensor::from_inner(beta.grad(&grads).unwrap())));
    if let Some(t) = table {
        out.push(("scale-shift table", Tensor::from_inner(t.grad(&grads).unwrap()).flatten::<1>(0, 1)));
    }
    if let Some(r) = residual {
        out.push(("residual", flat(r.grad(&grads).map(Tensor::from_inner)).unwrap()));
    }
    out
}

#[test]
fn group_norm_act_gradients_equal_burns_autodiff() {
    let (device, _lock) = wgpu();
    group_norm_act_gradients_equal_burns(&device.autodiff());
}

#[test]
fn cpu_group_norm_act_gradients_equal_burns_autodiff() {
    group_norm_act_gradients_equal_burns(&Device::flex().autodiff());
}

fn group_norm_act_gradients_equal_burns(device: &Device) {
    let device = device.clone();
    for (batch, groups, channels, side) in [(2, 4, 28, 28), (3, 1, 112, 7), (1, 2, 6, 5)] {
        let norm = norm(groups, channels, &device);
        let x = normal([batch, channels, side, side], 0.7, 2.5, &device);
        let w = normal([batch, channels, side, side], 0.0, 1.0, &device);
        for (scale_shift, silu, residual, column) in
            [(false, false, false, 0), (true, true, false, 0), (false, true, true, 0), (true, true, true, 7), (true, false, false, 0)]
        {
            let act = NormAct {
                scale_shift: scale_shift.then(|| ScaleShift { table: normal([batch, 2 * channels + column], 0.0, 0.5, &device), column }),
                silu,
                residual: residual.then(|| normal([batch, channels, side, side], 0.0, 1.0, &device)),
            };
            let case = format!(
                "batch {batch}, {groups} groups of {channels} channels at {side}², scale/shift {scale_shift} (column {column}), SiLU {silu}, residual {residual}"
            );
            let reference = group_norm_grads(kernels::naive::group_norm_act, &x, false, &norm, &act, &w);
            for (layout, nhwc) in [("row-major", false), ("channels-last", true)] {
                let ours = group_norm_grads(kernels::group_norm_act, &x, nhwc, &norm, &act, &w);
                for ((name, a), (_, b)) in ours.into_iter().zip(reference.clone()) {
                    let scale = b.clone().abs().max().into_scalar::<f32>().max(1.0);
                    let err = (a - b).abs().max().into_scalar::<f32>();
                    assert!(err < 1e-4 * scale, "{case}, {layout}: ∂/∂{name} differs by {err} (largest {scale})");
                }
            }
        }
    }
}

#[test]
fn attention_gradients_equal_burns_autodiff() {
    let (device, _lock) = wgpu();
    attention_gradients_equal_burns(&device.autodiff());
}

#[test]
fn cpu_attention_gradients_equal_burns_autodiff() {
    attention_gradients_equal_burns(&Device::flex().autodiff());
}

fn attention_gradients_equal_burns(device: &Device) {
    let device = device.clone();
    // Softmax attention's backward is a kernel up to 64 pixels (7² and 8² here), Burn's operations above.
    for (batch, heads, dim_head, side) in [(2, 4, 32, 14), (2, 4, 32, 7), (1, 2, 16, 9), (2, 2, 16, 8)] {
        let qkv = normal([batch, 3 * heads * dim_head, side, side], 0.0, 2.0, &device);
        let w = normal([batch, heads * dim_head, side, side], 0.0, 1.0, &device);
        type Core = fn(Tensor<4>, usize, usize) -> Tensor<4>;
        let grad = |f: Core| {
            let qkv = Tensor::<4>::from_data(qkv.clone().into_data(), &device).require_grad();
            let grads = (f(qkv.clone(), heads, dim_head) * w.clone()).sum().backward();
            Tensor::<4>::from_inner(qkv.grad(&grads).unwrap())
        };
        let cases: [(&str, Core, Core); 2] =
            [("linear attention", kernels::linear_attention, kernels::naive::linear_attention), ("attention", kernels::attention, kernels::naive::attention)];
        for (name, ours, theirs) in cases {
            let expected = grad(theirs);
            let scale = expected.clone().abs().max().into_scalar::<f32>().max(1.0);
            let err = max_abs_diff(grad(ours), expected);
            assert!(err < 1e-4 * scale, "{name}, batch {batch}, {heads} heads of {dim_head} at {side}²: ∂/∂qkv differs by {err} (largest {scale})");
        }
    }
}

#[test]
fn group_norm_act_backward_is_a_few_launches() {
    let (device, _lock) = wgpu();
    let device = device.autodiff();
    let norm = norm(4, 28, &device);
    let x = normal([2, 28, 28, 28], 0.0, 1.0, &device).require_grad();
    let table = normal([2, 56], 0.0, 0.5, &device).require_grad();
    let act = NormAct { scale_shift: Some(ScaleShift::whole(table)), silu: true, residual: Some(x.clone()) };
    let step = |f: fn(Tensor<4>, &GroupNorm, NormAct) -> Tensor<4>| {
        let run = || {
            let grads = f(x.clone(), &norm, act.clone()).sum().backward();
            let g = x.grad(&grads).unwrap();
            g.device().sync().unwrap();
        };
        run();
        launches::count(run).1.total
    };
    let ours = step(kernels::group_norm_act);
    let theirs = step(kernels::naive::group_norm_act);
    println!("GroupNorm, scale/shift, SiLU, residual, forward and backward: {ours} launches (Burn's operations: {theirs})");
    assert!(ours * 4 < theirs, "forward and backward: {ours} launches with the kernels, {theirs} with Burn's operations");
}

#[test]
fn weight_standardisation_and_its_gradient_equal_burns() {
    let (device, _lock) = wgpu();
    let device = device.autodiff();
    for shape in [[16, 16, 3, 3], [32, 96, 3, 3], [5, 3, 1, 1], [3, 300, 1, 2]] {
        let weight = normal(shape, 0.3, 0.05, &device);
        let w = normal(shape, 0.0, 1.0, &device);
        type Standardize = fn(Tensor<4>, f64) -> Tensor<4>;
        let run = |f: Standardize, nhwc: bool| {
            let leaf = Tensor::<4>::from_data(weight.clone().into_data(), &device).require_grad();
            let input = if nhwc { (leaf.clone().permute([0, 2, 3, 1]) * 1.0).permute([0, 3, 1, 2]) } else { leaf.clone() };
            let y = f(input, 1e-5);
            let grads = (y.clone() * w.clone()).sum().backward();
            (y, Tensor::<4>::from_inner(leaf.grad(&grads).unwrap()))
        };
        let (expected, expected_grad) = run(kernels::naive::standardize_weight, false);
        let scale = expected_grad.clone().abs().max().into_scalar::<f32>().max(1.0);
        for (layout, nhwc) in [("row-major", false), ("channels-last", true)] {
            let (y, grad) = run(kernels::standardize_weight, nhwc);
            let err = max_abs_diff(y, expected.clone());
            assert!(err < 1e-4, "{shape:?}, {layout}: max |kernel − Burn| = {err}");
            let err = max_abs_diff(grad, expected_grad.clone());
            assert!(err < 1e-4 * scale, "{shape:?}, {layout}: ∂/∂w differs by {err} (largest {scale})");
        }
    }
    // Training standardises every ResNet convolution's kernel each step: two launches, not forty.
    let weight = normal([16, 16, 3, 3], 0.0, 0.1, &device).require_grad();
    let step = |f: fn(Tensor<4>, f64) -> Tensor<4>| {
        let run = || {
            let grads = f(weight.clone(), 1e-5).sum().backward();
            weight.grad(&grads).unwrap().device().sync().unwrap();
        };
        run();
        launches::count(run).1.total
    };
    let (ours, theirs) = (step(kernels::standardize_weight), step(kernels::naive::standardize_weight));
    println!("weight standardisation, forward and backward: {ours} launches (Burn's operations: {theirs})");
    assert!(ours * 4 < theirs, "forward and backward: {ours} launches with the kernels, {theirs} with Burn's operations");
}

#[test]
fn convolution_gradients_equal_burns_autodiff() {
    let (plain, _lock) = wgpu();
    convolution_gradients_equal_burns(&plain);
}

#[test]
fn cpu_convolution_gradients_equal_burns_autodiff() {
    convolution_gradients_equal_burns(&Device::flex());
}

fn convolution_gradients_equal_burns(plain: &Device) {
    use burn::tensor::ops::ConvOptions;
    let device = plain.clone().autodiff();
    // The U-Net's own kernel at rows of 14, 7, 4, 2 and 1 pixels and eight, seven or four channels
    // a unit; Burn's where the output channels are not a multiple of four (and for the input's
    // gradient, the input channels). The 1×1 convolutions without a bias, as attention's projections.
    let cases = [(4, 16, 28, 28, 3), (2, 48, 32, 7, 3), (2, 8, 12, 12, 1), (2, 4, 8, 10, 7), (1, 3, 4, 5, 3), (3, 5, 7, 6, 1)];
    for (batch, c_in, c_out, side, kernel) in cases {
        let pad = kernel / 2;
        let options = ConvOptions::new([1, 1], [pad, pad], [1, 1], 1);
        let x = normal([batch, c_in, side, side], 0.0, 1.0, &device);
        let weight = normal([c_out, c_in, kernel, kernel], 0.0, 0.2, &device);
        let bias = normal([c_out], 0.0, 0.5, &device);
        let w = normal([batch, c_out, side, side], 0.0, 1.0, &device);
        let close = |name: &str, a: Tensor<1>, b: Tensor<1>| {
            let scale = b.clone().abs().max().into_scalar::<f32>().max(1.0);
            let err = (a - b).abs().max().into_scalar::<f32>();
            assert!(err < 1e-4 * scale, "{batch}×{c_in}→{c_out} at {side}², {kernel}×{kernel}: {name} differs by {err} (largest {scale})");
        };
        let with_bias = kernel != 1 || c_out % 4 != 0;
        let run = |ours: bool| {
            let leaf = |t: &Tensor<4>| Tensor::<4>::from_data(t.clone().into_data(), &device).require_grad();
            let (x, weight) = (leaf(&x), leaf(&weight));
            let bias = Tensor::<1>::from_data(bias.clone().into_data(), &device).require_grad();
            let b = with_bias.then(|| bias.clone());
            let y = match ours {
                true => kernels::conv2d(x.clone(), weight.clone(), b, options.clone()),
                false => burn::tensor::module::conv2d(x.clone(), weight.clone(), b, options.clone()),
            };
            let grads = (y.clone() * w.clone()).sum().backward();
            let flat = |t: Tensor<4>| t.flatten::<1>(0, 3);
            let mut values = vec![
                ("y", flat(y)),
                ("x", flat(Tensor::from_inner(x.grad(&grads).unwrap()))),
                ("weight", flat(Tensor::from_inner(weight.grad(&grads).unwrap()))),
            ];
            if with_bias {
                values.push(("bias", Tensor::from_inner(bias.grad(&grads).unwrap())));
            }
            values
        };
        for ((name, a), (_, b)) in run(true).into_iter().zip(run(false)) {
            close(name, a, b);
        }
        // Sampling's layouts: input and kernel channels-last, off autodiff.
        let on_plain = |t: &Tensor<4>| kernels::channels_last_weight(Tensor::<4>::from_data(t.clone().into_data(), plain));
        let bias = Tensor::<1>::from_data(bias.into_data(), plain);
        for bias in [Some(bias), None] {
            let name = if bias.is_some() { "channels-last y" } else { "channels-last y without a bias" };
            let ours = kernels::conv2d(on_plain(&x), on_plain(&weight), bias.clone(), options.clone());
            let burns = burn::tensor::module::conv2d(on_plain(&x), on_plain(&weight), bias, options.clone());
            close(name, ours.flatten(0, 3), burns.flatten(0, 3));
        }
    }
}
