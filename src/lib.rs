//! ddpm-web: a denoising diffusion model (Ho et al.) in Burn, for the native CLI and the browser.
//!
//! The science (schedule, forward process, samplers, U-Net) knows nothing of the browser; the
//! `web` module is only the wasm-bindgen surface.

pub mod data;
#[cfg(all(not(target_arch = "wasm32"), feature = "train"))]
pub mod diagnostics;
pub mod diffusion;
#[cfg(not(target_arch = "wasm32"))]
pub mod eval;
pub mod gpu_request;
pub mod grid;
pub mod kernels;
pub mod limits;
pub mod noise;
pub mod sampler;
pub mod schedule;
pub mod self_check;
#[cfg(feature = "train")]
pub mod train;
pub mod unet;
pub mod weights;

#[cfg(target_arch = "wasm32")]
pub mod web;
