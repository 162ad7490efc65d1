//! Conditioning signals: the sinusoidal time embedding with its MLP, and the class embedding
//! (with one extra "no class" token for classifier-free guidance).

use burn::nn::{Embedding, EmbeddingConfig, Linear, LinearConfig};
use burn::prelude::*;
use burn::tensor::activation::gelu;

/// The Transformer's sinusoidal position encoding of t: [sin(t·f_k), cos(t·f_k)] with
/// f_k = 10000^(−k/(half−1)), k = 0..half.
pub fn sinusoidal_embedding(t: Tensor<1>, dim: usize) -> Tensor<2> {
    let half = dim / 2;
    let scale = (10000f64).ln() / (half.max(2) - 1) as f64;
    let freqs: Vec<f32> = (0..half).map(|k| (-(k as f64) * scale).exp() as f32).collect();
    let freqs = Tensor::<1>::from_data(TensorData::new(freqs, [half]), &t.device());
    let angles = t.unsqueeze_dim::<2>(1) * freqs.unsqueeze_dim::<2>(0);
    Tensor::cat(vec![angles.clone().sin(), angles.cos()], 1)
}

/// Sinusoidal embedding → Linear → GELU → Linear, as in the Annotated Diffusion Model.
#[derive(Module, Debug)]
pub struct TimeMlp {
    pub linear1: Linear,
    pub linear2: Linear,
    pub dim: usize,
}

impl TimeMlp {
    pub fn new(dim: usize, time_dim: usize, device: &Device) -> Self {
        Self { linear1: LinearConfig::new(dim, time_dim).init(device), linear2: LinearConfig::new(time_dim, time_dim).init(device), dim }
    }

    /// `t`: the (float) time index of each image, `[B]` → `[B, time_dim]`.
    pub fn forward(&self, t: Tensor<1>) -> Tensor<2> {
        let x = sinusoidal_embedding(t, self.dim);
        self.linear2.forward(gelu(self.linear1.forward(x)))
    }
}

/// A learned vector per class, added to the time embedding. Index `num_classes` is the null
/// class used for unconditional predictions.
#[derive(Module, Debug)]
pub struct ClassEmbedding {
    pub table: Embedding,
    pub num_classes: usize,
}

impl ClassEmbedding {
    pub fn new(num_classes: usize, time_dim: usize, device: &Device) -> Self {
        Self { table: EmbeddingConfig::new(num_classes + 1, time_dim).init(device), num_classes }
    }

    /// `labels`: `[B]` class indices, `num_classes` for none → `[B, time_dim]`.
    pub fn forward(&self, labels: Tensor<1, Int>) -> Tensor<2> {
        let [batch] = labels.dims();
        let out = self.table.forward(labels.unsqueeze_dim::<2>(1));
        let [_, _, dim] = out.dims();
        out.reshape([batch, dim])
    }
}

/// Every ResNet block's time projection (its `mlp`, `time_dim → 2·C`) side by side in one matrix,
/// so that sampling computes all of them with one matmul per forward instead of one per block.
#[derive(Clone, Debug)]
pub struct TimeProjections {
    weight: Tensor<2>,
    bias: Tensor<1>,
    /// Where each block's `[scale | shift]` starts, in the U-Net's order of blocks.
    pub columns: Vec<usize>,
}

impl TimeProjections {
    pub fn new(mlps: &[&Linear]) -> Self {
        let mut columns = Vec::with_capacity(mlps.len());
        let mut next = 0;
        for mlp in mlps {
            columns.push(next);
            next += mlp.weight.val().dims()[1];
        }
        let weight = Tensor::cat(mlps.iter().map(|l| l.weight.val()).collect(), 1);
        let bias = Tensor::cat(mlps.iter().map(|l| l.bias.as_ref().expect("a time projection has a bias").val()).collect(), 0);
        Self { weight, bias, columns }
    }

    /// `[B, time_dim]` → `[B, Σ 2·C]`: every block's projection.
    pub fn forward(&self, time_emb: Tensor<2>) -> Tensor<2> {
        time_emb.matmul(self.weight.clone()) + self.bias.clone().unsqueeze_dim(0)
    }
}
