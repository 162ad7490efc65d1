//! Each operation through a kernel where one runs ([`on_kernel_backend`], [`on_cpu_kernels`]),
//! and through its [`naive`] twin everywhere else. What [`super`] exports in a build without
//! Burn's `fusion` feature (with it, the twins alone).

use super::extension::UNetOps;
use super::{AdamUpdate, FlatState, NormAct, Segments, naive};
use super::{adam, cpu, flat, layout};
use super::{on_cpu_device, on_cpu_kernels, on_kernel_backend, on_kernel_device};
use burn::backend::Dispatch;
use burn::nn::GroupNorm;
use burn::prelude::*;
use burn::tensor::ops::ConvOptions;

/// `GroupNorm(x)`, then [`NormAct`]'s scale and shift, SiLU and residual, as one kernel where
/// [`on_kernel_device`] says so, or (for training) where [`on_kernel_backend`] does: there its
/// gradient is one kernel too.
pub fn group_norm_act(x: Tensor<4>, norm: &GroupNorm, act: NormAct) -> Tensor<4> {
    if let (true, Some(gamma), Some(beta)) = (on_kernel_backend(&x) || on_cpu_kernels(&x), &norm.gamma, &norm.beta) {
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
    naive::group_norm_act(x, norm, act)
}

/// Linear attention's core, from the `to_qkv` projection `[B, 3·H·D, X, Y]` to the heads' output
/// `[B, H·D, X, Y]` (before `to_out`): softmax(q) over features, softmax(k) over pixels, then
/// (k vᵀ)ᵀ q, scaled by D^−½. One kernel where [`on_kernel_backend`] says so, and one for its
/// gradient under autodiff.
pub fn linear_attention(qkv: Tensor<4>, heads: usize, dim_head: usize) -> Tensor<4> {
    if (on_kernel_backend(&qkv) && super::linear_attention::supports(dim_head, qkv.dims()[2] * qkv.dims()[3])) || on_cpu_kernels(&qkv) {
        return Tensor::from_dispatch(<Dispatch as UNetOps>::linear_attention(qkv.into_dispatch(), heads, dim_head));
    }
    naive::linear_attention(qkv, heads, dim_head)
}

/// Softmax attention's core, from the `to_qkv` projection `[B, 3·H·D, X, Y]` to the heads' output
/// `[B, H·D, X, Y]` (before `to_out`): softmax(D^−½ qᵀk) over the keys, applied to v. One kernel
/// where [`on_kernel_backend`] says so, and under autodiff one for its gradient (up to 64 pixels).
pub fn attention(qkv: Tensor<4>, heads: usize, dim_head: usize) -> Tensor<4> {
    if (on_kernel_backend(&qkv) && super::attention::supports(qkv.dims()[2] * qkv.dims()[3])) || on_cpu_kernels(&qkv) {
        return Tensor::from_dispatch(<Dispatch as UNetOps>::attention(qkv.into_dispatch(), heads, dim_head));
    }
    naive::attention(qkv, heads, dim_head)
}

/// Burn's `conv2d`, through the U-Net's own convolution kernel where it takes the options (one
/// group, stride 1, padding that keeps the size), and under autodiff through its own gradient
/// kernels too.
pub fn conv2d(x: Tensor<4>, weight: Tensor<4>, bias: Option<Tensor<1>>, options: ConvOptions<2>) -> Tensor<4> {
    if on_kernel_backend(&x) || (on_cpu_kernels(&x) && x.shape().num_elements() > 0 && cpu::conv::supports(x.dims()[1], weight.dims(), &options)) {
        let has_bias = bias.is_some();
        // An absent bias is passed as the weight, untracked, and never read.
        let bias = bias.map_or_else(|| weight.clone().detach().into_dispatch(), |b| b.into_dispatch());
        return Tensor::from_dispatch(<Dispatch as UNetOps>::conv2d(x.into_dispatch(), weight.into_dispatch(), bias, has_bias, options));
    }
    naive::conv2d(x, weight, bias, options)
}

/// A convolution kernel `[O, I, kh, kw]` standardised per output channel: `(w − mean) / √(var + ε)`
/// over its `I·kh·kw` values (biased variance). One kernel where [`on_kernel_backend`] says so,
/// and one for its gradient under autodiff; its output is laid out as Burn's convolutions read it.
pub fn standardize_weight(weight: Tensor<4>, epsilon: f64) -> Tensor<4> {
    if on_kernel_backend(&weight) {
        return Tensor::from_dispatch(<Dispatch as UNetOps>::standardize_weight(weight.into_dispatch(), epsilon));
    }
    naive::standardize_weight(weight, epsilon)
}

/// Clips each tensor's gradient (`grads` laid out as `segments` says), takes an Adam step and
/// updates the average: three launches in all where [`on_kernel_device`] says so, one pass over
/// the buffers where [`on_cpu_device`] does.
pub fn adam_update(state: FlatState, grads: Tensor<1>, segments: &Segments, update: &AdamUpdate) -> FlatState {
    if on_kernel_device(&grads) {
        return adam::launch(state, grads, &segments.on_device, update);
    }
    if on_cpu_device(&grads) {
        return cpu::adam::update(state, grads, segments, update);
    }
    naive::adam_update(state, grads, segments, update)
}

/// `shape`'s worth of the flat `x` from `start` (a multiple of [`flat_alignment`]): a view
/// without a copy on the CubeCL backend.
pub fn flat_view<const D: usize>(x: &Tensor<1>, start: usize, shape: [usize; D]) -> Tensor<D> {
    if on_kernel_device(x) {
        return flat::view(x, start, shape);
    }
    naive::flat_view(x, start, shape)
}

/// Fills a flat buffer with tensors of any rank and strides, each in row-major order from its
/// start: a few launches in all where [`on_kernel_device`] says so (six tensors a launch), one
/// copy per tensor elsewhere.
pub struct FlatGather {
    naive: naive::FlatGather,
    parts: Vec<(usize, burn_cubecl::tensor::CubeTensor)>,
    cpu_parts: Vec<(usize, burn::backend::flex::FlexTensor)>,
}

impl FlatGather {
    /// Over `flat`, whose other elements are kept.
    pub fn new(flat: Tensor<1>) -> Self {
        Self { naive: naive::FlatGather::new(flat), parts: vec![], cpu_parts: vec![] }
    }

    pub fn put<const D: usize>(&mut self, start: usize, tensor: Tensor<D>) {
        if on_kernel_device(&self.naive.flat) {
            self.parts.push((start, layout::cube(tensor)));
        } else if on_cpu_device(&self.naive.flat) {
            let part = tensor.try_into_primitive::<burn::backend::Flex>().expect("a gradient on the flex backend");
            self.cpu_parts.push((start, part));
        } else {
            self.naive.put(start, tensor);
        }
    }

    pub fn finish(self) -> Tensor<1> {
        let flat = self.naive.finish();
        if !self.parts.is_empty() {
            return flat::gather(flat, self.parts);
        }
        if !self.cpu_parts.is_empty() {
            return cpu::adam::gather(flat, self.cpu_parts);
        }
        flat
    }
}

/// Where in a flat buffer on `x`'s device a view may start: a multiple of this many elements.
pub fn flat_alignment(x: &Tensor<1>) -> usize {
    if on_kernel_device(x) {
        return flat::alignment(x);
    }
    naive::flat_alignment(x)
}

/// A convolution kernel (`[O, I, KH, KW]`) laid out channels-last, as Burn's convolutions read
/// it: laid out once, it spares a copy of the kernel on every call. Other tensors, and tensors off
/// the CubeCL backend, are returned as they are.
pub fn channels_last_weight<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    if D == 4 && on_kernel_device(&x) {
        return layout::to_channels_last(x);
    }
    naive::channels_last_weight(x)
}
