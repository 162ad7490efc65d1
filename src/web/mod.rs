//! The wasm-bindgen surface: device start-up and calls the page makes. No math lives here.

use burn::prelude::*;
use wasm_bindgen::prelude::*;

/// A panic leaves the wasm instance unusable and its pending promises unsettled, so besides
/// logging it we tell the page (through `window.ddpmOnPanic`) to say what happened.
#[wasm_bindgen(start)]
pub fn start() {
    std::panic::set_hook(Box::new(|info| {
        console_error_panic_hook::hook(info);
        let global = js_sys::global();
        if let Ok(callback) = js_sys::Reflect::get(&global, &JsValue::from_str("ddpmOnPanic")) {
            if let Some(f) = callback.dyn_ref::<js_sys::Function>() {
                let _ = f.call1(&global, &JsValue::from_str(&info.to_string()));
            }
        }
    }));
}

fn js_err(message: impl std::fmt::Display) -> JsValue {
    js_sys::Error::new(&message.to_string()).into()
}

/// What the page shows about the device it runs on.
#[wasm_bindgen(getter_with_clone)]
pub struct DeviceReport {
    pub backend: String,
    pub adapter: String,
    pub fallback: bool,
    /// Row-major n×n product of the self-test matrices, computed on the device.
    pub product: Vec<f32>,
    pub n: usize,
    pub millis: f64,
}

/// The self-test inputs: simple closed forms, so the page's test can recompute the product
/// independently in JavaScript.
fn selftest_inputs(n: usize, device: &Device) -> (Tensor<2>, Tensor<2>) {
    let a: Vec<f32> = (0..n * n).map(|k| ((k / n) as f32 + 2.0 * (k % n) as f32).sin()).collect();
    let b: Vec<f32> = (0..n * n).map(|k| (3.0 * (k / n) as f32 - (k % n) as f32).cos()).collect();
    (
        Tensor::from_data(TensorData::new(a, [n, n]), device),
        Tensor::from_data(TensorData::new(b, [n, n]), device),
    )
}

fn now_ms() -> f64 {
    web_sys::window().and_then(|w| w.performance()).map(|p| p.now()).unwrap_or(0.0)
}

/// Starts Burn on WebGPU (`"webgpu"`) or on its CPU backend in wasm (`"cpu"`), multiplies two
/// n×n matrices there, and reads the product back asynchronously.
#[wasm_bindgen]
pub async fn selftest(backend: String, n: usize) -> Result<DeviceReport, JsValue> {
    let (device, adapter, fallback) = match backend.as_str() {
        "webgpu" => {
            let (device, setup) = Device::wgpu_options()
                .init_with_setup_async()
                .await
                .map_err(|e| js_err(format!("WebGPU initialisation failed: {e}")))?;
            let info = setup.adapter.get_info();
            // Browsers hide the adapter's name from wgpu; the page fills in what it knows.
            let software = info.device_type == wgpu::DeviceType::Cpu;
            (device, info.name, software)
        }
        "cpu" => (Device::flex(), "Burn flex (CPU, wasm)".to_string(), false),
        other => return Err(js_err(format!("unknown backend {other:?}: expected webgpu or cpu"))),
    };
    let started = now_ms();
    let (a, b) = selftest_inputs(n, &device);
    let product = a.matmul(b);
    let data = product.into_data_async().await.map_err(|e| js_err(format!("{e:?}")))?;
    let product = data.try_into_vec::<f32>().map_err(|e| js_err(format!("{e:?}")))?;
    Ok(DeviceReport { backend, adapter, fallback, product, n, millis: now_ms() - started })
}
