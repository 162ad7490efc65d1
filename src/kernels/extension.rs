//! The kernels as Burn backend operations (Burn's `backend_extension`): on the CubeCL backend the
//! GPU kernels, on flex the CPU kernels (`super::cpu`), and under autodiff the same forward
//! recorded with its backward kernel, so that training takes one kernel each way instead of Burn's
//! operations and their gradients.

use super::group_norm::{self, Options};
use super::{attention, conv, cpu, linear_attention, standardize};
use burn::backend::Flex;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Backend, backend_extension};
use burn::tensor::Tensor as BurnTensor;
use burn::tensor::ops::ConvOptions;
use burn_cubecl::CubeBackend;
use burn_cubecl::kernel::conv::conv_forward;

#[backend_extension(Cube, Flex, Autodiff: cfg(feature = "train"))]
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

/// `f` on the flex tensor `x` seen as a Burn tensor.
fn through_flex<const D: usize>(x: FloatTensor<Flex>, f: impl FnOnce(BurnTensor<D>) -> BurnTensor<D>) -> FloatTensor<Flex> {
    f(BurnTensor::from_primitive::<Flex>(x)).try_into_primitive::<Flex>().expect("a tensor on the flex backend")
}

/// The CPU kernels; weight standardisation (a few small kernels a step) through Burn's operations,
/// as its reference twin computes it.
impl UNetOps for Flex {
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
        cpu::group_norm::forward(&x, &gamma, &beta, &table, &residual, Options { groups, epsilon, column, silu, residual: has_residual })
    }

    fn linear_attention(qkv: FloatTensor<Self>, heads: usize, dim_head: usize) -> FloatTensor<Self> {
        cpu::attention::linear_attention(&qkv, heads, dim_head)
    }

    fn attention(qkv: FloatTensor<Self>, heads: usize, dim_head: usize) -> FloatTensor<Self> {
        cpu::attention::attention(&qkv, heads, dim_head)
    }

    fn conv2d(x: FloatTensor<Self>, weight: FloatTensor<Self>, bias: FloatTensor<Self>, has_bias: bool, options: ConvOptions<2>) -> FloatTensor<Self> {
        let bias = has_bias.then_some(bias);
        if cpu::conv::supports(x.layout().shape()[1], super::cpu::dims(&weight), &options) {
            return cpu::conv::forward(&x, &weight, bias.as_ref());
        }
        let bias = bias.map(BurnTensor::<1>::from_primitive::<Flex>);
        let (x, weight) = (BurnTensor::<4>::from_primitive::<Flex>(x), BurnTensor::<4>::from_primitive::<Flex>(weight));
        burn::tensor::module::conv2d(x, weight, bias, options).try_into_primitive::<Flex>().expect("a tensor on the flex backend")
    }

    fn standardize_weight(weight: FloatTensor<Self>, epsilon: f64) -> FloatTensor<Self> {
        through_flex(weight, |weight| super::naive::standardize_weight(weight, epsilon))
    }
}

#[cfg(feature = "train")]
mod autodiff {
    use super::*;
    use burn::backend::autodiff::Autodiff;
    use burn::backend::autodiff::checkpoint::base::Checkpointer;
    use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
    use burn::backend::autodiff::grads::Gradients;
    use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};

    /// A backend's backward kernels, which `Autodiff<B>` records beside each forward kernel.
    pub trait KernelGrads: UNetOps {
        /// ∂x, ∂γ, ∂β and (with a scale and shift) ∂table; the residual's is the output's.
        #[allow(clippy::type_complexity)]
        fn group_norm_act_backward(
            x: FloatTensor<Self>,
            gamma: FloatTensor<Self>,
            beta: FloatTensor<Self>,
            table: FloatTensor<Self>,
            grad: FloatTensor<Self>,
            options: Options,
        ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>, Option<FloatTensor<Self>>);

        /// ∂x, ∂weight and ∂bias, each where asked for.
        #[allow(clippy::type_complexity)]
        fn conv2d_backward(
            x: FloatTensor<Self>,
            weight: FloatTensor<Self>,
            grad: FloatTensor<Self>,
            options: ConvOptions<2>,
            wanted: [bool; 3],
        ) -> [Option<FloatTensor<Self>>; 3];

        fn standardize_backward(weight: FloatTensor<Self>, grad: FloatTensor<Self>, epsilon: f64) -> FloatTensor<Self>;

        /// ∂qkv of softmax attention.
        fn attention_backward(qkv: FloatTensor<Self>, grad: FloatTensor<Self>, heads: usize, dim_head: usize) -> FloatTensor<Self>;

        /// ∂qkv of linear attention.
        fn linear_attention_backward(qkv: FloatTensor<Self>, grad: FloatTensor<Self>, heads: usize, dim_head: usize) -> FloatTensor<Self>;
    }

    impl KernelGrads for CubeBackend {
        fn group_norm_act_backward(
            x: FloatTensor<Self>,
            gamma: FloatTensor<Self>,
            beta: FloatTensor<Self>,
            table: FloatTensor<Self>,
            grad: FloatTensor<Self>,
            options: Options,
        ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>, Option<FloatTensor<Self>>) {
            group_norm::backward(x, gamma, beta, table, grad, options)
        }

        fn conv2d_backward(x: FloatTensor<Self>, weight: FloatTensor<Self>, grad: FloatTensor<Self>, options: ConvOptions<2>, wanted: [bool; 3]) -> [Option<FloatTensor<Self>>; 3] {
            use burn_cubecl::kernel::conv::{ConvStrategy, conv_data_backward, conv_weight_backward};
            let [want_x, want_weight, want_bias] = wanted;
            let failed = "a convolution's gradient Burn's CubeCL backend computes";
            let weight_shape: [usize; 4] = weight.meta.shape().dims();
            let grad_x = want_x.then(|| match conv::supports_data_backward(weight_shape, &options) {
                true => conv::data_backward(grad.clone(), weight.clone()),
                false => conv_data_backward(grad.clone(), weight.clone(), x.meta.shape().clone(), options.clone(), ConvStrategy::default()).expect(failed),
            });
            let (grad_weight, grad_bias) = match conv::supports(weight_shape[1], weight_shape, &options) {
                // One kernel for both, when either is asked for.
                true if want_weight || want_bias => {
                    let (weight, bias) = conv::weight_backward(x, grad, weight_shape[2], want_bias);
                    (Some(weight), bias)
                }
                true => (None, None),
                false => {
                    let bias = want_bias.then(|| {
                        let sum = BurnTensor::<4>::from_primitive::<CubeBackend>(grad.clone()).swap_dims(0, 1).flatten::<2>(1, 3).sum_dim(1).flatten::<1>(0, 1);
                        sum.try_into_primitive::<CubeBackend>().expect(failed)
                    });
                    let weight = want_weight.then(|| conv_weight_backward::<2>(x, grad, weight.meta.shape().clone(), options, ConvStrategy::Direct).expect(failed));
                    (weight, bias)
                }
            };
            [grad_x, grad_weight, grad_bias]
        }

        fn standardize_backward(weight: FloatTensor<Self>, grad: FloatTensor<Self>, epsilon: f64) -> FloatTensor<Self> {
            standardize::backward(weight, grad, epsilon)
        }

        fn attention_backward(qkv: FloatTensor<Self>, grad: FloatTensor<Self>, heads: usize, dim_head: usize) -> FloatTensor<Self> {
            let qkv = BurnTensor::<4>::from_primitive::<CubeBackend>(qkv);
            through(grad, |grad| attention::backward(qkv, grad, heads, dim_head))
        }

        fn linear_attention_backward(qkv: FloatTensor<Self>, grad: FloatTensor<Self>, heads: usize, dim_head: usize) -> FloatTensor<Self> {
            let qkv = BurnTensor::<4>::from_primitive::<CubeBackend>(qkv);
            through(grad, |grad| linear_attention::backward(qkv, grad, heads, dim_head))
        }
    }

    /// Weight standardisation never reaches the flex backend's extension under autodiff
    /// (`super::super::standardize_weight`): it takes Burn's operations and their autodiff.
    impl KernelGrads for Flex {
        fn group_norm_act_backward(
            x: FloatTensor<Self>,
            gamma: FloatTensor<Self>,
            beta: FloatTensor<Self>,
            table: FloatTensor<Self>,
            grad: FloatTensor<Self>,
            options: Options,
        ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>, Option<FloatTensor<Self>>) {
            cpu::group_norm::backward(&x, &gamma, &beta, &table, &grad, options)
        }

        fn conv2d_backward(x: FloatTensor<Self>, weight: FloatTensor<Self>, grad: FloatTensor<Self>, options: ConvOptions<2>, wanted: [bool; 3]) -> [Option<FloatTensor<Self>>; 3] {
            let [want_x, want_weight, want_bias] = wanted;
            let weight_shape = cpu::dims::<4>(&weight);
            if !cpu::conv::supports(weight_shape[1], weight_shape, &options) {
                unreachable!("a convolution the CPU kernel does not take is recorded by Burn's autodiff, not here");
            }
            let grad_x = want_x.then(|| cpu::conv::data_backward(&grad, &weight));
            let (grad_weight, grad_bias) = match want_weight || want_bias {
                true => {
                    let (weight, bias) = cpu::conv::weight_backward(&x, &grad, weight_shape[2], want_bias);
                    (want_weight.then_some(weight), bias)
                }
                false => (None, None),
            };
            [grad_x, grad_weight, grad_bias]
        }

        fn standardize_backward(_: FloatTensor<Self>, _: FloatTensor<Self>, _: f64) -> FloatTensor<Self> {
            unreachable!("weight standardisation on the CPU is recorded by Burn's autodiff")
        }

        fn attention_backward(qkv: FloatTensor<Self>, grad: FloatTensor<Self>, heads: usize, dim_head: usize) -> FloatTensor<Self> {
            cpu::attention::attention_backward(&qkv, &grad, heads, dim_head)
        }

        fn linear_attention_backward(qkv: FloatTensor<Self>, grad: FloatTensor<Self>, heads: usize, dim_head: usize) -> FloatTensor<Self> {
            cpu::attention::linear_attention_backward(&qkv, &grad, heads, dim_head)
        }
    }

    #[derive(Debug)]
    struct GroupNormActBackward;

    impl<B: KernelGrads> Backward<B, 5> for GroupNormActBackward {
        type State = (FloatTensor<B>, FloatTensor<B>, FloatTensor<B>, FloatTensor<B>, Options);

        fn backward(self, ops: Ops<Self::State, 5>, grads: &mut Gradients, _checkpointer: &mut Checkpointer) {
            let [x_node, gamma_node, beta_node, table_node, residual_node] = ops.parents;
            let grad = grads.consume::<B>(&ops.node);
            let (x, gamma, beta, table, options) = ops.state;
            if let (Some(node), true) = (residual_node, options.residual) {
                grads.register::<B>(node.id, grad.clone());
            }
            let (grad_x, grad_gamma, grad_beta, grad_table) = B::group_norm_act_backward(x, gamma, beta, table, grad, options);
            if let Some(node) = x_node {
                grads.register::<B>(node.id, grad_x);
            }
            if let Some(node) = gamma_node {
                grads.register::<B>(node.id, grad_gamma);
            }
            if let Some(node) = beta_node {
                grads.register::<B>(node.id, grad_beta);
            }
            if let (Some(node), Some(grad_table)) = (table_node, grad_table) {
                grads.register::<B>(node.id, grad_table);
            }
        }
    }

    /// An attention core: its backward from the saved `qkv`.
    struct AttentionBackward<B: Backend> {
        backward: fn(FloatTensor<B>, FloatTensor<B>, usize, usize) -> FloatTensor<B>,
    }

    impl<B: Backend> std::fmt::Debug for AttentionBackward<B> {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("AttentionBackward")
        }
    }

    impl<B: KernelGrads> Backward<B, 1> for AttentionBackward<B> {
        type State = (FloatTensor<B>, usize, usize);

        fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _checkpointer: &mut Checkpointer) {
            let [node] = ops.parents;
            let grad = grads.consume::<B>(&ops.node);
            let (qkv, heads, dim_head) = ops.state;
            if let Some(node) = node {
                grads.register::<B>(node.id, (self.backward)(qkv, grad, heads, dim_head));
            }
        }
    }

    #[derive(Debug)]
    struct Conv2dBackward;

    impl<B: KernelGrads> Backward<B, 3> for Conv2dBackward {
        type State = (FloatTensor<B>, FloatTensor<B>, ConvOptions<2>);

        fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _checkpointer: &mut Checkpointer) {
            let [x_node, weight_node, bias_node] = ops.parents;
            let grad = grads.consume::<B>(&ops.node);
            let (x, weight, options) = ops.state;
            let wanted = [x_node.is_some(), weight_node.is_some(), bias_node.is_some()];
            let computed = B::conv2d_backward(x, weight, grad, options, wanted);
            for (node, grad) in [x_node, weight_node, bias_node].into_iter().zip(computed) {
                if let (Some(node), Some(grad)) = (node, grad) {
                    grads.register::<B>(node.id, grad);
                }
            }
        }
    }

    #[derive(Debug)]
    struct StandardizeBackward;

    impl<B: KernelGrads> Backward<B, 1> for StandardizeBackward {
        type State = (FloatTensor<B>, f64);

        fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _checkpointer: &mut Checkpointer) {
            let [node] = ops.parents;
            let grad = grads.consume::<B>(&ops.node);
            let (weight, epsilon) = ops.state;
            if let Some(node) = node {
                grads.register::<B>(node.id, B::standardize_backward(weight, grad, epsilon));
            }
        }
    }

    fn tracked_attention<B: KernelGrads, C: CheckpointStrategy>(
        qkv: FloatTensor<Autodiff<B, C>>,
        heads: usize,
        dim_head: usize,
        forward: fn(FloatTensor<B>, usize, usize) -> FloatTensor<B>,
        backward: fn(FloatTensor<B>, FloatTensor<B>, usize, usize) -> FloatTensor<B>,
    ) -> FloatTensor<Autodiff<B, C>> {
        let parent = [qkv.node()];
        let qkv = qkv.into_primitive();
        let output = forward(qkv.clone(), heads, dim_head);
        match (AttentionBackward { backward }).prepare::<C>(parent).compute_bound().stateful() {
            OpsKind::Tracked(prep) => prep.finish((qkv, heads, dim_head), output),
            OpsKind::UnTracked(prep) => prep.finish(output),
        }
    }

    impl<B: KernelGrads, C: CheckpointStrategy> UNetOps for Autodiff<B, C> {
        fn linear_attention(qkv: FloatTensor<Self>, heads: usize, dim_head: usize) -> FloatTensor<Self> {
            tracked_attention::<B, C>(qkv, heads, dim_head, B::linear_attention, B::linear_attention_backward)
        }

        fn attention(qkv: FloatTensor<Self>, heads: usize, dim_head: usize) -> FloatTensor<Self> {
            tracked_attention::<B, C>(qkv, heads, dim_head, <B as UNetOps>::attention, B::attention_backward)
        }

        fn conv2d(x: FloatTensor<Self>, weight: FloatTensor<Self>, bias: FloatTensor<Self>, has_bias: bool, options: ConvOptions<2>) -> FloatTensor<Self> {
            let parents = [x.node(), weight.node(), bias.node()];
            let (x, weight, bias) = (x.into_primitive(), weight.into_primitive(), bias.into_primitive());
            let output = <B as UNetOps>::conv2d(x.clone(), weight.clone(), bias, has_bias, options.clone());
            match Conv2dBackward.prepare::<C>(parents).compute_bound().stateful() {
                OpsKind::Tracked(prep) => prep.finish((x, weight, options), output),
                OpsKind::UnTracked(prep) => prep.finish(output),
            }
        }

        fn standardize_weight(weight: FloatTensor<Self>, epsilon: f64) -> FloatTensor<Self> {
            let parent = [weight.node()];
            let weight = weight.into_primitive();
            let output = B::standardize_weight(weight.clone(), epsilon);
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
            let parents = [x.node(), gamma.node(), beta.node(), table.node(), residual.node()];
            let (x, gamma, beta, table, residual) = (x.into_primitive(), gamma.into_primitive(), beta.into_primitive(), table.into_primitive(), residual.into_primitive());
            let output = B::group_norm_act(x.clone(), gamma.clone(), beta.clone(), table.clone(), residual, groups, epsilon, column, silu, has_residual);
            let options = Options { groups, epsilon, column, silu, residual: has_residual };
            match GroupNormActBackward.prepare::<C>(parents).compute_bound().stateful() {
                OpsKind::Tracked(prep) => prep.finish((x, gamma, beta, table, options), output),
                OpsKind::UnTracked(prep) => prep.finish(output),
            }
        }
    }
}
