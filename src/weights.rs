//! One file holds a trained model: a description (U-Net config, schedule, T, training steps,
//! data checksum) and the tensors. Layout: the magic `DDPMWEB1`, a little-endian u32 length and
//! that many bytes of JSON, then a burnpack container with the tensors (f32 or f16).

use crate::schedule::{BetaSchedule, Schedule};
use crate::unet::{UNet, UNetConfig};
use burn::module::{ModuleMapper, ModuleVisitor, Param};
use burn::prelude::*;
use burn::store::{BurnpackStore, FloatCastAdapter, ModuleSnapshot};
use burn::tensor::DType;
use serde::{Deserialize, Serialize};

const MAGIC: &[u8; 8] = b"DDPMWEB1";
/// A description is a few hundred bytes; anything near this is not one.
const MAX_DESCRIPTION: usize = 1 << 20;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    F32,
    F16,
}

/// Everything needed to rebuild and use the model, stored beside its tensors.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModelDescription {
    pub unet: UNetConfig,
    pub schedule: BetaSchedule,
    pub timesteps: usize,
    pub train_steps: usize,
    /// Fingerprint of the training data ([`crate::data::Dataset::checksum`]), if known.
    pub data_checksum: Option<String>,
    pub precision: Precision,
}

impl ModelDescription {
    pub fn schedule(&self) -> Schedule {
        Schedule::new(self.schedule, self.timesteps)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum WeightsError {
    #[error("not a ddpm-web weights file (it does not start with DDPMWEB1)")]
    Magic,
    #[error("the weights file is truncated: {0}")]
    Truncated(String),
    #[error("the model description is unreadable: {0}")]
    Description(String),
    #[error("the model description is invalid: {0}")]
    InvalidConfig(String),
    #[error("the tensors do not match the description: {0}")]
    Mismatch(String),
    #[error("the tensor container is corrupt: {0}")]
    Container(String),
}

/// Serialises `model` (reading its tensors synchronously: native only) with its description.
pub fn to_bytes(model: &UNet, description: &ModelDescription) -> Result<Vec<u8>, WeightsError> {
    let json = serde_json::to_vec(description).map_err(|e| WeightsError::Description(e.to_string()))?;
    let dtype = match description.precision {
        Precision::F32 => DType::F32,
        Precision::F16 => DType::F16,
    };
    let mut store = BurnpackStore::from_bytes(None).with_to_adapter(FloatCastAdapter::to(dtype));
    model.save_into(&mut store).map_err(|e| WeightsError::Container(e.to_string()))?;
    let pack = store.get_bytes().map_err(|e| WeightsError::Container(e.to_string()))?;
    let mut out = Vec::with_capacity(12 + json.len() + pack.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&(json.len() as u32).to_le_bytes());
    out.extend_from_slice(&json);
    out.extend_from_slice(&pack);
    Ok(out)
}

/// Reads only the description, without touching the tensors.
pub fn read_description(bytes: &[u8]) -> Result<(ModelDescription, &[u8]), WeightsError> {
    if bytes.len() < MAGIC.len() || &bytes[..MAGIC.len()] != MAGIC {
        return Err(WeightsError::Magic);
    }
    let len_bytes = bytes.get(8..12).ok_or_else(|| WeightsError::Truncated(format!("{} bytes, no header", bytes.len())))?;
    let len = u32::from_le_bytes(len_bytes.try_into().unwrap()) as usize;
    if len > MAX_DESCRIPTION || 12 + len > bytes.len() {
        return Err(WeightsError::Truncated(format!("the header claims a {len}-byte description in a {}-byte file", bytes.len())));
    }
    let description: ModelDescription = serde_json::from_slice(&bytes[12..12 + len]).map_err(|e| WeightsError::Description(e.to_string()))?;
    description.unet.validate().map_err(WeightsError::InvalidConfig)?;
    if description.timesteps == 0 || description.timesteps > 100_000 {
        return Err(WeightsError::InvalidConfig(format!("T = {} is out of range", description.timesteps)));
    }
    Ok((description, &bytes[12 + len..]))
}

/// Rebuilds the model a file describes on `device` and fills in its tensors.
pub fn from_bytes(bytes: &[u8], device: &Device) -> Result<(UNet, ModelDescription), WeightsError> {
    let (description, pack) = read_description(bytes)?;
    let mut model = description.unet.init(device);
    let mut store = BurnpackStore::from_bytes(Some(burn::tensor::Bytes::from_bytes_vec(pack.to_vec()))).with_from_adapter(FloatCastAdapter::to(DType::F32));
    let result = model.load_from(&mut store).map_err(|e| WeightsError::Container(e.to_string()))?;
    if !result.missing.is_empty() {
        let names: Vec<_> = result.missing.iter().map(|(n, _)| n.as_str()).take(5).collect();
        return Err(WeightsError::Mismatch(format!("missing tensors {names:?}")));
    }
    if !result.errors.is_empty() {
        return Err(WeightsError::Mismatch(format!("{:?}", result.errors[0])));
    }
    if !result.unused.is_empty() {
        return Err(WeightsError::Mismatch(format!("unexpected tensors {:?}", &result.unused[..result.unused.len().min(5)])));
    }
    Ok((model, description))
}

/// Every float parameter of `model`, flattened, in visiting order (the order [`ModuleMapper`]s
/// see them in, so two models of one config line up parameter by parameter).
pub fn flat_params(model: &UNet) -> Vec<Tensor<1>> {
    struct Collect(Vec<Tensor<1>>);
    impl ModuleVisitor for Collect {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            let value = param.val();
            let n = value.shape().num_elements();
            self.0.push(value.reshape([n]));
        }
    }
    let mut collect = Collect(Vec::new());
    model.visit(&mut collect);
    collect.0
}

/// [`to_bytes`] for devices that cannot be read synchronously (WebGPU in a browser): the
/// parameters come back in one asynchronous read and are serialised from a CPU copy.
pub async fn to_bytes_async(model: &UNet, description: &ModelDescription) -> Result<Vec<u8>, WeightsError> {
    let data = Tensor::cat(flat_params(model), 0).into_data_async().await.map_err(|e| WeightsError::Container(format!("{e:?}")))?;
    let values = data.try_into_vec::<f32>().map_err(|e| WeightsError::Container(format!("{e:?}")))?;

    // The copy has the model's config, hence its parameters in the same order and shapes.
    struct Fill<'a> {
        values: &'a [f32],
        device: Device,
    }
    impl ModuleMapper for Fill<'_> {
        fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
            let device = self.device.clone();
            let values = &mut self.values;
            param.map(|old| {
                let (head, rest) = values.split_at(old.shape().num_elements());
                *values = rest;
                Tensor::from_data(TensorData::new(head.to_vec(), old.dims()), &device)
            })
        }
    }
    let device = Device::flex();
    let copy = description.unet.init(&device).map(&mut Fill { values: &values, device: device.clone() });
    to_bytes(&copy, description)
}
