//! The Fréchet distance between two Gaussians fitted to feature sets:
//! ‖μ₁ − μ₂‖² + Tr(Σ₁ + Σ₂ − 2 (Σ₁^½ Σ₂ Σ₁^½)^½).

use nalgebra::{DMatrix, DVector};

/// Mean and covariance (unbiased) of the rows of `features` (`n` rows of `dim` values).
pub fn gaussian_fit(features: &[f32], dim: usize) -> (DVector<f64>, DMatrix<f64>) {
    let n = features.len() / dim;
    assert!(n >= 2, "need at least two feature vectors");
    let x = DMatrix::from_row_iterator(n, dim, features.iter().map(|&v| v as f64));
    let mean = x.row_mean().transpose();
    let centered = DMatrix::from_fn(n, dim, |i, j| x[(i, j)] - mean[j]);
    let cov = centered.transpose() * &centered / (n as f64 - 1.0);
    (mean, cov)
}

/// Square root of a symmetric positive semi-definite matrix (negative eigenvalues from rounding
/// are set to zero).
fn sqrtm_psd(m: &DMatrix<f64>) -> DMatrix<f64> {
    let sym = (m + m.transpose()) * 0.5;
    let eig = sym.symmetric_eigen();
    let roots = eig.eigenvalues.map(|v| v.max(0.0).sqrt());
    &eig.eigenvectors * DMatrix::from_diagonal(&roots) * eig.eigenvectors.transpose()
}

pub fn frechet_distance(a: (&DVector<f64>, &DMatrix<f64>), b: (&DVector<f64>, &DMatrix<f64>)) -> f64 {
    let (mu1, s1) = a;
    let (mu2, s2) = b;
    let root1 = sqrtm_psd(s1);
    let cross = sqrtm_psd(&(&root1 * s2 * &root1));
    let diff = mu1 - mu2;
    (diff.dot(&diff) + s1.trace() + s2.trace() - 2.0 * cross.trace()).max(0.0)
}

/// FD of a feature set to an already fitted reference (the test set's, fitted once).
pub fn frechet_to(features: &[f32], reference: (&DVector<f64>, &DMatrix<f64>), dim: usize) -> f64 {
    let (m, s) = gaussian_fit(features, dim);
    frechet_distance((&m, &s), reference)
}

/// The given rows of `features` (`dim` values each), in that order, repeats allowed.
fn gather(features: &[f32], rows: &[usize], dim: usize) -> Vec<f32> {
    rows.iter().flat_map(|&r| features[r * dim..(r + 1) * dim].iter().copied()).collect()
}

/// FD between two feature sets.
pub fn frechet_between(a: &[f32], b: &[f32], dim: usize) -> f64 {
    let (m1, s1) = gaussian_fit(a, dim);
    let (m2, s2) = gaussian_fit(b, dim);
    frechet_distance((&m1, &s1), (&m2, &s2))
}

/// FD∞ (Chong & Forsyth, "Effectively Unbiased FID", 2020): the FD of `n` samples is biased
/// upwards by roughly k/n, so FDs of random subsets of sizes n/3…n are fitted by a line in 1/N
/// and read at 1/N = 0. Comparable across sample counts, which a raw FD is not. None below
/// n = 3 · dim, where the smallest subsets' covariances would be singular.
pub fn frechet_infinity(samples: &[f32], reference: (&DVector<f64>, &DMatrix<f64>), dim: usize, seed: u64) -> Option<f64> {
    let n = samples.len() / dim;
    if n < 3 * dim {
        return None;
    }
    let mut rng = crate::noise::NoiseSource::new(seed);
    let mut order: Vec<usize> = (0..n).collect();
    let points: Vec<(f64, f64)> = (0..SUBSET_SIZES)
        .map(|i| {
            // Evenly spaced in 1/N, from 1/n to 3/n.
            let inv = (1.0 + 2.0 * i as f64 / (SUBSET_SIZES - 1) as f64) / n as f64;
            let size = ((1.0 / inv).round() as usize).clamp(2, n);
            let fd: f64 = (0..SUBSET_DRAWS)
                .map(|_| {
                    rng.shuffle(&mut order);
                    frechet_to(&gather(samples, &order[..size], dim), reference, dim)
                })
                .sum::<f64>()
                / SUBSET_DRAWS as f64;
            (1.0 / size as f64, fd)
        })
        .collect();
    // Least squares for fd = a + b · (1/N); FD∞ = a.
    let k = points.len() as f64;
    let (sx, sy) = points.iter().fold((0.0, 0.0), |(sx, sy), (x, y)| (sx + x, sy + y));
    let (mx, my) = (sx / k, sy / k);
    let (sxy, sxx) = points.iter().fold((0.0, 0.0), |(sxy, sxx), (x, y)| (sxy + (x - mx) * (y - my), sxx + (x - mx) * (x - mx)));
    Some(my - sxy / sxx * mx)
}

const SUBSET_SIZES: usize = 10;
const SUBSET_DRAWS: usize = 4;

/// FD(b) − FD(a) for two sample sets drawn pair by pair (same sampler seed and class order), with
/// a paired bootstrap of that difference: sample indices are drawn with replacement and both sets
/// keep the same ones. Samples that share their starting noise are close, so most of the noise of
/// FD at n cancels in the difference; an unpaired comparison would have to beat the seed spread.
pub struct PairedDifference {
    pub fd_a: f64,
    pub fd_b: f64,
    /// The bootstrap's differences, in the order they were drawn.
    pub draws: Vec<f64>,
}

impl PairedDifference {
    pub fn difference(&self) -> f64 {
        self.fd_b - self.fd_a
    }

    /// The mean over independent comparisons (e.g. one per sampler seed): both mean FDs, and the
    /// bootstrap of the mean difference, draw k averaging every part's draw k. That needs the
    /// parts' draws unsorted and independent (bootstraps seeded apart), or it would be as wide as
    /// one part's.
    pub fn mean(parts: &[PairedDifference]) -> PairedDifference {
        assert!(!parts.is_empty(), "a mean needs at least one comparison");
        let draws = parts[0].draws.len();
        assert!(parts.iter().all(|p| p.draws.len() == draws), "every comparison needs as many draws");
        let k = parts.len() as f64;
        PairedDifference {
            fd_a: parts.iter().map(|p| p.fd_a).sum::<f64>() / k,
            fd_b: parts.iter().map(|p| p.fd_b).sum::<f64>() / k,
            draws: (0..draws).map(|j| parts.iter().map(|p| p.draws[j]).sum::<f64>() / k).collect(),
        }
    }

    /// The q-quantile of the bootstrap differences (q in [0, 1]).
    pub fn quantile(&self, q: f64) -> f64 {
        let mut sorted = self.draws.clone();
        sorted.sort_by(f64::total_cmp);
        sorted[(q * (sorted.len() - 1) as f64).round() as usize]
    }

    /// The share of bootstrap draws in which b reads lower than a.
    pub fn share_b_lower(&self) -> f64 {
        self.draws.iter().filter(|d| **d < 0.0).count() as f64 / self.draws.len() as f64
    }
}

pub fn paired_difference(a: &[f32], b: &[f32], reference: (&DVector<f64>, &DMatrix<f64>), dim: usize, draws: usize, seed: u64) -> PairedDifference {
    assert_eq!(a.len(), b.len(), "paired sets need the same number of samples");
    assert!(draws > 0, "need at least one bootstrap draw");
    let n = a.len() / dim;
    let fd = |x: &[f32]| frechet_to(x, reference, dim);
    let mut rng = crate::noise::NoiseSource::new(seed);
    let diffs: Vec<f64> = (0..draws)
        .map(|_| {
            let rows: Vec<usize> = (0..n).map(|_| rng.below(n)).collect();
            fd(&gather(b, &rows, dim)) - fd(&gather(a, &rows, dim))
        })
        .collect();
    PairedDifference { fd_a: fd(a), fd_b: fd(b), draws: diffs }
}
