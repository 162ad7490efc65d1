//! The U-Net's convolutional pieces: ResNet blocks with time scale/shift (Wide ResNet with
//! weight-standardised convolutions, as in the Annotated Diffusion Model), ConvNeXt blocks, and
//! the down/up resampling layers.

use crate::kernels::{self, NormAct, ScaleShift, group_norm_act, standardize_weight};
use burn::module::{Module, Param};
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{GroupNorm, GroupNormConfig, Linear, LinearConfig, PaddingConfig2d};
use burn::prelude::*;
use burn::tensor::activation::{gelu, silu};
use burn::tensor::ops::ConvOptions;

pub fn conv(dim_in: usize, dim_out: usize, kernel: usize, device: &Device) -> Conv2d {
    let pad = kernel / 2;
    Conv2dConfig::new([dim_in, dim_out], [kernel, kernel]).with_padding(PaddingConfig2d::Explicit(pad, pad, pad, pad)).init(device)
}

/// A convolution whose kernel is standardised (zero mean, unit variance per output channel)
/// on every forward pass; it pairs well with GroupNorm (Qiao et al.).
#[derive(Module, Debug)]
pub struct WeightStandardizedConv2d {
    pub conv: Conv2d,
    /// The kernel is stored standardised already ([`WeightStandardizedConv2d::for_inference`]):
    /// sampling skips the five kernels per conv that recompute it on every step.
    pub prestandardized: bool,
}

impl WeightStandardizedConv2d {
    pub fn new(conv: Conv2d) -> Self {
        Self { conv, prestandardized: false }
    }

    fn standardized_weight(&self) -> Tensor<4> {
        let weight = self.conv.weight.val();
        if self.prestandardized {
            return weight;
        }
        standardize_weight(weight, 1e-5)
    }

    /// A copy for sampling only, with the kernel standardised once; not for training or saving.
    pub fn for_inference(&self) -> Self {
        let conv = Conv2d { weight: Param::from_tensor(self.standardized_weight()), ..self.conv.clone() };
        Self { conv, prestandardized: true }
    }

    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        same_size_conv(&self.conv, self.standardized_weight(), x)
    }
}

/// `conv` (one of [`conv`]'s, padded to keep the image's size) through [`kernels::conv2d`]: the
/// U-Net's own convolution kernel, and training's weight gradient in a few launches.
pub fn same_size(conv: &Conv2d, x: Tensor<4>) -> Tensor<4> {
    same_size_conv(conv, conv.weight.val(), x)
}

/// [`same_size`] with `weight` in place of the convolution's own.
fn same_size_conv(conv: &Conv2d, weight: Tensor<4>, x: Tensor<4>) -> Tensor<4> {
    let pad = weight.dims()[2] / 2;
    let options = ConvOptions::new([1, 1], [pad, pad], [1, 1], 1);
    kernels::conv2d(x, weight, conv.bias.as_ref().map(|b| b.val()), options)
}

/// WS-conv 3×3 → GroupNorm → optional (scale + 1, shift) → SiLU.
#[derive(Module, Debug)]
pub struct Block {
    pub proj: WeightStandardizedConv2d,
    pub norm: GroupNorm,
}

impl Block {
    pub fn new(dim: usize, dim_out: usize, groups: usize, device: &Device) -> Self {
        Self { proj: WeightStandardizedConv2d::new(conv(dim, dim_out, 3, device)), norm: GroupNormConfig::new(groups, dim_out).init(device) }
    }

    fn for_inference(&self) -> Self {
        Self { proj: self.proj.for_inference(), norm: self.norm.clone() }
    }

    /// `residual` is added after the SiLU.
    pub fn forward(&self, x: Tensor<4>, scale_shift: Option<ScaleShift>, residual: Option<Tensor<4>>) -> Tensor<4> {
        group_norm_act(self.proj.forward(x), &self.norm, NormAct { scale_shift, silu: true, residual })
    }
}

/// Two [`Block`]s; the time embedding sets the first one's scale and shift.
#[derive(Module, Debug)]
pub struct ResnetBlock {
    pub mlp: Linear,
    pub block1: Block,
    pub block2: Block,
    pub res_conv: Option<Conv2d>,
}

impl ResnetBlock {
    pub fn new(dim: usize, dim_out: usize, time_dim: usize, groups: usize, device: &Device) -> Self {
        Self {
            mlp: LinearConfig::new(time_dim, dim_out * 2).init(device),
            block1: Block::new(dim, dim_out, groups, device),
            block2: Block::new(dim_out, dim_out, groups, device),
            res_conv: (dim != dim_out).then(|| conv(dim, dim_out, 1, device)),
        }
    }

    fn for_inference(&self) -> Self {
        Self { block1: self.block1.for_inference(), block2: self.block2.for_inference(), ..self.clone() }
    }

    /// `time_emb`: the time embedding through [`ResBlock::activate_time`] (SiLU); `projected`:
    /// this block's `mlp` of it, when the U-Net computed every block's at once.
    pub fn forward(&self, x: Tensor<4>, time_emb: Tensor<2>, projected: Option<ScaleShift>) -> Tensor<4> {
        let scale_shift = projected.unwrap_or_else(|| ScaleShift::whole(self.mlp.forward(time_emb)));
        let h = self.block1.forward(x.clone(), Some(scale_shift), None);
        self.block2.forward(h, None, Some(residual(&self.res_conv, x)))
    }
}

fn residual(res_conv: &Option<Conv2d>, x: Tensor<4>) -> Tensor<4> {
    match res_conv {
        Some(c) => same_size(c, x),
        None => x,
    }
}

/// ConvNeXt block (Liu et al.): depthwise 7×7, time added as a bias, then an inverted bottleneck.
#[derive(Module, Debug)]
pub struct ConvNextBlock {
    pub mlp: Linear,
    pub ds_conv: Conv2d,
    pub norm1: GroupNorm,
    pub conv1: Conv2d,
    pub norm2: GroupNorm,
    pub conv2: Conv2d,
    pub res_conv: Option<Conv2d>,
}

impl ConvNextBlock {
    pub fn new(dim: usize, dim_out: usize, time_dim: usize, mult: usize, device: &Device) -> Self {
        let hidden = dim_out * mult;
        Self {
            mlp: LinearConfig::new(time_dim, dim).init(device),
            ds_conv: Conv2dConfig::new([dim, dim], [7, 7]).with_padding(PaddingConfig2d::Explicit(3, 3, 3, 3)).with_groups(dim).init(device),
            norm1: GroupNormConfig::new(1, dim).init(device),
            conv1: conv(dim, hidden, 3, device),
            norm2: GroupNormConfig::new(1, hidden).init(device),
            conv2: conv(hidden, dim_out, 3, device),
            res_conv: (dim != dim_out).then(|| conv(dim, dim_out, 1, device)),
        }
    }

    /// `time_emb`: the time embedding through [`ResBlock::activate_time`] (GELU).
    pub fn forward(&self, x: Tensor<4>, time_emb: Tensor<2>) -> Tensor<4> {
        let cond = self.mlp.forward(time_emb).unsqueeze_dims::<4>(&[2, 3]);
        let h = self.ds_conv.forward(x.clone()) + cond;
        let h = gelu(same_size(&self.conv1, group_norm_act(h, &self.norm1, NormAct::default())));
        let h = same_size(&self.conv2, group_norm_act(h, &self.norm2, NormAct::default()));
        h + residual(&self.res_conv, x)
    }
}

/// The residual block of a U-Net level, of either kind.
// Burn's Module derive needs its fields by value (Box<_> is no Module), and the two differ by 15 %.
#[allow(clippy::large_enum_variant)]
#[derive(Module, Debug)]
pub enum ResBlock {
    Resnet(ResnetBlock),
    ConvNext(ConvNextBlock),
}

impl ResBlock {
    /// A copy for sampling only: weight-standardised kernels computed once.
    pub fn for_inference(&self) -> Self {
        match self {
            Self::Resnet(b) => Self::Resnet(b.for_inference()),
            Self::ConvNext(b) => Self::ConvNext(b.clone()),
        }
    }

    /// The time embedding as this kind of block reads it: every block of a U-Net applies the same
    /// activation to the same embedding, so the U-Net computes it once per forward.
    pub fn activate_time(&self, time_emb: Tensor<2>) -> Tensor<2> {
        match self {
            Self::Resnet(_) => silu(time_emb),
            Self::ConvNext(_) => gelu(time_emb),
        }
    }

    /// `time_emb`: from [`ResBlock::activate_time`]; `projected`: a ResNet block's `mlp` of it,
    /// computed already ([`crate::unet::embedding::TimeProjections`]).
    pub fn forward(&self, x: Tensor<4>, time_emb: Tensor<2>, projected: Option<ScaleShift>) -> Tensor<4> {
        match self {
            Self::Resnet(b) => b.forward(x, time_emb, projected),
            Self::ConvNext(b) => b.forward(x, time_emb),
        }
    }
}

/// Changes resolution between U-Net levels (or, at the last level, only the width).
#[derive(Module, Debug)]
pub enum Resample {
    /// Space-to-depth (2×2 pixels → 4 channels) then a 1×1 conv: no strided conv, no pooling.
    Down(Conv2d),
    /// Nearest-neighbour ×2 then a 3×3 conv.
    Up(Conv2d),
    /// A 3×3 conv at the same resolution.
    Same(Conv2d),
}

impl Resample {
    pub fn down(dim: usize, dim_out: usize, device: &Device) -> Self {
        Self::Down(conv(dim * 4, dim_out, 1, device))
    }

    pub fn up(dim: usize, dim_out: usize, device: &Device) -> Self {
        Self::Up(conv(dim, dim_out, 3, device))
    }

    pub fn same(dim: usize, dim_out: usize, device: &Device) -> Self {
        Self::Same(conv(dim, dim_out, 3, device))
    }

    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        match self {
            Self::Down(c) => same_size(c, space_to_depth(x)),
            Self::Up(c) => same_size(c, upsample_nearest(x)),
            Self::Same(c) => same_size(c, x),
        }
    }
}

/// `b c (h 2) (w 2) -> b (c 2 2) h w`, einops' order.
pub fn space_to_depth(x: Tensor<4>) -> Tensor<4> {
    let [b, c, h, w] = x.dims();
    x.reshape([b, c, h / 2, 2, w / 2, 2]).permute([0, 1, 3, 5, 2, 4]).reshape([b, c * 4, h / 2, w / 2])
}

/// Nearest-neighbour ×2 by broadcasting: each pixel becomes a 2×2 patch.
pub fn upsample_nearest(x: Tensor<4>) -> Tensor<4> {
    let [b, c, h, w] = x.dims();
    x.reshape([b, c, h, 1, w, 1]).expand([b, c, h, 2, w, 2]).reshape([b, c, h * 2, w * 2])
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::Distribution;

    #[test]
    fn the_inference_copy_stores_the_standardised_kernel_and_skips_recomputing_it() {
        let device = Device::flex();
        let mut raw = conv(3, 4, 3, &device);
        // Far from standardised: mean 1, standard deviation 3.
        raw.weight = Param::from_tensor(Tensor::random([4, 3, 3, 3], Distribution::Normal(1.0, 3.0), &device));
        let ws = WeightStandardizedConv2d::new(raw);
        let fast = ws.for_inference();
        let (var, mean) = fast.conv.weight.val().reshape([4, 27]).var_mean_bias(1);
        assert!(mean.abs().max().into_scalar::<f32>() < 1e-5);
        assert!((var - 1.0).abs().max().into_scalar::<f32>() < 1e-3);

        let x = Tensor::<4>::random([2, 3, 8, 8], Distribution::Normal(0.0, 1.0), &device);
        let diff = (ws.forward(x.clone()) - fast.forward(x.clone())).abs().max().into_scalar::<f32>();
        assert!(diff < 1e-4, "{diff}");
        // The flag is what skips the work: the raw kernel marked standardised gives another result.
        let wrong = WeightStandardizedConv2d { prestandardized: true, ..ws.clone() };
        assert!((wrong.forward(x.clone()) - ws.forward(x)).abs().max().into_scalar::<f32>() > 0.1);
    }
}
