//! Both attention cores, from the `to_qkv` projection `[B, 3·H·D, X, Y]` to the heads' output
//! `[B, H·D, X, Y]`, and their gradients with respect to `qkv`: one pass per image and head over
//! its q, k and v (each `[D, N]`, contiguous in NCHW data), where Burn's operations split the
//! heads, transpose, and allocate a tensor per step. The products go to `gemm`, one thread each
//! (the images and heads are split over the threads).

use super::{Matrix, dims, exp, for_each_chunk, lanes_sum, matmul, tensor, values, wide_fn};
use burn::backend::flex::FlexTensor;

/// One image's and head's q, k and v, each `[D, N]` row-major.
struct Head<'a> {
    q: &'a [f32],
    k: &'a [f32],
    v: &'a [f32],
}

/// Calls `f(i, head, out)` for every image and head (`i` = image · heads + head), `out` being its
/// block of the output `[B, out_channels, N]`; returns the output in `qkv`'s image shape.
fn per_head(qkv: &FlexTensor, heads: usize, out_channels: usize, f: impl Fn(usize, Head, &mut [f32]) + Sync + Send) -> FlexTensor {
    let [batch, channels, x, y] = dims::<4>(qkv);
    let pixels = x * y;
    let dim_head = channels / 3 / heads;
    assert_eq!(channels, 3 * heads * dim_head, "qkv holds three of {heads} heads");
    assert_eq!(out_channels % heads, 0, "an output block per head");
    let qkv = values(qkv);
    let block = dim_head * pixels;
    let mut out = vec![0.0; batch * out_channels * pixels];
    let per_out = out_channels * pixels / heads;
    for_each_chunk(&mut out, per_out, |i, out| {
        let (b, h) = (i / heads, i % heads);
        let image = &qkv[b * channels * pixels..][..channels * pixels];
        let part = |p: usize| &image[(p * heads + h) * block..][..block];
        f(i, Head { q: part(0), k: part(1), v: part(2) }, out);
    });
    tensor(out, [batch, out_channels, x, y])
}

wide_fn! {
    /// Softmax over each column of `rows × n` `x` (over the features), scaled by `scale`.
    fn softmax_columns(x: &[f32], n: usize, scale: f32) -> Vec<f32> {
        let mut max = vec![f32::NEG_INFINITY; n];
        for row in x.chunks_exact(n) {
            max.iter_mut().zip(row).for_each(|(m, &v)| *m = m.max(v));
        }
        let mut out = vec![0.0; x.len()];
        let mut sum = vec![0f32; n];
        for (out, row) in out.chunks_exact_mut(n).zip(x.chunks_exact(n)) {
            for (((o, &v), &m), s) in out.iter_mut().zip(row).zip(&max).zip(sum.iter_mut()) {
                *o = exp(v - m);
                *s += *o;
            }
        }
        sum.iter_mut().for_each(|s| *s = scale / *s);
        for row in out.chunks_exact_mut(n) {
            row.iter_mut().zip(&sum).for_each(|(v, &s)| *v *= s);
        }
        out
    }
}

wide_fn! {
    /// Softmax over each row of `x` (`rows × n`), in place.
    fn softmax_rows(x: &mut [f32], n: usize) {
        for row in x.chunks_exact_mut(n) {
            let max = row.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v));
            row.iter_mut().for_each(|v| *v = exp(*v - max));
            let sum = lanes_sum(row);
            row.iter_mut().for_each(|v| *v /= sum);
        }
    }
}

/// A `rows × cols` matrix in `x`, row-major (`t` false) or transposed (`t` true).
fn mat(x: &[f32], cols: usize, t: bool) -> Matrix<'_> {
    match t {
        false => Matrix(x, cols as isize, 1),
        true => Matrix(x, 1, cols as isize),
    }
}

/// `out[m × n] (+)= A · B` with `A` `m × k` and `B` `k × n`, each given as stored (`[rows, cols]`
/// row-major) and whether to transpose it; one thread (the heads are split over the threads).
#[allow(clippy::too_many_arguments)]
fn product(m: usize, n: usize, k: usize, out: &mut [f32], accumulate: bool, a: &[f32], a_cols: usize, a_t: bool, b: &[f32], b_cols: usize, b_t: bool) {
    matmul(m, n, k, out, n, accumulate, mat(a, a_cols, a_t), mat(b, b_cols, b_t), false);
}

/// Linear attention's output: softmax(q) over features (scaled by D^−½), softmax(k) over pixels,
/// context = k vᵀ `[D, D]`, output = contextᵀ q.
pub(in crate::kernels) fn linear_attention(qkv: &FlexTensor, heads: usize, dim_head: usize) -> FlexTensor {
    let n = dims::<4>(qkv)[2] * dims::<4>(qkv)[3];
    per_head(qkv, heads, heads * dim_head, |_, h, out| {
        let (q, _, context) = linear_parts(&h, dim_head, n);
        product(dim_head, n, dim_head, out, false, &context, dim_head, true, &q, n, false);
    })
}

/// A head's softmax(q) · D^−½ (over features), softmax(k) (over pixels) and context k vᵀ: what
/// the forward and the backward both start from.
fn linear_parts(h: &Head, d: usize, n: usize) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let q = softmax_columns(h.q, n, (d as f32).powf(-0.5));
    let mut k = h.k.to_vec();
    softmax_rows(&mut k, n);
    let mut context = vec![0.0; d * d];
    product(d, d, n, &mut context, false, &k, n, false, h.v, n, true);
    (q, k, context)
}

/// ∂qkv of [`linear_attention`] from the output's gradient `grad` `[B, H·D, X, Y]`.
#[cfg(feature = "train")]
pub(in crate::kernels) fn linear_attention_backward(qkv: &FlexTensor, grad: &FlexTensor, heads: usize, dim_head: usize) -> FlexTensor {
    let pixels = dims::<4>(qkv)[2] * dims::<4>(qkv)[3];
    let (d, n) = (dim_head, pixels);
    let scale = (dim_head as f32).powf(-0.5);
    let grad = values(grad);
    let block = d * n;
    // Per image and head, ∂q, ∂k, ∂v side by side; laid out as qkv after.
    let stacked = per_head(qkv, heads, 3 * heads * dim_head, |i, h, out| {
        let (q, k, context) = linear_parts(&h, d, n);
        let g = &grad[i * block..][..block];
        let (dq_out, rest) = out.split_at_mut(block);
        let (dk_out, dv_out) = rest.split_at_mut(block);
        // ∂q̃ = context · g, ∂context = q̃ · gᵀ; ∂k̃ = ∂context · v, ∂v = ∂contextᵀ · k̃.
        let (mut dq, mut dk, mut d_context) = (vec![0.0; block], vec![0.0; block], vec![0.0; d * d]);
        product(d, n, d, &mut dq, false, &context, d, false, g, n, false);
        product(d, d, n, &mut d_context, false, &q, n, false, g, n, true);
        product(d, n, d, &mut dk, false, &d_context, d, false, h.v, n, false);
        product(d, n, d, dv_out, false, &d_context, d, true, &k, n, false);
        // Through the softmaxes: q's over each column (q̃ = scale · p), k's over each row.
        let mut columns = vec![0f32; n];
        for (p, dq) in q.chunks_exact(n).zip(dq.chunks_exact(n)) {
            columns.iter_mut().zip(p.iter().zip(dq)).for_each(|(s, (&p, &g))| *s += p * g);
        }
        for ((out, p), dq) in dq_out.chunks_exact_mut(n).zip(q.chunks_exact(n)).zip(dq.chunks_exact(n)) {
            // q̃ carries the scale: ∂q = q̃ (∂q̃ − Σ_d (q̃ / scale) ∂q̃).
            out.iter_mut().zip(p.iter().zip(dq).zip(&columns)).for_each(|(o, ((&p, &g), &s))| *o = p * (g - s / scale));
        }
        for ((out, p), dk) in dk_out.chunks_exact_mut(n).zip(k.chunks_exact(n)).zip(dk.chunks_exact(n)) {
            let s = super::lanes_sum_by(p, dk, |p, g| p * g);
            out.iter_mut().zip(p.iter().zip(dk)).for_each(|(o, (&p, &g))| *o = p * (g - s));
        }
    });
    regroup(stacked, heads, block)
}

/// Softmax attention's output: attention `[N, N]` = softmax over keys of D^−½ qᵀk, output[d, i] =
/// Σⱼ attention[i, j] v[d, j].
pub(in crate::kernels) fn attention(qkv: &FlexTensor, heads: usize, dim_head: usize) -> FlexTensor {
    let n = dims::<4>(qkv)[2] * dims::<4>(qkv)[3];
    per_head(qkv, heads, heads * dim_head, |_, h, out| {
        let weights = attention_weights(&h, dim_head, n);
        product(dim_head, n, n, out, false, h.v, n, false, &weights, n, true);
    })
}

/// softmax over j of D^−½ Σ_d q[d, i] k[d, j], `[N, N]`.
fn attention_weights(h: &Head, dim_head: usize, n: usize) -> Vec<f32> {
    let scale = (dim_head as f32).powf(-0.5);
    let q: Vec<f32> = h.q.iter().map(|&v| v * scale).collect();
    let mut logits = vec![0.0; n * n];
    product(n, n, dim_head, &mut logits, false, &q, n, true, h.k, n, false);
    softmax_rows(&mut logits, n);
    logits
}

/// ∂qkv of [`attention`] from the output's gradient `grad` `[B, H·D, X, Y]`.
#[cfg(feature = "train")]
pub(in crate::kernels) fn attention_backward(qkv: &FlexTensor, grad: &FlexTensor, heads: usize, dim_head: usize) -> FlexTensor {
    let n = dims::<4>(qkv)[2] * dims::<4>(qkv)[3];
    let d = dim_head;
    let scale = (dim_head as f32).powf(-0.5);
    let grad = values(grad);
    let block = d * n;
    let stacked = per_head(qkv, heads, 3 * heads * dim_head, |i, h, out| {
        let weights = attention_weights(&h, dim_head, n);
        let g = &grad[i * block..][..block];
        let (dq, rest) = out.split_at_mut(block);
        let (dk, dv) = rest.split_at_mut(block);
        // ∂attention = gᵀ v, `[N, N]`; ∂v = g · attention.
        let mut d_weights = vec![0.0; n * n];
        product(n, n, d, &mut d_weights, false, g, n, true, h.v, n, false);
        product(d, n, n, dv, false, g, n, false, &weights, n, false);
        // Through the softmax over each row, then the scale: ∂logits = a (∂a − Σⱼ a ∂a) · D^−½.
        for (dw, a) in d_weights.chunks_exact_mut(n).zip(weights.chunks_exact(n)) {
            let s = super::lanes_sum_by(dw, a, |d, a| d * a);
            dw.iter_mut().zip(a).for_each(|(d, &a)| *d = a * (*d - s) * scale);
        }
        // ∂q = k · ∂logitsᵀ; ∂k = q · ∂logits.
        product(d, n, n, dq, false, h.k, n, false, &d_weights, n, true);
        product(d, n, n, dk, false, h.q, n, false, &d_weights, n, false);
    });
    regroup(stacked, heads, block)
}

/// Per image, `[H, 3, D, N]` blocks (each head's ∂q, ∂k, ∂v) to qkv's `[3, H, D, N]`.
#[cfg(feature = "train")]
fn regroup(stacked: FlexTensor, heads: usize, block: usize) -> FlexTensor {
    let shape = dims::<4>(&stacked);
    let values = values(&stacked);
    let image = 3 * heads * block;
    let mut out = vec![0.0; values.len()];
    for (src, dst) in values.chunks_exact(image).zip(out.chunks_exact_mut(image)) {
        for h in 0..heads {
            for p in 0..3 {
                dst[(p * heads + h) * block..][..block].copy_from_slice(&src[(h * 3 + p) * block..][..block]);
            }
        }
    }
    tensor(out, shape)
}
