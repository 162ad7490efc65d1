//! The core of linear attention (Shen et al.) in one launch: from the `to_qkv` projection to the
//! per-head output, softmax(q) over features and softmax(k) over pixels included. Burn's
//! operations take about fifteen launches for it.
//!
//! One cube per image and head. It builds the head's `D × D` context (softmax(k) · vᵀ) in shared
//! memory, tile by tile over the pixels, then each unit takes pixels and writes `contextᵀ · softmax(q)`.
//! The pixel count and head width are compile-time, so every loop around a barrier is uniform.

use super::heads::{Heads, head_channels};
use super::layout::{UNITS, offset, offset_out};
use burn::tensor::Tensor as BurnTensor;
use cubecl::prelude::*;

/// Shared floats per tile of k and of v (`D` rows × `TILE / D` pixels).
const TILE: usize = 1024;

/// Head widths the kernel takes: `D` units per row must divide [`UNITS`], and `D` must cut into
/// [`GRID`] blocks a side.
pub(super) fn supports(dim_head: usize, pixels: usize) -> bool {
    matches!(dim_head, 16 | 32) && pixels >= UNITS / dim_head
}

/// softmax(k) over pixels, per feature row `d` of the head whose keys start at channel `k`: the
/// row's maximum into `row_max[d]` and its sum of exp(k − max) into `row_sum[d]`. `UNITS / D`
/// units share a row.
#[cube]
#[allow(clippy::too_many_arguments)]
fn key_softmax_stats<F: Float>(
    qkv: &Tensor<F>,
    partial: &mut Shared<[F]>,
    row_max: &mut Shared<[F]>,
    row_sum: &mut Shared<[F]>,
    image: usize,
    k: usize,
    width: usize,
    #[comptime] pixels: usize,
    #[comptime] dim_head: usize,
) {
    let unit = UNIT_POS_X as usize;
    let lanes = comptime!(UNITS / dim_head);
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
}

/// Units per side of the square of blocks a `D × D` product is cut into: the first GRID² units
/// each hold a `D/GRID × D/GRID` block, so that a tile value they load serves as many entries (on
/// a software adapter a load costs far more than a multiply-add); the others only load tiles.
const GRID: usize = 8;

/// Entries of a `D × D` product a unit of the first [`GRID`]² holds.
fn pairs(dim_head: usize) -> usize {
    (dim_head / GRID) * (dim_head / GRID)
}

/// Entry `(d, e)` of a `D × D` product, as the flat index `d · D + e`, that `acc[j]` of a unit
/// among the first [`GRID`]² holds.
#[cube]
fn pair_index(j: usize, #[comptime] dim_head: usize) -> usize {
    let block = comptime!(dim_head / GRID);
    let unit = UNIT_POS_X as usize;
    let d = (unit / GRID) * block + j / block;
    let e = (unit % GRID) * block + j % block;
    d * dim_head + e
}

/// Adds `Σ_t a[d][t] · b[e][t]` over a tile of `tile` pixels (rows `D` long in shared memory) to
/// this unit's block of a `D × D` product ([`pair_index`]; the tiles are only read: CubeCL
/// passes shared memory mutably). Units past the first [`GRID`]² add nothing.
#[cube]
fn tile_products<F: Float>(a: &mut Shared<[F]>, b: &mut Shared<[F]>, acc: &mut Array<F>, #[comptime] tile: usize, #[comptime] dim_head: usize) {
    let block = comptime!(dim_head / GRID);
    let unit = UNIT_POS_X as usize;
    if unit < comptime!(GRID * GRID) {
        let (d0, e0) = ((unit / GRID) * block, (unit % GRID) * block);
        let mut av = Array::<F>::new(block);
        let mut bv = Array::<F>::new(block);
        for t in 0..tile {
            #[unroll]
            for i in 0..block {
                av[i] = a[(d0 + i) * tile + t];
                bv[i] = b[(e0 + i) * tile + t];
            }
            #[unroll]
            for i in 0..block {
                #[unroll]
                for k in 0..block {
                    acc[i * block + k] += av[i] * bv[k];
                }
            }
        }
    }
}

/// The head's context `C[d][e] = Σ_n softmax(k)[d][n] · v[e][n]` into `context` (`D × D`), from
/// [`key_softmax_stats`]' rows, built tile by tile over the pixels in `k_tile` and `v_tile`
/// (`floats` long each).
#[cube]
#[allow(clippy::too_many_arguments)]
fn build_context<F: Float>(
    qkv: &Tensor<F>,
    row_max: &Shared<[F]>,
    row_sum: &Shared<[F]>,
    k_tile: &mut Shared<[F]>,
    v_tile: &mut Shared<[F]>,
    context: &mut Shared<[F]>,
    image: usize,
    k: usize,
    v: usize,
    width: usize,
    #[comptime] pixels: usize,
    #[comptime] dim_head: usize,
    #[comptime] floats: usize,
) {
    let unit = UNIT_POS_X as usize;
    let tile = comptime!(floats / dim_head);
    let pairs = comptime!(pairs(dim_head));
    let mut acc = Array::<F>::new(pairs);
    #[unroll]
    for j in 0..pairs {
        acc[j] = F::new(0.0);
    }
    let mut n0 = 0;
    while n0 < pixels {
        let mut i = unit;
        while i < floats {
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
        tile_products::<F>(k_tile, v_tile, &mut acc, tile, dim_head);
        sync_cube();
        n0 += tile;
    }
    if unit < comptime!(GRID * GRID) {
        #[unroll]
        for j in 0..pairs {
            let p = pair_index(j, dim_head);
            context[p] = acc[j] / row_sum[p / dim_head];
        }
    }
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
    #[comptime] group: usize,
    #[define(F)] _dtype: ElemType,
) {
    let width = width as usize;
    let (image, q, k, v) = head_channels(heads, dim_head);
    let unit = UNIT_POS_X as usize;

    let mut partial = Shared::<[F]>::new_slice(UNITS);
    let mut row_max = Shared::<[F]>::new_slice(dim_head);
    let mut row_sum = Shared::<[F]>::new_slice(dim_head);
    let mut k_tile = Shared::<[F]>::new_slice(TILE);
    let mut v_tile = Shared::<[F]>::new_slice(TILE);
    let mut context = Shared::<[F]>::new_slice(comptime!(dim_head * dim_head));

    key_softmax_stats::<F>(qkv, &mut partial, &mut row_max, &mut row_sum, image, k, width, pixels, dim_head);

    build_context::<F>(qkv, &row_max, &row_sum, &mut k_tile, &mut v_tile, &mut context, image, k, v, width, pixels, dim_head, TILE);
    sync_cube();

    // out[e][n] = scale · Σ_d context[d][e] · softmax(q)[d][n], softmax over the features d. A unit
    // takes `group` pixels at once, so that each context value it loads serves them all; the loops
    // over e and the group are unrolled, so that `out` stays in registers.
    let mut n = unit * group;
    while n < pixels {
        let mut q_max = Array::<F>::new(group);
        query_max::<F>(qkv, &mut q_max, image, q, n, width, dim_head, group);
        let mut out = Array::<F>::new(comptime!(group * dim_head));
        #[unroll]
        for j in 0..comptime!(group * dim_head) {
            out[j] = F::new(0.0);
        }
        let mut q_sum = Array::<F>::new(group);
        #[unroll]
        for g in 0..group {
            q_sum[g] = F::new(0.0);
        }
        let mut p = Array::<F>::new(group);
        for d in 0..dim_head {
            #[unroll]
            for g in 0..group {
                p[g] = (qkv[offset::<F>(qkv, image, q + d, n + g, width)] - q_max[g]).exp();
                q_sum[g] += p[g];
            }
            #[unroll]
            for e in 0..dim_head {
                let c = context[d * dim_head + e];
                #[unroll]
                for g in 0..group {
                    out[g * dim_head + e] += c * p[g];
                }
            }
        }
        #[unroll]
        for g in 0..group {
            let norm = F::cast_from(scale) / q_sum[g];
            #[unroll]
            for e in 0..dim_head {
                let at = offset_out::<F>(output, image, q + e, n + g, width);
                output[at] = out[g * dim_head + e] * norm;
            }
        }
        n += comptime!(UNITS * group);
    }
}

/// The maximum over the features of softmax(q)'s input at each of the `group` pixels from `n` on.
#[cube]
#[allow(clippy::too_many_arguments)]
fn query_max<F: Float>(qkv: &Tensor<F>, q_max: &mut Array<F>, image: usize, q: usize, n: usize, width: usize, #[comptime] dim_head: usize, #[comptime] group: usize) {
    #[unroll]
    for g in 0..group {
        let mut m = qkv[offset::<F>(qkv, image, q, n + g, width)];
        for d in 1..dim_head {
            m = F::max(m, qkv[offset::<F>(qkv, image, q + d, n + g, width)]);
        }
        q_max[g] = m;
    }
}

/// Pixels a unit takes at once in the per-pixel passes: four or two where they divide the image.
fn pixel_group(pixels: usize) -> usize {
    [4, 2].into_iter().find(|&g| pixels.is_multiple_of(g)).unwrap_or(1)
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
        pixel_group(h.pixels),
        h.dtype,
    );
    h.output()
}

/// Shared floats per tile in the backward kernel, which keeps both the context and its gradient
/// (`2 · D²`) in the 16 KiB of workgroup memory WebGPU guarantees.
#[cfg(feature = "train")]
const BACKWARD_TILE: usize = 512;

/// With q̃ = D^−½ softmax(q) over features, k̃ = softmax(k) over pixels and C = k̃ vᵀ (out = Cᵀ q̃):
/// ∂C = q̃ ∂Oᵀ, ∂q̃ = C ∂O, ∂k̃ = ∂C v, ∂v = ∂Cᵀ k̃, then each softmax's backward, where
/// Σ_n k̃ ∂k̃ over a key row is Σ_e ∂C ∘ C (no second pass over the pixels).
#[cfg(feature = "train")]
#[cube(launch)]
#[allow(clippy::too_many_arguments)]
fn linear_attention_backward_kernel<F: Float>(
    qkv: &Tensor<F>,
    grad: &Tensor<F>,
    grad_qkv: &mut Tensor<F>,
    heads: u32,
    width: u32,
    scale: f32,
    #[comptime] pixels: usize,
    #[comptime] dim_head: usize,
    #[comptime] group: usize,
    #[define(F)] _dtype: ElemType,
) {
    let width = width as usize;
    let (image, q, k, v) = head_channels(heads, dim_head);
    let unit = UNIT_POS_X as usize;
    let tile = comptime!(BACKWARD_TILE / dim_head);
    let pairs = comptime!(pairs(dim_head));

    let mut partial = Shared::<[F]>::new_slice(UNITS);
    let mut row_max = Shared::<[F]>::new_slice(dim_head);
    let mut row_sum = Shared::<[F]>::new_slice(dim_head);
    let mut a_tile = Shared::<[F]>::new_slice(BACKWARD_TILE);
    let mut b_tile = Shared::<[F]>::new_slice(BACKWARD_TILE);
    let mut q_max = Shared::<[F]>::new_slice(tile);
    let mut q_sum = Shared::<[F]>::new_slice(tile);
    let mut context = Shared::<[F]>::new_slice(comptime!(dim_head * dim_head));
    let mut grad_context = Shared::<[F]>::new_slice(comptime!(dim_head * dim_head));
    let mut key_dot = Shared::<[F]>::new_slice(dim_head);

    key_softmax_stats::<F>(qkv, &mut partial, &mut row_max, &mut row_sum, image, k, width, pixels, dim_head);

    build_context::<F>(qkv, &row_max, &row_sum, &mut a_tile, &mut b_tile, &mut context, image, k, v, width, pixels, dim_head, BACKWARD_TILE);
    let mut acc = Array::<F>::new(pairs);
    #[unroll]
    for j in 0..pairs {
        acc[j] = F::new(0.0);
    }

    // ∂C[d][e] = Σ_n q̃[d][n] ∂O[e][n]; each tile's pixels first get softmax(q)'s max and sum.
    let mut n0 = 0;
    while n0 < pixels {
        if unit < tile {
            let n = n0 + unit;
            let mut m = F::new(0.0);
            let mut total = F::new(1.0);
            if n < pixels {
                m = qkv[offset::<F>(qkv, image, q, n, width)];
                for d in 1..dim_head {
                    m = F::max(m, qkv[offset::<F>(qkv, image, q + d, n, width)]);
                }
                total = F::new(0.0);
                for d in 0..dim_head {
                    total += (qkv[offset::<F>(qkv, image, q + d, n, width)] - m).exp();
                }
            }
            q_max[unit] = m;
            q_sum[unit] = total;
        }
        sync_cube();
        let mut i = unit;
        while i < BACKWARD_TILE {
            let d = i / tile;
            let t = i % tile;
            let n = n0 + t;
            let mut qv = F::new(0.0);
            let mut gv = F::new(0.0);
            if n < pixels {
                qv = (qkv[offset::<F>(qkv, image, q + d, n, width)] - q_max[t]).exp() * F::cast_from(scale) / q_sum[t];
                gv = grad[offset::<F>(grad, image, q + d, n, width)];
            }
            a_tile[i] = qv;
            b_tile[i] = gv;
            i += UNITS;
        }
        sync_cube();
        tile_products::<F>(&mut a_tile, &mut b_tile, &mut acc, tile, dim_head);
        sync_cube();
        n0 += tile;
    }
    if unit < comptime!(GRID * GRID) {
        #[unroll]
        for j in 0..pairs {
            grad_context[pair_index(j, dim_head)] = acc[j];
        }
    }
    sync_cube();
    if unit < dim_head {
        let mut dot = F::new(0.0);
        for e in 0..dim_head {
            dot += grad_context[unit * dim_head + e] * context[unit * dim_head + e];
        }
        key_dot[unit] = dot;
    }
    sync_cube();

    // Pixel by pixel, `group` at once so that each value of C and ∂C loaded serves them all: ∂q
    // through softmax(q) over features, ∂k through softmax(k), ∂v. Loops over a row's entries and
    // the group are unrolled, so that the unit's vectors stay in registers.
    let mut n = unit * group;
    while n < pixels {
        let mut m = Array::<F>::new(group);
        query_max::<F>(qkv, &mut m, image, q, n, width, dim_head, group);
        let row = comptime!(group * dim_head);
        let mut g = Array::<F>::new(row);
        let mut values = Array::<F>::new(row);
        let mut total = Array::<F>::new(group);
        #[unroll]
        for i in 0..group {
            total[i] = F::new(0.0);
            #[unroll]
            for d in 0..dim_head {
                g[i * dim_head + d] = grad[offset::<F>(grad, image, q + d, n + i, width)];
                values[i * dim_head + d] = qkv[offset::<F>(qkv, image, v + d, n + i, width)];
                total[i] += (qkv[offset::<F>(qkv, image, q + d, n + i, width)] - m[i]).exp();
            }
        }
        // ∂q̃[d] = Σ_e C[d][e] ∂O[e], then softmax(q)'s backward: softmax(q) ∘ (∂q̃ − softmax(q) · ∂q̃).
        let mut grad_q = Array::<F>::new(row);
        let mut probs = Array::<F>::new(row);
        let mut dot = Array::<F>::new(group);
        let mut dq = Array::<F>::new(group);
        #[unroll]
        for i in 0..group {
            dot[i] = F::new(0.0);
        }
        for d in 0..dim_head {
            #[unroll]
            for i in 0..group {
                dq[i] = F::new(0.0);
            }
            #[unroll]
            for e in 0..dim_head {
                let c = context[d * dim_head + e];
                #[unroll]
                for i in 0..group {
                    dq[i] += c * g[i * dim_head + e];
                }
            }
            #[unroll]
            for i in 0..group {
                let prob = (qkv[offset::<F>(qkv, image, q + d, n + i, width)] - m[i]).exp() / total[i];
                grad_q[i * dim_head + d] = dq[i];
                probs[i * dim_head + d] = prob;
                dot[i] += prob * dq[i];
            }
        }
        // ∂k̃[d] = Σ_e ∂C[d][e] v[e] and ∂v[e] = Σ_d ∂C[d][e] k̃[d], from one read of ∂C.
        let mut grad_v = Array::<F>::new(row);
        #[unroll]
        for j in 0..row {
            grad_v[j] = F::new(0.0);
        }
        let mut key = Array::<F>::new(group);
        let mut dk = Array::<F>::new(group);
        for d in 0..dim_head {
            #[unroll]
            for i in 0..group {
                key[i] = (qkv[offset::<F>(qkv, image, k + d, n + i, width)] - row_max[d]).exp() / row_sum[d];
                dk[i] = F::new(0.0);
            }
            #[unroll]
            for e in 0..dim_head {
                let dc = grad_context[d * dim_head + e];
                #[unroll]
                for i in 0..group {
                    dk[i] += dc * values[i * dim_head + e];
                    grad_v[i * dim_head + e] += dc * key[i];
                }
            }
            #[unroll]
            for i in 0..group {
                let at = offset_out::<F>(grad_qkv, image, q + d, n + i, width);
                grad_qkv[at] = F::cast_from(scale) * probs[i * dim_head + d] * (grad_q[i * dim_head + d] - dot[i]);
                let at = offset_out::<F>(grad_qkv, image, k + d, n + i, width);
                grad_qkv[at] = key[i] * (dk[i] - key_dot[d]);
            }
        }
        #[unroll]
        for i in 0..group {
            #[unroll]
            for e in 0..dim_head {
                let at = offset_out::<F>(grad_qkv, image, v + e, n + i, width);
                grad_qkv[at] = grad_v[i * dim_head + e];
            }
        }
        n += comptime!(UNITS * group);
    }
}

/// The gradient of [`launch`]'s output `grad` (`[B, H·D, X, Y]`, any strides) with respect to
/// `qkv`, in one launch; laid out as `qkv` is.
#[cfg(feature = "train")]
pub(super) fn backward(qkv: BurnTensor<4>, grad: BurnTensor<4>, heads: usize, dim_head: usize) -> BurnTensor<4> {
    let h = Heads::for_gradient(qkv, heads, dim_head);
    linear_attention_backward_kernel::launch(
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
        pixel_group(h.pixels),
        h.dtype,
    );
    h.output()
}
