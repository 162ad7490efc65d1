//! The U-Net's own GPU kernels, written in CubeCL: a piece of the network that Burn's operations
//! run as many kernel launches becomes one launch. On a GPU the network is launch-bound, so this,
//! not arithmetic, sets a sampling step's time.
//!
//! A kernel runs where its tensors live on Burn's CubeCL backend (wgpu natively, WebGPU in the
//! page), in sampling and, through Burn's backend extension with a backward pass, in training.
//! On the CPU (Burn's flex backend) the convolution, GroupNorm, both attention cores and the flat
//! optimiser have kernels of their own (`cpu/`), on the same terms. Everywhere else (the `fusion`
//! feature, weight standardisation on the CPU) the same function computes the same values with
//! Burn's operations: its twin in [`naive`], which is also the reference the kernels are tested
//! against (tests/kernels.rs). `route.rs` picks one or the other for each operation.
//!
//! This module imports nothing of the crate's: the U-Net calls it, never the other way round.

/// Compiles its items only without Burn's `fusion` feature: the one gate on the kernels. Fusion
/// wraps the CubeCL backend in its fused one, which the kernels are not written for (nor
/// registered with its fuser); there every operation is its [`naive`] twin, and
/// [`on_kernel_backend`] and [`on_cpu_kernels`] say no.
macro_rules! without_fusion {
    ($($item:item)*) => { $(#[cfg(not(feature = "fusion"))] $item)* };
}

without_fusion! {
    mod adam;
    mod attention;
    mod conv;
    mod cpu;
    mod extension;
    mod flat;
    mod group_norm;
    mod heads;
    mod layout;
    mod linear_attention;
    mod route;
    mod standardize;
    use route as ops;
}
#[cfg(feature = "fusion")]
use naive as ops;

pub mod naive;

pub use ops::{
    FlatGather, adam_update, attention, channels_last_weight, conv2d, flat_alignment, flat_view, group_norm_act, linear_attention, standardize_weight,
};

use burn::prelude::*;

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

/// Where the tensors of a flat buffer lie: tensor `i` takes `lens[i]` elements from `starts[i]`,
/// in order, each start a multiple of [`flat_alignment`] (padding between them is never read).
#[derive(Clone, Debug)]
pub struct Segments {
    pub starts: Vec<usize>,
    pub lens: Vec<usize>,
    /// The starts, then the lengths.
    on_device: Tensor<1, Int>,
}

impl Segments {
    pub fn new(starts: Vec<usize>, lens: Vec<usize>, device: &Device) -> Self {
        let table: Vec<i32> = starts.iter().chain(&lens).map(|&x| i32::try_from(x).expect("a flat buffer of under 2³¹ elements")).collect();
        let on_device = Tensor::<1, Int>::from_data(TensorData::new(table.clone(), [table.len()]), device);
        Self { starts, lens, on_device }
    }

    /// Where each tensor lies in the flat buffers (what lies between is padding).
    pub fn ranges(&self) -> impl Iterator<Item = std::ops::Range<usize>> + '_ {
        self.starts.iter().zip(&self.lens).map(|(&s, &l)| s..s + l)
    }
}

/// The flat buffers [`adam_update`] reads and writes, laid out as one [`Segments`] says.
#[derive(Clone, Debug)]
pub struct FlatState {
    pub params: Tensor<1>,
    pub moment_1: Tensor<1>,
    pub moment_2: Tensor<1>,
    /// The parameters' exponential moving average, when there is one.
    pub average: Option<Tensor<1>>,
}

/// One step of Burn's Adam (its constants for this step), with per-tensor clipping and the average.
#[derive(Clone, Debug)]
pub struct AdamUpdate {
    pub lr: f64,
    pub beta_1: f32,
    pub beta_2: f32,
    /// √(1 − β₂ᵗ) / (1 − β₁ᵗ): both bias corrections.
    pub step_factor: f32,
    /// ε · √(1 − β₂ᵗ), as Burn adds it.
    pub epsilon: f32,
    /// Each tensor's gradient is scaled to at most this L2 norm.
    pub max_norm: Option<f32>,
    /// average ← decay · average + (1 − decay) · new parameters.
    pub decay: Option<f64>,
}

/// Whether `x` lives where the kernels run as they are: [`on_kernel_backend`] without autodiff.
pub fn on_kernel_device<const D: usize>(x: &Tensor<D>) -> bool {
    on_kernel_backend(x) && !x.device().is_autodiff()
}

/// Whether `x` lives where the kernels run: Burn's CubeCL backend in f32, without fusion (they are
/// not registered with its fuser), and under autodiff only with the `train` feature (which brings
/// their backward passes).
pub fn on_kernel_backend<const D: usize>(x: &Tensor<D>) -> bool {
    kernels_take(x) && matches!(x.device().inner().as_dispatch(), burn::backend::DispatchDevice::Cube(_))
}

/// Whether `x` lives where the CPU kernels run as they are: [`on_cpu_kernels`] without autodiff.
pub fn on_cpu_device<const D: usize>(x: &Tensor<D>) -> bool {
    on_cpu_kernels(x) && !x.device().is_autodiff()
}

/// Whether `x` lives where the CPU kernels run: Burn's flex backend, on the same terms as
/// [`on_kernel_backend`].
pub fn on_cpu_kernels<const D: usize>(x: &Tensor<D>) -> bool {
    kernels_take(x) && matches!(x.device().inner().as_dispatch(), burn::backend::DispatchDevice::Flex(_))
}

/// The terms both kinds of kernel share: switched on, f32, no fusion, autodiff only with `train`.
fn kernels_take<const D: usize>(x: &Tensor<D>) -> bool {
    !cfg!(feature = "fusion") && enabled() && x.dtype() == burn::tensor::DType::F32 && (cfg!(feature = "train") || !x.device().is_autodiff())
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
