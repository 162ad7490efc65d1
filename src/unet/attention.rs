//! Self-attention over pixels: full softmax attention (used at the lowest resolution) and the
//! linear attention of Shen et al. (used at every other resolution, cost linear in pixels).
//! Both sit behind a GroupNorm pre-norm and a residual connection.

use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{GroupNorm, GroupNormConfig};
use burn::prelude::*;
use burn::tensor::activation::softmax;

/// Splits a `to_qkv` output `[B, 3·H·D, X, Y]` into q, k, v of shape `[B, H, D, X·Y]`.
fn split_heads(qkv: Tensor<4>, heads: usize) -> [Tensor<4>; 3] {
    let [b, c, x, y] = qkv.dims();
    let dim_head = c / 3 / heads;
    let mut parts = qkv.chunk(3, 1).into_iter().map(|p| p.reshape([b, heads, dim_head, x * y]));
    [parts.next().unwrap(), parts.next().unwrap(), parts.next().unwrap()]
}

fn qkv_conv(dim: usize, hidden: usize, device: &Device) -> Conv2d {
    Conv2dConfig::new([dim, hidden * 3], [1, 1]).with_bias(false).init(device)
}

/// Softmax attention: every pixel attends to every pixel.
#[derive(Module, Debug)]
pub struct Attention {
    pub to_qkv: Conv2d,
    pub to_out: Conv2d,
    pub heads: usize,
    pub dim_head: usize,
}

impl Attention {
    pub fn new(dim: usize, heads: usize, dim_head: usize, device: &Device) -> Self {
        let hidden = heads * dim_head;
        Self {
            to_qkv: qkv_conv(dim, hidden, device),
            to_out: Conv2dConfig::new([hidden, dim], [1, 1]).init(device),
            heads,
            dim_head,
        }
    }
}

/// Linear attention: softmax over features for q and over pixels for k, then (k vᵀ)ᵀ q.
#[derive(Module, Debug)]
pub struct LinearAttention {
    pub to_qkv: Conv2d,
    pub to_out: Conv2d,
    pub out_norm: GroupNorm,
    pub heads: usize,
    pub dim_head: usize,
}

impl LinearAttention {
    pub fn new(dim: usize, heads: usize, dim_head: usize, device: &Device) -> Self {
        let hidden = heads * dim_head;
        Self {
            to_qkv: qkv_conv(dim, hidden, device),
            to_out: Conv2dConfig::new([hidden, dim], [1, 1]).init(device),
            out_norm: GroupNormConfig::new(1, dim).init(device),
            heads,
            dim_head,
        }
    }
}

/// A token mixer that keeps the input's shape.
pub trait Mixer {
    fn mix(&self, x: Tensor<4>) -> Tensor<4>;
}

impl Mixer for Attention {
    fn mix(&self, x: Tensor<4>) -> Tensor<4> {
        let [b, _, h, w] = x.dims();
        let [q, k, v] = split_heads(self.to_qkv.forward(x), self.heads);
        let q = q * (self.dim_head as f64).powf(-0.5);
        let attn = softmax(q.swap_dims(2, 3).matmul(k), 3); // [B, H, i, j]
        let out = attn.matmul(v.swap_dims(2, 3)); // [B, H, i, D]
        let out = out.swap_dims(2, 3).reshape([b, self.heads * self.dim_head, h, w]);
        self.to_out.forward(out)
    }
}

impl Mixer for LinearAttention {
    fn mix(&self, x: Tensor<4>) -> Tensor<4> {
        let [b, _, h, w] = x.dims();
        let [q, k, v] = split_heads(self.to_qkv.forward(x), self.heads);
        let q = softmax(q, 2) * (self.dim_head as f64).powf(-0.5);
        let k = softmax(k, 3);
        let context = k.matmul(v.swap_dims(2, 3)); // [B, H, D, E]
        let out = context.swap_dims(2, 3).matmul(q); // [B, H, E, N]
        let out = out.reshape([b, self.heads * self.dim_head, h, w]);
        self.out_norm.forward(self.to_out.forward(out))
    }
}

/// x + f(GroupNorm₁(x)).
#[derive(Module, Debug)]
pub struct PreNormResidual<M> {
    pub norm: GroupNorm,
    pub inner: M,
}

impl<M: Mixer> PreNormResidual<M> {
    pub fn new(dim: usize, inner: M, device: &Device) -> Self {
        Self { norm: GroupNormConfig::new(1, dim).init(device), inner }
    }

    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        self.inner.mix(self.norm.forward(x.clone())) + x
    }
}
