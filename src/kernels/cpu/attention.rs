//! Both attention cores, from the `to_qkv` projection `[B, 3·H·D, X, Y]` to the heads' output
//! `[B, H·D, X, Y]`, and their gradients with respect to `qkv`: one pass per image and head over
//! its q, k and v (each `[D, N]`, contiguous in NCHW data), where Burn's operations split the
//! heads, transpose, and allocate a tensor per step. The products are small (D is 16 or 32), so
//! plain loops along the pixels, which the compiler vectorises, do them.

use super::{dims, for_each_chunk, tensor, values};
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

/// Softmax over each column of `rows × n` `x` (over the features), scaled by `scale`.
fn softmax_columns(x: &[f32], n: usize, scale: f32) -> Vec<f32> {
    let mut max = vec![f32::NEG_INFINITY; n];
    for row in x.chunks_exact(n) {
        max.iter_mut().zip(row).for_each(|(m, &v)| *m = m.max(v));
    }
    let mut out: Vec<f32> = x.chunks_exact(n).flat_map(|row| row.iter().zip(&max).map(|(&v, &m)| (v - m).exp())).collect();
    let mut sum = vec![0f32; n];
    for row in out.chunks_exact(n) {
        sum.iter_mut().zip(row).for_each(|(s, &v)| *s += v);
    }
    for row in out.chunks_exact_mut(n) {
        row.iter_mut().zip(&sum).for_each(|(v, &s)| *v *= scale / s);
    }
    out
}

/// Softmax over each row of `x` (`rows × n`).
fn softmax_rows(x: &[f32], n: usize) -> Vec<f32> {
    let mut out = x.to_vec();
    for row in out.chunks_exact_mut(n) {
        let max = row.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v));
        row.iter_mut().for_each(|v| *v = (*v - max).exp());
        let sum: f32 = row.iter().sum();
        row.iter_mut().for_each(|v| *v /= sum);
    }
    out
}

/// `a · bᵀ` for `a` `[m, n]` and `b` `[p, n]` (both row-major): `[m, p]`.
fn times_transposed(a: &[f32], b: &[f32], n: usize) -> Vec<f32> {
    a.chunks_exact(n).flat_map(|a| b.chunks_exact(n).map(move |b| a.iter().zip(b).map(|(x, y)| x * y).sum::<f32>())).collect()
}

/// `out[e, :] = Σ_d m[d, e] · x[d, :]` (`m` `[rows, cols]`, `x` `[rows, n]`), added to `out`.
fn add_transposed_times(m: &[f32], cols: usize, x: &[f32], n: usize, out: &mut [f32]) {
    for (m, x) in m.chunks_exact(cols).zip(x.chunks_exact(n)) {
        for (&w, out) in m.iter().zip(out.chunks_exact_mut(n)) {
            out.iter_mut().zip(x).for_each(|(o, &v)| *o += w * v);
        }
    }
}

/// `out[d, :] = Σ_e m[d, e] · x[e, :]` (`m` `[rows, cols]`, `x` `[cols, n]`), added to `out`.
fn add_times(m: &[f32], cols: usize, x: &[f32], n: usize, out: &mut [f32]) {
    for (m, out) in m.chunks_exact(cols).zip(out.chunks_exact_mut(n)) {
        for (&w, x) in m.iter().zip(x.chunks_exact(n)) {
            out.iter_mut().zip(x).for_each(|(o, &v)| *o += w * v);
        }
    }
}

/// Linear attention's output: softmax(q) over features (scaled by D^−½), softmax(k) over pixels,
/// context = k vᵀ `[D, D]`, output = contextᵀ q.
pub(in crate::kernels) fn linear_attention(qkv: &FlexTensor, heads: usize, dim_head: usize) -> FlexTensor {
    let pixels = dims::<4>(qkv)[2] * dims::<4>(qkv)[3];
    let scale = (dim_head as f32).powf(-0.5);
    per_head(qkv, heads, heads * dim_head, |_, h, out| {
        let q = softmax_columns(h.q, pixels, scale);
        let k = softmax_rows(h.k, pixels);
        let context = times_transposed(&k, h.v, pixels);
        add_transposed_times(&context, dim_head, &q, pixels, out);
    })
}

/// ∂qkv of [`linear_attention`] from the output's gradient `grad` `[B, H·D, X, Y]`.
pub(in crate::kernels) fn linear_attention_backward(qkv: &FlexTensor, grad: &FlexTensor, heads: usize, dim_head: usize) -> FlexTensor {
    let pixels = dims::<4>(qkv)[2] * dims::<4>(qkv)[3];
    let scale = (dim_head as f32).powf(-0.5);
    let grad = values(grad);
    let block = dim_head * pixels;
    // Per image and head, ∂q, ∂k, ∂v side by side; laid out as qkv after.
    let stacked = per_head(qkv, heads, 3 * heads * dim_head, |i, h, out| {
        let q = softmax_columns(h.q, pixels, scale);
        let k = softmax_rows(h.k, pixels);
        let context = times_transposed(&k, h.v, pixels);
        let g = &grad[i * block..][..block];
        let (dq_out, rest) = out.split_at_mut(block);
        let (dk_out, dv_out) = rest.split_at_mut(block);
        // ∂q̃ = context · g, ∂context = q̃ · gᵀ.
        let mut dq = vec![0.0; block];
        add_times(&context, dim_head, g, pixels, &mut dq);
        let d_context = times_transposed(&q, g, pixels);
        // ∂k̃ = ∂context · v, ∂v = ∂contextᵀ · k̃.
        let mut dk = vec![0.0; block];
        add_times(&d_context, dim_head, h.v, pixels, &mut dk);
        add_transposed_times(&d_context, dim_head, &k, pixels, dv_out);
        // Through the softmaxes: q's over each column (q̃ = scale · p), k's over each row.
        let mut dot = vec![0f32; pixels];
        for (p, d) in q.chunks_exact(pixels).zip(dq.chunks_exact(pixels)) {
            dot.iter_mut().zip(p.iter().zip(d)).for_each(|(s, (&p, &d))| *s += p * d);
        }
        for ((out, p), d) in dq_out.chunks_exact_mut(pixels).zip(q.chunks_exact(pixels)).zip(dq.chunks_exact(pixels)) {
            // q̃ already carries the scale: ∂q = q̃ (∂q̃ − Σ_d (q̃/scale) ∂q̃).
            out.iter_mut().zip(p.iter().zip(d).zip(&dot)).for_each(|(o, ((&p, &d), &s))| *o = p * (d - s / scale));
        }
        for ((out, p), d) in dk_out.chunks_exact_mut(pixels).zip(k.chunks_exact(pixels)).zip(dk.chunks_exact(pixels)) {
            let s: f32 = p.iter().zip(d).map(|(&p, &d)| p * d).sum();
            out.iter_mut().zip(p.iter().zip(d)).for_each(|(o, (&p, &d))| *o = p * (d - s));
        }
    });
    regroup(stacked, heads, block)
}

/// Softmax attention's output: attention `[N, N]` = softmax over keys of D^−½ qᵀk, output[d, i] =
/// Σⱼ attention[i, j] v[d, j].
pub(in crate::kernels) fn attention(qkv: &FlexTensor, heads: usize, dim_head: usize) -> FlexTensor {
    let pixels = dims::<4>(qkv)[2] * dims::<4>(qkv)[3];
    per_head(qkv, heads, heads * dim_head, |_, h, out| {
        let weights = attention_weights(&h, dim_head, pixels);
        // output = v · attentionᵀ: each output row is v's row times the weights' rows.
        for (out, v) in out.chunks_exact_mut(pixels).zip(h.v.chunks_exact(pixels)) {
            for (o, row) in out.iter_mut().zip(weights.chunks_exact(pixels)) {
                *o = row.iter().zip(v).map(|(a, b)| a * b).sum();
            }
        }
    })
}

/// softmax over j of D^−½ Σ_d q[d, i] k[d, j], `[N, N]`.
fn attention_weights(h: &Head, dim_head: usize, pixels: usize) -> Vec<f32> {
    let scale = (dim_head as f32).powf(-0.5);
    let mut logits = vec![0.0; pixels * pixels];
    // logits[i, :] = Σ_d q[d, i] · k[d, :]
    for (q, k) in h.q.chunks_exact(pixels).zip(h.k.chunks_exact(pixels)) {
        for (row, &qi) in logits.chunks_exact_mut(pixels).zip(q) {
            row.iter_mut().zip(k).for_each(|(l, &kj)| *l += qi * scale * kj);
        }
    }
    softmax_rows(&logits, pixels)
}

/// ∂qkv of [`attention`] from the output's gradient `grad` `[B, H·D, X, Y]`.
pub(in crate::kernels) fn attention_backward(qkv: &FlexTensor, grad: &FlexTensor, heads: usize, dim_head: usize) -> FlexTensor {
    let pixels = dims::<4>(qkv)[2] * dims::<4>(qkv)[3];
    let scale = (dim_head as f32).powf(-0.5);
    let grad = values(grad);
    let block = dim_head * pixels;
    let stacked = per_head(qkv, heads, 3 * heads * dim_head, |i, h, out| {
        let weights = attention_weights(&h, dim_head, pixels);
        let g = &grad[i * block..][..block];
        let (dq, rest) = out.split_at_mut(block);
        let (dk, dv) = rest.split_at_mut(block);
        // ∂attention[i, j] = Σ_d g[d, i] v[d, j]; ∂v[d, j] = Σ_i g[d, i] attention[i, j].
        let mut d_weights = vec![0.0; pixels * pixels];
        add_transposed_times(g, pixels, h.v, pixels, &mut d_weights);
        for (dv, g) in dv.chunks_exact_mut(pixels).zip(g.chunks_exact(pixels)) {
            for (&gi, row) in g.iter().zip(weights.chunks_exact(pixels)) {
                dv.iter_mut().zip(row).for_each(|(o, &a)| *o += gi * a);
            }
        }
        // Through the softmax over each row, then the scale: ∂logits = a (∂a − Σⱼ a ∂a) · D^−½.
        for (d, a) in d_weights.chunks_exact_mut(pixels).zip(weights.chunks_exact(pixels)) {
            let s: f32 = d.iter().zip(a).map(|(d, a)| d * a).sum();
            d.iter_mut().zip(a).for_each(|(d, &a)| *d = a * (*d - s) * scale);
        }
        // ∂q[d, i] = Σⱼ ∂logits[i, j] k[d, j]; ∂k[d, j] = Σ_i ∂logits[i, j] q[d, i].
        for (dq, k) in dq.chunks_exact_mut(pixels).zip(h.k.chunks_exact(pixels)) {
            for (o, row) in dq.iter_mut().zip(d_weights.chunks_exact(pixels)) {
                *o = row.iter().zip(k).map(|(a, b)| a * b).sum();
            }
        }
        for (dk, q) in dk.chunks_exact_mut(pixels).zip(h.q.chunks_exact(pixels)) {
            for (&qi, row) in q.iter().zip(d_weights.chunks_exact(pixels)) {
                dk.iter_mut().zip(row).for_each(|(o, &l)| *o += qi * l);
            }
        }
    });
    regroup(stacked, heads, block)
}

/// Per image, `[H, 3, D, N]` blocks (each head's ∂q, ∂k, ∂v) to qkv's `[3, H, D, N]`.
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
