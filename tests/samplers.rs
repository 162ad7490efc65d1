//! Samplers driven by analytic noise predictors whose exact answers are known.

use burn::prelude::*;
use ddpm_web::noise::NoiseSource;
use ddpm_web::sampler::{DdpmVariance, Guidance, Inpaint, NoisePredictor, SamplerKind, SamplingRun, X0, guided_noise, morph_noise, slerp};
use ddpm_web::schedule::{BetaSchedule, Schedule};

fn values(t: Tensor<4>) -> Vec<f32> {
    t.into_data().try_into_vec::<f32>().unwrap()
}

/// The optimal predictor when the data is one fixed image x★: ε★ = (x_t − √ᾱ_t x★)/√(1−ᾱ_t).
struct PointOracle {
    schedule: Schedule,
    target: Tensor<4>,
}

impl NoisePredictor for PointOracle {
    fn predict_noise(&self, x_t: Tensor<4>, t: usize, _: &[Option<usize>]) -> Tensor<4> {
        let s = &self.schedule;
        (x_t - self.target.clone() * s.sqrt_alphas_cumprod[t] as f32) / s.sqrt_one_minus_alphas_cumprod[t] as f32
    }
}

/// The optimal predictor for data N(μ, s²) per pixel: E[ε | x_t] =
/// √(1−ᾱ)(x_t − √ᾱ μ) / (ᾱ s² + 1 − ᾱ).
struct GaussianOracle {
    schedule: Schedule,
    mean: f64,
    var: f64,
}

impl NoisePredictor for GaussianOracle {
    fn predict_noise(&self, x_t: Tensor<4>, t: usize, _: &[Option<usize>]) -> Tensor<4> {
        let ab = self.schedule.alphas_cumprod[t];
        let total_var = ab * self.var + 1.0 - ab;
        (x_t - (ab.sqrt() * self.mean) as f32) * ((1.0 - ab).sqrt() / total_var) as f32
    }
}

const ALL_KINDS: [SamplerKind; 6] = [
    SamplerKind::Ddpm(DdpmVariance::Beta),
    SamplerKind::Ddpm(DdpmVariance::BetaTilde),
    SamplerKind::Ddim { steps: 50, eta: 0.0 },
    SamplerKind::Ddim { steps: 50, eta: 1.0 },
    SamplerKind::DpmSolver { steps: 15 },
    SamplerKind::DpmSolver { steps: 1 },
];

#[test]
fn every_sampler_recovers_a_single_training_image() {
    let device = Device::flex();
    let schedule = Schedule::new(BetaSchedule::Linear, 1000);
    let target = NoiseSource::new(99).normal([2, 1, 6, 6], &device).clamp(-1.0, 1.0);
    let oracle = PointOracle { schedule: schedule.clone(), target: target.clone() };
    // x★ lies in [−1, 1], so clipping x̂_0 changes nothing: the clipped samplers' other form of the
    // update (DDPM's posterior mean, DDIM's recomputed ε̂) must land on x★ too.
    for (kind, x0) in ALL_KINDS.into_iter().flat_map(|k| [(k, X0::Raw), (k, X0::Clipped)]) {
        let sampler = kind.build(&schedule, x0).unwrap();
        let mut run = SamplingRun::new(sampler, [2, 1, 6, 6], Guidance::unconditional(2), 5, &device);
        while let Some(step) = run.step(&oracle) {
            // The oracle is exact, so every step's x̂_0 is x★.
            let err = values(step.x0 - target.clone()).iter().fold(0f32, |m, v| m.max(v.abs()));
            assert!(err < 1e-2, "{kind:?} {x0:?} x̂_0 off by {err} at t={}", step.t);
        }
        let err = values(run.current() - target.clone()).iter().fold(0f32, |m, v| m.max(v.abs()));
        assert!(err < 1e-4, "{kind:?} {x0:?}: final sample off by {err}");
    }
}

#[test]
fn clipped_x0_keeps_samples_in_the_data_range() {
    let device = Device::flex();
    let schedule = Schedule::new(BetaSchedule::Linear, 1000);
    // A "data set" outside [−1, 1]: raw sampling must reach it, clipped sampling its clamp.
    let wanted = [1.5f32, -1.7, 0.3, -0.2];
    let target = Tensor::<4>::from_data(TensorData::new(wanted.to_vec(), [1, 1, 2, 2]), &device);
    let oracle = PointOracle { schedule: schedule.clone(), target };
    for kind in ALL_KINDS {
        for (x0, expected) in [(X0::Raw, wanted), (X0::Clipped, wanted.map(|v| v.clamp(-1.0, 1.0)))] {
            let sampler = kind.build(&schedule, x0).unwrap();
            let mut run = SamplingRun::new(sampler, [1, 1, 2, 2], Guidance::unconditional(1), 3, &device);
            while let Some(step) = run.step(&oracle) {
                if x0 == X0::Clipped {
                    let worst = values(step.x0).iter().fold(0f32, |m, v| m.max(v.abs()));
                    assert!(worst <= 1.0, "{kind:?}: clipped x̂_0 reached {worst} at t={}", step.t);
                }
            }
            for (got, want) in values(run.current()).iter().zip(expected) {
                assert!((got - want).abs() < 1e-4, "{kind:?} {x0:?}: ended at {got}, expected {want}");
            }
        }
    }
}

#[test]
fn deterministic_ddim_keeps_the_initial_noise_direction() {
    // With the exact oracle and η = 0, x_t = √ᾱ_t x★ + √(1−ᾱ_t) x_T at every visited t.
    let device = Device::flex();
    let schedule = Schedule::new(BetaSchedule::Cosine, 1000);
    let target = NoiseSource::new(1).normal([1, 1, 4, 4], &device).clamp(-1.0, 1.0);
    let oracle = PointOracle { schedule: schedule.clone(), target: target.clone() };
    let sampler = SamplerKind::Ddim { steps: 20, eta: 0.0 }.build(&schedule, X0::Raw).unwrap();
    let mut run = SamplingRun::new(sampler, [1, 1, 4, 4], Guidance::unconditional(1), 11, &device);
    let x_t0 = run.current();
    // x_T itself is not exactly noise: it is what the oracle reads at t = T−c. Undo that.
    let t_first = 950;
    let eps0 = oracle.predict_noise(x_t0, t_first, &[None]);
    let mut visited = vec![];
    while let Some(step) = run.step(&oracle) {
        visited.push(step.t);
        let t_prev = step.t.checked_sub(50);
        let ab = t_prev.map_or(1.0, |t| schedule.alphas_cumprod[t]);
        let expected = target.clone() * ab.sqrt() as f32 + eps0.clone() * (1.0 - ab).sqrt() as f32;
        let err = values(run.current() - expected).iter().fold(0f32, |m, v| m.max(v.abs()));
        assert!(err < 1e-3, "x after t={} off by {err}", step.t);
    }
    assert_eq!(visited, (0..20).rev().map(|k| k * 50).collect::<Vec<_>>());
}

#[test]
fn ancestral_sampling_reproduces_the_forward_marginals() {
    // With the point oracle and σ² = β̃, each DDPM step samples q(x_{t−1} | x_t, x★) exactly, so
    // x_t keeps the forward marginal N(√ᾱ_t x★, 1 − ᾱ_t) all the way down.
    let device = Device::flex();
    let schedule = Schedule::new(BetaSchedule::Linear, 1000);
    let target = Tensor::<4>::full([64, 1, 16, 16], 0.5, &device);
    let oracle = PointOracle { schedule: schedule.clone(), target: target.clone() };
    let sampler = SamplerKind::Ddpm(DdpmVariance::BetaTilde).build(&schedule, X0::Raw).unwrap();
    let mut run = SamplingRun::new(sampler, [64, 1, 16, 16], Guidance::unconditional(64), 2, &device);
    for _ in 0..700 {
        run.step(&oracle);
    }
    // 700 steps from t = 999 leaves x at time index 299.
    let t = 299;
    let residual = values(run.current() - target * schedule.sqrt_alphas_cumprod[t] as f32);
    let n = residual.len() as f64;
    let mean = residual.iter().map(|&v| v as f64).sum::<f64>() / n;
    let var = residual.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / n;
    let expected = 1.0 - schedule.alphas_cumprod[t];
    assert!(mean.abs() < 0.03, "mean {mean}");
    assert!((var / expected - 1.0).abs() < 0.05, "variance {var} vs {expected}");
}

#[test]
fn gaussian_data_is_reproduced_in_mean_and_variance() {
    let device = Device::flex();
    let schedule = Schedule::new(BetaSchedule::Linear, 1000);
    let (mean, var) = (0.3, 0.25);
    let oracle = GaussianOracle { schedule: schedule.clone(), mean, var };
    for kind in [
        SamplerKind::Ddpm(DdpmVariance::Beta),
        SamplerKind::Ddpm(DdpmVariance::BetaTilde),
        SamplerKind::Ddim { steps: 1000, eta: 0.0 },
        SamplerKind::Ddim { steps: 1000, eta: 1.0 },
        SamplerKind::DpmSolver { steps: 1000 },
        SamplerKind::DpmSolver { steps: 25 },
    ] {
        let sampler = kind.build(&schedule, X0::Raw).unwrap();
        let run = SamplingRun::new(sampler, [64, 1, 16, 16], Guidance::unconditional(64), 3, &device);
        let x = values(run.finish(&oracle));
        let n = x.len() as f64;
        let m = x.iter().map(|&v| v as f64).sum::<f64>() / n;
        let v = x.iter().map(|&v| (v as f64 - m).powi(2)).sum::<f64>() / n;
        assert!((m - mean).abs() < 0.02, "{kind:?}: mean {m} vs {mean}");
        assert!((v / var - 1.0).abs() < 0.06, "{kind:?}: variance {v} vs {var}");
    }
}

/// η = 0 DDIM on scalars in f64, for the linear oracle of N(μ, s²) data: x_0 = a·x_T + m.
fn ddim_affine_map(schedule: &Schedule, ts: &[usize], mu: f64, s2: f64) -> (f64, f64) {
    let ab = &schedule.alphas_cumprod;
    let (mut a, mut m) = (1.0f64, 0.0f64);
    for (i, &t) in ts.iter().enumerate() {
        let ab_prev = ts.get(i + 1).map_or(1.0, |&p| ab[p]);
        let k = (1.0 - ab[t]).sqrt() / (ab[t] * s2 + 1.0 - ab[t]);
        let (ea, em) = (k * a, k * (m - ab[t].sqrt() * mu));
        let x0a = (a - (1.0 - ab[t]).sqrt() * ea) / ab[t].sqrt();
        let x0m = (m - (1.0 - ab[t]).sqrt() * em) / ab[t].sqrt();
        a = ab_prev.sqrt() * x0a + (1.0 - ab_prev).sqrt() * ea;
        m = ab_prev.sqrt() * x0m + (1.0 - ab_prev).sqrt() * em;
    }
    (a, m)
}

/// Runs `kind` with the Gaussian oracle and checks that it maps x_T to a·x_T + m, elementwise.
fn assert_affine(kind: SamplerKind, schedule: &Schedule, (mu, s2): (f64, f64), (a, m): (f64, f64)) {
    let device = Device::flex();
    let oracle = GaussianOracle { schedule: schedule.clone(), mean: mu, var: s2 };
    let sampler = kind.build(schedule, X0::Raw).unwrap();
    let run = SamplingRun::new(sampler, [4, 1, 8, 8], Guidance::unconditional(4), 9, &device);
    let x_t = values(run.current());
    let x_0 = values(run.finish(&oracle));
    for (xt, x0) in x_t.iter().zip(&x_0) {
        let expected = a * *xt as f64 + m;
        assert!((*x0 as f64 - expected).abs() < 1e-4, "{kind:?}: {x0} vs {expected}");
    }
}

#[test]
fn deterministic_ddim_on_gaussian_data_is_the_predicted_affine_map() {
    // With a linear oracle, η = 0 DDIM maps x_T to a·x_T + m; a and m follow from the update
    // rule written out here on scalars, in f64. With few steps a² falls short of s²: that is the
    // discretisation error, and the sampler must reproduce it exactly.
    let schedule = Schedule::new(BetaSchedule::Linear, 1000);
    let (mu, s2) = (0.3f64, 0.25f64);
    let ts: Vec<usize> = (0..100).rev().map(|k| k * 10).collect();
    let (a, m) = ddim_affine_map(&schedule, &ts, mu, s2);
    assert_affine(SamplerKind::Ddim { steps: 100, eta: 0.0 }, &schedule, (mu, s2), (a, m));
    assert!(a * a < 0.95 * s2, "100 steps under-disperse (a² = {})", a * a);
}

/// (a, m): the affine map a·x_T + m of x_T.
type Affine = (f64, f64);

/// DPM-Solver++(2M) on scalars in f64, for the linear oracle of N(μ, s²) data: x_0 = a·x_T + m.
/// Written from the paper's update (Lu et al. 2022, Algorithm 2), apart from the sampler's code.
fn dpm_solver_affine_map(schedule: &Schedule, ts: &[usize], mu: f64, s2: f64) -> Affine {
    let ab = &schedule.alphas_cumprod;
    let alpha = |t: usize| ab[t].sqrt();
    let sigma = |t: usize| (1.0 - ab[t]).sqrt();
    let lambda = |t: usize| (alpha(t) / sigma(t)).ln();
    // x̂_0 of x = a·x_T + m at t, as an affine map of x_T.
    let x0_of = |t: usize, (a, m): (f64, f64)| {
        let k = (1.0 - ab[t]).sqrt() / (ab[t] * s2 + 1.0 - ab[t]);
        let (ea, em) = (k * a, k * (m - ab[t].sqrt() * mu));
        ((a - sigma(t) * ea) / alpha(t), (m - sigma(t) * em) / alpha(t))
    };
    // x and the previous step's x̂_0 with its h.
    let (mut x, mut previous): (Affine, Option<(Affine, f64)>) = ((1.0, 0.0), None);
    for (i, &s) in ts.iter().enumerate() {
        let d0 = x0_of(s, x);
        let Some(&t) = ts.get(i + 1) else { return d0 };
        let h = lambda(t) - lambda(s);
        let d = match previous {
            None => d0,
            Some((d1, h1)) => {
                let r = h1 / h;
                ((1.0 + 0.5 / r) * d0.0 - 0.5 / r * d1.0, (1.0 + 0.5 / r) * d0.1 - 0.5 / r * d1.1)
            }
        };
        let (ratio, coef) = (sigma(t) / sigma(s), alpha(t) * ((-h).exp() - 1.0));
        x = (ratio * x.0 - coef * d.0, ratio * x.1 - coef * d.1);
        previous = Some((d0, h));
    }
    unreachable!("the loop returns at the last time index")
}

#[test]
fn dpm_solver_on_gaussian_data_is_the_predicted_affine_map_and_second_order() {
    // Exactness against the scalar reimplementation; then accuracy: the exact flow from t = T−1
    // maps x to μ + s (x − √ᾱ μ)/√(ᾱ s² + 1 − ᾱ), and a second-order solver gets far closer to it
    // than DDIM does in as many model calls.
    let schedule = Schedule::new(BetaSchedule::Linear, 1000);
    let (mu, s2) = (0.3f64, 0.25f64);
    let kind = SamplerKind::DpmSolver { steps: 20 };
    let ts = kind.build(&schedule, X0::Raw).unwrap().timesteps().to_vec();
    assert_eq!((ts.len(), ts[0], *ts.last().unwrap()), (20, 999, 0), "{ts:?}");
    let (a, m) = dpm_solver_affine_map(&schedule, &ts, mu, s2);
    assert_affine(kind, &schedule, (mu, s2), (a, m));
    let exact_slope = |t: usize| {
        let ab = schedule.alphas_cumprod[t];
        s2.sqrt() / (ab * s2 + 1.0 - ab).sqrt()
    };
    let dpm_error = (a - exact_slope(999)).abs();
    // DDIM in 20 calls, from its own first index.
    let ddim_ts: Vec<usize> = (0..20).rev().map(|k| k * 50).collect();
    let ddim_error = (ddim_affine_map(&schedule, &ddim_ts, mu, s2).0 - exact_slope(950)).abs();
    assert!(dpm_error < ddim_error / 5.0, "DPM-Solver++ off by {dpm_error}, DDIM by {ddim_error}");
}

#[test]
fn dpm_solver_refuses_step_counts_outside_one_to_t() {
    let schedule = Schedule::new(BetaSchedule::Linear, 1000);
    for steps in [0, 1001] {
        assert!(SamplerKind::DpmSolver { steps }.build(&schedule, X0::Raw).is_err(), "steps={steps}");
    }
    for steps in [1, 7, 15, 1000] {
        let sampler = SamplerKind::DpmSolver { steps }.build(&schedule, X0::Raw).unwrap();
        let ts = sampler.timesteps();
        assert_eq!(ts.len(), steps);
        assert!(ts.windows(2).all(|w| w[0] > w[1]), "{steps} steps visit distinct, falling indices");
    }
}

/// Predicts the label's value everywhere (−1 for "no class"), so guidance is easy to check.
struct LabelEcho;

impl NoisePredictor for LabelEcho {
    fn predict_noise(&self, x_t: Tensor<4>, _: usize, labels: &[Option<usize>]) -> Tensor<4> {
        let [b, c, h, w] = x_t.dims();
        let data: Vec<f32> = labels.iter().flat_map(|l| std::iter::repeat_n(l.map_or(-1.0, |l| l as f32), c * h * w)).collect();
        assert_eq!(data.len(), b * c * h * w);
        Tensor::from_data(TensorData::new(data, [b, c, h, w]), &x_t.device())
    }
}

#[test]
fn classifier_free_guidance_extrapolates_from_unconditional() {
    let device = Device::flex();
    let x = Tensor::<4>::zeros([3, 1, 2, 2], &device);
    for scale in [0.0f32, 1.0, 2.0, 7.5] {
        let guidance = Guidance::new(vec![Some(2), None, Some(9)], scale);
        let eps = values(guided_noise(&LabelEcho, x.clone(), 10, &guidance));
        for (i, label) in [Some(2.0f32), None, Some(9.0)].iter().enumerate() {
            let expected = match label {
                Some(c) => -1.0 + scale * (c + 1.0),
                None => -1.0,
            };
            assert!(eps[i * 4..(i + 1) * 4].iter().all(|&v| (v - expected).abs() < 1e-5), "scale {scale}, image {i}");
        }
    }
}

#[test]
fn a_guidance_interval_guides_inside_it_and_only_conditions_outside() {
    let device = Device::flex();
    let x = Tensor::<4>::zeros([2, 1, 2, 2], &device);
    let guidance = Guidance::new(vec![Some(4), None], 3.0).within(Some(10..=20), 100).unwrap();
    // LabelEcho: ε(c) = c, ε(∅) = −1, so guided class 4 reads −1 + 3·5 = 14, plain conditioning 4.
    for (t, expected) in [(9, 4.0f32), (10, 14.0), (15, 14.0), (20, 14.0), (21, 4.0), (99, 4.0)] {
        let eps = values(guided_noise(&LabelEcho, x.clone(), t, &guidance));
        assert!(eps[..4].iter().all(|&v| (v - expected).abs() < 1e-5), "t {t}: {eps:?}");
        assert!(eps[4..].iter().all(|&v| (v + 1.0).abs() < 1e-5), "t {t}: the unlabelled image stays unconditional");
    }
    assert!(Guidance::new(vec![Some(1)], 2.0).within(Some(0..=100), 100).is_err(), "t = 100 is past T − 1");
}

#[test]
fn same_seed_same_image_other_seed_other_image() {
    let device = Device::flex();
    let schedule = Schedule::new(BetaSchedule::Linear, 100);
    let oracle = GaussianOracle { schedule: schedule.clone(), mean: 0.0, var: 0.5 };
    let sample = |seed| {
        let sampler = SamplerKind::Ddpm(DdpmVariance::Beta).build(&schedule, X0::Raw).unwrap();
        values(SamplingRun::new(sampler, [1, 1, 4, 4], Guidance::unconditional(1), seed, &device).finish(&oracle))
    };
    assert_eq!(sample(42), sample(42));
    assert_ne!(sample(42), sample(43));
}

#[test]
fn ddim_refuses_step_counts_that_do_not_divide_t() {
    let schedule = Schedule::new(BetaSchedule::Linear, 1000);
    for (steps, eta) in [(0, 0.0), (3, 0.0), (2000, 0.0), (50, 1.5), (50, -0.1)] {
        let err = SamplerKind::Ddim { steps, eta }.build(&schedule, X0::Raw).err();
        assert!(err.is_some(), "steps={steps} η={eta} must be refused");
    }
    assert!(SamplerKind::Ddim { steps: 1000, eta: 0.5 }.build(&schedule, X0::Raw).is_ok());
}

#[test]
fn slerp_keeps_the_norm_as_the_closed_form_says() {
    // |slerp(t)|² = (sin²((1−t)θ)|a|² + sin²(tθ)|b|² + 2 sin((1−t)θ) sin(tθ) a·b) / sin²θ; for two
    // vectors of one norm r, that is r² at every t (the straight line dips inside the sphere).
    let a = NoiseSource::new(1).normal_vec(784);
    let b = NoiseSource::new(2).normal_vec(784);
    let dot = |x: &[f32], y: &[f32]| x.iter().zip(y).map(|(&p, &q)| p as f64 * q as f64).sum::<f64>();
    let (aa, bb, ab) = (dot(&a, &a), dot(&b, &b), dot(&a, &b));
    let theta = (ab / (aa * bb).sqrt()).acos();
    let r = aa.sqrt();
    let b_on_sphere: Vec<f32> = b.iter().map(|&v| (v as f64 * r / bb.sqrt()) as f32).collect();
    for t in [0.0, 0.1, 0.25, 0.5, 0.8, 1.0] {
        let (wa, wb) = (((1.0 - t) * theta).sin(), (t * theta).sin());
        let closed = (wa * wa * aa + wb * wb * bb + 2.0 * wa * wb * ab) / theta.sin().powi(2);
        let got = dot(&slerp(&a, &b, t), &slerp(&a, &b, t));
        assert!((got / closed - 1.0).abs() < 1e-5, "t {t}: |slerp|² {got} vs {closed}");
        let on_sphere = dot(&slerp(&a, &b_on_sphere, t), &slerp(&a, &b_on_sphere, t)).sqrt();
        assert!((on_sphere / r - 1.0).abs() < 1e-5, "t {t}: norm {on_sphere} vs {r}");
        let line: Vec<f32> = a.iter().zip(&b_on_sphere).map(|(&p, &q)| ((1.0 - t) * p as f64 + t * q as f64) as f32).collect();
        if t == 0.5 {
            assert!(dot(&line, &line).sqrt() < 0.8 * r, "the straight line's midpoint lies well inside the sphere");
        }
    }
    assert_eq!(slerp(&a, &b, 0.0), a);
    assert_eq!(slerp(&a, &b, 1.0), b);
}

#[test]
fn a_morph_strip_ends_at_the_two_seeds_samples_and_moves_in_small_steps() {
    let device = Device::flex();
    let schedule = Schedule::new(BetaSchedule::Linear, 1000);
    let oracle = GaussianOracle { schedule: schedule.clone(), mean: 0.3, var: 0.25 };
    let (seeds, count, shape) = ((3, 8), 7, [1, 6, 6]);
    for kind in [SamplerKind::Ddim { steps: 20, eta: 0.0 }, SamplerKind::DpmSolver { steps: 10 }] {
        assert!(kind.is_deterministic());
        let run = |x| SamplingRun::from_noise(kind.build(&schedule, X0::Raw).unwrap(), x, Guidance::unconditional(count), 0);
        let strip = values(run(morph_noise(seeds, count, shape, &device)).finish(&oracle));
        let alone = |seed| {
            let sampler = kind.build(&schedule, X0::Raw).unwrap();
            values(SamplingRun::new(sampler, [1, 1, 6, 6], Guidance::unconditional(1), seed, &device).finish(&oracle))
        };
        let image = |i: usize| &strip[i * 36..(i + 1) * 36];
        let distance = |x: &[f32], y: &[f32]| x.iter().zip(y).map(|(p, q)| (p - q).powi(2)).sum::<f32>().sqrt();
        assert!(distance(image(0), &alone(seeds.0)) < 1e-5, "{kind:?}: the first image is seed {}'s sample", seeds.0);
        assert!(distance(image(count - 1), &alone(seeds.1)) < 1e-5, "{kind:?}: the last image is seed {}'s sample", seeds.1);
        let ends = distance(image(0), image(count - 1));
        for i in 1..count {
            let step = distance(image(i - 1), image(i));
            assert!(step < ends / 2.0, "{kind:?}: images {} and {i} lie {step} apart, the ends {ends}", i - 1);
        }
    }
    assert!(!SamplerKind::Ddim { steps: 20, eta: 0.5 }.is_deterministic() && !SamplerKind::Ddpm(DdpmVariance::Beta).is_deterministic());
}

/// A repaint of `original` with `painted` (1 = the model paints) by `kind`, seed 4, with the point
/// oracle of `target`.
fn repaint(kind: SamplerKind, original: &Tensor<4>, painted: Tensor<4>, target: &Tensor<4>) -> Tensor<4> {
    let schedule = Schedule::new(BetaSchedule::Linear, 1000);
    let oracle = PointOracle { schedule: schedule.clone(), target: target.clone() };
    let dims = original.dims();
    let sampler = kind.build(&schedule, X0::Raw).unwrap();
    let inpaint = Inpaint::new(schedule, original.clone(), painted, 4);
    SamplingRun::new(sampler, dims, Guidance::unconditional(dims[0]), 4, &original.device()).inpainting(inpaint).finish(&oracle)
}

#[test]
fn repaint_keeps_the_unpainted_pixels_and_fills_the_painted_ones_with_the_models_image() {
    let device = Device::flex();
    let original = NoiseSource::new(20).normal([2, 1, 6, 6], &device).clamp(-1.0, 1.0);
    let target = NoiseSource::new(21).normal([2, 1, 6, 6], &device).clamp(-1.0, 1.0);
    // Paint the left half: columns 0–2.
    let painted = Tensor::<4>::from_data(TensorData::new((0..72).map(|i| if i % 6 < 3 { 1.0f32 } else { 0.0 }).collect::<Vec<_>>(), [2, 1, 6, 6]), &device);
    for kind in [SamplerKind::Ddpm(DdpmVariance::Beta), SamplerKind::Ddim { steps: 50, eta: 0.0 }, SamplerKind::DpmSolver { steps: 10 }] {
        let out = values(repaint(kind, &original, painted.clone(), &target));
        let (o, t) = (values(original.clone()), values(target.clone()));
        for i in 0..72 {
            if i % 6 < 3 {
                assert!((out[i] - t[i]).abs() < 1e-3, "{kind:?}: painted pixel {i} is {} where the model's image has {}", out[i], t[i]);
            } else {
                assert_eq!(out[i], o[i], "{kind:?}: kept pixel {i} is the original's exactly");
            }
        }
        // Nothing painted: the original itself. Everything painted: plain sampling, bit for bit.
        assert_eq!(values(repaint(kind, &original, painted.zeros_like(), &target)), values(original.clone()), "{kind:?}");
        let plain = {
            let schedule = Schedule::new(BetaSchedule::Linear, 1000);
            let oracle = PointOracle { schedule: schedule.clone(), target: target.clone() };
            values(SamplingRun::new(kind.build(&schedule, X0::Raw).unwrap(), [2, 1, 6, 6], Guidance::unconditional(2), 4, &device).finish(&oracle))
        };
        assert_eq!(values(repaint(kind, &original, painted.ones_like(), &target)), plain, "{kind:?}");
    }
}

/// The point oracle, counting its calls.
struct Counting(PointOracle, std::cell::Cell<usize>);

impl NoisePredictor for Counting {
    fn predict_noise(&self, x_t: Tensor<4>, t: usize, labels: &[Option<usize>]) -> Tensor<4> {
        self.1.set(self.1.get() + 1);
        self.0.predict_noise(x_t, t, labels)
    }
}

#[test]
fn repaint_with_resampling_takes_each_step_again_and_still_keeps_the_unpainted_pixels() {
    let device = Device::flex();
    let schedule = Schedule::new(BetaSchedule::Linear, 1000);
    let original = NoiseSource::new(30).normal([1, 1, 4, 4], &device).clamp(-1.0, 1.0);
    let target = NoiseSource::new(31).normal([1, 1, 4, 4], &device).clamp(-1.0, 1.0);
    let painted = Tensor::<4>::from_data(TensorData::new((0..16).map(|i| (i % 2) as f32).collect::<Vec<_>>(), [1, 1, 4, 4]), &device);
    for kind in [SamplerKind::Ddpm(DdpmVariance::BetaTilde), SamplerKind::Ddim { steps: 20, eta: 0.0 }] {
        assert!(kind.is_single_step());
        let steps = kind.build(&schedule, X0::Raw).unwrap().timesteps().len();
        let oracle = Counting(PointOracle { schedule: schedule.clone(), target: target.clone() }, Default::default());
        let inpaint = Inpaint::new(schedule.clone(), original.clone(), painted.clone(), 4).resampling(3);
        let run = SamplingRun::new(kind.build(&schedule, X0::Raw).unwrap(), [1, 1, 4, 4], Guidance::unconditional(1), 4, &device);
        let out = values(run.inpainting(inpaint).finish(&oracle));
        // Every step three times, but the last (to the clean end) once.
        assert_eq!(oracle.1.get(), 3 * steps - 2, "{kind:?}");
        let (o, t) = (values(original.clone()), values(target.clone()));
        for i in 0..16 {
            if i % 2 == 1 {
                assert!((out[i] - t[i]).abs() < 1e-3, "{kind:?}: painted pixel {i}");
            } else {
                assert_eq!(out[i], o[i], "{kind:?}: kept pixel {i}");
            }
        }
    }
    assert!(!SamplerKind::DpmSolver { steps: 10 }.is_single_step());
}
