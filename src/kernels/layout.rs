//! Tensors in and out of the kernels. Burn's convolutions work channels-last and hand back their
//! output as a channels-last buffer seen through NCHW strides; the kernels read any strides and
//! write their output in their input's layout, so no copy runs between a convolution, a kernel and
//! the next convolution.

use burn::tensor::{Shape, Tensor as BurnTensor};
use burn_cubecl::CubeBackend;
use burn_cubecl::kernel::{into_contiguous, untile};
use burn_cubecl::ops::numeric::empty_device_dtype;
use burn_cubecl::ops::{permute_nchw_to_nhwc, permute_nhwc_to_nchw};
use burn_cubecl::tensor::CubeTensor;
use cubecl::prelude::*;

/// Units per cube in every kernel: WebGPU's guaranteed minimum of invocations per workgroup.
pub const UNITS: usize = 256;

/// Sums `value` over the cube's units. The halving steps are spelt out, with every barrier in
/// uniform control flow as WGSL requires.
#[cube]
pub fn cube_sum<F: Float>(partial: &mut Shared<[F]>, value: F) -> F {
    let unit = UNIT_POS_X as usize;
    partial[unit] = value;
    sync_cube();
    if unit < 128 {
        let other = partial[unit + 128];
        partial[unit] += other;
    }
    sync_cube();
    if unit < 64 {
        let other = partial[unit + 64];
        partial[unit] += other;
    }
    sync_cube();
    if unit < 32 {
        let other = partial[unit + 32];
        partial[unit] += other;
    }
    sync_cube();
    if unit < 16 {
        let other = partial[unit + 16];
        partial[unit] += other;
    }
    sync_cube();
    if unit < 8 {
        let other = partial[unit + 8];
        partial[unit] += other;
    }
    sync_cube();
    if unit < 4 {
        let other = partial[unit + 4];
        partial[unit] += other;
    }
    sync_cube();
    if unit < 2 {
        let other = partial[unit + 2];
        partial[unit] += other;
    }
    sync_cube();
    let total = partial[0] + partial[1];
    // No unit may overwrite `partial` for the next sum before every unit has read this one.
    sync_cube();
    total
}

/// Where `[image, channel, pixel]` of a `[B, C, H, W]` tensor (pixel = row · W + column) lies,
/// whatever its strides.
#[cube]
pub fn offset<F: Float>(t: &Tensor<F>, image: usize, channel: usize, pixel: usize, width: usize) -> usize {
    image * t.stride(0) + channel * t.stride(1) + (pixel / width) * t.stride(2) + (pixel % width) * t.stride(3)
}

/// [`offset`] in a tensor the kernel writes.
#[cube]
pub fn offset_out<F: Float>(t: &mut Tensor<F>, image: usize, channel: usize, pixel: usize, width: usize) -> usize {
    image * t.stride(0) + channel * t.stride(1) + (pixel / width) * t.stride(2) + (pixel % width) * t.stride(3)
}

/// `x`'s CubeCL tensor, in whatever strides it has (storage tiles, which only matmul reads, undone).
pub fn cube<const D: usize>(x: BurnTensor<D>) -> CubeTensor {
    untile(x.try_into_primitive::<CubeBackend>().expect("a tensor on the CubeCL backend"))
}

/// Whether `[B, C, H, W]` `x` is a channels-last buffer (seen through NCHW strides).
fn is_channels_last(x: &CubeTensor) -> bool {
    let (shape, strides) = (x.meta.shape(), x.meta.strides());
    let [_, c, _, w] = [shape[0], shape[1], shape[2], shape[3]];
    strides[1] == 1 && strides[3] == c && strides[2] == c * w && strides[0] == c * w * shape[2]
}

/// A new `[B, C, H, W]` tensor (`C` = `channels`, the rest as `like`'s) laid out as `like` is when
/// that is channels-last, row-major otherwise.
pub fn empty_like(like: &CubeTensor, channels: usize) -> CubeTensor {
    let shape = like.meta.shape();
    let [b, h, w] = [shape[0], shape[2], shape[3]];
    let (client, device, dtype) = (like.client.clone(), like.device.clone(), like.dtype);
    if is_channels_last(like) {
        permute_nhwc_to_nchw(empty_device_dtype(client, device, Shape::new([b, h, w, channels]), dtype))
    } else {
        empty_device_dtype(client, device, Shape::new([b, channels, h, w]), dtype)
    }
}

/// `x` (`[B, C, H, W]`) copied into a channels-last buffer, seen through the same shape.
pub fn to_channels_last<const D: usize>(x: BurnTensor<D>) -> BurnTensor<D> {
    let nhwc = into_contiguous(permute_nchw_to_nhwc(cube(x)));
    BurnTensor::from_primitive::<CubeBackend>(permute_nhwc_to_nchw(nhwc))
}
