//! Adam with per-tensor clipping and the moving average over the flat buffers, in one pass over
//! them; and the gather of the gradients into one flat buffer, one copy each. Burn's optimiser
//! takes about twenty operations per parameter tensor, each a pass and an allocation.

use super::super::{AdamUpdate, FlatState, Segments};
use super::{tensor, values, wide_fn};
use burn::backend::Flex;
use burn::backend::flex::FlexTensor;
use burn::prelude::*;

fn primitive(x: Tensor<1>) -> FlexTensor {
    x.try_into_primitive::<Flex>().expect("a flat buffer on the flex backend")
}

fn from_values(values: Vec<f32>) -> Tensor<1> {
    let len = values.len();
    Tensor::from_primitive::<Flex>(tensor(values, [len]))
}

/// [`super::super::adam_update`] on flex: the padding between tensors gets zero gradients, so
/// it keeps zero moments and its parameters.
pub(in crate::kernels) fn update(state: FlatState, grads: Tensor<1>, segments: &Segments, update: &AdamUpdate) -> FlatState {
    let (params, m1, m2) = (primitive(state.params), primitive(state.moment_1), primitive(state.moment_2));
    let average = state.average.map(primitive);
    let grads = primitive(grads);
    let (params, m1, m2, grads) = (values(&params), values(&m1), values(&m2), values(&grads));
    let average = average.as_ref().map(values);
    let len = params.len();
    // Each element's clipping factor: one per segment, 1 in the padding.
    let mut factors = vec![(0..len, 1.0f32)];
    if let Some(max_norm) = update.max_norm {
        factors = segments
            .ranges()
            .map(|range| {
                let norm = grads[range.clone()].iter().map(|g| (g * g) as f64).sum::<f64>().sqrt() as f32;
                (range, (max_norm / (norm + f32::MIN_POSITIVE)).min(1.0))
            })
            .collect();
    }
    let mut scale = vec![1.0f32; len];
    for (range, factor) in factors {
        scale[range].fill(factor);
    }
    let AdamUpdate { lr, beta_1, beta_2, step_factor, epsilon, decay, .. } = *update;
    let (mut new_params, mut new_m1, mut new_m2) = (vec![0.0; len], vec![0.0; len], vec![0.0; len]);
    let constants = [beta_1, beta_2, step_factor, epsilon, lr as f32];
    step(&params, &m1, &m2, &grads, &scale, constants, &mut new_params, &mut new_m1, &mut new_m2);
    let average = match (average, decay) {
        (Some(a), Some(d)) => {
            let d = d as f32;
            Some(from_values(a.iter().zip(&new_params).map(|(a, p)| a * d + p * (1.0 - d)).collect()))
        }
        (Some(a), None) => Some(from_values(a.into_owned())),
        (None, _) => None,
    };
    FlatState { params: from_values(new_params), moment_1: from_values(new_m1), moment_2: from_values(new_m2), average }
}

wide_fn! {
    /// Adam's step on every element: `constants` are β₁, β₂, the bias correction, ε and the rate.
    #[allow(clippy::too_many_arguments)]
    fn step(params: &[f32], m1: &[f32], m2: &[f32], grads: &[f32], scale: &[f32], constants: [f32; 5], new_params: &mut [f32], new_m1: &mut [f32], new_m2: &mut [f32]) {
        let [beta_1, beta_2, step_factor, epsilon, lr] = constants;
        for i in 0..params.len() {
            let g = grads[i] * scale[i];
            let m1 = m1[i] * beta_1 + g * (1.0 - beta_1);
            let m2 = m2[i] * beta_2 + g * g * (1.0 - beta_2);
            new_params[i] = params[i] - m1 * step_factor / (m2.sqrt() + epsilon) * lr;
            new_m1[i] = m1;
            new_m2[i] = m2;
        }
    }
}

/// [`super::super::FlatGather`]'s buffer with each part's values, row-major, from its start.
pub(in crate::kernels) fn gather(flat: Tensor<1>, parts: Vec<(usize, FlexTensor)>) -> Tensor<1> {
    let mut flat = values(&primitive(flat)).into_owned();
    for (start, part) in parts {
        let part = values(&part);
        flat[start..start + part.len()].copy_from_slice(&part);
    }
    from_values(flat)
}
