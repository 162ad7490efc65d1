//! The core of linear attention (Shen et al.) in one launch: from the `to_qkv` projection to the
//! per-head output, softmax(q) over features and softmax(k) over pixels included. Burn's
//! operations take about fifteen launches for it.
//!
//! One cube per image and head. It builds the head's `D × D` context (softmax(k) · vᵀ) in shared
//! memory, tile by tile over the pixels, then each unit takes pixels and writes `contextᵀ · softmax(q)`.
//! The pixel count and head width are compile-time, so every loop around a barrier is uniform.

use super::attention::Heads;
use super::layout::{UNITS, offset, offset_out};
use burn::tensor::Tensor as BurnTensor;
use cubecl::prelude::*;

/// Shared floats per tile of k and of v (`D` rows × `TILE / D` pixels).
const TILE: usize = 1024;

/// Head widths the kernel takes: `D` units per row must divide [`UNITS`], and the `D × D` context
/// must fill whole rounds of units.
pub(super) fn supports(dim_head: usize, pixels: usize) -> bool {
    matches!(dim_head, 16 | 32) && pixels >= UNITS / dim_head
}

#[cube(launch)]
fn linear_attention_kernel<F: Float>(
    qkv: &Tensor<F>,
    output: &mut Tensor<F>,
    heads: u32,
    width: u32,
    scale: f32,
    #[comptime] pixels: usize,
    #[comptime] dim_head: usize,
    #[define(F)] _dtype: ElemType,
) {
    let heads = heads as usize;
    let width = width as usize;
    let image = CUBE_POS_X as usize / heads;
    let head = CUBE_POS_X as usize % heads;
    let hidden = heads * dim_head;
    let q = head * dim_head;
    let k = hidden + q;
    let v = 2 * hidden + q;
    let unit = UNIT_POS_X as usize;
    let lanes = comptime!(UNITS / dim_head);
    let tile = comptime!(TILE / dim_head);
    let pairs = comptime!(dim_head * dim_head / UNITS);

    let mut partial = Shared::<[F]>::new_slice(UNITS);
    let mut row_max = Shared::<[F]>::new_slice(dim_head);
    let mut row_sum = Shared::<[F]>::new_slice(dim_head);
    let mut k_tile = Shared::<[F]>::new_slice(TILE);
    let mut v_tile = Shared::<[F]>::new_slice(TILE);
    let mut context = Shared::<[F]>::new_slice(comptime!(dim_head * dim_head));

    // softmax(k) over pixels, per feature row: `lanes` units share a row.
    let row = unit / lanes;
    let lane = unit % lanes;
    let mut m = qkv[offset::<F>(qkv, image, k + row, lane, width)];
    let mut n = lane + lanes;
    while n < pixels {
        m = F::max(m, qkv[offset::<F>(qkv, image, k + row, n, width)]);
        n += lanes;
    }
    partial[unit] = m;
    sync_cube();
    if lane == 0 {
        let mut row_m = partial[unit];
        for l in 1..lanes {
            row_m = F::max(row_m, partial[unit + l]);
        }
        row_max[row] = row_m;
    }
    sync_cube();
    let m = row_max[row];
    let mut s = F::new(0.0);
    let mut n = lane;
    while n < pixels {
        s += (qkv[offset::<F>(qkv, image, k + row, n, width)] - m).exp();
        n += lanes;
    }
    partial[unit] = s;
    sync_cube();
    if lane == 0 {
        let mut row_s = partial[unit];
        for l in 1..lanes {
            row_s += partial[unit + l];
        }
        row_sum[row] = row_s;
    }
    sync_cube();

    // context[d][e] = Σ_n exp(k[d][n] − max_d) · v[e][n], over tiles of pixels.
    let mut acc = Array::<F>::new(pairs);
    for j in 0..pairs {
        acc[j] = F::new(0.0);
    }
    let mut n0 = 0;
    while n0 < pixels {
        let mut i = unit;
        while i < TILE {
            let d = i / tile;
            let n = n0 + i % tile;
            let mut kv = F::new(0.0);
            let mut vv = F::new(0.0);
            if n < pixels {
                kv = (qkv[offset::<F>(qkv, image, k + d, n, width)] - row_max[d]).exp();
                vv = qkv[offset::<F>(qkv, image, v + d, n, width)];
            }
            k_tile[i] = kv;
            v_tile[i] = vv;
            i += UNITS;
        }
        sync_cube();
        for j in 0..pairs {
            let p = unit + j * UNITS;
            let d = p / dim_head;
            let e = p % dim_head;
            let mut a = acc[j];
            for t in 0..tile {
                a += k_tile[d * tile + t] * v_tile[e * tile + t];
            }
            acc[j] = a;
        }
        sync_cube();
        n0 += tile;
    }
    for j in 0..pairs {
        let p = unit + j * UNITS;
        context[p] = acc[j] / row_sum[p / dim_head];
    }
    sync_cube();

    // out[e][n] = scale · Σ_d context[d][e] · softmax(q)[d][n], softmax over the features d.
    let mut n = unit;
    while n < pixels {
        let mut q_max = qkv[offset::<F>(qkv, image, q, n, width)];
        for d in 1..dim_head {
            q_max = F::max(q_max, qkv[offset::<F>(qkv, image, q + d, n, width)]);
        }
        let mut out = Array::<F>::new(dim_head);
        for e in 0..dim_head {
            out[e] = F::new(0.0);
        }
        let mut q_sum = F::new(0.0);
        for d in 0..dim_head {
            let p = (qkv[offset::<F>(qkv, image, q + d, n, width)] - q_max).exp();
            q_sum += p;
            for e in 0..dim_head {
                out[e] += context[d * dim_head + e] * p;
            }
        }
        let norm = F::cast_from(scale) / q_sum;
        for e in 0..dim_head {
            let at = offset_out::<F>(output, image, q + e, n, width);
            output[at] = out[e] * norm;
        }
        n += UNITS;
    }
}

/// The kernel on `qkv` (`[B, 3·H·D, X, Y]`, on the CubeCL backend, any strides) → `[B, H·D, X, Y]`.
pub(super) fn launch(qkv: BurnTensor<4>, heads: usize, dim_head: usize) -> BurnTensor<4> {
    let h = Heads::new(qkv, heads, dim_head);
    assert!(supports(dim_head, h.pixels), "{heads} heads of {dim_head} over {} pixels", h.pixels);
    linear_attention_kernel::launch(
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

/// The gradient of [`launch`]'s output with respect to `qkv`, through Burn's operations: with
/// q̃ = softmax(q) over features (scaled), k̃ = softmax(k) over pixels and C = k̃ vᵀ,
/// ∂C = q̃ ∂Oᵀ, ∂q̃ = C ∂O, ∂k̃ = ∂C v, ∂v = ∂Cᵀ k̃, then each softmax's backward.
#[cfg(feature = "train")]
pub(super) fn backward(qkv: BurnTensor<4>, grad: BurnTensor<4>, heads: usize, dim_head: usize) -> BurnTensor<4> {
    use burn::tensor::activation::softmax;
    let [b, c, x, y] = qkv.dims();
    let [q, k, v] = crate::unet::attention::split_heads(qkv, heads);
    let scale = (dim_head as f64).powf(-0.5);
    let q = softmax(q, 2);
    let k = softmax(k, 3);
    let context = k.clone().matmul(v.clone().swap_dims(2, 3));
    let grad = grad.reshape([b, heads, dim_head, x * y]);
    let grad_context = (q.clone() * scale).matmul(grad.clone().swap_dims(2, 3));
    let grad_q = context.matmul(grad) * scale;
    let grad_k = grad_context.clone().matmul(v);
    let grad_v = grad_context.swap_dims(2, 3).matmul(k.clone());
    let grad_q = q.clone() * (grad_q.clone() - (q * grad_q).sum_dim(2));
    let grad_k = k.clone() * (grad_k.clone() - (k * grad_k).sum_dim(3));
    let part = |t: BurnTensor<4>| t.reshape([b, c / 3, x, y]);
    BurnTensor::cat(vec![part(grad_q), part(grad_k), part(grad_v)], 1)
}
