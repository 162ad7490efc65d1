//! Softmax attention's core in one launch, for the U-Net's lowest resolution (7×7 for 28×28
//! images): from the `to_qkv` projection to the heads' output. Burn's operations take about ten
//! launches for it.
//!
//! One cube per image and head; each unit takes a query pixel, keeps its row of scores in
//! registers, and writes its output features. No shared memory, no barriers. The backward kernel
//! (for training) works the same way, with the probabilities shared for the sums over queries.

use super::heads::{Heads, head_channels};
use super::layout::{UNITS, offset, offset_out};
use burn::tensor::Tensor as BurnTensor;
use cubecl::prelude::*;

/// A row of scores per unit must fit in registers.
pub(super) fn supports(pixels: usize) -> bool {
    pixels <= 256
}

#[cube(launch)]
fn attention_kernel<F: Float>(
    qkv: &Tensor<F>,
    output: &mut Tensor<F>,
    heads: u32,
    width: u32,
    scale: f32,
    #[comptime] pixels: usize,
    #[comptime] dim_head: usize,
    #[define(F)] _dtype: ElemType,
) {
    let width = width as usize;
    let (image, q, k, v) = head_channels(heads, dim_head);
    let scale = F::cast_from(scale);

    let mut i = UNIT_POS_X as usize;
    while i < pixels {
        let mut scores = Array::<F>::new(pixels);
        for j in 0..pixels {
            let mut s = F::new(0.0);
            for d in 0..dim_head {
                s += qkv[offset::<F>(qkv, image, q + d, i, width)] * qkv[offset::<F>(qkv, image, k + d, j, width)];
            }
            scores[j] = s * scale;
        }
        let mut m = scores[0];
        for j in 1..pixels {
            m = F::max(m, scores[j]);
        }
        let mut sum = F::new(0.0);
        for j in 0..pixels {
            let p = (scores[j] - m).exp();
            scores[j] = p;
            sum += p;
        }
        for e in 0..dim_head {
            let mut o = F::new(0.0);
            for j in 0..pixels {
                o += scores[j] * qkv[offset::<F>(qkv, image, v + e, j, width)];
            }
            let at = offset_out::<F>(output, image, q + e, i, width);
            output[at] = o / sum;
        }
        i += UNITS;
    }
}

/// The kernel on `qkv` (`[B, 3·H·D, X, Y]`, on the CubeCL backend, any strides) → `[B, H·D, X, Y]`.
pub(super) fn launch(qkv: BurnTensor<4>, heads: usize, dim_head: usize) -> BurnTensor<4> {
    let h = Heads::new(qkv, heads, dim_head);
    assert!(supports(h.pixels), "attention over {} pixels", h.pixels);
    attention_kernel::launch(
        &h.qkv.client,
        h.cubes.clone(),
        CubeDim::new_1d(UNITS as u32),
        h.qkv.clone().into_tensor_arg(),
        h.output.clone().into_tensor_arg(),
        h.heads,
        h.width,
        h.scale,
        h.pixels,
        dim_head,
        h.dtype,
    );
    h.output()
}

/// The backward kernel keeps a row of probabilities per unit and the `N × N` matrix in shared
/// memory: at most 64 pixels (16 KiB, the workgroup memory WebGPU guarantees).
#[cfg(feature = "train")]
fn supports_backward(pixels: usize) -> bool {
    pixels <= 64
}

/// One cube per image and head. Each unit takes a query pixel `i`: it recomputes its row of P,
/// forms ∂S's row and writes ∂q. P, then ∂S, go through shared memory for the sums over queries
/// that make ∂v and ∂k. (The formulas: [`super::naive::attention_backward`].)
#[cfg(feature = "train")]
#[cube(launch)]
#[allow(clippy::too_many_arguments)]
fn attention_backward_kernel<F: Float>(
    qkv: &Tensor<F>,
    grad: &Tensor<F>,
    grad_qkv: &mut Tensor<F>,
    heads: u32,
    width: u32,
    scale: f32,
    #[comptime] pixels: usize,
    #[comptime] dim_head: usize,
    #[define(F)] _dtype: ElemType,
) {
    let width = width as usize;
    let (image, q, k, v) = head_channels(heads, dim_head);
    let scale = F::cast_from(scale);
    let unit = UNIT_POS_X as usize;
    let mut matrix = Shared::<[F]>::new_slice(comptime!(pixels * pixels));
    let mut probs = Array::<F>::new(pixels);
    let mut grad_scores = Array::<F>::new(pixels);

    if unit < pixels {
        let i = unit;
        for j in 0..pixels {
            let mut s = F::new(0.0);
            for d in 0..dim_head {
                s += qkv[offset::<F>(qkv, image, q + d, i, width)] * qkv[offset::<F>(qkv, image, k + d, j, width)];
            }
            probs[j] = s * scale;
        }
        let mut m = probs[0];
        for j in 1..pixels {
            m = F::max(m, probs[j]);
        }
        let mut sum = F::new(0.0);
        for j in 0..pixels {
            let p = (probs[j] - m).exp();
            probs[j] = p;
            sum += p;
        }
        let mut dot = F::new(0.0);
        for j in 0..pixels {
            probs[j] /= sum;
            let mut dp = F::new(0.0);
            for e in 0..dim_head {
                dp += grad[offset::<F>(grad, image, q + e, i, width)] * qkv[offset::<F>(qkv, image, v + e, j, width)];
            }
            grad_scores[j] = dp;
            dot += probs[j] * dp;
        }
        for j in 0..pixels {
            grad_scores[j] = probs[j] * (grad_scores[j] - dot) * scale;
            matrix[i * pixels + j] = probs[j];
        }
        for d in 0..dim_head {
            let mut dq = F::new(0.0);
            for j in 0..pixels {
                dq += grad_scores[j] * qkv[offset::<F>(qkv, image, k + d, j, width)];
            }
            let at = offset_out::<F>(grad_qkv, image, q + d, i, width);
            grad_qkv[at] = dq;
        }
    }
    sync_cube();

    // ∂v[e][j] = Σ_i ∂O[e][i] P[i][j]
    let mut p = unit;
    while p < dim_head * pixels {
        let e = p / pixels;
        let j = p % pixels;
        let mut dv = F::new(0.0);
        for i in 0..pixels {
            dv += grad[offset::<F>(grad, image, q + e, i, width)] * matrix[i * pixels + j];
        }
        let at = offset_out::<F>(grad_qkv, image, v + e, j, width);
        grad_qkv[at] = dv;
        p += UNITS;
    }
    sync_cube();
    if unit < pixels {
        for j in 0..pixels {
            matrix[unit * pixels + j] = grad_scores[j];
        }
    }
    sync_cube();

    // ∂k[d][j] = Σ_i ∂S[i][j] q[d][i]
    let mut p = unit;
    while p < dim_head * pixels {
        let d = p / pixels;
        let j = p % pixels;
        let mut dk = F::new(0.0);
        for i in 0..pixels {
            dk += matrix[i * pixels + j] * qkv[offset::<F>(qkv, image, q + d, i, width)];
        }
        let at = offset_out::<F>(grad_qkv, image, k + d, j, width);
        grad_qkv[at] = dk;
        p += UNITS;
    }
}

/// The gradient of [`launch`]'s output `grad` (`[B, H·D, X, Y]`, any strides) with respect to
/// `qkv`, laid out as `qkv` is: one launch up to 64 pixels, Burn's operations above.
#[cfg(feature = "train")]
pub(super) fn backward(qkv: BurnTensor<4>, grad: BurnTensor<4>, heads: usize, dim_head: usize) -> BurnTensor<4> {
    let [_, _, x, y] = qkv.dims();
    if !supports_backward(x * y) {
        return super::naive::attention_backward(qkv, grad, heads, dim_head);
    }
    let h = Heads::for_gradient(qkv, heads, dim_head);
    attention_backward_kernel::launch(
        &h.qkv.client,
        h.cubes.clone(),
        CubeDim::new_1d(UNITS as u32),
        h.qkv.clone().into_tensor_arg(),
        super::layout::cube(grad).into_tensor_arg(),
        h.output.clone().into_tensor_arg(),
        h.heads,
        h.width,
        h.scale,
        h.pixels,
        dim_head,
        h.dtype,
    );
    h.output()
}
