//! GroupNorm with its affine, the time embedding's scale and shift, SiLU and a residual add, in
//! one launch: Burn's operations take about fourteen for the same work.
//!
//! One cube (workgroup) per image and group. Its units sum the group's values and their squares in
//! one pass, through shared memory, then write the normalised, scaled, activated values.
//! The backward kernel (for training) recomputes those statistics, then sums the output gradient
//! per channel (four units add up a channel's partial sums) and per group (as the statistics):
//! one launch where autodiff takes about thirty.

#[cfg(feature = "train")]
use super::layout::cube;
use super::layout::{NORM_UNITS, at, at_out, cube_sum, empty_like, flat_pixels, step};
use burn::backend::cubecl::dtype_to_storage_type;
#[cfg(feature = "train")]
use burn::tensor::{Shape, Tensor as BurnTensor};
#[cfg(feature = "train")]
use burn_cubecl::CubeBackend;
use burn_cubecl::kernel::into_contiguous;
#[cfg(feature = "train")]
use burn_cubecl::ops::numeric::empty_device_dtype;
use burn_cubecl::tensor::CubeTensor;
use cubecl::prelude::*;

/// The mean of one image's group (its `len` values from channel `first` on) and 1 / √(variance + ε),
/// from one pass over the values summed by the cube: their sum and their sum of squares, each
/// less the group's first value, which keeps the variance's subtraction from cancelling when the
/// mean is far from zero. (On a software adapter the pass's loads are most of the cost.)
#[cube]
#[allow(clippy::too_many_arguments)]
pub(super) fn group_stats<F: Float>(input: &Tensor<F>, partial: &mut Shared<[F]>, epsilon: f32, image: usize, first: usize, len: usize, pixels: usize) -> (F, F) {
    let (channels, more) = (NORM_UNITS / pixels, NORM_UNITS % pixels);
    let origin = input[at::<F>(input, image, first, 0)];
    let mut i = UNIT_POS_X as usize;
    let (mut channel, mut pixel) = (first + i / pixels, i % pixels);
    let mut sum = F::new(0.0);
    let mut squares = F::new(0.0);
    while i < len {
        let d = input[at::<F>(input, image, channel, pixel)] - origin;
        sum += d;
        squares += d * d;
        i += NORM_UNITS;
        let (c, p) = step(channel, pixel, pixels, channels, more);
        channel = c;
        pixel = p;
    }
    let count = F::cast_from(len as u32);
    let mean = cube_sum::<F>(partial, sum, NORM_UNITS) / count;
    let variance = F::max(cube_sum::<F>(partial, squares, NORM_UNITS) / count - mean * mean, F::new(0.0));
    (origin + mean, F::new(1.0) / (variance + F::cast_from(epsilon)).sqrt())
}

/// SiLU's derivative at `x`: σ(x) (1 + x (1 − σ(x))).
#[cube]
fn silu_grad<F: Float>(x: F) -> F {
    let sigmoid = F::new(1.0) / (F::new(1.0) + (F::new(0.0) - x).exp());
    sigmoid * (F::new(1.0) + x * (F::new(1.0) - sigmoid))
}

#[cube(launch)]
#[allow(clippy::too_many_arguments)]
fn group_norm_act_kernel<F: Float>(
    input: &Tensor<F>,
    gamma: &Tensor<F>,
    beta: &Tensor<F>,
    scale_shift: &Tensor<F>,
    residual: &Tensor<F>,
    output: &mut Tensor<F>,
    channels: u32,
    pixels: u32,
    groups: u32,
    column: u32,
    epsilon: f32,
    #[comptime] has_scale_shift: bool,
    #[comptime] has_silu: bool,
    #[comptime] has_residual: bool,
    #[define(F)] _dtype: ElemType,
) {
    let channels = channels as usize;
    let pixels = pixels as usize;
    let groups = groups as usize;
    let image = CUBE_POS_X as usize / groups;
    let group = CUBE_POS_X as usize % groups;
    let per_group = channels / groups;
    let first = group * per_group;
    let len = per_group * pixels;
    let unit = UNIT_POS_X as usize;
    let mut partial = Shared::<[F]>::new_slice(NORM_UNITS);

    let (mean, inv_std) = group_stats::<F>(input, &mut partial, epsilon, image, first, len, pixels);

    // Channel by channel, so that a channel's γ, β, scale and shift are loaded once.
    for k in 0..per_group {
        let channel = first + k;
        let (g, b, scale, shift) = channel_params::<F>(gamma, beta, scale_shift, image, channel, channels, column, has_scale_shift);
        let mut p = unit;
        while p < pixels {
            let x = input[at::<F>(input, image, channel, p)];
            let mut y = ((x - mean) * inv_std * g + b) * scale + shift;
            if has_silu {
                y = y / (F::new(1.0) + (F::new(0.0) - y).exp());
            }
            if has_residual {
                y += residual[at::<F>(residual, image, channel, p)];
            }
            let out = at_out::<F>(output, image, channel, p);
            output[out] = y;
            p += NORM_UNITS;
        }
    }
}

/// What the kernels compute besides the normalisation: the flags of [`super::NormAct`].
#[derive(Clone, Copy, Debug)]
pub(super) struct Options {
    pub groups: usize,
    pub epsilon: f64,
    /// The first column of the block's scale in the table, when there is one.
    pub column: Option<usize>,
    pub silu: bool,
    pub residual: bool,
}

/// The forward kernel on `x` (`[B, C, H, W]`, any strides); the output has `x`'s layout. An absent
/// table or residual is never read (pass any tensor).
pub(super) fn forward(x: CubeTensor, gamma: CubeTensor, beta: CubeTensor, table: CubeTensor, residual: CubeTensor, o: Options) -> CubeTensor {
    let shape = x.meta.shape();
    let [batch, channels, height, width] = [shape[0], shape[1], shape[2], shape[3]];
    let (x, residual) = (flat_pixels(x), if o.residual { flat_pixels(residual) } else { residual });
    let (gamma, beta) = (into_contiguous(gamma), into_contiguous(beta));
    let output = empty_like(&x, channels);
    let dtype = dtype_to_storage_type(x.dtype);
    group_norm_act_kernel::launch(
        &x.client,
        CubeCount::Static((batch * o.groups) as u32, 1, 1),
        CubeDim::new_1d(NORM_UNITS as u32),
        x.clone().into_tensor_arg(),
        gamma.into_tensor_arg(),
        beta.into_tensor_arg(),
        table.into_tensor_arg(),
        residual.into_tensor_arg(),
        output.clone().into_tensor_arg(),
        channels as u32,
        (height * width) as u32,
        o.groups as u32,
        o.column.unwrap_or(0) as u32,
        o.epsilon as f32,
        o.column.is_some(),
        o.silu,
        o.residual,
        dtype,
    );
    output
}

#[cfg(feature = "train")]
#[cube(launch)]
#[allow(clippy::too_many_arguments)]
fn group_norm_act_backward_kernel<F: Float>(
    input: &Tensor<F>,
    gamma: &Tensor<F>,
    beta: &Tensor<F>,
    scale_shift: &Tensor<F>,
    grad: &Tensor<F>,
    grad_input: &mut Tensor<F>,
    // [B, 4·C]: this image's share of γ's and β's gradients, then its scale's and shift's.
    grad_params: &mut Tensor<F>,
    channels: u32,
    pixels: u32,
    groups: u32,
    column: u32,
    epsilon: f32,
    #[comptime] per_group: usize,
    #[comptime] has_scale_shift: bool,
    #[comptime] has_silu: bool,
    #[define(F)] _dtype: ElemType,
) {
    let channels = channels as usize;
    let pixels = pixels as usize;
    let groups = groups as usize;
    let image = CUBE_POS_X as usize / groups;
    let group = CUBE_POS_X as usize % groups;
    let first = group * per_group;
    let len = per_group * pixels;
    let unit = UNIT_POS_X as usize;
    let mut partial = Shared::<[F]>::new_slice(NORM_UNITS);

    let (mean, inv_std) = group_stats::<F>(input, &mut partial, epsilon, image, first, len, pixels);

    // Channel by channel: the gradient reaching the normalised value (x̂), summed over the group
    // (alone and times x̂), and the per-channel sums that make the gradients of γ, β, scale, shift.
    // Only unit 0 needs a channel's sums: each unit leaves its four in shared memory and units 0-3
    // add them up, in one barrier a channel (two halves, so a channel's writes never meet the
    // previous one's reads). The channel count is compile-time: WGSL wants the loop around the
    // barriers uniform.
    let mut sums = Shared::<[F]>::new_slice(comptime!(8 * NORM_UNITS));
    let mut group_grad = F::new(0.0);
    let mut group_grad_norm = F::new(0.0);
    for k in 0..per_group {
        let channel = first + k;
        let (g, b, scale, shift) = channel_params::<F>(gamma, beta, scale_shift, image, channel, channels, column, has_scale_shift);
        let mut d_shift = F::new(0.0);
        let mut d_scale = F::new(0.0);
        let mut d_gamma = F::new(0.0);
        let mut d_beta = F::new(0.0);
        let mut p = unit;
        while p < pixels {
            let norm = (input[at::<F>(input, image, channel, p)] - mean) * inv_std;
            let affine = norm * g + b;
            let mut dy = grad[at::<F>(grad, image, channel, p)];
            if has_silu {
                dy *= silu_grad::<F>(affine * scale + shift);
            }
            d_shift += dy;
            d_scale += dy * affine;
            let d_affine = dy * scale;
            d_gamma += d_affine * norm;
            d_beta += d_affine;
            group_grad += d_affine * g;
            group_grad_norm += d_affine * g * norm;
            p += NORM_UNITS;
        }
        let half = (k % 2) * 4 * NORM_UNITS;
        sums[half + unit] = d_gamma;
        sums[half + NORM_UNITS + unit] = d_beta;
        sums[half + 2 * NORM_UNITS + unit] = d_scale;
        sums[half + 3 * NORM_UNITS + unit] = d_shift;
        sync_cube();
        if unit < 4 {
            let from = half + unit * NORM_UNITS;
            let mut total = F::new(0.0);
            for u in 0..NORM_UNITS {
                total += sums[from + u];
            }
            // γ's, β's, scale's, shift's: one row of `grad_params` each.
            grad_params[image * 4 * channels + unit * channels + channel] = total;
        }
    }
    let mean_grad = cube_sum::<F>(&mut partial, group_grad, NORM_UNITS) / F::cast_from(len as u32);
    let mean_grad_norm = cube_sum::<F>(&mut partial, group_grad_norm, NORM_UNITS) / F::cast_from(len as u32);

    for k in 0..per_group {
        let channel = first + k;
        let (g, b, scale, shift) = channel_params::<F>(gamma, beta, scale_shift, image, channel, channels, column, has_scale_shift);
        let mut p = unit;
        while p < pixels {
            let norm = (input[at::<F>(input, image, channel, p)] - mean) * inv_std;
            let mut dy = grad[at::<F>(grad, image, channel, p)];
            if has_silu {
                dy *= silu_grad::<F>((norm * g + b) * scale + shift);
            }
            let out = at_out::<F>(grad_input, image, channel, p);
            grad_input[out] = inv_std * (dy * scale * g - mean_grad - norm * mean_grad_norm);
            p += NORM_UNITS;
        }
    }
}

/// One channel's γ and β, and its block's scale (plus one) and shift from the image's row of the
/// table: (1, 0) without one.
#[cube]
#[allow(clippy::too_many_arguments)]
fn channel_params<F: Float>(gamma: &Tensor<F>, beta: &Tensor<F>, table: &Tensor<F>, image: usize, channel: usize, channels: usize, column: u32, #[comptime] has_scale_shift: bool) -> (F, F, F, F) {
    let mut scale = F::new(1.0);
    let mut shift = F::new(0.0);
    if has_scale_shift {
        let at = image * table.stride(0) + (column as usize + channel) * table.stride(1);
        scale = table[at] + F::new(1.0);
        shift = table[at + channels * table.stride(1)];
    }
    (gamma[channel], beta[channel], scale, shift)
}

/// The gradients of [`forward`]'s inputs from the output's gradient `grad`: x's (in x's layout),
/// γ's, β's and the scale-shift table's (zero outside the block's columns; absent without one).
/// The residual's gradient is `grad` itself.
#[cfg(feature = "train")]
pub(super) fn backward(x: CubeTensor, gamma: CubeTensor, beta: CubeTensor, table: CubeTensor, grad: CubeTensor, o: Options) -> (CubeTensor, CubeTensor, CubeTensor, Option<CubeTensor>) {
    let shape = x.meta.shape();
    let [batch, channels, height, width] = [shape[0], shape[1], shape[2], shape[3]];
    let (x, grad) = (flat_pixels(x), flat_pixels(grad));
    let columns = table.meta.shape()[1];
    let (gamma, beta) = (into_contiguous(gamma), into_contiguous(beta));
    let (client, device, dtype) = (x.client.clone(), x.device.clone(), x.dtype);
    let grad_input = empty_like(&x, channels);
    // One output for the per-image sums (seven storage buffers in all: WebGPU guarantees eight).
    let grad_params = empty_device_dtype(client.clone(), device.clone(), Shape::new([batch, 4 * channels]), dtype);
    group_norm_act_backward_kernel::launch(
        &client,
        CubeCount::Static((batch * o.groups) as u32, 1, 1),
        CubeDim::new_1d(NORM_UNITS as u32),
        x.into_tensor_arg(),
        gamma.into_tensor_arg(),
        beta.into_tensor_arg(),
        table.into_tensor_arg(),
        grad.into_tensor_arg(),
        grad_input.clone().into_tensor_arg(),
        grad_params.clone().into_tensor_arg(),
        channels as u32,
        (height * width) as u32,
        o.groups as u32,
        o.column.unwrap_or(0) as u32,
        o.epsilon as f32,
        channels / o.groups,
        o.column.is_some(),
        o.silu,
        dtype_to_storage_type(dtype),
    );
    let sums = BurnTensor::<2>::from_primitive::<CubeBackend>(grad_params);
    let part = |k: std::ops::Range<usize>| sums.clone().slice([0..batch, k.start * channels..k.end * channels]);
    // γ's and β's gradients summed over the batch together: one reduction, not two.
    let affine = part(0..2).sum_dim(0).reshape([2 * channels]);
    let half = |k: usize| affine.clone().slice(k * channels..(k + 1) * channels);
    let grad_table = o.column.map(|column| {
        let scale_shift = part(2..4);
        if column == 0 && columns == 2 * channels {
            scale_shift
        } else {
            BurnTensor::zeros([batch, columns], &sums.device()).slice_assign([0..batch, column..column + 2 * channels], scale_shift)
        }
    });
    (grad_input, cube(half(0)), cube(half(1)), grad_table.map(cube))
}
