//! How the attention kernels (softmax and linear, forward and backward) find their heads in the
//! `to_qkv` projection `[B, 3·H·D, X, Y]`: q, k then v, each H heads of D channels, indexed in
//! place (any strides), one cube per image and head. (Burn's operations split them into tensors:
//! [`super::naive`].)

use super::layout::{cube, empty_like};
use burn::backend::cubecl::dtype_to_storage_type;
use burn::tensor::Tensor as BurnTensor;
use burn_cubecl::CubeBackend;
use burn_cubecl::tensor::CubeTensor;
use cubecl::prelude::*;

/// This cube's image, and the first channels of its head's q, k and v in `qkv` (`[B, 3·H·D, …]`):
/// one cube per image and head.
#[cube]
pub(super) fn head_channels(heads: u32, #[comptime] dim_head: usize) -> (usize, usize, usize, usize) {
    let heads = heads as usize;
    let hidden = heads * dim_head;
    let q = (CUBE_POS_X as usize % heads) * dim_head;
    (CUBE_POS_X as usize / heads, q, hidden + q, 2 * hidden + q)
}

/// What the attention kernels are launched with: one cube per image and head reading q, k and v
/// from `qkv` (`[B, 3·H·D, X, Y]`, any strides), and the output in `qkv`'s layout: the heads'
/// `[B, H·D, X, Y]`, or for a backward kernel `qkv`'s gradient.
pub(super) struct Heads {
    pub qkv: CubeTensor,
    pub output: CubeTensor,
    pub cubes: CubeCount,
    pub heads: u32,
    pub width: u32,
    pub scale: f32,
    pub pixels: usize,
    pub dtype: ElemType,
}

impl Heads {
    pub fn new(qkv: BurnTensor<4>, heads: usize, dim_head: usize) -> Self {
        Self::with_output(qkv, heads, dim_head, heads * dim_head)
    }

    /// For a backward kernel: the output is `qkv`'s gradient.
    #[cfg(feature = "train")]
    pub fn for_gradient(qkv: BurnTensor<4>, heads: usize, dim_head: usize) -> Self {
        Self::with_output(qkv, heads, dim_head, 3 * heads * dim_head)
    }

    fn with_output(qkv: BurnTensor<4>, heads: usize, dim_head: usize, output_channels: usize) -> Self {
        let [batch, channels, height, width] = qkv.dims();
        assert_eq!(channels, 3 * heads * dim_head, "q, k and v for {heads} heads of {dim_head}");
        let qkv = cube(qkv);
        let output = empty_like(&qkv, output_channels);
        let dtype = dtype_to_storage_type(qkv.dtype);
        let cubes = CubeCount::Static((batch * heads) as u32, 1, 1);
        let scale = (dim_head as f32).powf(-0.5);
        Self { qkv, output, cubes, heads: heads as u32, width: width as u32, scale, pixels: height * width, dtype }
    }

    /// The output, once the kernel is launched.
    pub fn output(self) -> BurnTensor<4> {
        BurnTensor::from_primitive::<CubeBackend>(self.output)
    }
}
