//! A 2-D convolution (stride 1, padding that keeps the size, one group) as one matrix product per
//! image on row-major NCHW data: the kernel `[O, I·k·k]` times the image's patches `[I·k·k, H·W]`
//! (im2col; a 1×1 convolution takes the image as it is), written straight into the output's rows
//! with the bias already there. Flex's convolution converts every input to channels-last and its
//! output back on each call; this keeps the network's layout throughout.
//!
//! Its gradients: the input's is the same product over the output's gradient, with the kernel's
//! channels swapped and its taps flipped; the kernel's is Σ over images of ∂y · patchesᵀ, and the
//! bias's Σ ∂y, in one pass per image.

use super::{Matrix, dims, for_each_chunk, matmul, tensor, threads, values};
#[cfg(feature = "train")]
use super::{matmul_strided, sum_over};
use burn::backend::flex::FlexTensor;
use burn::tensor::ops::ConvOptions;
use std::cell::Cell;

/// The convolutions these kernels take: one group, stride and dilation 1, an odd square kernel
/// padded to keep the image's size. (Anything else goes to flex's.)
pub(in crate::kernels) fn supports(in_channels: usize, weight: [usize; 4], options: &ConvOptions<2>) -> bool {
    let [_, weight_in, kh, kw] = weight;
    weight_in == in_channels
        && options.groups == 1
        && options.stride == [1, 1]
        && options.dilation == [1, 1]
        && kh == kw
        && !kh.is_multiple_of(2)
        && options.padding == [(kh / 2, kh / 2), (kw / 2, kw / 2)]
}

/// The shape of one product: images of `channels × height × width`, a `k × k` kernel.
#[derive(Clone, Copy, Debug)]
struct Geometry {
    channels: usize,
    height: usize,
    width: usize,
    k: usize,
}

impl Geometry {
    fn pixels(&self) -> usize {
        self.height * self.width
    }

    /// Rows of the patch matrix: a channel's taps, channel by channel, as the kernel is laid out.
    fn depth(&self) -> usize {
        self.channels * self.k * self.k
    }
}

thread_local! {
    /// The patch matrix's buffer, kept between calls: a fresh one of a megabyte is a fresh mapping
    /// from the system, its pages faulted in on every call.
    static SCRATCH: Cell<Vec<f32>> = const { Cell::new(Vec::new()) };
}

/// `f` on `image`'s patch matrix `[depth, pixels]` (the image itself for a 1×1 kernel).
fn with_patches<R>(image: &[f32], g: Geometry, f: impl FnOnce(&[f32]) -> R) -> R {
    if g.k == 1 {
        return f(image);
    }
    // Taken out while in use, so a nested call (rayon may run another task here) makes its own.
    let mut buffer = SCRATCH.take();
    buffer.resize(g.depth() * g.pixels(), 0.0);
    patches(image, g, &mut buffer);
    let result = f(&buffer);
    SCRATCH.set(buffer);
    result
}

/// im2col: row `(c, ky, kx)` of `out` holds channel `c` shifted by the tap's offset, zero where
/// the tap falls outside the image. Each row is one copy of the whole plane shifted by
/// `dy · w + dx`, then the columns that wrapped round from the next or previous row are zeroed:
/// a copy per row of pixels would be a call per 28 values.
fn patches(image: &[f32], g: Geometry, out: &mut [f32]) {
    let Geometry { height: h, width: w, k, .. } = g;
    let (hw, pad) = (h * w, (k / 2) as isize);
    for (row, out) in out.chunks_exact_mut(hw).enumerate() {
        let (c, tap) = (row / (k * k), row % (k * k));
        let (dy, dx) = ((tap / k) as isize - pad, (tap % k) as isize - pad);
        let plane = &image[c * hw..(c + 1) * hw];
        let shift = dy * w as isize + dx;
        // Pixels p whose source p + shift lies in the plane.
        let start = (-shift).clamp(0, hw as isize) as usize;
        let end = (hw as isize - shift).clamp(start as isize, hw as isize) as usize;
        out[..start].fill(0.0);
        out[end..].fill(0.0);
        out[start..end].copy_from_slice(&plane[(start as isize + shift) as usize..(end as isize + shift) as usize]);
        // Columns whose source x + dx is outside the row (also every pixel of a row above or
        // below the image that the shifted copy reached), zeroed by a strided store per column:
        // a `fill` per row would be a call to memset per value.
        let zero = if dx > 0 { w.saturating_sub(dx as usize)..w } else { 0..(-dx as usize).min(w) };
        for x in zero {
            out[x..].iter_mut().step_by(w).for_each(|v| *v = 0.0);
        }
    }
}

/// Whether the images of a batch are split over the threads (else each product is).
fn by_image(batch: usize) -> bool {
    batch >= 2 || threads() == 1
}

/// The convolution of every image of `x` (`[batch, channels, h, w]` row-major) by `weight`
/// (`[out_channels, depth]`), plus `bias`, into `out` (`[batch, out_channels, h, w]`).
fn convolve(x: &[f32], batch: usize, g: Geometry, weight: &[f32], out_channels: usize, bias: Option<&[f32]>, out: &mut [f32]) {
    let (pixels, depth) = (g.pixels(), g.depth());
    let parallel = !by_image(batch);
    for_each_chunk(out, out_channels * pixels, |b, out| {
        let image = &x[b * g.channels * pixels..][..g.channels * pixels];
        if let Some(bias) = bias {
            out.chunks_exact_mut(pixels).zip(bias).for_each(|(row, &b)| row.fill(b));
        }
        with_patches(image, g, |col| {
            let (w, col) = (Matrix(weight, depth as isize, 1), Matrix(col, pixels as isize, 1));
            matmul(out_channels, pixels, depth, out, pixels, bias.is_some(), w, col, parallel);
        });
    });
}

/// The convolution's output, row-major `[B, O, H, W]`.
pub(in crate::kernels) fn forward(x: &FlexTensor, weight: &FlexTensor, bias: Option<&FlexTensor>) -> FlexTensor {
    let [batch, channels, height, width] = dims(x);
    let [out_channels, _, k, _] = dims(weight);
    let g = Geometry { channels, height, width, k };
    let (x, weight, bias) = (values(x), values(weight), bias.map(values));
    let mut out = vec![0.0; batch * out_channels * g.pixels()];
    convolve(&x, batch, g, &weight, out_channels, bias.as_deref(), &mut out);
    tensor(out, [batch, out_channels, height, width])
}

/// The input's gradient from the output's, `grad` `[B, O, H, W]`: the convolution of `grad` by
/// the kernel with its channels swapped and its taps flipped.
#[cfg(feature = "train")]
pub(in crate::kernels) fn data_backward(grad: &FlexTensor, weight: &FlexTensor) -> FlexTensor {
    let [batch, out_channels, height, width] = dims(grad);
    let [_, channels, k, _] = dims(weight);
    let taps = k * k;
    let weight = values(weight);
    let mut swapped = vec![0.0; weight.len()];
    for (i, w) in swapped.iter_mut().enumerate() {
        let (c, o, t) = (i / (out_channels * taps), i / taps % out_channels, i % taps);
        *w = weight[(o * channels + c) * taps + taps - 1 - t];
    }
    let g = Geometry { channels: out_channels, height, width, k };
    let mut out = vec![0.0; batch * channels * g.pixels()];
    convolve(&values(grad), batch, g, &swapped, channels, None, &mut out);
    tensor(out, [batch, channels, height, width])
}

/// The kernel's gradient `[O, I, k, k]` and, with `bias`, the bias's `[O]`, from the input `x`
/// and the output's gradient `grad`.
#[cfg(feature = "train")]
pub(in crate::kernels) fn weight_backward(x: &FlexTensor, grad: &FlexTensor, k: usize, bias: bool) -> (FlexTensor, Option<FlexTensor>) {
    let [batch, channels, height, width] = dims(x);
    let out_channels = dims::<4>(grad)[1];
    let g = Geometry { channels, height, width, k };
    let (pixels, depth) = (g.pixels(), g.depth());
    let (x, grad) = (values(x), values(grad));
    let images = by_image(batch);
    let weights = out_channels * depth;
    let mut sums = sum_over(batch, weights + if bias { out_channels } else { 0 }, images && super::in_parallel(x.len(), channels * pixels), |b, acc| {
        let image = &x[b * channels * pixels..][..channels * pixels];
        let dy = &grad[b * out_channels * pixels..][..out_channels * pixels];
        with_patches(image, g, |col| {
            // ∂kernel `[O, depth]` += ∂y `[O, pixels]` times patchesᵀ `[pixels, depth]`, written
            // column-major (`[depth, O]`, transposed once at the end): gemm then packs ∂y (O rows)
            // and reads the patches as they are, where the other way round it copies all of them.
            let (dy, col) = (Matrix(dy, pixels as isize, 1), Matrix(col, 1, pixels as isize));
            matmul_strided(out_channels, depth, pixels, &mut acc[..weights], (1, out_channels), true, dy, col, !images);
        });
        if bias {
            for (sum, row) in acc[weights..].iter_mut().zip(dy.chunks_exact(pixels)) {
                *sum += super::lanes_sum(row);
            }
        }
    });
    let bias = bias.then(|| tensor(sums.split_off(weights), [out_channels]));
    let mut kernel = vec![0.0; weights];
    for (d, row) in sums.chunks_exact(out_channels).enumerate() {
        row.iter().enumerate().for_each(|(o, &v)| kernel[o * depth + d] = v);
    }
    (tensor(kernel, [out_channels, channels, k, k]), bias)
}
