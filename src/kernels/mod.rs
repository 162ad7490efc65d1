//! The U-Net's own GPU kernels, written in CubeCL: a piece of the network that Burn's operations
//! run as many kernel launches becomes one launch. On a GPU the network is launch-bound, so this,
//! not arithmetic, sets a sampling step's time.
//!
//! A kernel runs where its tensors live on Burn's CubeCL backend (wgpu natively, WebGPU in the
//! page), in sampling and, through Burn's backend extension with a backward pass, in training.
//! On the CPU (Burn's flex backend) the convolution, GroupNorm, both attention cores and the flat
//! optimiser have kernels of their own (`cpu/`), on the same terms. Everywhere else (the `fusion`
//! feature, weight standardisation on the CPU) the same function computes the same values with
//! Burn's operations, which is also the reference the kernels are tested against
//! (tests/kernels.rs).

#[cfg(not(feature = "fusion"))]
mod adam;
#[cfg(not(feature = "fusion"))]
mod attention;
#[cfg(not(feature = "fusion"))]
mod conv;
#[cfg(not(feature = "fusion"))]
mod cpu;
#[cfg(not(feature = "fusion"))]
mod extension;
#[cfg(not(feature = "fusion"))]
mod flat;
#[cfg(not(feature = "fusion"))]
mod group_norm;
#[cfg(not(feature = "fusion"))]
mod layout;
#[cfg(not(feature = "fusion"))]
mod linear_attention;
#[cfg(not(feature = "fusion"))]
mod standardize;

use burn::nn::GroupNorm;
use burn::prelude::*;
use burn::tensor::activation::{silu, softmax};
use burn::tensor::ops::ConvOptions;

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
/// [`on_kernel_device`] says so, or (for training) where [`on_kernel_backend`] does: there its
/// gradient is one kernel too.
pub fn group_norm_act(x: Tensor<4>, norm: &GroupNorm, act: NormAct) -> Tensor<4> {
    #[cfg(not(feature = "fusion"))]
    if let (true, Some(gamma), Some(beta)) = (on_kernel_backend(&x) || on_cpu_kernels(&x), &norm.gamma, &norm.beta) {
        use burn::backend::Dispatch;
        use extension::UNetOps;
        let [batch, channels, height, width] = x.dims();
        assert_eq!(channels, norm.num_channels, "GroupNorm over {} channels got {channels}", norm.num_channels);
        let (gamma, beta) = (gamma.val(), beta.val());
        let column = act.scale_shift.as_ref().map(|e| e.column);
        // An absent table or residual is passed as γ, untracked, and never read.
        let table = act.scale_shift.map_or_else(|| gamma.clone().set_require_grad(false).unsqueeze::<2>(), |e| {
            let [rows, columns] = e.table.dims();
            assert!(rows == batch && e.column + 2 * channels <= columns, "a scale and a shift per image and channel");
            e.table
        });
        let has_residual = act.residual.is_some();
        let residual = act.residual.map_or_else(|| gamma.clone().set_require_grad(false).unsqueeze::<4>(), |r| {
            assert_eq!(r.dims(), [batch, channels, height, width], "a residual of the output's shape");
            r
        });
        let y = <Dispatch as UNetOps>::group_norm_act(
            x.into_dispatch(),
            gamma.into_dispatch(),
            beta.into_dispatch(),
            table.into_dispatch(),
            residual.into_dispatch(),
            norm.num_groups,
            norm.epsilon,
            column,
            act.silu,
            has_residual,
        );
        return Tensor::from_dispatch(y);
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
/// (k vᵀ)ᵀ q, scaled by D^−½. One kernel where [`on_kernel_backend`] says so, and one for its
/// gradient under autodiff.
pub fn linear_attention(qkv: Tensor<4>, heads: usize, dim_head: usize) -> Tensor<4> {
    #[cfg(not(feature = "fusion"))]
    if (on_kernel_backend(&qkv) && linear_attention::supports(dim_head, qkv.dims()[2] * qkv.dims()[3])) || on_cpu_kernels(&qkv) {
        use extension::UNetOps;
        return Tensor::from_dispatch(<burn::backend::Dispatch as UNetOps>::linear_attention(qkv.into_dispatch(), heads, dim_head));
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
/// where [`on_kernel_backend`] says so, and under autodiff one for its gradient (up to 64 pixels).
pub fn attention(qkv: Tensor<4>, heads: usize, dim_head: usize) -> Tensor<4> {
    #[cfg(not(feature = "fusion"))]
    if (on_kernel_backend(&qkv) && attention::supports(qkv.dims()[2] * qkv.dims()[3])) || on_cpu_kernels(&qkv) {
        use extension::UNetOps;
        return Tensor::from_dispatch(<burn::backend::Dispatch as UNetOps>::attention(qkv.into_dispatch(), heads, dim_head));
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

/// Burn's `conv2d`, through the U-Net's own convolution kernel where it takes the options (one
/// group, stride 1, padding that keeps the size), and under autodiff through its own gradient
/// kernels too.
pub fn conv2d(x: Tensor<4>, weight: Tensor<4>, bias: Option<Tensor<1>>, options: ConvOptions<2>) -> Tensor<4> {
    #[cfg(not(feature = "fusion"))]
    if on_kernel_backend(&x) || (on_cpu_kernels(&x) && x.shape().num_elements() > 0 && cpu::conv::supports(x.dims()[1], weight.dims(), &options)) {
        use extension::UNetOps;
        let has_bias = bias.is_some();
        // An absent bias is passed as the weight, untracked, and never read.
        let bias = bias.map_or_else(|| weight.clone().detach().into_dispatch(), |b| b.into_dispatch());
        return Tensor::from_dispatch(<burn::backend::Dispatch as UNetOps>::conv2d(x.into_dispatch(), weight.into_dispatch(), bias, has_bias, options));
    }
    burn::tensor::module::conv2d(x, weight, bias, options)
}

/// A convolution kernel `[O, I, kh, kw]` standardised per output channel: `(w − mean) / √(var + ε)`
/// over its `I·kh·kw` values (biased variance). One kernel where [`on_kernel_backend`] says so,
/// and one for its gradient under autodiff; its output is laid out as Burn's convolutions read it.
pub fn standardize_weight(weight: Tensor<4>, epsilon: f64) -> Tensor<4> {
    #[cfg(not(feature = "fusion"))]
    if on_kernel_backend(&weight) {
        use extension::UNetOps;
        return Tensor::from_dispatch(<burn::backend::Dispatch as UNetOps>::standardize_weight(weight.into_dispatch(), epsilon));
    }
    standardize_weight_reference(weight, epsilon)
}

/// [`standardize_weight`] through Burn's operations.
pub fn standardize_weight_reference(weight: Tensor<4>, epsilon: f64) -> Tensor<4> {
    let [o, i, kh, kw] = weight.dims();
    let flat = weight.reshape([o, i * kh * kw]);
    let (var, mean) = flat.clone().var_mean_bias(1);
    ((flat - mean) / (var + epsilon).sqrt()).reshape([o, i, kh, kw])
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

    fn ranges(&self) -> impl Iterator<Item = std::ops::Range<usize>> + '_ {
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

/// Clips each tensor's gradient (`grads` laid out as `segments` says), takes an Adam step and
/// updates the average: three launches in all where [`on_kernel_device`] says so, one pass over
/// the buffers where [`on_cpu_device`] does.
pub fn adam_update(state: FlatState, grads: Tensor<1>, segments: &Segments, update: &AdamUpdate) -> FlatState {
    #[cfg(not(feature = "fusion"))]
    if on_kernel_device(&grads) {
        return adam::launch(state, grads, &segments.on_device, update);
    }
    #[cfg(not(feature = "fusion"))]
    if on_cpu_device(&grads) {
        return cpu::adam::update(state, grads, segments, update);
    }
    adam_update_reference(state, grads, segments, update)
}

/// [`adam_update`] through Burn's operations, as Burn's Adam and clipping compute it.
pub fn adam_update_reference(state: FlatState, mut grads: Tensor<1>, segments: &Segments, update: &AdamUpdate) -> FlatState {
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

/// `shape`'s worth of the flat `x` from `start` (a multiple of [`flat_alignment`]): a view
/// without a copy on the CubeCL backend.
pub fn flat_view<const D: usize>(x: &Tensor<1>, start: usize, shape: [usize; D]) -> Tensor<D> {
    #[cfg(not(feature = "fusion"))]
    if on_kernel_device(x) {
        return flat::view(x, start, shape);
    }
    let len = shape.iter().product::<usize>();
    x.clone().slice(start..start + len).reshape(shape)
}

/// Fills a flat buffer with tensors of any rank and strides, each in row-major order from its
/// start: a few launches in all where [`on_kernel_device`] says so (six tensors a launch), one
/// copy per tensor elsewhere.
pub struct FlatGather {
    flat: Tensor<1>,
    #[cfg(not(feature = "fusion"))]
    parts: Vec<(usize, burn_cubecl::tensor::CubeTensor)>,
    #[cfg(not(feature = "fusion"))]
    cpu_parts: Vec<(usize, burn::backend::flex::FlexTensor)>,
}

impl FlatGather {
    /// Over `flat`, whose other elements are kept.
    pub fn new(flat: Tensor<1>) -> Self {
        Self {
            flat,
            #[cfg(not(feature = "fusion"))]
            parts: vec![],
            #[cfg(not(feature = "fusion"))]
            cpu_parts: vec![],
        }
    }

    pub fn put<const D: usize>(&mut self, start: usize, tensor: Tensor<D>) {
        #[cfg(not(feature = "fusion"))]
        if on_kernel_device(&self.flat) {
            self.parts.push((start, layout::cube(tensor)));
            return;
        }
        #[cfg(not(feature = "fusion"))]
        if on_cpu_device(&self.flat) {
            let part = tensor.try_into_primitive::<burn::backend::Flex>().expect("a gradient on the flex backend");
            self.cpu_parts.push((start, part));
            return;
        }
        let len = tensor.shape().num_elements();
        self.flat = self.flat.clone().slice_assign(start..start + len, tensor.reshape([len]));
    }

    pub fn finish(self) -> Tensor<1> {
        #[cfg(not(feature = "fusion"))]
        if !self.parts.is_empty() {
            return flat::gather(self.flat, self.parts);
        }
        #[cfg(not(feature = "fusion"))]
        if !self.cpu_parts.is_empty() {
            return cpu::adam::gather(self.flat, self.cpu_parts);
        }
        self.flat
    }
}

/// Where in a flat buffer on `x`'s device a view may start: a multiple of this many elements.
pub fn flat_alignment(x: &Tensor<1>) -> usize {
    #[cfg(not(feature = "fusion"))]
    if on_kernel_device(x) {
        return flat::alignment(x);
    }
    1
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
