//! Schedules against their closed forms, computed here independently in f64.

use ddpm_web::schedule::{BetaSchedule, MAX_COSINE_BETA, Schedule};
use std::f64::consts::PI;

const T: usize = 1000;

fn close(a: f64, b: f64, tol: f64) -> bool {
    (a - b).abs() <= tol * (1.0 + b.abs())
}

#[test]
fn linear_betas_match_the_paper() {
    let s = Schedule::new(BetaSchedule::Linear, T);
    assert!(close(s.betas[0], 1e-4, 1e-12));
    assert!(close(s.betas[T - 1], 0.02, 1e-12));
    for t in [1, 250, 499, 998] {
        let expected = 1e-4 + (0.02 - 1e-4) * t as f64 / (T - 1) as f64;
        assert!(close(s.betas[t], expected, 1e-12), "β[{t}]");
    }
}

#[test]
fn alpha_bar_is_the_product_of_alphas() {
    for kind in BetaSchedule::ALL {
        let s = Schedule::new(kind, T);
        let mut log_sum = 0.0;
        for t in 0..T {
            log_sum += (1.0 - s.betas[t]).ln();
            assert!(close(s.alphas_cumprod[t], log_sum.exp(), 1e-9), "{kind:?} ᾱ[{t}]");
        }
    }
}

#[test]
fn cosine_alpha_bar_follows_the_cosine_formula() {
    let s = Schedule::new(BetaSchedule::Cosine, T);
    let f = |t: f64| (((t / T as f64) + 0.008) / 1.008 * PI / 2.0).cos().powi(2);
    // The clip at 0.999 only bites on the very last steps.
    for t in 0..T - 5 {
        let expected = f((t + 1) as f64) / f(0.0);
        assert!(close(s.alphas_cumprod[t], expected, 1e-9), "ᾱ[{t}]: {} vs {expected}", s.alphas_cumprod[t]);
    }
    assert!(s.betas.iter().all(|&b| b <= MAX_COSINE_BETA));
    assert!(close(s.betas[T - 1], MAX_COSINE_BETA, 1e-12), "last β is clipped");
}

#[test]
fn quadratic_has_linear_square_roots() {
    let s = Schedule::new(BetaSchedule::Quadratic, T);
    let roots: Vec<f64> = s.betas.iter().map(|b| b.sqrt()).collect();
    assert!(close(roots[0], 1e-4f64.sqrt(), 1e-12));
    assert!(close(roots[T - 1], 0.02f64.sqrt(), 1e-12));
    for w in roots.windows(3) {
        assert!((w[2] - 2.0 * w[1] + w[0]).abs() < 1e-12, "second difference of √β is zero");
    }
}

#[test]
fn sigmoid_is_point_symmetric() {
    let s = Schedule::new(BetaSchedule::Sigmoid, T);
    // σ(x) + σ(−x) = 1, so β_t + β_{T−1−t} = 2·start + (end − start).
    for t in 0..T {
        assert!(close(s.betas[t] + s.betas[T - 1 - t], 2e-4 + (0.02 - 1e-4), 1e-12));
    }
    let expected_first = 1e-4 + (0.02 - 1e-4) / (1.0 + 6f64.exp());
    assert!(close(s.betas[0], expected_first, 1e-12));
}

#[test]
fn every_schedule_is_monotone_and_in_range() {
    for kind in BetaSchedule::ALL {
        for steps in [1, 2, 10, T] {
            let s = Schedule::new(kind, steps);
            assert_eq!(s.len(), steps);
            assert!(s.betas.iter().all(|&b| (0.0..1.0).contains(&b)), "{kind:?} β in [0, 1)");
            assert!(s.betas.windows(2).all(|w| w[1] >= w[0]), "{kind:?} β non-decreasing");
            assert!(s.alphas_cumprod.windows(2).all(|w| w[1] < w[0]), "{kind:?} ᾱ decreasing");
            assert!(s.alphas_cumprod.iter().all(|&a| a > 0.0 && a < 1.0));
            assert!(s.posterior_log_variance_clipped.iter().all(|v| v.is_finite()));
        }
    }
}

#[test]
fn single_step_schedule() {
    for kind in BetaSchedule::ALL {
        let s = Schedule::new(kind, 1);
        assert_eq!(s.alphas_cumprod_prev, vec![1.0]);
        assert!(close(s.alphas_cumprod[0], 1.0 - s.betas[0], 1e-15));
        // q(x_{-1} | x_0, x_0) is a point mass at x_0.
        assert_eq!(s.posterior_variance[0], 0.0);
        assert!(close(s.posterior_mean_coef1[0], 1.0, 1e-12));
        assert!(s.posterior_mean_coef2[0].abs() < 1e-12);
    }
}

#[test]
fn names_round_trip_and_garbage_is_refused() {
    for kind in BetaSchedule::ALL {
        assert_eq!(BetaSchedule::parse(kind.name()), Ok(kind));
    }
    assert!(BetaSchedule::parse("cosin").unwrap_err().contains("cosin"));
}
