//! The wasm-bindgen surface: device start-up and calls the page makes. No math lives here.

use burn::prelude::*;
use burn::tensor::Distribution;
use wasm_bindgen::prelude::*;

#[wasm_bindgen(start)]
pub fn start() {
    console_error_panic_hook::set_once();
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
            let name = if info.name.is_empty() { format!("{:?}", info.backend) } else { info.name };
            let software = info.device_type == burn::tensor::wgpu::wgpu::DeviceType::Cpu;
            (device, name, software)
        }
        "cpu" => (Device::flex(), "Burn flex (CPU, wasm)".to_string(), false),
        other => return Err(js_err(format!("unknown backend {other:?}: expected webgpu or cpu"))),
    };
    let started = now_ms();
    let (a, b) = selftest_inputs(n, &device);
    // A device-side random tensor proves the backend's own kernels run too.
    let noise = Tensor::<2>::random([n, n], Distribution::Uniform(0.0, 0.0), &device);
    let product = a.matmul(b) + noise;
    let data = product.into_data_async().await.map_err(|e| js_err(format!("{e:?}")))?;
    let product = data.to_vec::<f32>().map_err(|e| js_err(format!("{e:?}")))?;
    Ok(DeviceReport { backend, adapter, fallback, product, n, millis: now_ms() - started })
}
