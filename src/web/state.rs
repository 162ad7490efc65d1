//! What the engine holds between calls from the page: the device, the model Generate uses, the
//! sampling run in progress, and the training run with its images. Sampling (engine.rs) and
//! training (training.rs) both work on it; neither depends on the other.

use crate::data::{Dataset, Epochs};
use crate::noise::NoiseSource;
use crate::sampler::SamplingRun;
use crate::train::{EvalBatch, Trainer};
use crate::unet::UNet;
use crate::weights::ModelDescription;
use burn::prelude::*;

pub(super) struct Loaded {
    /// The weights as loaded or trained: what fine-tuning starts from and Save writes.
    pub model: UNet,
    /// The same weights prepared for sampling ([`UNet::for_inference`]).
    pub sampling: UNet,
    pub description: ModelDescription,
}

impl Loaded {
    pub fn new(model: UNet, description: ModelDescription) -> Self {
        Self { sampling: model.for_inference(), model, description }
    }
}

pub(super) struct State {
    pub device: Device,
    /// The model Generate uses: loaded from a file, or taken from a training run.
    pub model: Option<Loaded>,
    pub run: Option<SamplingRun>,
    /// Images to train on, once the page has sent them.
    pub data: Option<Dataset>,
    pub training: Option<Training>,
}

pub(super) struct Training {
    pub trainer: Trainer,
    pub data: Dataset,
    pub classes: Vec<usize>,
    pub epochs: Epochs,
    pub rng: NoiseSource,
    pub flips: bool,
    pub eval: EvalBatch,
    pub batch: usize,
    /// The autodiff device the model trains on.
    pub device: Device,
    /// The description of the weights training started from; its step count grows with ours.
    pub description: ModelDescription,
}

impl Training {
    pub fn description(&self) -> ModelDescription {
        ModelDescription {
            train_steps: self.description.train_steps + self.trainer.steps_done,
            ..self.description.clone()
        }
    }
}
