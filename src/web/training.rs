//! Training in the tab: the page's handle on [`crate::train::Trainer`]. Steps are queued on the
//! device and their losses read back asynchronously, a few steps at a time; nothing here reads
//! a tensor synchronously (that panics on WebGPU in a browser).

use super::engine::Engine;
use super::state::Loaded;
use super::training_state::Training;
use super::{float32, js_err, now_ms, read};
use crate::data::{Dataset, Epochs};
use crate::diffusion::LossKind;
use crate::noise::NoiseSource;
use crate::sampler::{Guidance, SamplerKind, SamplingRun, X0};
use crate::schedule::BetaSchedule;
use crate::train::{EvalBatch, TrainConfig, Trainer};
use crate::unet::{UNet, UNetConfig};
use crate::weights::{ModelDescription, Precision, to_bytes_async};
use burn::prelude::*;
use serde::Deserialize;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::future_to_promise;

/// What the page asks for (JSON from `www/train.js`).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TrainOptions {
    /// `"active"`: fine-tune the model Generate uses; `"scratch"`: a new small model.
    from: String,
    classes: Vec<usize>,
    batch: usize,
    lr: f64,
    seed: u32,
    ema: f64,
    /// Random left-right flips. Off unless asked: Fashion-MNIST's shoes all face left, and the
    /// shipped model learned them so (`ddpm train --no-flips`).
    #[serde(default)]
    flips: bool,
}

/// Images the fixed evaluation batch holds (the first ones of the chosen classes).
const EVAL_IMAGES: usize = 32;

/// What a call to `trainSteps` did.
#[wasm_bindgen(getter_with_clone)]
pub struct TrainReport {
    /// Steps done in this training run so far.
    pub done: usize,
    /// The training loss of each step of this call.
    pub losses: Vec<f32>,
    /// Wall time of the call, including the read-back of the losses.
    pub millis: f64,
}

#[wasm_bindgen]
impl Engine {
    /// Keeps the training images (IDX files, gzip or plain); returns how many there are.
    #[wasm_bindgen(js_name = loadData)]
    pub fn load_data(&self, images: Vec<u8>, labels: Vec<u8>) -> Result<usize, JsValue> {
        let data = Dataset::from_idx(images, labels).map_err(js_err)?;
        let n = data.len();
        self.state.borrow_mut().data = Some(data);
        Ok(n)
    }

    /// Starts a training run (see [`TrainOptions`]); returns the model's description as JSON.
    #[wasm_bindgen(js_name = beginTraining)]
    pub fn begin_training(&self, options: &str) -> Result<String, JsValue> {
        let o: TrainOptions = serde_json::from_str(options).map_err(|e| js_err(format!("training options: {e}")))?;
        if !(1..=128).contains(&o.batch) {
            return Err(js_err(format!("batch must be 1–128, not {}", o.batch)));
        }
        if !(o.lr > 0.0 && o.lr <= 0.1) {
            return Err(js_err(format!("learning rate must be in (0, 0.1], not {}", o.lr)));
        }
        if !(0.0..1.0).contains(&o.ema) {
            return Err(js_err(format!("EMA decay must be in [0, 1), not {}", o.ema)));
        }
        if o.classes.is_empty() || o.classes.iter().any(|&c| c >= 10) {
            return Err(js_err("choose at least one class (0–9) to train on"));
        }
        let mut state = self.state.borrow_mut();
        let data = state.data.as_ref().ok_or_else(|| js_err("the training images are not loaded"))?.filter_classes(&o.classes);
        if data.is_empty() {
            return Err(js_err("the chosen classes have no images"));
        }
        let plain = state.device.clone();
        let device = plain.clone().autodiff();
        let (model, description) = match o.from.as_str() {
            "active" => {
                let loaded = state.model.as_ref().ok_or_else(|| js_err("no model is loaded to fine-tune"))?;
                (loaded.model.clone().train(), loaded.description.clone())
            }
            "scratch" => {
                let unet = UNetConfig::small();
                let description = ModelDescription {
                    unet: unet.clone(),
                    schedule: BetaSchedule::Linear,
                    timesteps: 1000,
                    train_steps: 0,
                    data_checksum: None,
                    precision: Precision::F32,
                };
                (unet.init(&device), description)
            }
            other => return Err(js_err(format!("start from {other:?}? expected active or scratch"))),
        };
        let description = ModelDescription { data_checksum: Some(data.checksum()), ..description };
        let schedule = description.schedule();
        let eval_idx: Vec<usize> = (0..data.len().min(EVAL_IMAGES)).collect();
        let (x0, labels) = data.batch(&eval_idx, None, &plain);
        let eval = EvalBatch::new(x0, labels, schedule.len(), u64::from(o.seed) ^ 0xe7a1);
        let config = TrainConfig::new().with_lr(o.lr).with_grad_clip(Some(1.0)).with_ema_decay(o.ema).with_seed(u64::from(o.seed));
        let json = serde_json::to_string(&description).map_err(js_err)?;
        let mut trainer = Trainer::new(model, schedule, config);
        // Fine-tuning keeps the loaded weights as the average they are (0 steps from scratch).
        trainer.ema_updates = description.train_steps;
        state.training = Some(Training {
            trainer,
            epochs: Epochs::new(data.len()),
            rng: NoiseSource::new(u64::from(o.seed) ^ 0x5eed),
            flips: o.flips,
            data,
            classes: o.classes,
            eval,
            batch: o.batch,
            device,
            description,
        });
        Ok(json)
    }

    /// Runs `n` optimisation steps: a promise of a [`TrainReport`].
    #[wasm_bindgen(js_name = trainSteps)]
    pub fn train_steps(&self, n: usize) -> js_sys::Promise {
        let state = self.state.clone();
        future_to_promise(async move {
            let started = now_ms();
            let (losses, done) = {
                let mut state = state.borrow_mut();
                let t = state.training.as_mut().ok_or_else(|| js_err("no training run"))?;
                let mut losses = Vec::with_capacity(n);
                for _ in 0..n.max(1) {
                    let idx = t.epochs.next_batch(t.batch, &mut t.rng);
                    let flips = if t.flips { Some(&mut t.rng) } else { None };
                    let (x, y) = t.data.batch(&idx, flips, &t.device);
                    losses.push(t.trainer.step(x, &y));
                }
                (Tensor::cat(losses, 0), t.trainer.steps_done)
            };
            // The borrow ends before the await: the page may pause or generate meanwhile.
            let losses = read(losses).await?;
            if let Some(bad) = losses.iter().position(|l| !l.is_finite()) {
                let step = done + 1 + bad - losses.len();
                return Err(js_err(format!("the loss diverged at step {step}; start again with a smaller learning rate")));
            }
            Ok(TrainReport { done, losses, millis: now_ms() - started }.into())
        })
    }

    /// The loss of the live weights on a fixed batch (fixed images, t and noise), so values
    /// from different steps compare: a promise of a number.
    #[wasm_bindgen(js_name = evalLoss)]
    pub fn eval_loss(&self) -> Result<js_sys::Promise, JsValue> {
        let state = self.state.borrow();
        let t = state.training.as_ref().ok_or_else(|| js_err("no training run"))?;
        let loss = t.eval.loss(&t.trainer.model().valid(), &t.trainer.schedule, LossKind::L2);
        Ok(future_to_promise(async move { Ok(JsValue::from(read(loss).await?[0])) }))
    }

    /// `count` samples of the chosen classes from the current (EMA) weights by DDIM in `steps`
    /// steps, always from the same noise so previews compare: a promise of their x_0 values.
    pub fn preview(&self, count: usize, steps: usize, seed: u32) -> Result<js_sys::Promise, JsValue> {
        let state = self.state.borrow();
        let t = state.training.as_ref().ok_or_else(|| js_err("no training run"))?;
        let model = t.trainer.inference_model().for_inference();
        let unet = &t.description.unet;
        let sampler = SamplerKind::Ddim { steps, eta: 0.0 }.build(&t.trainer.schedule, X0::Raw).map_err(js_err)?;
        let conditional = model.null_class().is_some();
        let guidance = Guidance::new((0..count).map(|i| conditional.then(|| t.classes[i % t.classes.len()])).collect(), if conditional { 2.0 } else { 0.0 });
        let shape = [count, unet.channels, unet.image_size, unet.image_size];
        let run = SamplingRun::new(sampler, shape, guidance, u64::from(seed), &state.device);
        let x0 = run.finish(&model);
        Ok(future_to_promise(async move { Ok(float32(read(x0).await?)) }))
    }

    /// Makes the training run's current (EMA) weights the model Generate uses; returns their
    /// description as JSON.
    #[wasm_bindgen(js_name = useTrained)]
    pub fn use_trained(&self) -> Result<String, JsValue> {
        let mut state = self.state.borrow_mut();
        let t = state.training.as_ref().ok_or_else(|| js_err("no training run"))?;
        let loaded = Loaded::new(t.trainer.inference_model(), t.description());
        let json = serde_json::to_string(&loaded.description).map_err(js_err)?;
        // A generation in progress goes on with the new weights.
        state.model = Some(loaded);
        Ok(json)
    }

    /// Ends the training run, freeing its optimiser state and gradients' memory.
    #[wasm_bindgen(js_name = endTraining)]
    pub fn end_training(&self) {
        self.state.borrow_mut().training = None;
    }

    /// The model Generate uses, as a weights file `ddpm` and the page can load: a promise of
    /// a Uint8Array.
    #[wasm_bindgen(js_name = saveActive)]
    pub fn save_active(&self) -> Result<js_sys::Promise, JsValue> {
        let state = self.state.borrow();
        let loaded = state.model.as_ref().ok_or_else(|| js_err("no model is loaded"))?;
        Ok(weights_file(loaded.model.clone(), loaded.description.clone()))
    }

    /// The trained (EMA) weights so far as a weights file, without switching to them: the page
    /// keeps the latest copy, so a lost GPU device costs only the steps trained since.
    #[wasm_bindgen(js_name = trainedSnapshot)]
    pub fn trained_snapshot(&self) -> Result<js_sys::Promise, JsValue> {
        let state = self.state.borrow();
        let t = state.training.as_ref().ok_or_else(|| js_err("no training run"))?;
        Ok(weights_file(t.trainer.inference_model(), t.description()))
    }
}

/// Serialises a model asynchronously (one read of all its tensors) into a weights file.
fn weights_file(model: UNet, description: ModelDescription) -> js_sys::Promise {
    future_to_promise(async move {
        let bytes = to_bytes_async(&model, &description).await.map_err(js_err)?;
        Ok(js_sys::Uint8Array::from(bytes.as_slice()).into())
    })
}
