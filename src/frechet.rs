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

/// FD between two feature sets.
pub fn frechet_between(a: &[f32], b: &[f32], dim: usize) -> f64 {
    let (m1, s1) = gaussian_fit(a, dim);
    let (m2, s2) = gaussian_fit(b, dim);
    frechet_distance((&m1, &s1), (&m2, &s2))
}
