//! What the engine holds between calls from the page: the device, the model Generate uses, the
//! sampling run in progress and, in the training module, the training run with its images
//! (training_state.rs). Sampling (engine.rs) and training (training.rs) both work on it; neither
//! depends on the other.

use crate::sampler::SamplingRun;
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
    #[cfg(feature = "train")]
    pub data: Option<crate::data::Dataset>,
    #[cfg(feature = "train")]
    pub training: Option<super::training_state::Training>,
}
