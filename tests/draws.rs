//! A bar read over draws of noise (`ddpm compare --a-alone/--b-alone`), against closed forms.

use ddpm_web::eval::draws::over_draws;
use ddpm_web::noise::NoiseSource;

fn close(x: f64, y: f64) -> bool {
    (x - y).abs() < 1e-12
}

#[test]
fn rows_that_follow_the_additive_model_give_back_its_levels_and_effect() {
    // Draw levels 10, 12, 14, 16, 18 and B = A − 1: one pair, A alone on two draws, B on two.
    let delta = -1.0;
    let out = over_draws(&[(14.0, 14.0 + delta)], &[10.0, 12.0], &[16.0 + delta, 18.0 + delta], 0.0).unwrap();
    assert_eq!(out.draws, 5);
    assert!(close(out.fd_a, 14.0) && close(out.fd_b, 13.0), "{out:?}");
    // The sample standard deviation of 10, 12, …, 18 is √10; with δ known exactly, se = √10 / √5.
    assert!(close(out.scatter, 10f64.sqrt()) && close(out.se_a, 2f64.sqrt()) && close(out.se_b, 2f64.sqrt()), "{out:?}");
}

#[test]
fn a_hard_draw_counts_against_both_settings_not_the_one_drawn_there() {
    // B's own rows fall on the hardest draws: their plain mean (17) reads above A's (13), though B
    // is lower wherever the two share noise.
    let out = over_draws(&[(12.0, 11.0)], &[14.0], &[20.0, 18.0], 0.0).unwrap();
    let b_plain = (11.0 + 20.0 + 18.0) / 3.0;
    let a_plain = (12.0 + 14.0) / 2.0;
    assert!(b_plain > a_plain && out.fd_b < out.fd_a && close(out.fd_a - out.fd_b, 1.0), "{out:?}");
    // Levels 12 (11.5 + 0.5), 14, 21, 19.
    assert!(close(out.fd_a, 16.5), "{out:?}");
}

#[test]
fn with_pairs_alone_the_means_are_each_settings_own() {
    let pairs = [(14.09, 13.22), (16.83, 15.65), (14.28, 13.5)];
    let out = over_draws(&pairs, &[], &[], 0.0).unwrap();
    let mean = |f: fn(&(f64, f64)) -> f64| pairs.iter().map(f).sum::<f64>() / 3.0;
    assert!(close(out.fd_a, mean(|p| p.0)) && close(out.fd_b, mean(|p| p.1)), "{out:?}");
}

#[test]
fn the_differences_uncertainty_weighs_by_the_rows_it_shifts() {
    // Every level equal, so only δ's standard error (0.4) is left, carried by the other setting's
    // lone rows m as δ_sd √(m (m + p)) / k. Two pairs, two A-alone and two B-alone draws:
    let out = over_draws(&[(15.0, 14.0), (15.0, 14.0)], &[15.0, 15.0], &[14.0, 14.0], 0.4).unwrap();
    assert!(close(out.scatter, 0.0) && close(out.se_a, 0.4 * 8f64.sqrt() / 6.0) && close(out.se_b, 0.4 * 8f64.sqrt() / 6.0), "{out:?}");
    // With B alone on no draw, A's mean holds none of δ.
    let out = over_draws(&[(15.0, 14.0)], &[15.0, 15.0, 15.0], &[], 0.4).unwrap();
    assert!(close(out.se_a, 0.0) && close(out.se_b, 0.4 * 12f64.sqrt() / 4.0), "{out:?}");
}

/// Rows simulated as the draw's level (spread `tau`) plus the setting's effect plus noise of their
/// own (`sigma`): the standard errors match the means' spread over many simulated card tables.
#[test]
fn standard_errors_match_the_spread_of_the_means_in_simulation() {
    // (tau, sigma, pairs, A alone, B alone): this card's shape, and one where δ's error dominates.
    for (tau, sigma, p, ma, mb) in [(1.5, 0.35, 2, 2, 2), (0.2, 0.6, 1, 3, 0), (0.5, 0.5, 3, 1, 4)] {
        let mut rng = NoiseSource::new(7);
        let reps = 20_000;
        let (mut fd_a, mut fd_b, mut var_a, mut var_b) = (vec![], vec![], 0.0, 0.0);
        for _ in 0..reps {
            let z: Vec<f64> = rng.normal_vec(p + ma + mb + 2 * p + ma + mb).iter().map(|&v| v as f64).collect();
            let (level, noise) = z.split_at(p + ma + mb);
            let row = |d: usize, effect: f64, e: usize| 15.0 + tau * level[d] + effect + sigma * noise[e];
            let pairs: Vec<(f64, f64)> = (0..p).map(|i| (row(i, 0.0, 2 * i), row(i, -1.0, 2 * i + 1))).collect();
            let a: Vec<f64> = (0..ma).map(|i| row(p + i, 0.0, 2 * p + i)).collect();
            let b: Vec<f64> = (0..mb).map(|i| row(p + ma + i, -1.0, 2 * p + ma + i)).collect();
            let out = over_draws(&pairs, &a, &b, sigma * (2.0 / p as f64).sqrt()).unwrap();
            fd_a.push(out.fd_a);
            fd_b.push(out.fd_b);
            var_a += out.se_a.powi(2) / reps as f64;
            var_b += out.se_b.powi(2) / reps as f64;
        }
        for (side, means, var) in [("A", &fd_a, var_a), ("B", &fd_b, var_b)] {
            let m = means.iter().sum::<f64>() / reps as f64;
            let sd = (means.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (reps - 1) as f64).sqrt();
            let truth = if side == "A" { 15.0 } else { 14.0 };
            assert!((m - truth).abs() < 0.02, "{side} mean {m} against {truth}");
            assert!((var.sqrt() / sd - 1.0).abs() < 0.05, "{side} of {tau} {sigma} {p} {ma} {mb}: standard error {} against a spread of {sd}", var.sqrt());
        }
    }
}

#[test]
fn refuses_what_it_cannot_measure() {
    assert!(over_draws(&[], &[14.0, 15.0], &[13.0], 0.0).unwrap_err().contains("at least one pair"));
    assert!(over_draws(&[(14.0, 13.0)], &[], &[], 0.0).unwrap_err().contains("at least two draws"));
}
