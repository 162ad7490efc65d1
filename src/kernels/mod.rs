//! The U-Net's own GPU kernels, written in CubeCL: a piece of the network that Burn's operations
//! run as many kernel launches becomes one launch. On a GPU the network is launch-bound, so this,
//! not arithmetic, sets a sampling step's time.
//!
//! A kernel runs where its tensors live on Burn's CubeCL backend (wgpu natively, WebGPU in the
//! page) without autodiff. Everywhere else (the CPU backend, training, the `fusion` feature) the
//! same function computes the same values with Burn's operations, which is also the reference the
//! kernels are tested against (tests/kernels.rs).

#[cfg(not(feature = "fusion"))]
mod attention;
#[cfg(not(feature = "fusion"))]
mod group_norm;
#[cfg(not(feature = "fusion"))]
mod layout;
#[cfg(not(feature = "fusion"))]
mod linear_attention;

use burn::nn::GroupNorm;
use burn::prelude::*;
use burn::tensor::activation::{silu, softmax};

/// A block's scale and shift from the time embedding: columns `column .. column + 2·C` of
/// `table` (`[B, N]`), the scale then the shift per channel. The table may hold every block's
/// (sampling projects the embedding for all blocks with one matmul).
#[derive(Clone, Debug)]
pub struct ScaleShift {
    pub table: Tensor<2>,
    pub column: usize,
}

impl ScaleShift {
    /// A table holding one block's scale and shift, `[B, 2·C]`.
    pub fn whole(table: Tensor<2>) -> Self {
        Self { table, column: 0 }
    }

    /// This block's `[B, 2·C]`.
    fn columns(self, channels: usize) -> Tensor<2> {
        let batch = self.table.dims()[0];
        self.table.slice([0..batch, self.column..self.column + 2 * channels])
    }
}

/// What follows a GroupNorm (with its own affine γ, β) in one kernel.
#[derive(Clone, Debug, Default)]
pub struct NormAct {
    /// Applied as `y · (scale + 1) + shift`.
    pub scale_shift: Option<ScaleShift>,
    /// SiLU after the scale and shift.
    pub silu: bool,
    /// `[B, C, H, W]`, added last (a residual connection).
    pub residual: Option<Tensor<4>>,
}

/// `GroupNorm(x)`, then [`NormAct`]'s scale and shift, SiLU and residual, as one kernel where
/// [`on_kernel_device`] says so.
pub fn group_norm_act(x: Tensor<4>, norm: &GroupNorm, act: NormAct) -> Tensor<4> {
    #[cfg(not(feature = "fusion"))]
    if let (true, Some(gamma), Some(beta)) = (on_kernel_device(&x), &norm.gamma, &norm.beta) {
        return group_norm::launch(x, gamma.val(), beta.val(), norm, act);
    }
    group_norm_act_reference(x, norm, act)
}

/// [`group_norm_act`] through Burn's operations: what the CPU and training run.
pub fn group_norm_act_reference(x: Tensor<4>, norm: &GroupNorm, act: NormAct) -> Tensor<4> {
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

/// Linear attention's core, from the `to_qkv` projection `[B, 3·H·D, X, Y]` to the heads' output
/// `[B, H·D, X, Y]` (before `to_out`): softmax(q) over features, softmax(k) over pixels, then
/// (k vᵀ)ᵀ q, scaled by D^−½. One kernel where [`on_kernel_device`] says so.
pub fn linear_attention(qkv: Tensor<4>, heads: usize, dim_head: usize) -> Tensor<4> {
    #[cfg(not(feature = "fusion"))]
    if on_kernel_device(&qkv) && linear_attention::supports(dim_head, qkv.dims()[2] * qkv.dims()[3]) {
        return linear_attention::launch(qkv, heads, dim_head);
    }
    linear_attention_reference(qkv, heads, dim_head)
}

/// [`linear_attention`] through Burn's operations.
pub fn linear_attention_reference(qkv: Tensor<4>, heads: usize, dim_head: usize) -> Tensor<4> {
    let [b, _, x, y] = qkv.dims();
    let [q, k, v] = crate::unet::attention::split_heads(qkv, heads);
    let q = softmax(q, 2) * (dim_head as f64).powf(-0.5);
    let k = softmax(k, 3);
    let context = k.matmul(v.swap_dims(2, 3)); // [B, H, D, E]
    let out = context.swap_dims(2, 3).matmul(q); // [B, H, E, N]
    out.reshape([b, heads * dim_head, x, y])
}

/// Softmax attention's core, from the `to_qkv` projection `[B, 3·H·D, X, Y]` to the heads' output
/// `[B, H·D, X, Y]` (before `to_out`): softmax(D^−½ qᵀk) over the keys, applied to v. One kernel
/// where [`on_kernel_device`] says so.
pub fn attention(qkv: Tensor<4>, heads: usize, dim_head: usize) -> Tensor<4> {
    #[cfg(not(feature = "fusion"))]
    if on_kernel_device(&qkv) && attention::supports(qkv.dims()[2] * qkv.dims()[3]) {
        return attention::launch(qkv, heads, dim_head);
    }
    attention_reference(qkv, heads, dim_head)
}

/// [`attention`] through Burn's operations.
pub fn attention_reference(qkv: Tensor<4>, heads: usize, dim_head: usize) -> Tensor<4> {
    let [b, _, x, y] = qkv.dims();
    let [q, k, v] = crate::unet::attention::split_heads(qkv, heads);
    let q = q * (dim_head as f64).powf(-0.5);
    let attn = softmax(q.swap_dims(2, 3).matmul(k), 3); // [B, H, i, j]
    let out = attn.matmul(v.swap_dims(2, 3)); // [B, H, i, D]
    out.swap_dims(2, 3).reshape([b, heads * dim_head, x, y])
}

/// A convolution kernel (`[O, I, KH, KW]`) laid out channels-last, as Burn's convolutions read
/// it: laid out once, it spares a copy of the kernel on every call. Other tensors, and tensors off
/// the CubeCL backend, are returned as they are.
pub fn channels_last_weight<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    #[cfg(not(feature = "fusion"))]
    if D == 4 && on_kernel_device(&x) {
        return layout::to_channels_last(x);
    }
    x
}

/// Whether `x` lives where the kernels run: Burn's CubeCL backend in f32, without autodiff (the
/// kernels have no backward pass) and without fusion (they are not registered with its fuser).
pub fn on_kernel_device<const D: usize>(x: &Tensor<D>) -> bool {
    !cfg!(feature = "fusion")
        && enabled()
        && x.dtype() == burn::tensor::DType::F32
        && !x.device().is_autodiff()
        && matches!(x.device().as_dispatch(), burn::backend::DispatchDevice::Cube(_))
}

static DISABLED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Turns the kernels off (or on again) process-wide: every call then takes Burn's operations.
/// For measuring what the kernels save, and a way out should a GPU mis-run them.
pub fn set_enabled(on: bool) {
    DISABLED.store(!on, std::sync::atomic::Ordering::Relaxed);
}

fn enabled() -> bool {
    !DISABLED.load(std::sync::atomic::Ordering::Relaxed)
}
