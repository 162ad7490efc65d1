//! The noise-prediction U-Net of *The Annotated Diffusion Model*, with an optional class
//! embedding for classifier-free guidance.

pub mod attention;
pub mod blocks;
pub mod embedding;

use crate::kernels::ScaleShift;
use crate::sampler::NoisePredictor;
use attention::{Attention, LinearAttention, PreNormResidual};
use blocks::{ConvNextBlock, ResBlock, Resample, ResnetBlock, conv};
use burn::module::{ModuleMapper, Param};
use burn::nn::conv::Conv2d;
use burn::prelude::*;
use embedding::{ClassEmbedding, TimeMlp, TimeProjections};
use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BlockKind {
    Resnet,
    ConvNext,
}

/// Everything needed to rebuild a U-Net: saved beside its weights.
#[derive(Config, Debug, PartialEq)]
pub struct UNetConfig {
    /// Base width; level k has `dim · dim_mults[k]` channels. The blog uses the image size, 28.
    #[config(default = 28)]
    pub dim: usize,
    #[config(default = "vec![1, 2, 4]")]
    pub dim_mults: Vec<usize>,
    /// Image channels (1 for Fashion-MNIST).
    #[config(default = 1)]
    pub channels: usize,
    /// Image side length; must be divisible by 2^(levels − 1).
    #[config(default = 28)]
    pub image_size: usize,
    #[config(default = "BlockKind::Resnet")]
    pub block: BlockKind,
    /// GroupNorm groups inside ResNet blocks.
    #[config(default = 4)]
    pub resnet_block_groups: usize,
    /// Width multiplier inside ConvNeXt blocks.
    #[config(default = 2)]
    pub convnext_mult: usize,
    #[config(default = 4)]
    pub attn_heads: usize,
    #[config(default = 32)]
    pub attn_dim_head: usize,
    /// Number of classes for conditioning; 0 for an unconditional model.
    #[config(default = 0)]
    pub num_classes: usize,
}

impl UNetConfig {
    /// The model the page trains from scratch in the tab: small enough to learn something in
    /// minutes, even on the CPU path.
    pub fn small() -> Self {
        Self::new().with_dim(8).with_dim_mults(vec![1, 2]).with_attn_heads(1).with_attn_dim_head(8).with_num_classes(10)
    }

    /// Checks the combination before any tensor is made, so a bad request is an error, not a panic.
    pub fn validate(&self) -> Result<(), String> {
        if self.dim < 2 || self.dim_mults.is_empty() || self.channels == 0 {
            return Err("dim must be ≥ 2, dim_mults non-empty and channels ≥ 1".into());
        }
        let levels = self.dim_mults.len();
        let factor = 1usize << (levels - 1);
        if self.image_size == 0 || !self.image_size.is_multiple_of(factor) {
            return Err(format!("image size {} is not divisible by 2^{} for {levels} levels", self.image_size, levels - 1));
        }
        if self.block == BlockKind::Resnet {
            for m in std::iter::once(1).chain(self.dim_mults.iter().copied()) {
                if !(self.dim * m).is_multiple_of(self.resnet_block_groups) {
                    return Err(format!("width {} is not divisible by {} GroupNorm groups", self.dim * m, self.resnet_block_groups));
                }
            }
        }
        Ok(())
    }

    pub fn init(&self, device: &Device) -> UNet {
        self.validate().expect("invalid U-Net configuration");
        let dim = self.dim;
        let time_dim = dim * 4;
        let dims: Vec<usize> = std::iter::once(dim).chain(self.dim_mults.iter().map(|m| dim * m)).collect();
        let in_out: Vec<(usize, usize)> = dims.windows(2).map(|w| (w[0], w[1])).collect();
        let block = |a: usize, b: usize| match self.block {
            BlockKind::Resnet => ResBlock::Resnet(ResnetBlock::new(a, b, time_dim, self.resnet_block_groups, device)),
            BlockKind::ConvNext => ResBlock::ConvNext(ConvNextBlock::new(a, b, time_dim, self.convnext_mult, device)),
        };
        let linear_attn = |d: usize| PreNormResidual::new(d, LinearAttention::new(d, self.attn_heads, self.attn_dim_head, device), device);
        let levels = in_out.len();
        let downs = in_out
            .iter()
            .enumerate()
            .map(|(i, &(d_in, d_out))| Level {
                block1: block(d_in, d_in),
                block2: block(d_in, d_in),
                attn: linear_attn(d_in),
                resample: if i + 1 < levels { Resample::down(d_in, d_out, device) } else { Resample::same(d_in, d_out, device) },
            })
            .collect();
        let ups = in_out
            .iter()
            .rev()
            .enumerate()
            .map(|(i, &(d_in, d_out))| Level {
                block1: block(d_out + d_in, d_out),
                block2: block(d_out + d_in, d_out),
                attn: linear_attn(d_out),
                resample: if i + 1 < levels { Resample::up(d_out, d_in, device) } else { Resample::same(d_out, d_in, device) },
            })
            .collect();
        let mid = *dims.last().unwrap();
        UNet {
            init_conv: conv(self.channels, dim, 1, device),
            time_mlp: TimeMlp::new(dim, time_dim, device),
            class_emb: (self.num_classes > 0).then(|| ClassEmbedding::new(self.num_classes, time_dim, device)),
            downs,
            mid_block1: block(mid, mid),
            mid_attn: PreNormResidual::new(mid, Attention::new(mid, self.attn_heads, self.attn_dim_head, device), device),
            mid_block2: block(mid, mid),
            ups,
            final_res_block: block(dim * 2, dim),
            final_conv: conv(dim, self.channels, 1, device),
            time_projections: None,
        }
    }
}

/// Lays every convolution kernel (the 4-D parameters) out channels-last on the GPU path
/// ([`crate::kernels::channels_last_weight`]).
struct ChannelsLastWeights;

impl ModuleMapper for ChannelsLastWeights {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        param.map(crate::kernels::channels_last_weight)
    }
}

/// One resolution of the U-Net: two residual blocks, linear attention, then a resampling.
#[derive(Module, Debug)]
pub struct Level {
    pub block1: ResBlock,
    pub block2: ResBlock,
    pub attn: PreNormResidual<LinearAttention>,
    pub resample: Resample,
}

#[derive(Module, Debug)]
pub struct UNet {
    pub init_conv: Conv2d,
    pub time_mlp: TimeMlp,
    pub class_emb: Option<ClassEmbedding>,
    pub downs: Vec<Level>,
    pub mid_block1: ResBlock,
    pub mid_attn: PreNormResidual<Attention>,
    pub mid_block2: ResBlock,
    pub ups: Vec<Level>,
    pub final_res_block: ResBlock,
    pub final_conv: Conv2d,
    /// Sampling only ([`UNet::for_inference`]): every ResNet block's time projection at once.
    #[module(skip)]
    pub time_projections: Option<TimeProjections>,
}

/// The parts of the network, as [`UNet::forward_with`] names its steps.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Part {
    /// The time and class embedding, and the residual blocks' scales and shifts from it.
    Embedding,
    /// A residual block (ResNet or ConvNeXt).
    Block,
    LinearAttention,
    Attention,
    /// A [`Resample`] between levels (at the last level, a change of width only).
    Resampling,
    /// The first and last convolutions, and the skip connections' concatenations.
    Rest,
}

/// Watches [`UNet::forward_with`] run, one step at a time.
pub trait Probe {
    /// Runs `step`, the forward's next step, part of `part`, and returns what it returns.
    fn step<T>(&mut self, part: Part, step: impl FnOnce() -> T) -> T;
}

/// No probe: each step just runs ([`UNet::forward`]).
impl Probe for () {
    fn step<T>(&mut self, _: Part, step: impl FnOnce() -> T) -> T {
        step()
    }
}

impl UNet {
    /// ε̂(x_t, t, y). `x`: `[B, C, H, W]` in [-1, 1]-scaled units; `t`: `[B]` time indices as
    /// floats; `labels`: `[B]` class indices with `num_classes` meaning "no class" (ignored by an
    /// unconditional model).
    pub fn forward(&self, x: Tensor<4>, t: Tensor<1>, labels: Option<Tensor<1, Int>>) -> Tensor<4> {
        self.forward_with(x, t, labels, &mut ())
    }

    /// [`UNet::forward`], each of its steps handed to `probe` with the [`Part`] of the network it
    /// belongs to (`ddpm bench` counts each part's kernel launches so).
    pub fn forward_with<P: Probe>(&self, x: Tensor<4>, t: Tensor<1>, labels: Option<Tensor<1, Int>>, probe: &mut P) -> Tensor<4> {
        let (emb, projected) = probe.step(Part::Embedding, || {
            let mut emb = self.time_mlp.forward(t);
            if let (Some(class_emb), Some(labels)) = (&self.class_emb, labels) {
                emb = emb + class_emb.forward(labels);
            }
            let emb = self.mid_block1.activate_time(emb);
            let projected = self.project_time(&emb);
            (emb, projected)
        });
        let mut projected = projected.into_iter();
        let mut block = |probe: &mut P, b: &ResBlock, x| probe.step(Part::Block, || b.forward(x, emb.clone(), projected.next()));
        let mut x = probe.step(Part::Rest, || blocks::same_size(&self.init_conv, x));
        let r = x.clone();
        let mut skips = Vec::with_capacity(self.downs.len() * 2);
        for level in &self.downs {
            x = block(probe, &level.block1, x);
            skips.push(x.clone());
            x = block(probe, &level.block2, x);
            x = probe.step(Part::LinearAttention, || level.attn.forward(x));
            skips.push(x.clone());
            x = probe.step(Part::Resampling, || level.resample.forward(x));
        }
        x = block(probe, &self.mid_block1, x);
        x = probe.step(Part::Attention, || self.mid_attn.forward(x));
        x = block(probe, &self.mid_block2, x);
        for level in &self.ups {
            for b in [&level.block1, &level.block2] {
                let cat = probe.step(Part::Rest, || Tensor::cat(vec![x, skips.pop().unwrap()], 1));
                x = block(probe, b, cat);
            }
            x = probe.step(Part::LinearAttention, || level.attn.forward(x));
            x = probe.step(Part::Resampling, || level.resample.forward(x));
        }
        let cat = probe.step(Part::Rest, || Tensor::cat(vec![x, r], 1));
        let x = block(probe, &self.final_res_block, cat);
        probe.step(Part::Rest, || blocks::same_size(&self.final_conv, x))
    }

    /// The residual blocks in the order a forward runs them.
    pub fn blocks(&self) -> Vec<&ResBlock> {
        fn level(l: &Level) -> [&ResBlock; 2] {
            [&l.block1, &l.block2]
        }
        let mut blocks: Vec<&ResBlock> = self.downs.iter().flat_map(level).collect();
        blocks.extend([&self.mid_block1, &self.mid_block2]);
        blocks.extend(self.ups.iter().flat_map(level));
        blocks.push(&self.final_res_block);
        blocks
    }

    /// Every block's scale and shift from the activated time embedding, in [`UNet::blocks`]'
    /// order, where [`UNet::for_inference`] has put their projections together (one matmul);
    /// empty otherwise, and each block projects its own.
    pub fn project_time(&self, emb: &Tensor<2>) -> Vec<ScaleShift> {
        let Some(projections) = &self.time_projections else { return vec![] };
        let table = projections.forward(emb.clone());
        projections.columns.iter().map(|&column| ScaleShift { table: table.clone(), column }).collect()
    }

    /// A copy for sampling only, computing the same ε with fewer kernels per step: the
    /// weight-standardised kernels are standardised once here, and the ResNet blocks' time
    /// projections put side by side (one matmul a forward). Train and save the original.
    pub fn for_inference(&self) -> Self {
        let level = |l: &Level| Level { block1: l.block1.for_inference(), block2: l.block2.for_inference(), ..l.clone() };
        let mlps: Option<Vec<_>> = self
            .blocks()
            .into_iter()
            .map(|b| match b {
                ResBlock::Resnet(b) => Some(&b.mlp),
                ResBlock::ConvNext(_) => None,
            })
            .collect();
        let inference = Self {
            time_projections: mlps.map(|mlps| TimeProjections::new(&mlps)),
            downs: self.downs.iter().map(level).collect(),
            mid_block1: self.mid_block1.for_inference(),
            mid_block2: self.mid_block2.for_inference(),
            ups: self.ups.iter().map(level).collect(),
            final_res_block: self.final_res_block.for_inference(),
            ..self.clone()
        };
        inference.map(&mut ChannelsLastWeights)
    }

    /// The class index the model reads as "unconditional", if it is conditional at all.
    pub fn null_class(&self) -> Option<usize> {
        self.class_emb.as_ref().map(|c| c.num_classes)
    }

    /// [`UNet::forward`] from host-side values: a time index per image and a label per image
    /// (`None` for "no class").
    pub fn forward_indexed(&self, x: Tensor<4>, t: &[usize], labels: &[Option<usize>]) -> Tensor<4> {
        let device = x.device();
        let batch = t.len();
        let times = t.iter().map(|&t| t as f32).collect::<Vec<_>>();
        let times = Tensor::from_data(TensorData::new(times, [batch]), &device);
        let labels = self.null_class().map(|null| {
            let ids: Vec<i64> = labels.iter().map(|l| l.unwrap_or(null) as i64).collect();
            Tensor::<1, Int>::from_data(TensorData::new(ids, [batch]), &device)
        });
        self.forward(x, times, labels)
    }
}

impl NoisePredictor for UNet {
    fn predict_noise(&self, x_t: Tensor<4>, t: usize, labels: &[Option<usize>]) -> Tensor<4> {
        let batch = x_t.dims()[0];
        self.forward_indexed(x_t, &vec![t; batch], labels)
    }
}
