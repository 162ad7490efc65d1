//! GroupNorm with its affine, the time embedding's scale and shift, SiLU and a residual in one
//! pass over each image's group (flex's operations make about fourteen passes, each allocating its
//! output), and its gradient in two. A group's channels are contiguous in NCHW data, so each
//! image's group is one slice, and the groups are split over the threads.

use super::super::group_norm::Options;
use super::{dims, exp, for_each_chunk, tensor, values, wide_fn};
use burn::backend::flex::FlexTensor;
use std::borrow::Cow;

/// The mean of `xs` and 1 / √(variance + ε): two passes over a slice that is in cache after the
/// first, so the variance is a sum of squared deviations (no cancellation), in eight lanes the
/// compiler vectorises.
#[inline(always)]
fn stats(xs: &[f32], epsilon: f64) -> (f32, f32) {
    #[inline(always)]
    fn lanes(xs: &[f32], f: impl Fn(f32) -> f32) -> f64 {
        let mut acc = [0f32; 8];
        let chunks = xs.chunks_exact(8);
        let rest: f32 = chunks.remainder().iter().map(|&x| f(x)).sum();
        for chunk in chunks {
            for (a, &x) in acc.iter_mut().zip(chunk) {
                *a += f(x);
            }
        }
        acc.iter().map(|&a| a as f64).sum::<f64>() + rest as f64
    }
    let n = xs.len() as f64;
    let mean = (lanes(xs, |x| x) / n) as f32;
    let var = lanes(xs, |x| (x - mean) * (x - mean)) / n;
    (mean, (1.0 / (var + epsilon).sqrt()) as f32)
}

/// SiLU, x · σ(x).
#[inline(always)]
fn silu(x: f32) -> f32 {
    x / (1.0 + exp(-x))
}

/// SiLU's derivative, σ(x) · (1 + x · (1 − σ(x))).
#[cfg(feature = "train")]
#[inline(always)]
fn silu_grad(x: f32) -> f32 {
    let sigmoid = 1.0 / (1.0 + exp(-x));
    sigmoid * (1.0 + x * (1.0 - sigmoid))
}

/// Where a forward or backward pass reads its inputs.
struct Inputs<'a> {
    x: &'a [f32],
    gamma: &'a [f32],
    beta: &'a [f32],
    table: &'a [f32],
    columns: usize,
    channels: usize,
    pixels: usize,
    o: Options,
}

impl Inputs<'_> {
    /// Channel `c` of image `b`: its values, and `(a, d)` such that the normalised, affine value
    /// is `x · a + d` before the scale and shift, given `(mean, 1/σ)` of its group.
    #[inline(always)]
    fn channel(&self, b: usize, c: usize, (mean, rstd): (f32, f32)) -> (&[f32], f32, f32) {
        let xs = &self.x[(b * self.channels + c) * self.pixels..][..self.pixels];
        let a = self.gamma[c] * rstd;
        (xs, a, self.beta[c] - mean * a)
    }

    /// The block's `(scale + 1, shift)` for image `b`, channel `c`; `(1, 0)` without a table.
    #[inline(always)]
    fn scale_shift(&self, b: usize, c: usize) -> (f32, f32) {
        match self.o.column {
            Some(column) => {
                let row = &self.table[b * self.columns + column..];
                (row[c] + 1.0, row[self.channels + c])
            }
            None => (1.0, 0.0),
        }
    }

    #[inline(always)]
    fn group(&self, b: usize, g: usize) -> (f32, f32) {
        let per_group = self.channels / self.o.groups;
        let len = per_group * self.pixels;
        stats(&self.x[(b * self.channels + g * per_group) * self.pixels..][..len], self.o.epsilon)
    }
}

/// The scale-shift table's values and columns, when the block has one (else it is never read).
fn table_of(table: &FlexTensor, o: Options) -> (Cow<'_, [f32]>, usize) {
    match o.column {
        Some(_) => (values(table), dims::<2>(table)[1]),
        None => (Cow::Borrowed(&[][..]), 0),
    }
}

wide_fn! {
    /// The forward pass over chunk `i` of the output: one image's group.
    fn forward_group(at: &Inputs, residual: &[f32], i: usize, out: &mut [f32]) {
        let o = at.o;
        let (b, g) = (i / o.groups, i % o.groups);
        let per_group = at.channels / o.groups;
        let stats = at.group(b, g);
        for (k, out) in out.chunks_exact_mut(at.pixels).enumerate() {
            let c = g * per_group + k;
            let (xs, a, d) = at.channel(b, c, stats);
            let (scale, shift) = at.scale_shift(b, c);
            let (a, d) = (a * scale, d * scale + shift);
            match o.silu {
                true => out.iter_mut().zip(xs).for_each(|(y, &x)| *y = silu(x * a + d)),
                false => out.iter_mut().zip(xs).for_each(|(y, &x)| *y = x * a + d),
            }
            if o.residual {
                let r = &residual[(b * at.channels + c) * at.pixels..][..at.pixels];
                out.iter_mut().zip(r).for_each(|(y, &r)| *y += r);
            }
        }
    }
}

/// The forward pass on `x` `[B, C, H, W]`; the output is row-major. An absent table or residual
/// is never read.
pub(in crate::kernels) fn forward(x: &FlexTensor, gamma: &FlexTensor, beta: &FlexTensor, table: &FlexTensor, residual: &FlexTensor, o: Options) -> FlexTensor {
    let shape = dims::<4>(x);
    let (xv, gamma, beta) = (values(x), values(gamma), values(beta));
    let residual = if o.residual { values(residual) } else { Cow::Borrowed(&[][..]) };
    let (table, columns) = table_of(table, o);
    let at = Inputs { x: &xv, gamma: &gamma, beta: &beta, table: &table, columns, channels: shape[1], pixels: shape[2] * shape[3], o };
    let mut out = vec![0.0; xv.len()];
    for_each_chunk(&mut out, at.channels / o.groups * at.pixels, |i, out| forward_group(&at, &residual, i, out));
    tensor(out, shape)
}

/// One channel's gradient through SiLU (where `SILU`) and the scale and shift, `∂s`, written into
/// `out`; returns Σ ∂s and Σ ∂s · x̂, from which every sum the backward needs follows (they are
/// all linear in ∂s). Three passes a loop vectorises, where one pass carrying six running sums runs
/// a value at a time.
#[cfg(feature = "train")]
#[inline(always)]
fn channel_backward(out: &mut [f32], xs: &[f32], dy: &[f32], silu: bool, [a, d, scale, shift]: [f32; 4], (mean, rstd): (f32, f32)) -> (f32, f32) {
    match silu {
        true => out.iter_mut().zip(xs.iter().zip(dy)).for_each(|(o, (&x, &dy))| *o = dy * silu_grad((x * a + d) * scale + shift)),
        false => out.copy_from_slice(dy),
    }
    (super::lanes_sum(out), super::lanes_sum_by(out, xs, |ds, x| ds * (x - mean)) * rstd)
}

#[cfg(feature = "train")]
wide_fn! {
    /// The backward pass over chunk `i` of ∂x, one image's group, and its channels' sums (∂γ,
    /// ∂β, ∂scale, ∂shift).
    fn backward_group(at: &Inputs, grad: &[f32], i: usize, out: &mut [f32], sums: &mut [f32]) {
        let (o, pixels, channels) = (at.o, at.pixels, at.channels);
        let per_group = channels / o.groups;
        let (b, g) = (i / o.groups, i % o.groups);
        let (mean, rstd) = at.group(b, g);
        // Σ ∂x̂ and Σ ∂x̂ · x̂ over the group, where ∂x̂ = ∂s · scale · γ.
        let (mut sum, mut sum_xhat) = (0f32, 0f32);
        for (k, out) in out.chunks_exact_mut(pixels).enumerate() {
            let c = g * per_group + k;
            let (xs, a, d) = at.channel(b, c, (mean, rstd));
            let (scale, shift) = at.scale_shift(b, c);
            let dy = &grad[(b * channels + c) * pixels..][..pixels];
            let (s, s_xhat) = channel_backward(out, xs, dy, o.silu, [a, d, scale, shift], (mean, rstd));
            let (gamma, beta) = (at.gamma[c], at.beta[c]);
            sum += s * scale * gamma;
            sum_xhat += s_xhat * scale * gamma;
            // ∂γ, ∂β, ∂scale (Σ ∂s · (γ x̂ + β)), ∂shift.
            sums[k * 4..k * 4 + 4].copy_from_slice(&[s_xhat * scale, s * scale, gamma * s_xhat + beta * s, s]);
        }
        let n = out.len() as f32;
        let (mean_d, mean_dx) = (sum / n, sum_xhat / n);
        for (k, out) in out.chunks_exact_mut(pixels).enumerate() {
            let c = g * per_group + k;
            let xs = &at.x[(b * channels + c) * pixels..][..pixels];
            let factor = at.scale_shift(b, c).0 * at.gamma[c];
            for (out, &x) in out.iter_mut().zip(xs) {
                *out = rstd * (*out * factor - mean_d - (x - mean) * rstd * mean_dx);
            }
        }
    }
}

/// The gradients of [`forward`]'s inputs from the output's gradient `grad`: x's, γ's, β's and
/// the scale-shift table's (zero outside the block's columns; absent without one). The
/// residual's gradient is `grad` itself.
#[cfg(feature = "train")]
pub(in crate::kernels) fn backward(x: &FlexTensor, gamma: &FlexTensor, beta: &FlexTensor, table: &FlexTensor, grad: &FlexTensor, o: Options) -> (FlexTensor, FlexTensor, FlexTensor, Option<FlexTensor>) {
    let shape = dims::<4>(x);
    let [batch, channels, ..] = shape;
    let (xv, gamma, beta, grad) = (values(x), values(gamma), values(beta), values(grad));
    let (table, columns) = table_of(table, o);
    let at = Inputs { x: &xv, gamma: &gamma, beta: &beta, table: &table, columns, channels, pixels: shape[2] * shape[3], o };
    let (pixels, per_group) = (at.pixels, channels / o.groups);
    // Per image and channel: ∂γ, ∂β, ∂scale, ∂shift.
    let mut params = vec![0.0; batch * channels * 4];
    let mut grad_x = vec![0.0; xv.len()];
    if grad_x.is_empty() {
        return (tensor(grad_x, shape), tensor(vec![0.0; channels], [channels]), tensor(vec![0.0; channels], [channels]), None);
    }
    let chunk = per_group * pixels;
    let parallel = super::in_parallel(grad_x.len(), chunk);
    #[cfg(not(target_arch = "wasm32"))]
    if parallel {
        use rayon::prelude::*;
        grad_x.par_chunks_mut(chunk).zip(params.par_chunks_mut(per_group * 4)).enumerate().for_each(|(i, (out, sums))| backward_group(&at, &grad, i, out, sums));
    }
    if !parallel {
        grad_x.chunks_mut(chunk).zip(params.chunks_mut(per_group * 4)).enumerate().for_each(|(i, (out, sums))| backward_group(&at, &grad, i, out, sums));
    }

    // `params` is [batch, channel, 4]: sum γ's and β's over the batch; the table's stay per image.
    let (mut d_gamma, mut d_beta) = (vec![0.0; channels], vec![0.0; channels]);
    for (i, p) in params.chunks_exact(4).enumerate() {
        d_gamma[i % channels] += p[0];
        d_beta[i % channels] += p[1];
    }
    let d_table = o.column.map(|column| {
        let mut t = vec![0.0; batch * at.columns];
        for (i, p) in params.chunks_exact(4).enumerate() {
            let (b, c) = (i / channels, i % channels);
            t[b * at.columns + column + c] = p[2];
            t[b * at.columns + column + channels + c] = p[3];
        }
        tensor(t, [batch, at.columns])
    });
    (tensor(grad_x, shape), tensor(d_gamma, [channels]), tensor(d_beta, [channels]), d_table)
}
