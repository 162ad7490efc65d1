//! A 2-D convolution (stride 1, padding that keeps the size) where each unit computes up to eight
//! output channels at a row of up to fourteen pixels: every input value it loads serves every
//! channel and every tap of its kernel row, and every kernel value a row of pixels. Burn's direct
//! convolution computes one pixel a unit and loads the kernel again for each; on a software
//! adapter, where a load costs far more than a multiply-add, that is most of a sampling step.
//!
//! Its gradients: the input's is the same kernel over the output's gradient, with the weight's
//! channels swapped (a view) and its taps flipped; the weight's and the bias's come from a kernel
//! of their own, one partial sum per image, then a sum over the images.

use super::layout::empty_like;
use burn::backend::cubecl::dtype_to_storage_type;
use burn::tensor::ops::ConvOptions;
#[cfg(feature = "train")]
use burn::tensor::{Shape, Tensor as BurnTensor};
#[cfg(feature = "train")]
use burn_cubecl::CubeBackend;
use burn_cubecl::kernel::untile;
#[cfg(feature = "train")]
use burn_cubecl::ops::numeric::empty_device_dtype;
use burn_cubecl::tensor::CubeTensor;
use cubecl::calculate_cube_count_elemwise;
use cubecl::prelude::*;

/// Output channels a unit of the weight gradient computes (the convolution's: see [`tile`]).
const CHANNELS: usize = 4;

/// Units per cube: a cube's units are independent, and a software adapter runs narrow cubes best.
const UNITS: usize = 64;

/// The convolutions the kernel takes: one group, stride and dilation 1, an odd square kernel
/// padded to keep the image's size, and a multiple of four output channels. (Anything else,
/// mismatched channels included, goes to Burn's, which says what is wrong.)
pub(super) fn supports(in_channels: usize, weight: [usize; 4], options: &ConvOptions<2>) -> bool {
    super::cpu::conv::supports(in_channels, weight, options) && weight[0].is_multiple_of(CHANNELS)
}

/// Pixels of a row a unit computes: the largest of 7, 4, 2, 1 that divides the width.
fn row_pixels(width: usize) -> usize {
    [7, 4, 2].into_iter().find(|&p| width.is_multiple_of(p)).unwrap_or(1)
}

/// Output channels and pixels a unit of the convolution computes: eight (else seven, else four)
/// channels at fourteen pixels where they divide, for each load then serves more multiply-adds (a
/// software adapter's loads cost far more than its arithmetic); a larger tile spills.
fn tile(out_channels: usize, width: usize) -> (usize, usize) {
    let channels = [8, 7].into_iter().find(|&c| out_channels.is_multiple_of(c)).unwrap_or(CHANNELS);
    let pixels = if width.is_multiple_of(14) { 14 } else { row_pixels(width) };
    (channels, pixels)
}

/// The image column under column `x` of a row padded by `pad` on each side, and whether it is
/// inside the image: a column in the padding reads the row's first pixel, which the caller takes
/// as zero instead.
#[cube]
fn padded_column(x: usize, #[comptime] pad: usize, width: usize) -> (usize, bool) {
    let inside = x >= pad && x < width + pad;
    let mut column = 0usize;
    if inside {
        column = x - pad;
    }
    (column, inside)
}

#[cube(launch)]
#[allow(clippy::too_many_arguments)]
fn conv2d_kernel<F: Float>(
    input: &Tensor<F>,
    weight: &Tensor<F>,
    bias: &Tensor<F>,
    output: &mut Tensor<F>,
    in_channels: u32,
    height: u32,
    width: u32,
    units: u32,
    #[comptime] kernel: usize,
    #[comptime] channels: usize,
    #[comptime] pixels: usize,
    #[comptime] has_bias: bool,
    #[comptime] flip: bool,
    #[define(F)] _dtype: ElemType,
) {
    let unit = ABSOLUTE_POS;
    if unit >= units as usize {
        terminate!();
    }
    let (height, width) = (height as usize, width as usize);
    let groups = output.shape(1) / channels;
    let tiles = width / pixels;
    // Neighbouring units share their input pixels: the channel group varies fastest.
    let first_channel = (unit % groups) * channels;
    let rest = unit / groups;
    let first_pixel = (rest % tiles) * pixels;
    let rest = rest / tiles;
    let row = rest % height;
    let image = rest / height;
    let pad = comptime!(kernel / 2);
    // The input columns a row of pixels sees under a kernel row's taps.
    let span = comptime!(pixels + kernel - 1);

    let mut acc = Array::<F>::new(comptime!(channels * pixels));
    #[unroll]
    for j in 0..comptime!(channels * pixels) {
        acc[j] = F::new(0.0);
    }
    let mut at = Array::<usize>::new(span);
    let mut keep = Array::<bool>::new(span);
    #[unroll]
    for s in 0..span {
        let (column, inside) = padded_column(first_pixel + s, pad, width);
        at[s] = column * input.stride(3);
        keep[s] = inside;
    }
    let mut xs = Array::<F>::new(span);
    let (in_step, w_step, w_channel) = (input.stride(1), weight.stride(1), weight.stride(0));

    #[unroll]
    for ky in 0..kernel {
        let y = row + ky;
        // Rows of padding add nothing.
        if y >= pad && y < height + pad {
            let mut in_at = image * input.stride(0) + (y - pad) * input.stride(2);
            // Flipped, tap (ky, kx) reads the kernel's (k−1−ky, k−1−kx).
            let wy = comptime!(if flip { kernel - 1 - ky } else { ky });
            let mut w_at = first_channel * w_channel + wy * weight.stride(2);
            for _channel in 0..in_channels {
                // Each input value loaded serves every tap of the kernel row and every channel.
                #[unroll]
                for s in 0..span {
                    xs[s] = select(keep[s], input[in_at + at[s]], F::new(0.0));
                }
                #[unroll]
                for kx in 0..kernel {
                    let wx = comptime!(if flip { kernel - 1 - kx } else { kx });
                    let tap = w_at + wx * weight.stride(3);
                    #[unroll]
                    for c in 0..channels {
                        let w = weight[tap + c * w_channel];
                        #[unroll]
                        for p in 0..pixels {
                            acc[c * pixels + p] += xs[p + kx] * w;
                        }
                    }
                }
                w_at += w_step;
                in_at += in_step;
            }
        }
    }

    #[unroll]
    for c in 0..channels {
        let channel = first_channel + c;
        let mut b = F::new(0.0);
        if has_bias {
            b = bias[channel * bias.stride(0)];
        }
        #[unroll]
        for p in 0..pixels {
            let out = image * output.stride(0) + channel * output.stride(1) + row * output.stride(2) + (first_pixel + p) * output.stride(3);
            output[out] = acc[c * pixels + p] + b;
        }
    }
}

/// `x` (`[B, I, H, W]`, any strides) convolved with `weight` (`[O, I, k, k]`, any strides) plus
/// `bias` (`[O]`), where [`supports`] says so; the output has `x`'s layout.
pub(super) fn forward(x: CubeTensor, weight: CubeTensor, bias: Option<CubeTensor>) -> CubeTensor {
    launch(x, untile(weight), bias, false)
}

/// The gradient of [`forward`]'s input `[B, I, H, W]` from its output's, `grad` (`[B, O, H, W]`),
/// where [`supports`] takes the swapped kernel (`[I, O, k, k]`: `I` a multiple of four).
#[cfg(feature = "train")]
pub(super) fn data_backward(grad: CubeTensor, weight: CubeTensor) -> CubeTensor {
    let mut swapped = untile(weight);
    swapped.meta.swap(0, 1);
    launch(grad, swapped, None, true)
}

/// Whether [`data_backward`] takes this convolution.
#[cfg(feature = "train")]
pub(super) fn supports_data_backward(weight: [usize; 4], options: &ConvOptions<2>) -> bool {
    let [out_channels, in_channels, kh, kw] = weight;
    supports(out_channels, [in_channels, out_channels, kh, kw], options)
}

/// The kernel over `x` with `weight` (untiled, any strides), its taps flipped with `flip`.
fn launch(x: CubeTensor, weight: CubeTensor, bias: Option<CubeTensor>, flip: bool) -> CubeTensor {
    let x = untile(x);
    let shape = x.meta.shape();
    let [batch, in_channels, height, width] = [shape[0], shape[1], shape[2], shape[3]];
    let w_shape = weight.meta.shape();
    let (out_channels, kernel) = (w_shape[0], w_shape[2]);
    let output = empty_like(&x, out_channels);
    let (channels, pixels) = tile(out_channels, width);
    let units = batch * height * (width / pixels) * (out_channels / channels);
    let dtype = dtype_to_storage_type(x.dtype);
    let cube_dim = CubeDim::new_1d(UNITS as u32);
    conv2d_kernel::launch(
        &x.client,
        calculate_cube_count_elemwise(&x.client, units, cube_dim),
        cube_dim,
        x.clone().into_tensor_arg(),
        weight.clone().into_tensor_arg(),
        // Without a bias the kernel reads none: the weight stands in.
        bias.clone().unwrap_or(weight).into_tensor_arg(),
        output.clone().into_tensor_arg(),
        in_channels as u32,
        height as u32,
        width as u32,
        units as u32,
        kernel,
        channels,
        pixels,
        bias.is_some(),
        flip,
        dtype,
    );
    output
}

/// Each unit sums, over one image, the product of four output channels' gradient with `ins`
/// input channels' pixels under every tap: `partial[image, o, i, tap]`, and the units of input
/// channel 0 the gradient's own sum, the bias's: `bias_partial[image, o]`. It walks the image
/// `rows` rows of pixels at a time, so that each gradient value it loads serves every tap of `ins`
/// channels and each input value every tap of its kernel row in each of the rows it meets. The
/// images are summed after.
#[cube(launch)]
#[allow(clippy::too_many_arguments)]
fn weight_grad_kernel<F: Float>(
    input: &Tensor<F>,
    grad: &Tensor<F>,
    partial: &mut Tensor<F>,
    bias_partial: &mut Tensor<F>,
    height: u32,
    width: u32,
    units: u32,
    #[comptime] kernel: usize,
    #[comptime] ins: usize,
    #[comptime] rows: usize,
    #[comptime] pixels: usize,
    #[comptime] with_bias: bool,
    #[define(F)] _dtype: ElemType,
) {
    let unit = ABSOLUTE_POS;
    if unit >= units as usize {
        terminate!();
    }
    let (height, width) = (height as usize, width as usize);
    let in_groups = input.shape(1) / ins;
    let quads = grad.shape(1) / CHANNELS;
    // Neighbouring units read the same input channels.
    let first_channel = (unit % quads) * CHANNELS;
    let rest = unit / quads;
    let channel = (rest % in_groups) * ins;
    let image = rest / in_groups;
    let pad = comptime!(kernel / 2);
    let taps = comptime!(kernel * kernel);
    // The input columns a row of pixels sees under every tap.
    let span = comptime!(pixels + kernel - 1);

    let mut acc = Array::<F>::new(comptime!(ins * CHANNELS * kernel * kernel));
    #[unroll]
    for j in 0..comptime!(ins * CHANNELS * kernel * kernel) {
        acc[j] = F::new(0.0);
    }
    let mut g = Array::<F>::new(comptime!(rows * CHANNELS * pixels));
    let mut g_sum = Array::<F>::new(CHANNELS);
    #[unroll]
    for c in 0..CHANNELS {
        g_sum[c] = F::new(0.0);
    }
    let mut xs = Array::<F>::new(span);
    let in_plane = image * input.stride(0) + channel * input.stride(1);
    let grad_plane = image * grad.stride(0) + first_channel * grad.stride(1);
    let (g_channel, g_pixel) = (grad.stride(1), grad.stride(3));
    let in_pixel = input.stride(3);
    for y in range_stepped(0, height, rows) {
        for first_pixel in range_stepped(0, width, pixels) {
            let grad_at = grad_plane + y * grad.stride(2) + first_pixel * g_pixel;
            #[unroll]
            for r in 0..rows {
                #[unroll]
                for c in 0..CHANNELS {
                    let from = (r * CHANNELS + c) * pixels;
                    #[unroll]
                    for p in 0..pixels {
                        g[from + p] = grad[grad_at + r * grad.stride(2) + c * g_channel + p * g_pixel];
                    }
                    if with_bias {
                        #[unroll]
                        for p in 0..pixels {
                            g_sum[c] += g[from + p];
                        }
                    }
                }
            }
            #[unroll]
            for i in 0..ins {
                // Input row y + j − pad meets output row y + r under kernel row j − r.
                #[unroll]
                for j in 0..comptime!(rows + kernel - 1) {
                    let yy = y + j;
                    // Rows of padding add nothing.
                    if yy >= pad && yy < height + pad {
                        let in_row = in_plane + i * input.stride(1) + (yy - pad) * input.stride(2);
                        #[unroll]
                        for s in 0..span {
                            let (column, inside) = padded_column(first_pixel + s, pad, width);
                            xs[s] = select(inside, input[in_row + column * in_pixel], F::new(0.0));
                        }
                        #[unroll]
                        for r in 0..rows {
                            let meets = comptime!(j >= r && j - r < kernel);
                            if meets {
                                let ky = comptime!(j.saturating_sub(r));
                                #[unroll]
                                for kx in 0..kernel {
                                    #[unroll]
                                    for c in 0..CHANNELS {
                                        let at = (i * CHANNELS + c) * taps + ky * kernel + kx;
                                        let from = (r * CHANNELS + c) * pixels;
                                        let mut sum = acc[at];
                                        #[unroll]
                                        for p in 0..pixels {
                                            sum += g[from + p] * xs[p + kx];
                                        }
                                        acc[at] = sum;
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    let tap_step = partial.stride(3);
    #[unroll]
    for i in 0..ins {
        #[unroll]
        for c in 0..CHANNELS {
            let out = image * partial.stride(0) + (first_channel + c) * partial.stride(1) + (channel + i) * partial.stride(2);
            #[unroll]
            for t in 0..taps {
                partial[out + t * tap_step] = acc[(i * CHANNELS + c) * taps + t];
            }
        }
    }
    if with_bias && channel == 0 {
        let out = image * bias_partial.stride(0) + first_channel * bias_partial.stride(1);
        let channel_step = bias_partial.stride(1);
        #[unroll]
        for c in 0..CHANNELS {
            bias_partial[out + c * channel_step] = g_sum[c];
        }
    }
}

/// The gradients of [`forward`]'s kernel (`[O, I, k, k]`, row-major) and, `with_bias`, of its
/// bias (`[O]`), from its input `x` (`[B, I, H, W]`) and its output's gradient `grad`
/// (`[B, O, H, W]`), where [`supports`] says so.
#[cfg(feature = "train")]
pub(super) fn weight_backward(x: CubeTensor, grad: CubeTensor, kernel: usize, with_bias: bool) -> (CubeTensor, Option<CubeTensor>) {
    let (x, grad) = (untile(x), untile(grad));
    let shape = x.meta.shape();
    let [batch, in_channels, height, width] = [shape[0], shape[1], shape[2], shape[3]];
    let out_channels = grad.meta.shape()[1];
    let empty = |shape: Vec<usize>| empty_device_dtype(x.client.clone(), x.device.clone(), Shape::from(shape), x.dtype);
    let partial = empty(vec![batch, out_channels, in_channels, kernel * kernel]);
    // Without a bias the kernel writes none: the partial sums stand in.
    let bias_partial = if with_bias { empty(vec![batch, out_channels]) } else { partial.clone() };
    // Two input channels a unit where they pair up (and the kernel is small enough that their sums
    // fit in registers): each gradient value loaded serves twice the taps.
    let ins = if in_channels.is_multiple_of(2) && kernel <= 3 { 2 } else { 1 };
    // Two rows at a time where they pair up (and the kernel is small): each input row loaded then
    // serves two rows of gradient.
    let rows = if height.is_multiple_of(2) && kernel <= 3 { 2 } else { 1 };
    let units = batch * (in_channels / ins) * (out_channels / CHANNELS);
    let cube_dim = CubeDim::new_1d(UNITS as u32);
    weight_grad_kernel::launch(
        &x.client,
        calculate_cube_count_elemwise(&x.client, units, cube_dim),
        cube_dim,
        x.clone().into_tensor_arg(),
        grad.into_tensor_arg(),
        partial.clone().into_tensor_arg(),
        bias_partial.clone().into_tensor_arg(),
        height as u32,
        width as u32,
        units as u32,
        kernel,
        ins,
        rows,
        row_pixels(width),
        with_bias,
        dtype_to_storage_type(x.dtype),
    );
    let weight = sum_images::<4>(partial).reshape([out_channels, in_channels, kernel, kernel]);
    let bias = with_bias.then(|| sum_images::<2>(bias_partial).reshape([out_channels]).try_into_primitive::<CubeBackend>().expect("a tensor on the CubeCL backend"));
    (weight.try_into_primitive::<CubeBackend>().expect("a tensor on the CubeCL backend"), bias)
}

/// Per-image partial sums `[B, ..]` summed over the images: `[1, ..]`.
#[cfg(feature = "train")]
fn sum_images<const D: usize>(partial: CubeTensor) -> BurnTensor<D> {
    let partial = BurnTensor::<D>::from_primitive::<CubeBackend>(partial);
    if partial.dims()[0] == 1 { partial } else { partial.sum_dim(0) }
}
