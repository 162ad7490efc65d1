//! Adam with per-tensor gradient clipping and the weights' moving average, over every parameter
//! at once: Burn's optimiser takes about twenty launches per parameter tensor, these take three
//! for all of them.
//!
//! The first kernel runs one cube per tensor and turns its gradient's norm into a clipping factor;
//! the second runs one unit per element, finds its tensor by binary search over the tensors'
//! starts and writes both moments; the third writes the new weights and their average.

use super::layout::{UNITS, cube, cube_sum};
use super::{AdamUpdate, FlatState};
use burn::backend::cubecl::dtype_to_storage_type;
use burn::tensor::{Int, Shape, Tensor as BurnTensor};
use burn_cubecl::CubeBackend;
use burn_cubecl::ops::numeric::empty_device_dtype;
use burn_cubecl::tensor::CubeTensor;
use cubecl::prelude::*;
use cubecl::calculate_cube_count_elemwise;

#[cube(launch)]
fn clip_factors_kernel<F: Float>(
    grads: &Tensor<F>,
    segments: &Tensor<i32>,
    factors: &mut Tensor<F>,
    max_norm: f32,
    min_positive: f32,
    #[define(F)] _dtype: ElemType,
) {
    let tensor = CUBE_POS_X as usize;
    let start = usize::cast_from(segments[tensor]);
    let len = usize::cast_from(segments[factors.len() + tensor]);
    let mut partial = Shared::<[F]>::new_slice(UNITS);
    let mut squares = F::new(0.0);
    let mut i = UNIT_POS_X as usize;
    while i < len {
        let g = grads[start + i];
        squares += g * g;
        i += UNITS;
    }
    let norm = cube_sum::<F>(&mut partial, squares, UNITS).sqrt();
    if UNIT_POS_X == 0 {
        let mut factor = F::cast_from(max_norm) / (norm + F::cast_from(min_positive));
        if factor > F::new(1.0) {
            factor = F::new(1.0);
        }
        factors[tensor] = factor;
    }
}

/// Adam's moments from the (clipped) gradients. Seven storage buffers with CubeCL's own: WebGPU
/// guarantees eight per kernel, hence two kernels after the clipping factors.
#[cube(launch)]
#[allow(clippy::too_many_arguments)]
fn moments_kernel<F: Float>(
    grads: &Tensor<F>,
    factors: &Tensor<F>,
    segments: &Tensor<i32>,
    moment_1: &Tensor<F>,
    moment_2: &Tensor<F>,
    new_moment_1: &mut Tensor<F>,
    new_moment_2: &mut Tensor<F>,
    beta_1: f32,
    beta_2: f32,
    #[comptime] clip: bool,
    #[define(F)] _dtype: ElemType,
) {
    let i = ABSOLUTE_POS;
    if i >= grads.len() {
        terminate!();
    }
    // The last tensor starting at or before i; i may fall in the padding after it, whose moments
    // are zero (so its weights and average stay as they were, zero).
    let tensors = factors.len();
    let mut lo = 0usize;
    let mut hi = tensors;
    while hi - lo > 1 {
        let mid = (lo + hi) / 2;
        if usize::cast_from(segments[mid]) <= i {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    if i - usize::cast_from(segments[lo]) >= usize::cast_from(segments[tensors + lo]) {
        new_moment_1[i] = F::new(0.0);
        new_moment_2[i] = F::new(0.0);
        terminate!();
    }
    let mut g = grads[i];
    if clip {
        g *= factors[lo];
    }
    // Burn's Adam, operation for operation.
    new_moment_1[i] = moment_1[i] * F::cast_from(beta_1) + g * F::cast_from(1.0 - beta_1);
    new_moment_2[i] = moment_2[i] * F::cast_from(beta_2) + g * g * F::cast_from(1.0 - beta_2);
}

/// The weights from the new moments, and their average (the padding's moments are zero, so its
/// weights and average stay zero).
#[cube(launch)]
#[allow(clippy::too_many_arguments)]
fn params_kernel<F: Float>(
    moment_1: &Tensor<F>,
    moment_2: &Tensor<F>,
    params: &Tensor<F>,
    average: &Tensor<F>,
    new_params: &mut Tensor<F>,
    new_average: &mut Tensor<F>,
    lr: f32,
    step_factor: f32,
    epsilon: f32,
    decay: f32,
    #[comptime] has_average: bool,
    #[define(F)] _dtype: ElemType,
) {
    let i = ABSOLUTE_POS;
    if i >= params.len() {
        terminate!();
    }
    let step = moment_1[i] * F::cast_from(step_factor) / (moment_2[i].sqrt() + F::cast_from(epsilon));
    let w = params[i] - step * F::cast_from(lr);
    new_params[i] = w;
    if has_average {
        new_average[i] = average[i] * F::cast_from(decay) + w * F::cast_from(1.0 - decay);
    }
}

fn empty_like(x: &CubeTensor) -> CubeTensor {
    empty_device_dtype(x.client.clone(), x.device.clone(), x.meta.shape().clone(), x.dtype)
}

/// The kernels on `state` (flat tensors on the CubeCL backend); see [`super::adam_update`].
/// `segments` holds the tensors' starts, then their lengths.
pub(super) fn launch(state: FlatState, grads: BurnTensor<1>, segments: &BurnTensor<1, Int>, update: &AdamUpdate) -> FlatState {
    let tensors = segments.dims()[0] / 2;
    let segments = segments.clone().try_into_primitive::<CubeBackend>().expect("a tensor on the CubeCL backend");
    let grads = cube(grads);
    let (params, moment_1, moment_2) = (cube(state.params), cube(state.moment_1), cube(state.moment_2));
    let client = params.client.clone();
    let dtype = dtype_to_storage_type(params.dtype);
    let factors = empty_device_dtype(client.clone(), params.device.clone(), Shape::new([tensors]), params.dtype);
    if let Some(max_norm) = update.max_norm {
        clip_factors_kernel::launch(
            &client,
            CubeCount::Static(tensors as u32, 1, 1),
            CubeDim::new_1d(UNITS as u32),
            grads.clone().into_tensor_arg(),
            segments.clone().into_tensor_arg(),
            factors.clone().into_tensor_arg(),
            max_norm,
            f32::MIN_POSITIVE,
            dtype,
        );
    }
    let cube_dim = CubeDim::new_1d(UNITS as u32);
    let cubes = calculate_cube_count_elemwise(&client, params.meta.shape().num_elements(), cube_dim);
    let (new_moment_1, new_moment_2) = (empty_like(&moment_1), empty_like(&moment_2));
    moments_kernel::launch(
        &client,
        cubes.clone(),
        cube_dim,
        grads.into_tensor_arg(),
        factors.into_tensor_arg(),
        segments.into_tensor_arg(),
        moment_1.into_tensor_arg(),
        moment_2.into_tensor_arg(),
        new_moment_1.clone().into_tensor_arg(),
        new_moment_2.clone().into_tensor_arg(),
        update.beta_1,
        update.beta_2,
        update.max_norm.is_some(),
        dtype,
    );
    let average = state.average.map(cube);
    let new_params = empty_like(&params);
    let new_average = average.as_ref().map(empty_like);
    // An absent average is read from the parameters and written to a one-element stand-in that is
    // never written: WebGPU binds it read-only, and a buffer may not be bound read-only and writable.
    let (has_average, average_in, average_out) = match (&average, &new_average) {
        (Some(a), Some(n)) => (true, a.clone(), n.clone()),
        _ => (false, params.clone(), empty_device_dtype(client.clone(), params.device.clone(), Shape::new([1]), params.dtype)),
    };
    params_kernel::launch(
        &client,
        cubes,
        cube_dim,
        new_moment_1.clone().into_tensor_arg(),
        new_moment_2.clone().into_tensor_arg(),
        params.into_tensor_arg(),
        average_in.into_tensor_arg(),
        new_params.clone().into_tensor_arg(),
        average_out.into_tensor_arg(),
        update.lr as f32,
        update.step_factor,
        update.epsilon,
        update.decay.unwrap_or(0.0) as f32,
        has_average,
        dtype,
    );
    let tensor = |t: CubeTensor| BurnTensor::from_primitive::<CubeBackend>(t);
    FlatState {
        params: tensor(new_params),
        moment_1: tensor(new_moment_1),
        moment_2: tensor(new_moment_2),
        average: new_average.map(tensor),
    }
}
