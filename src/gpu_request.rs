//! What the engine asks a WebGPU (or native wgpu) device for beside WebGPU's default limits: the
//! features CubeCL needs. The page's device (src/web/gpu.rs) and tests/limits.rs, which runs the
//! page's and training's work under the default limits, share it.

use burn::tensor::wgpu::wgpu;

/// The features CubeCL reads, where the adapter has them: it reads the adapter's features, not the
/// device's (cubecl-wgpu 0.11, `runtime.rs` and `backend/wgsl.rs`), and would use one the device
/// lacks (tests/limits.rs met that: a timestamp query, and natively a `u64` in Burn's copy kernel,
/// on a device without the feature). In a browser: subgroups, f16 and timestamps; natively also
/// 64-bit integers and floats and f32 atomics.
pub fn needed_features(adapter: wgpu::Features) -> wgpu::Features {
    use wgpu::Features as F;
    adapter & (F::SUBGROUP | F::SHADER_F16 | F::TIMESTAMP_QUERY | F::SHADER_INT64 | F::SHADER_F64 | F::SHADER_FLOAT32_ATOMIC)
}
