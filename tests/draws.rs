//! A bar read over draws of noise (`ddpm compare --a-alone/--b-alone`), against closed forms.

use ddpm_web::draws::over_draws;

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
    // Every level equal, so only δ's standard error (0.4) is left. Two pairs, two A-alone and two
    // B-alone draws. A's mean subtracts δ from B's two lone rows (2 / 6 of it); B's mean is A's
    // plus δ, so it carries δ on the other four draws (4 / 6).
    let out = over_draws(&[(15.0, 14.0), (15.0, 14.0)], &[15.0, 15.0], &[14.0, 14.0], 0.4).unwrap();
    assert!(close(out.scatter, 0.0) && close(out.se_a, 0.4 * 2.0 / 6.0) && close(out.se_b, 0.4 * 4.0 / 6.0), "{out:?}");
    // With B alone on no draw, A's mean holds none of δ and B's all of it.
    let out = over_draws(&[(15.0, 14.0)], &[15.0, 15.0, 15.0], &[], 0.4).unwrap();
    assert!(close(out.se_a, 0.0) && close(out.se_b, 0.4), "{out:?}");
}

#[test]
fn refuses_what_it_cannot_measure() {
    assert!(over_draws(&[], &[14.0, 15.0], &[13.0], 0.0).unwrap_err().contains("at least one pair"));
    assert!(over_draws(&[(14.0, 13.0)], &[], &[], 0.0).unwrap_err().contains("at least two draws"));
}
