//! Algorithm 1 on real Fashion-MNIST: a tiny U-Net learns, measured on a fixed evaluation batch.

use burn::prelude::*;
use ddpm_web::data::{DEFAULT_DIR, Dataset, Split};
use ddpm_web::diffusion::LossKind;
use ddpm_web::schedule::{BetaSchedule, Schedule};
use ddpm_web::train::{EvalBatch, TrainConfig, Trainer, ema_update};
use ddpm_web::unet::UNetConfig;

mod common;

#[test]
fn a_few_hundred_steps_lower_the_fixed_seed_validation_loss() {
    let device = Device::flex().autodiff();
    let train = Dataset::load(DEFAULT_DIR.as_ref(), Split::Train).unwrap().take(512);
    let test = Dataset::load(DEFAULT_DIR.as_ref(), Split::Test).unwrap().take(64);
    let schedule = Schedule::new(BetaSchedule::Linear, 1000);
    let config = UNetConfig::new().with_dim(8).with_dim_mults(vec![1, 2]).with_num_classes(10).with_attn_heads(2).with_attn_dim_head(8);
    let model = config.init(&device);
    let mut trainer = Trainer::new(model, schedule.clone(), TrainConfig::new().with_lr(2e-3).with_ema_decay(0.9).with_seed(1));
    let plain = device.clone().without_autodiff();
    let (x_val, y_val) = test.batch(&(0..64).collect::<Vec<_>>(), None, &plain);
    let eval = EvalBatch::new(x_val, y_val, schedule.len(), 7);
    let val = |trainer: &Trainer| eval.loss(&trainer.model().valid(), &schedule, LossKind::L2).into_scalar::<f32>();
    let before = val(&trainer);
    let mut rng = ddpm_web::noise::NoiseSource::new(3);
    for step in 0..200 {
        let idx: Vec<usize> = (0..32).map(|k| (step * 32 + k) % train.len()).collect();
        let (x, y) = train.batch(&idx, Some(&mut rng), &device);
        let loss = trainer.step(x, &y).into_scalar::<f32>();
        assert!(loss.is_finite(), "loss at step {step} is {loss}");
    }
    let after = val(&trainer);
    assert!(after < 0.6 * before, "validation loss {before} → {after}");
    assert_eq!(trainer.steps_done, 200);
}

#[test]
fn training_on_wgpu_with_the_kernels_follows_the_cpu() {
    // The GPU path (the U-Net's CubeCL kernels with their backward, the flat optimiser) against
    // the CPU's (its own kernels and the flat optimiser's CPU pass; each side is tested against
    // Burn's operations in tests/kernels.rs and tests/flat_adam.rs), from the same weights on the
    // same batches.
    let (gpu, _lock) = common::wgpu();
    let config = UNetConfig::new().with_dim(8).with_dim_mults(vec![1, 2]).with_num_classes(10).with_attn_heads(2).with_attn_dim_head(8);
    let base = config.init(&Device::flex());
    let (cpu_model, gpu_model) = (base.clone().train(), base.to_device(&gpu).train());
    let schedule = Schedule::new(BetaSchedule::Linear, 1000);
    let train = TrainConfig::new().with_lr(1e-3).with_grad_clip(Some(1.0)).with_ema_decay(0.9).with_seed(5);
    let mut on_cpu = Trainer::new(cpu_model, schedule.clone(), train.clone());
    let mut on_gpu = Trainer::new(gpu_model, schedule, train);
    assert!(on_gpu.is_flat() && on_cpu.is_flat(), "the GPU and the CPU both train with the flat optimiser");
    let data = Dataset::load(DEFAULT_DIR.as_ref(), Split::Test).unwrap().take(16);
    for step in 0..3 {
        let (x, y) = data.batch(&(0..16).collect::<Vec<_>>(), None, &Device::flex());
        let cpu_loss = on_cpu.step(x.clone().to_device(&Device::flex().autodiff()), &y).into_scalar::<f32>();
        let gpu_loss = on_gpu.step(x.to_device(&gpu.clone().autodiff()), &y).into_scalar::<f32>();
        assert!((cpu_loss - gpu_loss).abs() < 1e-3 * cpu_loss, "step {step}: loss {gpu_loss} on wgpu, {cpu_loss} on the CPU");
    }
    let weights = |m: &ddpm_web::unet::UNet| Tensor::cat(ddpm_web::weights::flat_params(m), 0).into_data().try_into_vec::<f32>().unwrap();
    for (what, a, b) in [
        ("weights", weights(&on_gpu.model().valid()), weights(&on_cpu.model().valid())),
        ("EMA", weights(&on_gpu.inference_model()), weights(&on_cpu.inference_model())),
    ] {
        // Adam moves each weight by about the learning rate a step.
        let mean = a.iter().zip(&b).map(|(x, y)| (x - y).abs()).sum::<f32>() / a.len() as f32;
        assert!(mean < 1e-5, "{what}: mean |wgpu − CPU| = {mean} after 3 steps of 1e-3");
    }
}

/// The first convolution's weights, as the EMA tests compare them.
fn first_layer(m: &ddpm_web::unet::UNet) -> Vec<f32> {
    m.init_conv.weight.val().into_data().try_into_vec::<f32>().unwrap()
}

#[test]
fn ema_moves_towards_the_live_weights_by_one_minus_decay() {
    let device = Device::flex();
    let config = UNetConfig::new().with_dim(4).with_dim_mults(vec![1]).with_image_size(4).with_resnet_block_groups(2);
    let a = config.init(&device);
    let b = config.init(&device);
    let (wa, wb) = (first_layer(&a), first_layer(&b));
    let blended = first_layer(&ema_update(a, &b, 0.75));
    for ((x, y), z) in wa.iter().zip(&wb).zip(&blended) {
        assert!((0.75 * x + 0.25 * y - z).abs() < 1e-6);
    }
}

#[test]
fn the_ema_is_the_bias_corrected_average_of_the_runs_own_weights() {
    // Closed form: after n updates with weights w₁…wₙ, Σ (1−d) dⁿ⁻ⁱ wᵢ / (1 − dⁿ), whatever came before.
    let config = TrainConfig::new().with_ema_decay(0.99);
    let d = 0.99_f64;
    let weights: Vec<f64> = (0..500).map(|i| ((i * 7919) % 101) as f64 / 10.0 - 5.0).collect();
    let mut ema = 123.0; // the initial weights: they must not count
    for (k, w) in weights.iter().enumerate() {
        let decay = config.ema_decay_at(k + 1);
        ema = decay * ema + (1.0 - decay) * w;
        let n = k + 1;
        let weighted: f64 = weights[..n].iter().enumerate().map(|(i, w)| (1.0 - d) * d.powi((n - 1 - i) as i32) * w).sum();
        let expected = weighted / (1.0 - d.powi(n as i32));
        assert!((ema - expected).abs() < 1e-9, "after {n} updates: {ema} against {expected}");
    }
    assert_eq!(config.ema_decay_at(1), 0.0);
    assert!((config.ema_decay_at(100_000) - d).abs() < 1e-12);
}

/// (initial, live, EMA) first-layer weights after one step of a fresh tiny model whose EMA is
/// taken to average `ema_updates` earlier updates.
fn one_step_weights(ema_updates: usize) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let device = Device::flex().autodiff();
    let config = UNetConfig::new().with_dim(4).with_dim_mults(vec![1]).with_image_size(4).with_resnet_block_groups(2);
    let schedule = Schedule::new(BetaSchedule::Linear, 100);
    let mut trainer = Trainer::new(config.init(&device), schedule, TrainConfig::new().with_lr(1e-2).with_ema_decay(0.999));
    trainer.ema_updates = ema_updates;
    let init = first_layer(&trainer.model().valid());
    let x0 = Tensor::<4>::random([2, 1, 4, 4], burn::tensor::Distribution::Uniform(-1.0, 1.0), &device);
    trainer.step(x0, &[0, 1]);
    let (live, ema) = (first_layer(&trainer.model().valid()), first_layer(&trainer.inference_model()));
    assert!(live.iter().zip(&init).any(|(a, b)| (a - b).abs() > 1e-4), "the step moved the weights");
    (init, live, ema)
}

#[test]
fn after_one_step_from_scratch_the_ema_is_the_live_model_not_its_random_init() {
    let (_, live, ema) = one_step_weights(0);
    for (l, e) in live.iter().zip(&ema) {
        assert!((l - e).abs() < 1e-6, "EMA {e} against live {l}");
    }
}

#[test]
fn a_loaded_models_ema_stays_the_average_it_was() {
    // Fine-tuning a model trained 8,000 steps: one update moves its EMA by 1 − 0.999 only.
    let (init, live, ema) = one_step_weights(8000);
    for ((i, l), e) in init.iter().zip(&live).zip(&ema) {
        let expected = 0.999 * i + 0.001 * l;
        assert!((e - expected).abs() < 1e-6, "EMA {e} against {expected}");
    }
}

#[test]
fn warmup_ramps_the_learning_rate_linearly() {
    let c = TrainConfig::new().with_lr(1e-3).with_warmup_steps(10);
    assert!((c.lr_at(0) - 1e-4).abs() < 1e-12);
    assert!((c.lr_at(4) - 5e-4).abs() < 1e-12);
    assert!((c.lr_at(9) - 1e-3).abs() < 1e-12);
    assert!((c.lr_at(500) - 1e-3).abs() < 1e-12);
}

#[test]
fn cosine_decay_follows_half_a_cosine_from_the_end_of_warm_up_to_zero() {
    let c = TrainConfig::new().with_lr(1e-3).with_warmup_steps(100).with_decay_steps(1100);
    assert!((c.lr_at(49) - 5e-4).abs() < 1e-12, "warm-up is unchanged");
    assert!((c.lr_at(100) - 1e-3).abs() < 1e-12);
    assert!((c.lr_at(600) - 5e-4).abs() < 1e-12, "half-way: cos(π/2) = 0");
    let quarter = 1e-3 * 0.5 * (1.0 + (std::f64::consts::PI / 4.0).cos());
    assert!((c.lr_at(350) - quarter).abs() < 1e-12);
    assert!(c.lr_at(1100).abs() < 1e-12 && c.lr_at(5000).abs() < 1e-12);
    assert!((TrainConfig::new().with_lr(1e-3).lr_at(5000) - 1e-3).abs() < 1e-12, "no decay by default");
}

#[test]
fn a_loaded_model_can_be_fine_tuned_after_train() {
    // The page fine-tunes the model it loaded for sampling: plain device → `train()` → autodiff.
    let plain = Device::flex();
    let config = UNetConfig::new().with_dim(8).with_dim_mults(vec![1, 2]).with_image_size(8).with_num_classes(10);
    let schedule = Schedule::new(BetaSchedule::Linear, 100);
    // A fixed "data set": four smooth images.
    let pixels: Vec<f32> = (0..4 * 64).map(|i| ((i % 64) as f32 / 32.0 - 1.0) * if i / 64 % 2 == 0 { 1.0 } else { -1.0 }).collect();
    let batch = |device: &Device| Tensor::<4>::from_data(TensorData::new(pixels.clone(), [4, 1, 8, 8]), device);
    let eval = EvalBatch::new(batch(&plain), vec![0, 1, 2, 3], schedule.len(), 9);
    let loaded = config.init(&plain);
    let before = eval.loss(&loaded, &schedule, LossKind::L2).into_scalar::<f32>();
    let mut trainer = Trainer::new(loaded.train(), schedule.clone(), TrainConfig::new().with_lr(5e-3).with_ema_decay(0.0).with_seed(2));
    let device = plain.clone().autodiff();
    for _ in 0..60 {
        let loss = trainer.step(batch(&device), &[0, 1, 2, 3]).into_scalar::<f32>();
        assert!(loss.is_finite());
    }
    let after = eval.loss(&trainer.inference_model(), &schedule, LossKind::L2).into_scalar::<f32>();
    assert!(after < 0.7 * before, "fixed-batch loss {before} → {after}");
}
