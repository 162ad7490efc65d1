//! The model as the page sees it: a device, the loaded weights, and one sampling run at a time,
//! stepped asynchronously so the worker can post every intermediate image.

use super::state::{Loaded, State};
use super::{float32, gpu, js_err, now_ms, read};
use crate::diffusion::q_sample;
use crate::limits::limits;
use crate::noise::NoiseSource;
use crate::sampler::{Guidance, Inpaint, SamplerKind, SamplingRun, X0, morph_noise, parse_interval};
use crate::schedule::{BetaSchedule, Schedule};
use crate::self_check::{Agreement, probe};
use crate::weights::from_bytes;
use burn::prelude::*;
use burn::tensor::wgpu::WgpuSetup;
use serde::Deserialize;
use std::cell::RefCell;
use std::rc::Rc;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::future_to_promise;

/// What Generate asks for (JSON from www/worker.js; the page's other settings are ignored).
#[derive(Deserialize)]
struct GenerateOptions {
    /// `ddpm` (σ² = β), `ddpm-tilde` (σ² = β̃) or `ddim` (with `steps` and `eta`).
    sampler: String,
    steps: usize,
    eta: f64,
    seed: u32,
    /// Below 0: any class.
    class: i32,
    guidance: f32,
    /// `LO-HI`, the time indices that are guided (cut at the model's T), or `all`.
    interval: String,
    batch: usize,
    /// A morph: the batch's images pass from `seed`'s sample to this seed's (a deterministic
    /// sampler only).
    #[serde(default, rename = "morphTo")]
    morph_to: Option<u32>,
    /// A repaint of one image, the same for every image of the batch.
    #[serde(default)]
    inpaint: Option<InpaintOptions>,
}

/// What Repaint sends: the garment (size² values in [−1, 1]) and where the reader painted (1) or
/// not (0).
#[derive(Deserialize)]
struct InpaintOptions {
    image: Vec<f32>,
    painted: Vec<f32>,
    /// RePaint's resampling: each step taken this many times (1–10; DDPM or DDIM).
    #[serde(default = "once")]
    resample: usize,
}

fn once() -> usize {
    1
}

/// What the forward explorer asks for: time index `t` of `timesteps` under `schedule`, with noise
/// from `seed` so that moving t alone changes the picture.
#[derive(Deserialize)]
struct ForwardOptions {
    size: usize,
    t: usize,
    schedule: String,
    timesteps: usize,
    seed: u32,
}

#[wasm_bindgen]
pub struct Engine {
    pub(super) state: Rc<RefCell<State>>,
    /// The WebGPU device (Burn's, or one kept only for drawing on the CPU path).
    gpu: Option<WgpuSetup>,
    backend: String,
    adapter: String,
    software: bool,
}

/// What one reverse step produced, read back from the device.
#[wasm_bindgen(getter_with_clone)]
pub struct StepReport {
    /// Steps done so far (1 after the first).
    pub done: usize,
    pub total: usize,
    /// The time index just denoised.
    pub t: usize,
    /// x_{t-1} for every image, then x̂_0 for every image.
    pub values: Vec<f32>,
    /// Wall time of the step: the U-Net, the update and the read-back.
    pub millis: f64,
}

#[wasm_bindgen]
impl Engine {
    /// Starts on `"webgpu"` or `"cpu"` (Burn's flex backend in wasm). On the CPU path a WebGPU
    /// device is still acquired for drawing when `draw_with_gpu` is set and one exists.
    pub async fn start(backend: String, draw_with_gpu: bool) -> Result<Engine, JsValue> {
        let (device, gpu) = match backend.as_str() {
            "webgpu" => {
                let setup = gpu::acquire().await.map_err(js_err)?;
                let device = Device::wgpu_options().setup(setup.clone()).init().map_err(|e| js_err(format!("Burn could not start on WebGPU: {e}")))?;
                (device, Some(setup))
            }
            "cpu" => (Device::flex(), if draw_with_gpu { gpu::acquire().await.ok() } else { None }),
            other => return Err(js_err(format!("unknown backend {other:?}: expected webgpu or cpu"))),
        };
        let software = gpu.as_ref().is_some_and(gpu::is_software);
        let adapter = match (&gpu, backend.as_str()) {
            (_, "cpu") => "Burn flex (CPU, wasm)".to_string(),
            (Some(setup), _) => setup.adapter.get_info().name,
            _ => String::new(),
        };
        let state = State {
            device,
            model: None,
            run: None,
            #[cfg(feature = "train")]
            data: None,
            #[cfg(feature = "train")]
            training: None,
        };
        Ok(Engine { state: Rc::new(RefCell::new(state)), gpu, backend, adapter, software })
    }

    /// What the device's allocator holds (GPU buffers on WebGPU), for the soak runs: JSON
    /// `{allocs, inUse, reserved}` in bytes, or `undefined` where the backend does not report it.
    #[wasm_bindgen(js_name = deviceMemory)]
    pub fn device_memory(&self) -> Option<String> {
        let usage = self.state.borrow().device.memory_pool_usage()?;
        Some(format!(r#"{{"allocs":{},"inUse":{},"reserved":{}}}"#, usage.number_allocs, usage.bytes_in_use, usage.bytes_reserved))
    }

    #[wasm_bindgen(getter)]
    pub fn backend(&self) -> String {
        self.backend.clone()
    }

    #[wasm_bindgen(getter)]
    pub fn adapter(&self) -> String {
        self.adapter.clone()
    }

    /// Whether the WebGPU adapter is a software renderer.
    #[wasm_bindgen(getter)]
    pub fn software(&self) -> bool {
        self.software
    }

    /// A painter for `canvas`, on this engine's WebGPU device; `undefined` without one.
    pub fn painter(&self, canvas: web_sys::OffscreenCanvas) -> Result<Option<super::painter::Painter>, JsValue> {
        match &self.gpu {
            Some(setup) => super::painter::Painter::new(setup, canvas).map(Some).map_err(js_err),
            None => Ok(None),
        }
    }

    /// Destroys the WebGPU device, as a driver reset would (for tests of recovery).
    #[wasm_bindgen(js_name = loseDevice)]
    pub fn lose_device(&self) {
        if let Some(setup) = &self.gpu {
            setup.device.destroy();
        }
    }

    /// Loads a weights file written by `ddpm train`; returns its description as JSON.
    pub fn load(&self, bytes: &[u8]) -> Result<String, JsValue> {
        let mut state = self.state.borrow_mut();
        let (model, description) = from_bytes(bytes, &state.device).map_err(js_err)?;
        let json = serde_json::to_string(&description).map_err(js_err)?;
        state.run = None;
        state.model = Some(Loaded::new(model, description));
        Ok(json)
    }

    /// Starts a reverse process (see [`GenerateOptions`]); returns the number of steps.
    pub fn begin(&self, options: &str) -> Result<usize, JsValue> {
        let o: GenerateOptions = serde_json::from_str(options).map_err(|e| js_err(format!("generate options: {e}")))?;
        let mut state = self.state.borrow_mut();
        let State { device, model, run, .. } = &mut *state;
        let loaded = model.as_ref().ok_or_else(|| js_err("no weights are loaded"))?;
        let kind = SamplerKind::named(&o.sampler, o.steps, o.eta).map_err(js_err)?;
        let ranges = &limits().ranges;
        ranges.batch.check("batch", o.batch as f64).map_err(js_err)?;
        ranges.guidance.check("guidance", f64::from(o.guidance)).map_err(js_err)?;
        ranges.eta.check("eta", o.eta).map_err(js_err)?;
        let label = match o.class {
            c if c < 0 => None,
            c if (c as usize) < limits().classes.len() && loaded.model.null_class().is_some() => Some(c as usize),
            c => return Err(js_err(format!("class {c} is not available in this model"))),
        };
        let description = &loaded.description;
        let schedule = description.schedule();
        let sampler = kind.build(&schedule, X0::Raw).map_err(js_err)?;
        let size = description.unet.image_size;
        let shape = [o.batch, description.unet.channels, size, size];
        // A model with a shorter schedule is guided from its own T − 1 down.
        let last = schedule.len() - 1;
        let interval = match o.interval.as_str() {
            "all" => None,
            s => parse_interval(s).map(|i| Some(*i.start()..=(*i.end()).min(last))).map_err(js_err)?,
        };
        let guidance = Guidance::new(vec![label; o.batch], o.guidance).within(interval, schedule.len()).map_err(js_err)?;
        let inpaint = match &o.inpaint {
            Some(p) if p.image.len() != shape[1] * size * size || p.painted.len() != p.image.len() => {
                return Err(js_err(format!("a repaint needs {size}×{size} image and mask values")));
            }
            Some(p) if !(1..=10).contains(&p.resample) => return Err(js_err("resampling must be 1–10 times a step")),
            Some(p) if p.resample > 1 && !kind.is_single_step() => {
                return Err(js_err("resampling needs DDPM or DDIM: DPM-Solver++ remembers its last step"));
            }
            Some(p) => {
                let one = |values: &[f32]| Tensor::<4>::from_data(TensorData::new(values.to_vec(), [1, shape[1], size, size]), &*device).repeat_dim(0, o.batch);
                Some(Inpaint::new(schedule.clone(), one(&p.image), one(&p.painted), u64::from(o.seed)).resampling(p.resample))
            }
            None => None,
        };
        let fresh = match o.morph_to {
            None => SamplingRun::new(sampler, shape, guidance, u64::from(o.seed), device),
            Some(_) if !kind.is_deterministic() => return Err(js_err("a morph needs DPM-Solver++, or DDIM with η = 0")),
            Some(_) if o.batch < 2 => return Err(js_err("a morph needs two images at least")),
            Some(to) => {
                let noise = morph_noise((u64::from(o.seed), u64::from(to)), o.batch, [shape[1], size, size], device);
                SamplingRun::from_noise(sampler, noise, guidance, u64::from(o.seed))
            }
        };
        let fresh = match inpaint {
            Some(inpaint) => fresh.inpainting(inpaint),
            None => fresh,
        };
        let total = fresh.total_steps();
        *run = Some(fresh);
        Ok(total)
    }

    /// x_T of the current run (before any step), read back: a promise of a Float32Array.
    pub fn noise(&self) -> Result<js_sys::Promise, JsValue> {
        let x = self.state.borrow().run.as_ref().ok_or_else(|| js_err("nothing is being generated"))?.current();
        Ok(future_to_promise(async move { Ok(float32(read(x).await?)) }))
    }

    /// Runs the next reverse step: a promise of a [`StepReport`], or of `undefined` once the run
    /// is finished.
    pub fn step(&self) -> js_sys::Promise {
        let state = self.state.clone();
        future_to_promise(async move { Ok(step(state).await?.map_or(JsValue::UNDEFINED, JsValue::from)) })
    }

    /// q(x_t | x_0) for `images` (each `size`² values in [-1, 1]), as [`ForwardOptions`] asks.
    /// A promise of a Float32Array.
    pub fn forward(&self, images: Vec<f32>, options: &str) -> Result<js_sys::Promise, JsValue> {
        let ForwardOptions { size, t, schedule, timesteps, seed } = serde_json::from_str(options).map_err(|e| js_err(format!("forward options: {e}")))?;
        let kind = BetaSchedule::parse(&schedule).map_err(js_err)?;
        if timesteps == 0 || t >= timesteps || size == 0 || images.is_empty() || !images.len().is_multiple_of(size * size) {
            return Err(js_err(format!("forward: t = {t} of {timesteps}, {} values of {size}² images", images.len())));
        }
        let schedule = Schedule::new(kind, timesteps);
        let n = images.len() / (size * size);
        let device = self.state.borrow().device.clone();
        let x0 = Tensor::<4>::from_data(TensorData::new(images, [n, 1, size, size]), &device);
        let noise = NoiseSource::new(u64::from(seed)).normal([n, 1, size, size], &device);
        let x_t = q_sample(&schedule, x0, &vec![t; n], noise);
        Ok(future_to_promise(async move { Ok(float32(read(x_t).await?)) }))
    }
}

async fn step(state: Rc<RefCell<State>>) -> Result<Option<StepReport>, JsValue> {
    let started = now_ms();
    let (step, done, total) = {
        let mut state = state.borrow_mut();
        let State { model, run, .. } = &mut *state;
        let (Some(loaded), Some(run)) = (model.as_ref(), run.as_mut()) else {
            return Err(js_err("nothing is being generated"));
        };
        match run.step(&loaded.sampling) {
            Some(step) => (step, run.steps_done(), run.total_steps()),
            None => return Ok(None),
        }
    };
    // The borrow ends before the await, so the page may call in while the GPU works.
    let values = read(Tensor::cat(vec![step.x_prev, step.x0], 0)).await?;
    Ok(Some(StepReport { done, total, t: step.t, values, millis: now_ms() - started }))
}

#[wasm_bindgen]
impl Engine {
    /// Checks this engine's device against the CPU path (flex) on one fixed batch-1 forward of
    /// `bytes`' model (`crate::self_check`): a promise of JSON `{maxDiff, tolerance, ok, millis}`.
    /// `perturb` adds 1 to the device's answer, as a wrong GPU would (for tests).
    #[wasm_bindgen(js_name = checkAgainstCpu)]
    pub fn check_against_cpu(&self, bytes: &[u8], perturb: bool) -> Result<js_sys::Promise, JsValue> {
        let started = now_ms();
        let device = self.state.borrow().device.clone();
        let cpu = Device::flex();
        let (reference, description) = from_bytes(bytes, &cpu).map_err(js_err)?;
        let (model, _) = from_bytes(bytes, &device).map_err(js_err)?;
        let (size, channels) = (description.unet.image_size, description.unet.channels);
        let reference = probe(&reference.for_inference(), size, channels, &cpu);
        let answer = probe(&model.for_inference(), size, channels, &device);
        Ok(future_to_promise(async move {
            let reference = read(reference).await?;
            let mut answer = read(answer).await?;
            if perturb {
                answer.iter_mut().for_each(|v| *v += 1.0);
            }
            let agreement = Agreement::of(&answer, &reference);
            let json = serde_json::json!({
                "maxDiff": agreement.max_diff,
                "tolerance": agreement.tolerance,
                "ok": agreement.ok(),
                "millis": now_ms() - started,
            });
            Ok(JsValue::from_str(&json.to_string()))
        }))
    }
}

/// Turns the U-Net's own GPU kernels (`crate::kernels`) off, or on again, for every engine of this
/// module: the GPU path then runs Burn's operations alone (`make gpu-check KERNELS=off`).
#[wasm_bindgen(js_name = setKernels)]
pub fn set_kernels(on: bool) {
    crate::kernels::set_enabled(on);
}

/// ᾱ_t for t = 0…T−1 under a schedule, for the page's plot.
#[wasm_bindgen(js_name = alphasCumprod)]
pub fn alphas_cumprod(schedule: &str, timesteps: usize) -> Result<Vec<f64>, JsValue> {
    let kind = BetaSchedule::parse(schedule).map_err(js_err)?;
    if !(1..=10_000).contains(&timesteps) {
        return Err(js_err(format!("timesteps must be 1–10000, not {timesteps}")));
    }
    Ok(Schedule::new(kind, timesteps).alphas_cumprod)
}
