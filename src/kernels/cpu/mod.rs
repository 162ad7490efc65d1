//! The U-Net's own CPU kernels, for Burn's flex backend: the same pieces as the GPU kernels beside
//! them (the convolution, GroupNorm with what follows it, both attention cores, the flat
//! optimiser), each one pass over the data where flex's operations take several, with the
//! convolutions' matrix products in the `gemm` crate that flex itself uses.
//! Natively the work is split over rayon's threads, by image where the batch allows; in the page's
//! wasm (one thread) it runs in order, vectorised by the compiler for wasm's 128-bit SIMD.
//!
//! Their reference twins are the GPU kernels' own, Burn's operations in `super::naive`
//! (tests/kernels.rs).

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

/// Defines a function whose body is compiled twice: for AVX2 and FMA, chosen at run time where the
/// CPU has them, and for the build's baseline (x86-64's SSE2; wasm's 128-bit SIMD is chosen at
/// compile time). The body is a function of its own so that what it inlines is compiled with the
/// features too: a closure handed to a `#[target_feature]` function is compiled apart from it once
/// it is too large to inline, and runs four lanes wide (docs/lab/bench/2026-12-08-cpu-training.md).
macro_rules! wide_fn {
    ($(#[$attr:meta])* $vis:vis fn $name:ident($($arg:ident: $ty:ty),* $(,)?) $(-> $ret:ty)? $body:block) => {
        $(#[$attr])*
        $vis fn $name($($arg: $ty),*) $(-> $ret)? {
            #[inline(always)]
            fn body($($arg: $ty),*) $(-> $ret)? $body
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx2,fma")]
                fn avx2($($arg: $ty),*) $(-> $ret)? {
                    body($($arg),*)
                }
                if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
                    // SAFETY: the CPU has the features, as checked above.
                    return unsafe { avx2($($arg),*) };
                }
            }
            body($($arg),*)
        }
    };
}
pub(super) use wide_fn;

/// Σ of `x` in eight lanes, which the compiler vectorises (a plain sum keeps its order).
#[inline(always)]
pub(super) fn lanes_sum(x: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let chunks = x.chunks_exact(8);
    let rest: f32 = chunks.remainder().iter().sum();
    for chunk in chunks {
        acc.iter_mut().zip(chunk).for_each(|(a, &v)| *a += v);
    }
    acc.iter().sum::<f32>() + rest
}

/// Σ of `f(a[i], b[i])` in eight lanes, as [`lanes_sum`].
#[cfg(feature = "train")]
#[inline(always)]
pub(super) fn lanes_sum_by(a: &[f32], b: &[f32], f: impl Fn(f32, f32) -> f32) -> f32 {
    let mut acc = [0f32; 8];
    let (a8, b8) = (a.chunks_exact(8), b.chunks_exact(8));
    let rest: f32 = a8.remainder().iter().zip(b8.remainder()).map(|(&a, &b)| f(a, b)).sum();
    for (a, b) in a8.zip(b8) {
        (0..8).for_each(|l| acc[l] += f(a[l], b[l]));
    }
    acc.iter().sum::<f32>() + rest
}

/// Whether work over `total` values, in pieces of `piece`, is split over rayon's threads: only
/// natively, and only from 32 k values, as waking the threads for less costs more than they save
/// (and far more when other processes share the cores).
pub(super) fn in_parallel(total: usize, piece: usize) -> bool {
    cfg!(not(target_arch = "wasm32")) && total >= 1 << 15 && total > piece
}

/// Calls `f(i, chunk)` for each `len`-long chunk of `out`: on rayon's threads where
/// [`in_parallel`] says so, else in order.
pub(super) fn for_each_chunk(out: &mut [f32], len: usize, f: impl Fn(usize, &mut [f32]) + Sync + Send) {
    if out.is_empty() || len == 0 {
        return;
    }
    if in_parallel(out.len(), len) {
        #[cfg(not(target_arch = "wasm32"))]
        {
            use rayon::prelude::*;
            out.par_chunks_mut(len).enumerate().for_each(|(i, chunk)| f(i, chunk));
            return;
        }
    }
    out.chunks_mut(len).enumerate().for_each(|(i, chunk)| f(i, chunk));
}

/// Σ over `items` of `f(i)`, each a vector of `len` values: with `parallel`, each thread sums its
/// share into one buffer, then the buffers are added.
#[cfg(feature = "train")]
pub(super) fn sum_over(items: usize, len: usize, parallel: bool, f: impl Fn(usize, &mut [f32]) + Sync + Send) -> Vec<f32> {
    #[cfg(not(target_arch = "wasm32"))]
    if parallel {
        use rayon::prelude::*;
        return (0..items)
            .into_par_iter()
            .fold(|| vec![0.0; len], |mut acc, i| {
                f(i, &mut acc);
                acc
            })
            .reduce(|| vec![0.0; len], |mut a, b| {
                a.iter_mut().zip(&b).for_each(|(a, b)| *a += b);
                a
            });
    }
    let _ = parallel;
    let mut acc = vec![0.0; len];
    (0..items).for_each(|i| f(i, &mut acc));
    acc
}

/// A matrix in a slice: its values and the strides between rows and between columns.
pub(super) struct Matrix<'a>(&'a [f32], isize, isize);

/// `dst[m × n]` (row-major, rows `dst_rs` apart) `= dst + lhs · rhs` where `accumulate`, else
/// `lhs · rhs`; `parallel` splits the product over rayon's threads.
#[allow(clippy::too_many_arguments)]
pub(super) fn matmul(m: usize, n: usize, k: usize, dst: &mut [f32], dst_rs: usize, accumulate: bool, lhs: Matrix, rhs: Matrix, parallel: bool) {
    matmul_strided(m, n, k, dst, (dst_rs, 1), accumulate, lhs, rhs, parallel);
}

/// [`matmul`] into a `dst` whose rows and columns are `dst_strides` apart.
#[allow(clippy::too_many_arguments)]
pub(super) fn matmul_strided(m: usize, n: usize, k: usize, dst: &mut [f32], dst_strides: (usize, usize), accumulate: bool, lhs: Matrix, rhs: Matrix, parallel: bool) {
    let (Matrix(lhs, lhs_rs, lhs_cs), Matrix(rhs, rhs_rs, rhs_cs)) = (lhs, rhs);
    let (dst_rs, dst_cs) = dst_strides;
    // Every element the strides reach lies inside its slice (gemm writes all of dst even when k = 0).
    let reach = |rows: usize, rs: isize, cols: usize, cs: isize, len: usize| {
        rows == 0 || cols == 0 || {
            let (rs, cs) = (usize::try_from(rs).expect("non-negative strides"), usize::try_from(cs).expect("non-negative strides"));
            let last = (rows - 1).checked_mul(rs).zip((cols - 1).checked_mul(cs)).and_then(|(a, b)| a.checked_add(b));
            last.is_some_and(|last| last < len)
        }
    };
    assert!(
        reach(m, dst_rs as isize, n, dst_cs as isize, dst.len()) && reach(m, lhs_rs, k, lhs_cs, lhs.len()) && reach(k, rhs_rs, n, rhs_cs, rhs.len()),
        "a product's strides reach outside its slices"
    );
    #[cfg(not(target_arch = "wasm32"))]
    let parallelism = if parallel { gemm::Parallelism::Rayon(0) } else { gemm::Parallelism::None };
    #[cfg(target_arch = "wasm32")]
    let parallelism = {
        let _ = parallel;
        gemm::Parallelism::None
    };
    // SAFETY: the assertion above keeps every element the strides reach inside its slice.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            dst_cs as isize,
            dst_rs as isize,
            accumulate,
            lhs.as_ptr(),
            lhs_cs,
            lhs_rs,
            rhs.as_ptr(),
            rhs_cs,
            rhs_rs,
            1.0,
            1.0,
            false,
            false,
            false,
            parallelism,
        );
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

/// eˣ to about one part in 10⁷, without a call into libm, so that loops over it vectorise:
/// 2ⁿ · e^r with n = round(x / ln 2) and |r| ≤ ln 2 / 2 on Cephes' polynomial.
#[inline(always)]
pub(super) fn exp(x: f32) -> f32 {
    const MAGIC: f32 = 12_582_912.0; // 1.5 · 2²³: adding it rounds to an integer in the low bits.
    let x = x.clamp(-87.0, 88.0);
    let t = x * std::f32::consts::LOG2_E + MAGIC;
    let n = t - MAGIC;
    let r = x - n * 0.693_359_4 + n * 2.121_944_4e-4;
    let p = ((((1.987_569_1e-4 * r + 1.398_199_9e-3) * r + 8.333_452e-3) * r + 4.166_579_6e-2) * r + 0.166_666_66) * r + 0.5;
    let e_r = p * r * r + r + 1.0;
    let two_n = f32::from_bits(((t.to_bits() as i32 - MAGIC.to_bits() as i32 + 127) << 23) as u32);
    e_r * two_n
}
