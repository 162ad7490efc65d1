//! Every operation of [`super`] through Burn's operations alone: the reference twins the kernels,
//! GPU and CPU, are tested against (tests/kernels.rs), what a build with Burn's `fusion` feature
//! runs for every operation, and where a kernel does not take its input, what runs instead.
//! Each function here has the signature and the values of the one [`super`] exports by its name.

use super::{AdamUpdate, FlatState, NormAct, Segments};
use burn::nn::GroupNorm;
use burn::prelude::*;
use burn::tensor::activation::{silu, softmax};

/// Burn's own convolution, which the U-Net's convolution kernels compute.
pub use burn::tensor::module::conv2d;

/// [`super::group_norm_act`]: Burn's GroupNorm, then the scale and shift, SiLU and the residual.
pub fn group_norm_act(x: Tensor<4>, norm: &GroupNorm, act: NormAct) -> Tensor<4> {
    let channels = x.dims()[1];
    let mut y = norm.forward(x);
    if let Some(scale_shift) = act.scale_shift {
        let emb = scale_shift.columns(channels);
        let mut halves = emb.unsqueeze_dims::<4>(&[2, 3]).chunk(2, 1).into_iter();
        let (scale, shift) = (halves.next().unwrap(), halves.next().unwrap());
        y = y * (scale + 1.0) + shift;
    }
    if act.silu {
        y = silu(y);
    }
    match act.residual {
        Some(r) => y + r,
        None => y,
    }
}

/// Splits a `to_qkv` output `[B, 3·H·D, X, Y]` into q, k, v of shape `[B, H, D, X·Y]`.
fn split_heads(qkv: Tensor<4>, heads: usize) -> [Tensor<4>; 3] {
    let [b, c, x, y] = qkv.dims();
    let dim_head = c / 3 / heads;
    let mut parts = qkv.chunk(3, 1).into_iter().map(|p| p.reshape([b, heads, dim_head, x * y]));
    [parts.next().unwrap(), parts.next().unwrap(), parts.next().unwrap()]
}

/// [`super::linear_attention`].
pub fn linear_attention(qkv: Tensor<4>, heads: usize, dim_head: usize) -> Tensor<4> {
    let [b, _, x, y] = qkv.dims();
    let [q, k, v] = split_heads(qkv, heads);
    let q = softmax(q, 2) * (dim_head as f64).powf(-0.5);
    let k = softmax(k, 3);
    let context = k.matmul(v.swap_dims(2, 3)); // [B, H, D, E]
    let out = context.swap_dims(2, 3).matmul(q); // [B, H, E, N]
    out.reshape([b, heads * dim_head, x, y])
}

/// [`super::attention`].
pub fn attention(qkv: Tensor<4>, heads: usize, dim_head: usize) -> Tensor<4> {
    let [b, _, x, y] = qkv.dims();
    let [q, k, v] = split_heads(qkv, heads);
    let q = q * (dim_head as f64).powf(-0.5);
    let attn = softmax(q.swap_dims(2, 3).matmul(k), 3); // [B, H, i, j]
    let out = attn.matmul(v.swap_dims(2, 3)); // [B, H, i, D]
    out.swap_dims(2, 3).reshape([b, heads * dim_head, x, y])
}

/// The gradient of [`attention`]'s output `grad` (`[B, H·D, X, Y]`) with respect to `qkv`, laid
/// out as `qkv` is: with P = softmax(D^−½ qᵀk) over keys and O = v Pᵀ, ∂v = ∂O P, ∂P = ∂Oᵀ v,
/// ∂S = P ⊙ (∂P − Σⱼ P ⊙ ∂P), ∂q = D^−½ k ∂Sᵀ, ∂k = D^−½ q ∂S. (The GPU kernel's backward above
/// 64 pixels.)
pub fn attention_backward(qkv: Tensor<4>, grad: Tensor<4>, heads: usize, dim_head: usize) -> Tensor<4> {
    let [b, c, x, y] = qkv.dims();
    let [q, k, v] = split_heads(qkv, heads);
    let scale = (dim_head as f64).powf(-0.5);
    let attn = softmax(q.clone().swap_dims(2, 3).matmul(k.clone()) * scale, 3); // [B, H, i, j]
    let grad = grad.reshape([b, heads, dim_head, x * y]); // [B, H, D, i]
    let grad_v = grad.clone().matmul(attn.clone());
    let grad_attn = grad.swap_dims(2, 3).matmul(v);
    let grad_scores = attn.clone() * (grad_attn.clone() - (attn * grad_attn).sum_dim(3)) * scale;
    let grad_q = k.matmul(grad_scores.clone().swap_dims(2, 3));
    let grad_k = q.matmul(grad_scores);
    let part = |t: Tensor<4>| t.reshape([b, c / 3, x, y]);
    Tensor::cat(vec![part(grad_q), part(grad_k), part(grad_v)], 1)
}

/// [`super::standardize_weight`].
pub fn standardize_weight(weight: Tensor<4>, epsilon: f64) -> Tensor<4> {
    let [o, i, kh, kw] = weight.dims();
    let flat = weight.reshape([o, i * kh * kw]);
    let (var, mean) = flat.clone().var_mean_bias(1);
    ((flat - mean) / (var + epsilon).sqrt()).reshape([o, i, kh, kw])
}

/// [`super::adam_update`], as Burn's Adam and clipping compute it.
pub fn adam_update(state: FlatState, mut grads: Tensor<1>, segments: &Segments, update: &AdamUpdate) -> FlatState {
    if let Some(max_norm) = update.max_norm {
        for range in segments.ranges() {
            let g = grads.clone().slice(range.clone());
            let norm = g.clone().square().sum().sqrt();
            let factor = (norm.add_scalar(f32::MIN_POSITIVE).recip() * max_norm).clamp_max(1.0);
            grads = grads.slice_assign(range, g * factor);
        }
    }
    let AdamUpdate { lr, beta_1, beta_2, step_factor, epsilon, decay, .. } = *update;
    let moment_1 = state.moment_1 * beta_1 + grads.clone() * (1.0 - beta_1);
    let moment_2 = state.moment_2 * beta_2 + grads.square() * (1.0 - beta_2);
    let step = moment_1.clone() * step_factor / (moment_2.clone().sqrt() + epsilon);
    let params = state.params - step * lr;
    let average = match (state.average, decay) {
        (Some(a), Some(d)) => Some(a * d + params.clone() * (1.0 - d)),
        (a, _) => a,
    };
    FlatState { params, moment_1, moment_2, average }
}

/// [`super::flat_view`]: a copy of the segment.
pub fn flat_view<const D: usize>(x: &Tensor<1>, start: usize, shape: [usize; D]) -> Tensor<D> {
    let len = shape.iter().product::<usize>();
    x.clone().slice(start..start + len).reshape(shape)
}

/// [`super::FlatGather`]: one copy per tensor.
pub struct FlatGather {
    pub(super) flat: Tensor<1>,
}

impl FlatGather {
    pub fn new(flat: Tensor<1>) -> Self {
        Self { flat }
    }

    pub fn put<const D: usize>(&mut self, start: usize, tensor: Tensor<D>) {
        let len = tensor.shape().num_elements();
        self.flat = self.flat.clone().slice_assign(start..start + len, tensor.reshape([len]));
    }

    pub fn finish(self) -> Tensor<1> {
        self.flat
    }
}

/// [`super::flat_alignment`]: a view (a copy here) may start anywhere.
pub fn flat_alignment(_: &Tensor<1>) -> usize {
    1
}

/// [`super::channels_last_weight`]: `x` as it is.
pub fn channels_last_weight<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    x
}
