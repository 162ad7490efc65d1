//! The U-Net's own CPU kernels, for Burn's flex backend: the same pieces as the GPU kernels beside
//! them (the convolution, GroupNorm with what follows it, both attention cores, the flat
//! optimiser), each one pass over the data where flex's operations take several, with the
//! convolutions' matrix products in the `gemm` crate that flex itself uses.
//! Natively the work is split over rayon's threads, by image where the batch allows; in the page's
//! wasm (one thread) it runs in order, vectorised by the compiler for wasm's 128-bit SIMD.
//!
//! Their reference twins are Burn's operations, as for the GPU kernels (tests/kernels.rs).

pub(super) mod adam;
pub(super) mod attention;
pub(super) mod conv;
pub(super) mod group_norm;

use burn::backend::flex::FlexTensor;
use burn::tensor::{DType, Shape, TensorData};

/// `x`'s values in row-major order: a view where `x` is laid out so already, else a copy.
pub(super) fn values(x: &FlexTensor) -> std::borrow::Cow<'_, [f32]> {
    assert_eq!(x.dtype(), DType::F32, "the CPU kernels take f32 tensors");
    match x.as_slice::<f32>() {
        Some(values) => values.into(),
        None => x.to_contiguous().as_slice::<f32>().expect("a contiguous copy").to_vec().into(),
    }
}

/// A row-major tensor of `values`.
pub(super) fn tensor(values: Vec<f32>, shape: impl Into<Shape>) -> FlexTensor {
    FlexTensor::from_data(TensorData::new(values, shape.into()))
}

pub(super) fn dims<const D: usize>(x: &FlexTensor) -> [usize; D] {
    let shape = x.layout().shape();
    std::array::from_fn(|i| shape[i])
}

/// Calls `f(i, chunk)` for each `len`-long chunk of `out`: on rayon's threads natively, in order
/// in wasm.
pub(super) fn for_each_chunk(out: &mut [f32], len: usize, f: impl Fn(usize, &mut [f32]) + Sync + Send) {
    #[cfg(not(target_arch = "wasm32"))]
    {
        use rayon::prelude::*;
        out.par_chunks_mut(len).enumerate().for_each(|(i, chunk)| f(i, chunk));
    }
    #[cfg(target_arch = "wasm32")]
    out.chunks_mut(len).enumerate().for_each(|(i, chunk)| f(i, chunk));
}

/// Σ over `items` of `f(i)`, each a vector of `len` values: each thread sums its share into one
/// buffer, then the buffers are added.
pub(super) fn sum_over(items: usize, len: usize, f: impl Fn(usize, &mut [f32]) + Sync + Send) -> Vec<f32> {
    #[cfg(not(target_arch = "wasm32"))]
    {
        use rayon::prelude::*;
        (0..items)
            .into_par_iter()
            .fold(|| vec![0.0; len], |mut acc, i| {
                f(i, &mut acc);
                acc
            })
            .reduce(|| vec![0.0; len], |mut a, b| {
                a.iter_mut().zip(&b).for_each(|(a, b)| *a += b);
                a
            })
    }
    #[cfg(target_arch = "wasm32")]
    {
        let mut acc = vec![0.0; len];
        (0..items).for_each(|i| f(i, &mut acc));
        acc
    }
}

/// Threads the work may use: one image each where there are enough images, else the matrix
/// products split their own work.
pub(super) fn threads() -> usize {
    #[cfg(not(target_arch = "wasm32"))]
    return rayon::current_num_threads();
    #[cfg(target_arch = "wasm32")]
    1
}
