//! Flat buffers of many tensors (the optimiser's parameters, moments and gradients): a view of one
//! tensor's segment without a copy, and the gradients gathered in a handful of launches, six
//! tensors a launch (WebGPU guarantees eight storage buffers per kernel: six in, one out, and
//! CubeCL's own).

use super::layout::{UNITS, cube};
use burn::backend::cubecl::dtype_to_storage_type;
use burn::tensor::{Shape, Tensor as BurnTensor};
use burn_cubecl::CubeBackend;
use burn_cubecl::tensor::CubeTensor;
use cubecl::prelude::*;

/// Tensors per gather launch.
const PER_LAUNCH: usize = 6;

/// Where element `i` (in row-major order) of `t` lies, whatever its strides.
#[cube]
fn strided<F: Float>(t: &Tensor<F>, i: usize) -> usize {
    let mut rest = i;
    let mut at = 0usize;
    let mut d = t.rank();
    while d > 0 {
        d -= 1;
        let size = t.shape(d);
        at += (rest % size) * t.stride(d);
        rest /= size;
    }
    at
}

/// Element `i` of `t` to `flat[start + i]`; a `row_major` tensor's is `t[i]`, without [`strided`]'s
/// walk over its shape and strides (loads that cost more than the copy on a software adapter).
#[cube]
fn copy_into<F: Float>(t: &Tensor<F>, flat: &mut Tensor<F>, start: u32, len: u32, i: usize, #[comptime] row_major: bool) {
    if i < len as usize {
        let mut at = i;
        if !row_major {
            at = strided::<F>(t, i);
        }
        flat[start as usize + i] = t[at];
    }
}

#[cube(launch)]
#[allow(clippy::too_many_arguments)]
fn gather_kernel<F: Float>(
    t0: &Tensor<F>,
    t1: &Tensor<F>,
    t2: &Tensor<F>,
    t3: &Tensor<F>,
    t4: &Tensor<F>,
    t5: &Tensor<F>,
    flat: &mut Tensor<F>,
    s0: u32,
    s1: u32,
    s2: u32,
    s3: u32,
    s4: u32,
    s5: u32,
    n0: u32,
    n1: u32,
    n2: u32,
    n3: u32,
    n4: u32,
    n5: u32,
    #[comptime] row_major: bool,
    #[define(F)] _dtype: ElemType,
) {
    // x: the element block, y: the tensor.
    let i = CUBE_POS_X as usize * UNITS + UNIT_POS_X as usize;
    let slot = CUBE_POS_Y;
    if slot == 0 {
        copy_into::<F>(t0, flat, s0, n0, i, row_major);
    } else if slot == 1 {
        copy_into::<F>(t1, flat, s1, n1, i, row_major);
    } else if slot == 2 {
        copy_into::<F>(t2, flat, s2, n2, i, row_major);
    } else if slot == 3 {
        copy_into::<F>(t3, flat, s3, n3, i, row_major);
    } else if slot == 4 {
        copy_into::<F>(t4, flat, s4, n4, i, row_major);
    } else {
        copy_into::<F>(t5, flat, s5, n5, i, row_major);
    }
}

/// Copies each `(start, tensor)` into `flat` from `start`, in row-major order, whatever the
/// tensor's strides: one launch per six tensors, the row-major ones apart.
pub(super) fn gather(flat: BurnTensor<1>, parts: Vec<(usize, CubeTensor)>) -> BurnTensor<1> {
    let flat = cube(flat);
    let client = flat.client.clone();
    let dtype = dtype_to_storage_type(flat.dtype);
    let (row_major, strided): (Vec<_>, Vec<_>) = parts.into_iter().partition(|(_, t)| t.is_contiguous());
    let chunks = row_major.chunks(PER_LAUNCH).map(|c| (c, true)).chain(strided.chunks(PER_LAUNCH).map(|c| (c, false)));
    for (chunk, row_major) in chunks {
        let longest = chunk.iter().map(|(_, t)| t.meta.shape().num_elements()).max().unwrap_or(0);
        if longest == 0 {
            continue;
        }
        // An empty slot is bound to the first tensor and copies nothing (length 0).
        let slot = |k: usize| chunk.get(k).unwrap_or(&chunk[0]);
        let start = |k: usize| slot(k).0 as u32;
        let len = |k: usize| if k < chunk.len() { chunk[k].1.meta.shape().num_elements() as u32 } else { 0 };
        gather_kernel::launch(
            &client,
            CubeCount::Static(longest.div_ceil(UNITS) as u32, PER_LAUNCH as u32, 1),
            CubeDim::new_1d(UNITS as u32),
            slot(0).1.clone().into_tensor_arg(),
            slot(1).1.clone().into_tensor_arg(),
            slot(2).1.clone().into_tensor_arg(),
            slot(3).1.clone().into_tensor_arg(),
            slot(4).1.clone().into_tensor_arg(),
            slot(5).1.clone().into_tensor_arg(),
            flat.clone().into_tensor_arg(),
            start(0),
            start(1),
            start(2),
            start(3),
            start(4),
            start(5),
            len(0),
            len(1),
            len(2),
            len(3),
            len(4),
            len(5),
            row_major,
            dtype,
        );
    }
    BurnTensor::from_primitive::<CubeBackend>(flat)
}

/// `len` elements of the flat `x` from `start` (a multiple of the device's offset alignment), seen
/// as `shape` without a copy.
pub(super) fn view<const D: usize>(x: &BurnTensor<1>, start: usize, shape: [usize; D]) -> BurnTensor<D> {
    let flat = cube(x.clone());
    let len: usize = shape.iter().product();
    let size = flat.dtype.size() as u64;
    let total = flat.meta.shape().num_elements();
    let handle = flat.handle.clone().offset_start(start as u64 * size).offset_end((total - start - len) as u64 * size);
    let view = CubeTensor::new_contiguous(flat.client.clone(), flat.device.clone(), Shape::new(shape), handle, flat.dtype);
    BurnTensor::from_primitive::<CubeBackend>(view)
}

/// The offset alignment of `x`'s device, in elements: where a view of a flat buffer may start.
pub(super) fn alignment(x: &BurnTensor<1>) -> usize {
    let flat = cube(x.clone());
    flat.client.properties().memory.alignment as usize / flat.dtype.size()
}
