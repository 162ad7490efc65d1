//! Weight standardisation (a convolution kernel normalised to zero mean and unit variance per
//! output channel) in one launch, and its gradient in one more: under autodiff Burn's operations
//! take about forty for the pair, and training standardises every ResNet convolution each step.
//!
//! One cube per output channel; its statistics are GroupNorm's, over the channel's `I·kh·kw`
//! values seen as one image of one group.

use super::group_norm::group_stats;
use super::layout::{NORM_UNITS, at, at_out, cube_sum, flat_pixels, step};
use burn::backend::cubecl::dtype_to_storage_type;
use burn::tensor::Shape;
use burn_cubecl::ops::numeric::empty_device_dtype;
use burn_cubecl::ops::permute_nhwc_to_nchw;
use burn_cubecl::tensor::CubeTensor;
use cubecl::prelude::*;

#[cube(launch)]
fn standardize_kernel<F: Float>(weight: &Tensor<F>, output: &mut Tensor<F>, inputs: u32, taps: u32, epsilon: f32, #[define(F)] _dtype: ElemType) {
    let taps = taps as usize;
    let row = CUBE_POS_X as usize;
    let len = inputs as usize * taps;
    let mut partial = Shared::<[F]>::new_slice(NORM_UNITS);
    let (mean, inv_std) = group_stats::<F>(weight, &mut partial, epsilon, row, 0, len, taps);
    let (step_inputs, step_taps) = (NORM_UNITS / taps, NORM_UNITS % taps);
    let mut i = UNIT_POS_X as usize;
    let (mut input, mut tap) = (i / taps, i % taps);
    while i < len {
        let w = weight[at::<F>(weight, row, input, tap)];
        let out = at_out::<F>(output, row, input, tap);
        output[out] = (w - mean) * inv_std;
        i += NORM_UNITS;
        let (c, p) = step(input, tap, taps, step_inputs, step_taps);
        input = c;
        tap = p;
    }
}

/// `∂w = (g − mean(g) − ŵ · mean(g · ŵ)) / σ` per output channel, `ŵ` the standardised kernel.
#[cube(launch)]
#[allow(clippy::too_many_arguments)]
fn standardize_backward_kernel<F: Float>(
    weight: &Tensor<F>,
    grad: &Tensor<F>,
    grad_weight: &mut Tensor<F>,
    inputs: u32,
    taps: u32,
    epsilon: f32,
    #[define(F)] _dtype: ElemType,
) {
    let taps = taps as usize;
    let row = CUBE_POS_X as usize;
    let len = inputs as usize * taps;
    let mut partial = Shared::<[F]>::new_slice(NORM_UNITS);
    let (mean, inv_std) = group_stats::<F>(weight, &mut partial, epsilon, row, 0, len, taps);
    let mut sum_grad = F::new(0.0);
    let mut sum_grad_norm = F::new(0.0);
    let mut i = UNIT_POS_X as usize;
    while i < len {
        let norm = (weight[at::<F>(weight, row, i / taps, i % taps)] - mean) * inv_std;
        let g = grad[at::<F>(grad, row, i / taps, i % taps)];
        sum_grad += g;
        sum_grad_norm += g * norm;
        i += NORM_UNITS;
    }
    let mean_grad = cube_sum::<F>(&mut partial, sum_grad, NORM_UNITS) / F::cast_from(len as u32);
    let mean_grad_norm = cube_sum::<F>(&mut partial, sum_grad_norm, NORM_UNITS) / F::cast_from(len as u32);
    let mut i = UNIT_POS_X as usize;
    while i < len {
        let norm = (weight[at::<F>(weight, row, i / taps, i % taps)] - mean) * inv_std;
        let g = grad[at::<F>(grad, row, i / taps, i % taps)];
        let out = at_out::<F>(grad_weight, row, i / taps, i % taps);
        grad_weight[out] = (g - mean_grad - norm * mean_grad_norm) * inv_std;
        i += NORM_UNITS;
    }
}

/// The standardised `[O, I, kh, kw]` kernel (any strides in), laid out channels-last as Burn's
/// convolutions read it.
pub(super) fn forward(weight: CubeTensor, epsilon: f64) -> CubeTensor {
    let weight = flat_pixels(weight);
    let shape = weight.meta.shape().clone();
    let nhwc = Shape::new([shape[0], shape[2], shape[3], shape[1]]);
    let output = permute_nhwc_to_nchw(empty_device_dtype(weight.client.clone(), weight.device.clone(), nhwc, weight.dtype));
    let dtype = dtype_to_storage_type(weight.dtype);
    standardize_kernel::launch(
        &weight.client,
        CubeCount::Static(shape[0] as u32, 1, 1),
        CubeDim::new_1d(NORM_UNITS as u32),
        weight.clone().into_tensor_arg(),
        output.clone().into_tensor_arg(),
        shape[1] as u32,
        (shape[2] * shape[3]) as u32,
        epsilon as f32,
        dtype,
    );
    output
}

/// The kernel's gradient from the standardised kernel's, `grad`.
#[cfg(feature = "train")]
pub(super) fn backward(weight: CubeTensor, grad: CubeTensor, epsilon: f64) -> CubeTensor {
    let (weight, grad) = (flat_pixels(weight), flat_pixels(grad));
    let shape = weight.meta.shape().clone();
    let grad_weight = empty_device_dtype(weight.client.clone(), weight.device.clone(), shape.clone(), weight.dtype);
    let dtype = dtype_to_storage_type(weight.dtype);
    standardize_backward_kernel::launch(
        &weight.client,
        CubeCount::Static(shape[0] as u32, 1, 1),
        CubeDim::new_1d(NORM_UNITS as u32),
        weight.clone().into_tensor_arg(),
        grad.into_tensor_arg(),
        grad_weight.clone().into_tensor_arg(),
        shape[1] as u32,
        (shape[2] * shape[3]) as u32,
        epsilon as f32,
        dtype,
    );
    grad_weight
}
