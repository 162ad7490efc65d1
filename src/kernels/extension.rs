//! The kernels as Burn backend operations (Burn's `backend_extension`): on the CubeCL backend the
//! forward kernel, and under autodiff the same kernel recorded with its backward kernel, so that
//! training takes one launch each way instead of Burn's operations and their gradients.

use super::group_norm::{self, Options};
use super::{attention, conv, linear_attention, standardize};
use burn::backend::tensor::FloatTensor;
use burn::backend::{Backend, backend_extension};
use burn::tensor::Tensor as BurnTensor;
use burn::tensor::ops::ConvOptions;
use burn_cubecl::CubeBackend;
use burn_cubecl::kernel::conv::conv_forward;

#[backend_extension(Cube, Autodiff: cfg(feature = "train"))]
pub trait UNetOps: Backend {
    /// [`super::group_norm_act`] on `x` `[B, C, H, W]`; `table` and `residual` are read only when
    /// `column` is given and `residual` is set.
    #[allow(clippy::too_many_arguments)]
    fn group_norm_act(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        table: FloatTensor<Self>,
        residual: FloatTensor<Self>,
        groups: usize,
        epsilon: f64,
        column: Option<usize>,
        silu: bool,
        has_residual: bool,
    ) -> FloatTensor<Self>;

    /// [`super::linear_attention`] on `qkv` `[B, 3·H·D, X, Y]`.
    fn linear_attention(qkv: FloatTensor<Self>, heads: usize, dim_head: usize) -> FloatTensor<Self>;

    /// [`super::attention`] on `qkv` `[B, 3·H·D, X, Y]`.
    fn attention(qkv: FloatTensor<Self>, heads: usize, dim_head: usize) -> FloatTensor<Self>;

    /// [`super::conv2d`]; `bias` is read only when `has_bias` is set.
    fn conv2d(x: FloatTensor<Self>, weight: FloatTensor<Self>, bias: FloatTensor<Self>, has_bias: bool, options: ConvOptions<2>) -> FloatTensor<Self>;

    /// [`super::standardize_weight`] on a convolution kernel `[O, I, kh, kw]`.
    fn standardize_weight(weight: FloatTensor<Self>, epsilon: f64) -> FloatTensor<Self>;
}

/// `f` on the CubeCL tensor `x` seen as a Burn tensor.
fn through<const D: usize>(x: FloatTensor<CubeBackend>, f: impl FnOnce(BurnTensor<D>) -> BurnTensor<D>) -> FloatTensor<CubeBackend> {
    f(BurnTensor::from_primitive::<CubeBackend>(x)).try_into_primitive::<CubeBackend>().expect("a tensor on the CubeCL backend")
}

impl UNetOps for CubeBackend {
    fn group_norm_act(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        table: FloatTensor<Self>,
        residual: FloatTensor<Self>,
        groups: usize,
        epsilon: f64,
        column: Option<usize>,
        silu: bool,
        has_residual: bool,
    ) -> FloatTensor<Self> {
        group_norm::forward(x, gamma, beta, table, residual, Options { groups, epsilon, column, silu, residual: has_residual })
    }

    fn linear_attention(qkv: FloatTensor<Self>, heads: usize, dim_head: usize) -> FloatTensor<Self> {
        through(qkv, |qkv| linear_attention::launch(qkv, heads, dim_head))
    }

    fn attention(qkv: FloatTensor<Self>, heads: usize, dim_head: usize) -> FloatTensor<Self> {
        through(qkv, |qkv| attention::launch(qkv, heads, dim_head))
    }

    fn conv2d(x: FloatTensor<Self>, weight: FloatTensor<Self>, bias: FloatTensor<Self>, has_bias: bool, options: ConvOptions<2>) -> FloatTensor<Self> {
        let bias = has_bias.then_some(bias);
        if conv::supports(x.meta.shape()[1], weight.meta.shape().dims(), &options) {
            return conv::forward(x, weight, bias);
        }
        conv_forward::<2>(x, weight, bias, options, Default::default()).expect("a convolution Burn's CubeCL backend runs")
    }

    fn standardize_weight(weight: FloatTensor<Self>, epsilon: f64) -> FloatTensor<Self> {
        standardize::forward(weight, epsilon)
    }
}

#[cfg(feature = "train")]
mod autodiff {
    use super::*;
    use burn::backend::autodiff::checkpoint::base::Checkpointer;
    use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
    use burn::backend::autodiff::grads::Gradients;
    use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
    use burn::backend::autodiff::Autodiff;

    #[derive(Debug)]
    struct GroupNormActBackward;

    impl Backward<CubeBackend, 5> for GroupNormActBackward {
        type State = (FloatTensor<CubeBackend>, FloatTensor<CubeBackend>, FloatTensor<CubeBackend>, FloatTensor<CubeBackend>, Options);

        fn backward(self, ops: Ops<Self::State, 5>, grads: &mut Gradients, _checkpointer: &mut Checkpointer) {
            let [x_node, gamma_node, beta_node, table_node, residual_node] = ops.parents;
            let grad = grads.consume::<CubeBackend>(&ops.node);
            let (x, gamma, beta, table, options) = ops.state;
            if let (Some(node), true) = (residual_node, options.residual) {
                grads.register::<CubeBackend>(node.id, grad.clone());
            }
            let (grad_x, grad_gamma, grad_beta, grad_table) = group_norm::backward(x, gamma, beta, table, grad, options);
            if let Some(node) = x_node {
                grads.register::<CubeBackend>(node.id, grad_x);
            }
            if let Some(node) = gamma_node {
                grads.register::<CubeBackend>(node.id, grad_gamma);
            }
            if let Some(node) = beta_node {
                grads.register::<CubeBackend>(node.id, grad_beta);
            }
            if let (Some(node), Some(grad_table)) = (table_node, grad_table) {
                grads.register::<CubeBackend>(node.id, grad_table);
            }
        }
    }

    /// An attention core: its forward kernel, and its backward from the saved `qkv`.
    #[derive(Debug)]
    struct AttentionBackward {
        backward: fn(BurnTensor<4>, BurnTensor<4>, usize, usize) -> BurnTensor<4>,
    }

    impl Backward<CubeBackend, 1> for AttentionBackward {
        type State = (FloatTensor<CubeBackend>, usize, usize);

        fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _checkpointer: &mut Checkpointer) {
            let [node] = ops.parents;
            let grad = grads.consume::<CubeBackend>(&ops.node);
            let (qkv, heads, dim_head) = ops.state;
            if let Some(node) = node {
                let qkv = BurnTensor::<4>::from_primitive::<CubeBackend>(qkv);
                let grad = through(grad, |grad| (self.backward)(qkv, grad, heads, dim_head));
                grads.register::<CubeBackend>(node.id, grad);
            }
        }
    }

    #[derive(Debug)]
    struct Conv2dBackward;

    impl Backward<CubeBackend, 3> for Conv2dBackward {
        type State = (FloatTensor<CubeBackend>, FloatTensor<CubeBackend>, ConvOptions<2>);

        fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _checkpointer: &mut Checkpointer) {
            use burn_cubecl::kernel::conv::{ConvStrategy, conv_data_backward, conv_weight_backward};
            let [x_node, weight_node, bias_node] = ops.parents;
            let grad = grads.consume::<CubeBackend>(&ops.node);
            let (x, weight, options) = ops.state;
            let failed = "a convolution's gradient Burn's CubeCL backend computes";
            let weight_shape: [usize; 4] = weight.meta.shape().dims();
            if let Some(node) = x_node {
                let grad_x = match conv::supports_data_backward(weight_shape, &options) {
                    true => conv::data_backward(grad.clone(), weight.clone()),
                    false => conv_data_backward(grad.clone(), weight.clone(), x.meta.shape().clone(), options.clone(), ConvStrategy::default()).expect(failed),
                };
                grads.register::<CubeBackend>(node.id, grad_x);
            }
            let (grad_weight, grad_bias) = match conv::supports(weight_shape[1], weight_shape, &options) {
                // One kernel for both, when either is asked for.
                true if weight_node.is_some() || bias_node.is_some() => {
                    let (weight, bias) = conv::weight_backward(x, grad, weight_shape[2], bias_node.is_some());
                    (Some(weight), bias)
                }
                true => (None, None),
                false => {
                    let bias = bias_node.as_ref().map(|_| {
                        let sum = BurnTensor::<4>::from_primitive::<CubeBackend>(grad.clone()).swap_dims(0, 1).flatten::<2>(1, 3).sum_dim(1).flatten::<1>(0, 1);
                        sum.try_into_primitive::<CubeBackend>().expect(failed)
                    });
                    let weight = weight_node.as_ref().map(|_| conv_weight_backward::<2>(x, grad, weight.meta.shape().clone(), options, ConvStrategy::Direct).expect(failed));
                    (weight, bias)
                }
            };
            if let (Some(node), Some(grad)) = (weight_node, grad_weight) {
                grads.register::<CubeBackend>(node.id, grad);
            }
            if let (Some(node), Some(grad)) = (bias_node, grad_bias) {
                grads.register::<CubeBackend>(node.id, grad);
            }
        }
    }

    #[derive(Debug)]
    struct StandardizeBackward;

    impl Backward<CubeBackend, 1> for StandardizeBackward {
        type State = (FloatTensor<CubeBackend>, f64);

        fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _checkpointer: &mut Checkpointer) {
            let [node] = ops.parents;
            let grad = grads.consume::<CubeBackend>(&ops.node);
            let (weight, epsilon) = ops.state;
            if let Some(node) = node {
                grads.register::<CubeBackend>(node.id, standardize::backward(weight, grad, epsilon));
            }
        }
    }

    fn tracked_attention<C: CheckpointStrategy>(
        qkv: FloatTensor<Autodiff<CubeBackend, C>>,
        heads: usize,
        dim_head: usize,
        forward: fn(BurnTensor<4>, usize, usize) -> BurnTensor<4>,
        backward: fn(BurnTensor<4>, BurnTensor<4>, usize, usize) -> BurnTensor<4>,
    ) -> FloatTensor<Autodiff<CubeBackend, C>> {
        let parent = [qkv.node()];
        let qkv = qkv.into_primitive();
        let output = through(qkv.clone(), |qkv| forward(qkv, heads, dim_head));
        match (AttentionBackward { backward }).prepare::<C>(parent).compute_bound().stateful() {
            OpsKind::Tracked(prep) => prep.finish((qkv, heads, dim_head), output),
            OpsKind::UnTracked(prep) => prep.finish(output),
        }
    }

    impl<C: CheckpointStrategy> UNetOps for Autodiff<CubeBackend, C> {
        fn linear_attention(qkv: FloatTensor<Self>, heads: usize, dim_head: usize) -> FloatTensor<Self> {
            tracked_attention::<C>(qkv, heads, dim_head, linear_attention::launch, linear_attention::backward)
        }

        fn attention(qkv: FloatTensor<Self>, heads: usize, dim_head: usize) -> FloatTensor<Self> {
            tracked_attention::<C>(qkv, heads, dim_head, attention::launch, attention::backward)
        }

        fn conv2d(x: FloatTensor<Self>, weight: FloatTensor<Self>, bias: FloatTensor<Self>, has_bias: bool, options: ConvOptions<2>) -> FloatTensor<Self> {
            let parents = [x.node(), weight.node(), bias.node()];
            let (x, weight, bias) = (x.into_primitive(), weight.into_primitive(), bias.into_primitive());
            let output = CubeBackend::conv2d(x.clone(), weight.clone(), bias, has_bias, options.clone());
            match Conv2dBackward.prepare::<C>(parents).compute_bound().stateful() {
                OpsKind::Tracked(prep) => prep.finish((x, weight, options), output),
                OpsKind::UnTracked(prep) => prep.finish(output),
            }
        }

        fn standardize_weight(weight: FloatTensor<Self>, epsilon: f64) -> FloatTensor<Self> {
            let parent = [weight.node()];
            let weight = weight.into_primitive();
            let output = standardize::forward(weight.clone(), epsilon);
            match StandardizeBackward.prepare::<C>(parent).compute_bound().stateful() {
                OpsKind::Tracked(prep) => prep.finish((weight, epsilon), output),
                OpsKind::UnTracked(prep) => prep.finish(output),
            }
        }

        fn group_norm_act(
            x: FloatTensor<Self>,
            gamma: FloatTensor<Self>,
            beta: FloatTensor<Self>,
            table: FloatTensor<Self>,
            residual: FloatTensor<Self>,
            groups: usize,
            epsilon: f64,
            column: Option<usize>,
            silu: bool,
            has_residual: bool,
        ) -> FloatTensor<Self> {
            let options = Options { groups, epsilon, column, silu, residual: has_residual };
            let parents = [x.node(), gamma.node(), beta.node(), table.node(), residual.node()];
            let (x, gamma, beta, table, residual) = (x.into_primitive(), gamma.into_primitive(), beta.into_primitive(), table.into_primitive(), residual.into_primitive());
            let output = group_norm::forward(x.clone(), gamma.clone(), beta.clone(), table.clone(), residual, options);
            match GroupNormActBackward.prepare::<C>(parents).compute_bound().stateful() {
                OpsKind::Tracked(prep) => prep.finish((x, gamma, beta, table, options), output),
                OpsKind::UnTracked(prep) => prep.finish(output),
            }
        }
    }
}
