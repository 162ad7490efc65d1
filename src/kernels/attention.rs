//! Softmax attention's core in one launch, for the U-Net's lowest resolution (7×7 for 28×28
//! images): from the `to_qkv` projection to the heads' output. Burn's operations take about ten
//! launches for it.
//!
//! One cube per image and head; each unit takes a query pixel, keeps its row of scores in
//! registers, and writes its output features. No shared memory, no barriers.

use burn::backend::cubecl::dtype_to_storage_type;
use burn::tensor::Tensor as BurnTensor;
use burn_cubecl::CubeBackend;
use burn_cubecl::kernel::into_contiguous;
use burn_cubecl::ops::numeric::empty_device_dtype;
use cubecl::prelude::*;

/// Units per cube: WebGPU's guaranteed minimum of invocations per workgroup.
const UNITS: usize = 256;

/// A row of scores per unit must fit in registers.
pub(super) fn supports(pixels: usize) -> bool {
    pixels <= 256
}

#[cube(launch)]
fn attention_kernel<F: Float>(
    qkv: &Tensor<F>,
    output: &mut Tensor<F>,
    heads: u32,
    scale: f32,
    #[comptime] pixels: usize,
    #[comptime] dim_head: usize,
    #[define(F)] _dtype: ElemType,
) {
    let heads = heads as usize;
    let image = CUBE_POS_X as usize / heads;
    let head = CUBE_POS_X as usize % heads;
    let hidden = heads * dim_head;
    let q_start = (image * 3 * hidden + head * dim_head) * pixels;
    let k_start = q_start + hidden * pixels;
    let v_start = k_start + hidden * pixels;
    let out_start = (image * hidden + head * dim_head) * pixels;
    let scale = F::cast_from(scale);

    let mut i = UNIT_POS_X as usize;
    while i < pixels {
        let mut scores = Array::<F>::new(pixels);
        for j in 0..pixels {
            let mut s = F::new(0.0);
            for d in 0..dim_head {
                s += qkv[q_start + d * pixels + i] * qkv[k_start + d * pixels + j];
            }
            scores[j] = s * scale;
        }
        let mut m = scores[0];
        for j in 1..pixels {
            m = F::max(m, scores[j]);
        }
        let mut sum = F::new(0.0);
        for j in 0..pixels {
            let p = (scores[j] - m).exp();
            scores[j] = p;
            sum += p;
        }
        for e in 0..dim_head {
            let mut o = F::new(0.0);
            for j in 0..pixels {
                o += scores[j] * qkv[v_start + e * pixels + j];
            }
            output[out_start + e * pixels + i] = o / sum;
        }
        i += UNITS;
    }
}

/// The kernel on `qkv` (`[B, 3·H·D, X, Y]`, on the CubeCL backend) → `[B, H·D, X, Y]`.
pub(super) fn launch(qkv: BurnTensor<4>, heads: usize, dim_head: usize) -> BurnTensor<4> {
    let [batch, channels, height, width] = qkv.dims();
    assert_eq!(channels, 3 * heads * dim_head, "q, k and v for {heads} heads of {dim_head}");
    let pixels = height * width;
    assert!(supports(pixels), "attention over {pixels} pixels");
    let qkv = into_contiguous(qkv.try_into_primitive::<CubeBackend>().expect("a tensor on the CubeCL backend"));
    let shape = burn::tensor::Shape::new([batch, heads * dim_head, height, width]);
    let output = empty_device_dtype(qkv.client.clone(), qkv.device.clone(), shape, qkv.dtype);
    let dtype = dtype_to_storage_type(qkv.dtype);
    attention_kernel::launch(
        &qkv.client,
        CubeCount::Static((batch * heads) as u32, 1, 1),
        CubeDim::new_1d(UNITS as u32),
        qkv.clone().into_tensor_arg(),
        output.clone().into_tensor_arg(),
        heads as u32,
        (dim_head as f32).powf(-0.5),
        pixels,
        dim_head,
        dtype,
    );
    BurnTensor::from_primitive::<CubeBackend>(output)
}
