//! A quality bar read over draws of noise. An FD of n samples moves from one draw of starting noise
//! to the next by more than most settings change it, so a bar is read against the mean over draws.
//! Two settings A and B have rows on some draws together (pairs: their difference is sharp) and on
//! others alone. Under an additive model (row = the draw's level + the setting's effect) each draw
//! is read at one level: A's row, B's row less the pairs' mean difference δ, or both averaged. Each
//! setting's mean is the mean level plus its effect (0 for A, δ for B), so a row on a hard draw
//! counts against both settings alike, whichever of them happened to be drawn there.

/// Both settings' means over every draw of noise, with standard errors.
#[derive(Debug)]
pub struct OverDraws {
    pub draws: usize,
    pub fd_a: f64,
    pub fd_b: f64,
    /// The standard deviation of the draws' levels: how far one row strays from the mean.
    pub scatter: f64,
    /// Standard errors of the two means: the levels' scatter over √draws, and δ's uncertainty
    /// through the rows it shifts (checked against simulation in tests/draws.rs).
    pub se_a: f64,
    pub se_b: f64,
}

/// `pairs` are (A, B) FDs of draws holding both settings; `a_alone` and `b_alone` FDs of draws
/// holding one; `delta_sd` the standard error of δ, the pairs' mean B − A (e.g. their bootstrap's
/// spread). Every row must be at one n: FD reads higher at smaller n.
pub fn over_draws(pairs: &[(f64, f64)], a_alone: &[f64], b_alone: &[f64], delta_sd: f64) -> Result<OverDraws, String> {
    if pairs.is_empty() {
        return Err("a mean over draws needs at least one pair of rows, to measure B − A".into());
    }
    let (p, ma, mb) = (pairs.len() as f64, a_alone.len() as f64, b_alone.len() as f64);
    let k = p + ma + mb;
    if k < 2.0 {
        return Err("a mean over draws needs at least two draws of noise, to measure their scatter".into());
    }
    let delta = pairs.iter().map(|(a, b)| b - a).sum::<f64>() / p;
    let levels: Vec<f64> = pairs.iter().map(|(a, b)| (a + b - delta) / 2.0).chain(a_alone.iter().copied()).chain(b_alone.iter().map(|b| b - delta)).collect();
    let (level, scatter) = mean_and_sd(&levels);
    // Var = scatter² / k + δ_sd² m (m + p) / k², m the other setting's lone rows (which δ shifts):
    // the estimator's variance when each row is its draw's level plus its setting's effect plus
    // noise of its own, the pairs' share of which is in both δ and the levels.
    let se = |m: f64| ((scatter * scatter) / k + delta_sd * delta_sd * m * (m + p) / (k * k)).sqrt();
    Ok(OverDraws { draws: levels.len(), fd_a: level, fd_b: level + delta, scatter, se_a: se(mb), se_b: se(ma) })
}

/// The mean and the sample standard deviation (n − 1) of `values`; the deviation is 0 for one value.
pub fn mean_and_sd(values: &[f64]) -> (f64, f64) {
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    (mean, (values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0).max(1.0)).sqrt())
}
