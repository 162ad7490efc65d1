//! A training run in the tab, as the engine holds it between calls (the training module only).

use crate::data::{Dataset, Epochs};
use crate::noise::NoiseSource;
use crate::train::{EvalBatch, Trainer};
use crate::weights::ModelDescription;
use burn::prelude::*;

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
        ModelDescription { train_steps: self.description.train_steps + self.trainer.steps_done, ..self.description.clone() }
    }
}
