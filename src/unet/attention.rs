//! Self-attention over pixels: full softmax attention (used at the lowest resolution) and the
//! linear attention of Shen et al. (used at every other resolution, cost linear in pixels).
//! Both sit behind a GroupNorm pre-norm and a residual connection.

use super::blocks::same_size;
use crate::kernels::{NormAct, attention, group_norm_act, linear_attention};
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{GroupNorm, GroupNormConfig};
use burn::prelude::*;

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
        Self { to_qkv: qkv_conv(dim, hidden, device), to_out: Conv2dConfig::new([hidden, dim], [1, 1]).init(device), heads, dim_head }
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

/// A token mixer that keeps the input's shape; it adds `residual` to its output (a kernel may
/// fold the addition into its last step).
pub trait Mixer {
    fn mix(&self, x: Tensor<4>, residual: Tensor<4>) -> Tensor<4>;
}

impl Mixer for Attention {
    fn mix(&self, x: Tensor<4>, residual: Tensor<4>) -> Tensor<4> {
        let out = attention(same_size(&self.to_qkv, x), self.heads, self.dim_head);
        same_size(&self.to_out, out) + residual
    }
}

impl Mixer for LinearAttention {
    fn mix(&self, x: Tensor<4>, residual: Tensor<4>) -> Tensor<4> {
        let out = linear_attention(same_size(&self.to_qkv, x), self.heads, self.dim_head);
        let act = NormAct { residual: Some(residual), ..NormAct::default() };
        group_norm_act(same_size(&self.to_out, out), &self.out_norm, act)
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
        self.inner.mix(group_norm_act(x.clone(), &self.norm, NormAct::default()), x)
    }
}
