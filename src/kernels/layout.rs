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

/// Units per cube in the attention and optimiser kernels: the most invocations per workgroup
/// every WebGPU adapter allows.
pub const UNITS: usize = 256;

/// Units per cube in the normalisations (GroupNorm, weight standardisation), which sum through
/// barriers: a software adapter runs each barrier as a switch between every four units, so a
/// narrower cube costs it a quarter of the switches.
pub const NORM_UNITS: usize = 64;

/// Sums `value` over the cube's `units` units in three barriers (a software adapter pays for
/// each): sixteen units each sum a strided sixteenth, then every unit sums their sixteen. The
/// barriers stay in uniform control flow, as WGSL requires.
#[cube]
pub fn cube_sum<F: Float>(partial: &mut Shared<[F]>, value: F, #[comptime] units: usize) -> F {
    let unit = UNIT_POS_X as usize;
    partial[unit] = value;
    sync_cube();
    if unit < 16 {
        let mut sum = partial[unit];
        for k in 1..comptime!(units / 16) {
            sum += partial[unit + 16 * k];
        }
        partial[unit] = sum;
    }
    sync_cube();
    let mut total = partial[0];
    for k in 1..16usize {
        total += partial[k];
    }
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

/// Where `[image, channel, pixel]` lies in a `[B, C, H, W]` tensor whose rows follow one another
/// (stride 2 = W · stride 3), as in row-major and channels-last buffers: [`flat_pixels`] makes
/// sure. No division per value, which a software adapter pays dearly for.
#[cube]
pub fn at<F: Float>(t: &Tensor<F>, image: usize, channel: usize, pixel: usize) -> usize {
    image * t.stride(0) + channel * t.stride(1) + pixel * t.stride(3)
}

/// [`at`] in a tensor the kernel writes.
#[cube]
pub fn at_out<F: Float>(t: &mut Tensor<F>, image: usize, channel: usize, pixel: usize) -> usize {
    image * t.stride(0) + channel * t.stride(1) + pixel * t.stride(3)
}

/// A unit's next value when the cube walks channels × `pixels` (channel-major), `units` values at
/// a time: `(channel, pixel)` moved on by `(units / pixels, units % pixels)` = `(channels, more)`.
#[cube]
pub fn step(channel: usize, pixel: usize, pixels: usize, channels: usize, more: usize) -> (usize, usize) {
    let mut c = channel + channels;
    let mut p = pixel + more;
    if p >= pixels {
        p -= pixels;
        c += 1;
    }
    (c, p)
}

/// `x` itself when [`at`] can address it, else a row-major copy.
pub fn flat_pixels(x: CubeTensor) -> CubeTensor {
    let mut x = untile(x);
    let shape = x.meta.shape().clone();
    // One pixel a row: the pixel steps by rows, whatever the (unused) column stride says.
    if shape[3] == 1 {
        let row = x.meta.strides()[2];
        x.meta.strides_mut()[3] = row;
    }
    let strides = x.meta.strides();
    if strides[2] == shape[3] * strides[3] || shape[2] == 1 { x } else { into_contiguous(x) }
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
