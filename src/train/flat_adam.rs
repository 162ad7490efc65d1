//! Burn's Adam with per-tensor gradient clipping, and the weights' moving average, kept as one
//! flat buffer per quantity (parameters, both moments, the average) instead of one tensor per
//! parameter: a training step's update is then three kernel launches, after gathering the
//! gradients six tensors a launch, where Burn's optimiser takes about twenty launches per
//! parameter tensor. The model's parameters are views of the flat buffer. Its state is saved in
//! Burn's own optimiser format, so a run may resume under either optimiser.

use crate::kernels::{self, AdamUpdate, FlatGather, FlatState, Segments};
use crate::unet::UNet;
use burn::module::{Module, ModuleMapper, ModuleVisitor, Param, ParamId};
use burn::optim::GradientsParams;
use burn::prelude::*;
use burn::tensor::Bytes;

/// Burn's `AdamConfig` defaults, which the trainer uses.
const BETA_1: f32 = 0.9;
const BETA_2: f32 = 0.999;
const EPSILON: f32 = 1e-5;

pub struct FlatAdam {
    segments: Segments,
    ids: Vec<ParamId>,
    shapes: Vec<Vec<usize>>,
    total: usize,
    max_norm: Option<f32>,
    state: FlatState,
    /// Adam's step count t (0 before the first step).
    time: usize,
}

impl FlatAdam {
    /// For the parameters of `model` (on an autodiff device) as they are now, with no moments yet;
    /// with `average`, a moving average that starts from them too.
    pub fn new(model: &UNet, max_norm: Option<f32>, average: bool) -> Self {
        struct Layout {
            ids: Vec<ParamId>,
            shapes: Vec<Vec<usize>>,
        }
        impl ModuleVisitor for Layout {
            fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
                self.ids.push(param.id);
                self.shapes.push(param.val().dims().to_vec());
            }
        }
        let mut layout = Layout { ids: vec![], shapes: vec![] };
        model.visit(&mut layout);
        let lens: Vec<usize> = layout.shapes.iter().map(|s| s.iter().product()).collect();
        let device = model.init_conv.weight.val().device().inner();
        let probe = Tensor::<1>::zeros([1], &device);
        let align = kernels::flat_alignment(&probe);
        let mut starts = Vec::with_capacity(lens.len());
        let mut total = 0;
        for &len in &lens {
            starts.push(total);
            total += len.div_ceil(align) * align;
        }
        let segments = Segments::new(starts, lens, &device);
        let zeros = || Tensor::<1>::zeros([total], &device);
        let params = gather(&segments, zeros(), model);
        // Tensors are values, so the average may start as the parameters' tensor itself.
        let state = FlatState { average: average.then(|| params.clone()), params, moment_1: zeros(), moment_2: zeros() };
        Self { state, segments, ids: layout.ids, shapes: layout.shapes, total, max_norm, time: 0 }
    }

    /// Restarts the moving average from `average`'s parameters.
    pub fn set_average(&mut self, average: &UNet) {
        self.state.average = Some(gather(&self.segments, self.zeros(), average));
    }

    /// One step at learning rate `lr` from `model`'s gradients; `decay` updates the average.
    /// Returns the updated model, whose parameters are views of the flat buffer.
    pub fn step(&mut self, lr: f64, model: UNet, grads: GradientsParams, decay: Option<f64>) -> UNet {
        self.time += 1;
        let t = i32::try_from(self.time).unwrap_or(i32::MAX);
        let correction_2 = (1.0 - BETA_2.powi(t)).sqrt();
        let update = AdamUpdate {
            lr,
            beta_1: BETA_1,
            beta_2: BETA_2,
            step_factor: correction_2 / (1.0 - BETA_1.powi(t)),
            epsilon: EPSILON * correction_2,
            max_norm: self.max_norm,
            decay,
        };
        let grads = self.flat_grads(&model, grads);
        self.state = kernels::adam_update(self.state.clone(), grads, &self.segments, &update);
        self.views(model, &self.state.params, true)
    }

    /// `template` (a model without autodiff, of the same layout) holding the moving average.
    pub fn average(&self, template: UNet) -> Option<UNet> {
        self.state.average.as_ref().map(|a| self.views(template, a, false))
    }

    /// The flat buffers as they are (parameters, moments and average, padding included), and
    /// where the tensors lie in them.
    pub fn buffers(&self) -> (&FlatState, &Segments) {
        (&self.state, &self.segments)
    }

    /// The gradients in the parameters' layout (zero for a parameter that got none).
    fn flat_grads(&self, model: &UNet, grads: GradientsParams) -> Tensor<1> {
        struct Gather<'a> {
            flat: FlatGather,
            grads: GradientsParams,
            starts: std::slice::Iter<'a, usize>,
        }
        impl ModuleVisitor for Gather<'_> {
            fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
                let start = *self.starts.next().expect("a segment per parameter");
                if let Some(grad) = self.grads.remove::<D>(param.id) {
                    self.flat.put(start, grad);
                }
            }
        }
        let mut gather = Gather { flat: FlatGather::new(self.zeros()), grads, starts: self.segments.starts.iter() };
        model.visit(&mut gather);
        gather.flat.finish()
    }

    fn zeros(&self) -> Tensor<1> {
        Tensor::zeros([self.total], &self.state.params.device())
    }

    /// `model` with its parameters replaced by views of `flat` (as autodiff leaves that require a
    /// gradient when `trainable`).
    fn views(&self, model: UNet, flat: &Tensor<1>, trainable: bool) -> UNet {
        struct Views<'a> {
            flat: &'a Tensor<1>,
            segments: &'a Segments,
            index: usize,
            trainable: bool,
        }
        impl ModuleMapper for Views<'_> {
            fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
                let (id, tensor, mapper) = param.consume();
                let view = kernels::flat_view(self.flat, self.segments.starts[self.index], tensor.dims());
                self.index += 1;
                let view = if self.trainable { Tensor::from_inner(view).require_grad() } else { view };
                Param::from_mapped_value(id, view, mapper)
            }
        }
        model.map(&mut Views { flat, segments: &self.segments, index: 0, trainable })
    }

    /// The moments in Burn's optimiser format (a burnpack keyed by parameter id), which
    /// `burn::optim::ModuleOptimizer::from_bytes` reads too.
    pub fn to_bytes(&self) -> Result<Vec<u8>, String> {
        let mut tensors = vec![];
        let mut writer_scalars = vec![];
        if self.time > 0 {
            for (i, id) in self.ids.iter().enumerate() {
                let (start, len) = (self.segments.starts[i], self.segments.lens[i]);
                let key = id.val().to_string();
                let shape = &self.shapes[i];
                for (name, flat) in [("moment_1", &self.state.moment_1), ("moment_2", &self.state.moment_2)] {
                    let (bytes, _, dtype) = flat.clone().slice(start..start + len).into_data().into_parts();
                    tensors.push(burn_pack::Tensor::new(format!("{key}.momentum.{name}"), dtype, shape.clone(), Some(id.val()), bytes));
                }
                writer_scalars.push((format!("{key}.momentum.time"), burn_pack::Scalar::from(self.time)));
                writer_scalars.push((format!("{key}.__rank"), burn_pack::Scalar::from(shape.len())));
            }
        }
        let mut writer = burn_pack::Writer::new(tensors);
        for (key, value) in &writer_scalars {
            writer = writer.with_scalar(key, *value);
        }
        writer.into_bytes().map(|b| b.to_vec()).map_err(|e| e.to_string())
    }

    /// Restores moments saved by [`FlatAdam::to_bytes`] or by Burn's optimiser for the same
    /// parameters (a parameter absent from `bytes` keeps zero moments).
    pub fn load_bytes(&mut self, bytes: &[u8]) -> Result<(), String> {
        let reader = burn_pack::Reader::from_bytes(Bytes::from_bytes_vec(bytes.to_vec())).map_err(|e| e.to_string())?;
        let scalars = reader.scalars().clone();
        let mut found = std::collections::HashMap::new();
        for tensor in reader.into_tensors().map_err(|e| e.to_string())? {
            let (name, dtype, shape, _, bytes) = tensor.into_parts().map_err(|e| e.to_string())?;
            found.insert(name, TensorData::from_bytes(bytes, shape, dtype));
        }
        let device = self.state.params.device();
        let mut time = 0;
        let (mut moment_1, mut moment_2) = (self.state.moment_1.clone().zeros_like(), self.state.moment_2.clone().zeros_like());
        for (i, id) in self.ids.iter().enumerate() {
            let (start, len) = (self.segments.starts[i], self.segments.lens[i]);
            let key = id.val().to_string();
            let mut take = |name: &str, flat: Tensor<1>| -> Result<Tensor<1>, String> {
                let Some(data) = found.remove(&format!("{key}.momentum.{name}")) else { return Ok(flat) };
                if data.num_elements() != len {
                    return Err(format!("optimiser state for parameter {key} has {} values, the model {len}", data.num_elements()));
                }
                let values = data.convert::<f32>().try_to_vec::<f32>().map_err(|e| format!("{e:?}"))?;
                let values = Tensor::<1>::from_data(TensorData::new(values, [len]), &device);
                Ok(flat.slice_assign(start..start + len, values))
            };
            moment_1 = take("moment_1", moment_1)?;
            moment_2 = take("moment_2", moment_2)?;
            if let Some(t) = scalars.get(&format!("{key}.momentum.time")).and_then(|s| usize::try_from(*s).ok()) {
                time = time.max(t);
            }
        }
        self.state.moment_1 = moment_1;
        self.state.moment_2 = moment_2;
        self.time = time;
        Ok(())
    }
}

/// Every parameter of `model` in its segment of `flat`.
fn gather(segments: &Segments, flat: Tensor<1>, model: &UNet) -> Tensor<1> {
    struct Gather<'a> {
        flat: FlatGather,
        starts: std::slice::Iter<'a, usize>,
    }
    impl ModuleVisitor for Gather<'_> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            let value = param.val();
            let value = if value.is_autodiff() { value.inner() } else { value };
            self.flat.put(*self.starts.next().expect("a segment per parameter"), value);
        }
    }
    let mut gather = Gather { flat: FlatGather::new(flat), starts: segments.starts.iter() };
    model.visit(&mut gather);
    gather.flat.finish()
}
