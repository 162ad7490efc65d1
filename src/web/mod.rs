//! The wasm-bindgen surface the page's worker calls: start a device, load weights, step a
//! sampler, draw. No math lives here; it calls the model, schedule and samplers.

mod engine;
mod export;
mod gpu;
mod logging;
mod painter;
mod state;
#[cfg(feature = "train")]
mod training;
#[cfg(feature = "train")]
mod training_state;

pub use engine::{Engine, StepReport, alphas_cumprod};
pub use export::encode_gif;
pub use painter::Painter;
#[cfg(feature = "train")]
pub use training::TrainReport;

use burn::prelude::Tensor;
use wasm_bindgen::prelude::*;

// Static constructors (CubeCL's IR registers its dialects through `inventory`). Unless the
// module calls this itself, wasm-ld wraps every export in a call to it, re-running them all on
// each call from JavaScript: a few milliseconds every time wgpu hands the module an object.
unsafe extern "C" {
    fn __wasm_call_ctors();
}

/// A panic leaves the wasm instance unusable and its pending promises unsettled, so besides
/// logging it we tell the page (through `ddpmOnPanic` on the global object) to restart.
#[wasm_bindgen(start)]
pub fn start() {
    // SAFETY: wasm-ld's synthetic constructor runner, called once, before the engine's code runs.
    unsafe { __wasm_call_ctors() };
    std::panic::set_hook(Box::new(|info| {
        console_error_panic_hook::hook(info);
        call_global("ddpmOnPanic", &info.to_string());
    }));
    logging::install();
}

/// Calls `globalThis[name](message)` if the page defined it (in a window or a worker).
pub(crate) fn call_global(name: &str, message: &str) {
    let global = js_sys::global();
    if let Ok(callback) = js_sys::Reflect::get(&global, &JsValue::from_str(name))
        && let Some(f) = callback.dyn_ref::<js_sys::Function>()
    {
        let _ = f.call1(&global, &JsValue::from_str(message));
    }
}

fn js_err(message: impl std::fmt::Display) -> JsValue {
    js_sys::Error::new(&message.to_string()).into()
}

/// `performance.now()` from whichever global we run in (workers have no `window`).
fn now_ms() -> f64 {
    js_sys::Reflect::get(&js_sys::global(), &JsValue::from_str("performance"))
        .ok()
        .and_then(|p| {
            let now = js_sys::Reflect::get(&p, &JsValue::from_str("now")).ok()?;
            now.dyn_ref::<js_sys::Function>()?.call0(&p).ok()?.as_f64()
        })
        .unwrap_or(0.0)
}

/// Values for the page, as a Float32Array.
fn float32(values: Vec<f32>) -> JsValue {
    js_sys::Float32Array::from(values.as_slice()).into()
}

/// A tensor's values, read back asynchronously (a synchronous read panics in the browser).
async fn read<const D: usize>(x: Tensor<D>) -> Result<Vec<f32>, JsValue> {
    let data = x.into_data_async().await.map_err(|e| js_err(format!("{e:?}")))?;
    data.try_into_vec::<f32>().map_err(|e| js_err(format!("{e:?}")))
}
