//! GroupNorm with its affine, the time embedding's scale and shift, SiLU and a residual add, in
//! one launch: Burn's operations take about fourteen for the same work.
//!
//! One cube (workgroup) per image and group. Its units sum the group's values, then their squared
//! deviations, each through shared memory, and write the normalised, scaled, activated values.

use super::NormAct;
use super::layout::{UNITS, cube, cube_sum, empty_like, offset, offset_out};
use burn::backend::cubecl::dtype_to_storage_type;
use burn::nn::GroupNorm;
use burn::tensor::Tensor as BurnTensor;
use burn_cubecl::CubeBackend;
use burn_cubecl::kernel::into_contiguous;
use cubecl::prelude::*;

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
    width: u32,
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
    let width = width as usize;
    let groups = groups as usize;
    let image = CUBE_POS_X as usize / groups;
    let group = CUBE_POS_X as usize % groups;
    let per_group = channels / groups;
    let first = group * per_group;
    let len = per_group * pixels;
    let unit = UNIT_POS_X as usize;
    let mut partial = Shared::<[F]>::new_slice(UNITS);

    let mut sum = F::new(0.0);
    let mut i = unit;
    while i < len {
        sum += input[offset::<F>(input, image, first + i / pixels, i % pixels, width)];
        i += UNITS;
    }
    let mean = cube_sum::<F>(&mut partial, sum) / F::cast_from(len as u32);

    let mut squares = F::new(0.0);
    let mut i = unit;
    while i < len {
        let d = input[offset::<F>(input, image, first + i / pixels, i % pixels, width)] - mean;
        squares += d * d;
        i += UNITS;
    }
    let variance = cube_sum::<F>(&mut partial, squares) / F::cast_from(len as u32);
    let inv_std = F::new(1.0) / (variance + F::cast_from(epsilon)).sqrt();

    let mut i = unit;
    while i < len {
        let channel = first + i / pixels;
        let pixel = i % pixels;
        let x = input[offset::<F>(input, image, channel, pixel, width)];
        let mut y = (x - mean) * inv_std * gamma[channel] + beta[channel];
        if has_scale_shift {
            let row = image * scale_shift.stride(0);
            let col = scale_shift.stride(1);
            let scale = scale_shift[row + (column as usize + channel) * col];
            let shift = scale_shift[row + (column as usize + channels + channel) * col];
            y = y * (scale + F::new(1.0)) + shift;
        }
        if has_silu {
            y = y / (F::new(1.0) + (F::new(0.0) - y).exp());
        }
        if has_residual {
            y += residual[offset::<F>(residual, image, channel, pixel, width)];
        }
        let at = offset_out::<F>(output, image, channel, pixel, width);
        output[at] = y;
        i += UNITS;
    }
}

/// The kernel on `x` (`[B, C, H, W]`, on the CubeCL backend, any strides); see
/// [`super::group_norm_act`]. The output has `x`'s layout.
pub(super) fn launch(x: BurnTensor<4>, gamma: BurnTensor<1>, beta: BurnTensor<1>, norm: &GroupNorm, act: NormAct) -> BurnTensor<4> {
    let [batch, channels, height, width] = x.dims();
    assert_eq!(channels, norm.num_channels, "GroupNorm over {} channels got {channels}", norm.num_channels);
    let column = act.scale_shift.as_ref().map_or(0, |e| e.column);
    let scale_shift = act.scale_shift.map(|e| {
        let [rows, columns] = e.table.dims();
        assert!(rows == batch && e.column + 2 * channels <= columns, "a scale and a shift per image and channel");
        cube(e.table)
    });
    let residual = act.residual.map(|r| {
        assert_eq!(r.dims(), [batch, channels, height, width], "a residual of the output's shape");
        cube(r)
    });
    let x = cube(x);
    let (gamma, beta) = (into_contiguous(cube(gamma)), into_contiguous(cube(beta)));
    let output = empty_like(&x, channels);
    let dtype = dtype_to_storage_type(x.dtype);
    // An absent input is bound as γ and never read (the flags are compile-time).
    let (has_scale_shift, has_residual) = (scale_shift.is_some(), residual.is_some());
    let scale_shift = scale_shift.unwrap_or_else(|| gamma.clone());
    let residual = residual.unwrap_or_else(|| gamma.clone());
    group_norm_act_kernel::launch(
        &x.client,
        CubeCount::Static((batch * norm.num_groups) as u32, 1, 1),
        CubeDim::new_1d(UNITS as u32),
        x.clone().into_tensor_arg(),
        gamma.into_tensor_arg(),
        beta.into_tensor_arg(),
        scale_shift.into_tensor_arg(),
        residual.into_tensor_arg(),
        output.clone().into_tensor_arg(),
        channels as u32,
        (height * width) as u32,
        width as u32,
        norm.num_groups as u32,
        column as u32,
        norm.epsilon as f32,
        has_scale_shift,
        act.silu,
        has_residual,
        dtype,
    );
    BurnTensor::from_primitive::<CubeBackend>(output)
}
