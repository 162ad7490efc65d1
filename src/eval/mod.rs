//! Evaluation, apart from the model: a Fashion-MNIST classifier as the feature space, the Fréchet
//! distance in it, the floor real images score at the same n, and the statistics that read FDs
//! over several draws of noise. Native only: the page never evaluates.

pub mod classifier;
pub mod draws;
pub mod floor;
pub mod frechet;
