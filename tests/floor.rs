//! The floor's real images (`ddpm_web::eval::floor`): drawn to the samples' class plan, disjoint.

use ddpm_web::eval::floor::real_sets;
use nalgebra::{DMatrix, DVector};
use std::sync::OnceLock;

#[test]
fn each_set_follows_the_plan_and_no_image_is_used_twice() {
    // Classes 0..3 with 7, 5 and 9 images; the plan asks for 0, 1, 2, 0: class 0 runs out first.
    let labels: Vec<u8> = [0u8; 7].iter().chain(&[1; 5]).chain(&[2; 9]).copied().collect();
    let plan = [Some(0), Some(1), Some(2), Some(0)];
    let sets = real_sets(&labels, &plan, 10);
    assert_eq!(sets.len(), 3, "7 images of class 0 fill three sets' two places each, not four");
    let mut seen = std::collections::HashSet::new();
    for set in &sets {
        let classes: Vec<Option<usize>> = set.iter().map(|&i| Some(labels[i] as usize)).collect();
        assert_eq!(classes, plan);
        assert!(set.iter().all(|i| seen.insert(*i)), "an image in two sets: {sets:?}");
    }
    // From the end of the set: the first set's class-2 image is the last image.
    assert_eq!(sets[0][2], labels.len() - 1);
    assert_eq!(real_sets(&labels, &plan, 2).len(), 2, "at most max_sets");
    assert!(real_sets(&labels, &[Some(3)], 5).is_empty(), "a class the labels do not hold");
}

#[test]
fn an_unconditional_plan_takes_images_as_they_come() {
    let labels = [0u8, 1, 1, 1, 2, 2, 0];
    let sets = real_sets(&labels, &[None, None, None], 5);
    assert_eq!(sets, vec![vec![6, 5, 4], vec![3, 2, 1]]);
}

/// Fashion-MNIST's train set, the committed classifier, and the Gaussian of all test images'
/// features, against which `mean_fd` reads sets of train images (flipped or not).
struct RealData {
    train: ddpm_web::data::Dataset,
    classifier: ddpm_web::eval::classifier::Classifier,
    reference: &'static (DVector<f64>, DMatrix<f64>),
    device: burn::prelude::Device,
}

impl RealData {
    fn load() -> Self {
        use burn::store::{BurnpackStore, ModuleSnapshot};
        use ddpm_web::data::{DEFAULT_DIR, Dataset, Split};
        use ddpm_web::eval::classifier::{Classifier, test_reference};
        let train = Dataset::load(DEFAULT_DIR.as_ref(), Split::Train).unwrap();
        let device = burn::prelude::Device::flex();
        let mut classifier = Classifier::new(&device);
        classifier.load_from(&mut BurnpackStore::from_file("assets/classifier.bpk")).unwrap();
        // The test set's features are the slow part (~20 s): computed once for all tests.
        static REFERENCE: OnceLock<(DVector<f64>, DMatrix<f64>)> = OnceLock::new();
        let reference = REFERENCE.get_or_init(|| test_reference(&classifier, &Dataset::load(DEFAULT_DIR.as_ref(), Split::Test).unwrap(), &device));
        Self { train, classifier, reference, device }
    }

    /// The mean FD over eight disjoint draws of train images to `plan`.
    fn mean_fd(&self, plan: &[Option<usize>], mut flips: Option<&mut ddpm_web::noise::NoiseSource>) -> f64 {
        let sets = real_sets(&self.train.labels, plan, 8);
        assert_eq!(sets.len(), 8);
        let fd = |set: &Vec<usize>, flips: Option<&mut ddpm_web::noise::NoiseSource>| {
            let features = self.classifier.feature_vec(self.train.batch(set, flips, &self.device).0);
            let reference = (&self.reference.0, &self.reference.1);
            ddpm_web::eval::frechet::frechet_to(&features, reference, ddpm_web::eval::classifier::FEATURES)
        };
        sets.iter().map(|set| fd(set, flips.as_deref_mut())).sum::<f64>() / 8.0
    }
}

fn balanced() -> Vec<Option<usize>> {
    (0..500).map(|i| Some(i % 10)).collect()
}

/// With the real data and the committed classifier: 500 images of 50 per class read a far lower
/// FD than 500 in a row, whose classes' shares wander; `ddpm eval` asks for 50 of each, so its
/// floor must be drawn that way.
#[test]
fn class_balanced_real_images_read_a_lower_floor_than_images_in_a_row() {
    let real = RealData::load();
    let balanced = real.mean_fd(&balanced(), None);
    let in_a_row = real.mean_fd(&[None; 500], None);
    // Over 120 draws each: 4.3 (sd 0.5) and 6.1 (sd 1.3); eight draws separate them by ~4 standard errors.
    assert!(balanced < in_a_row - 0.6, "balanced {balanced}, in a row {in_a_row}");
}

/// Why the shipped model trains without flips (`ddpm train --no-flips`): Fashion-MNIST is not
/// mirror-symmetric (its shoes face left), and the classifier's features see it. Real images,
/// half of them flipped as a model trained with flips draws them, read ~14 (eight draws: 12.3 to
/// 16.3), three times the floor of ~4.4, and over the DDPM bar, which no model of the flipped data
/// could then meet.
#[test]
fn half_flipped_real_images_read_three_times_the_floor() {
    let real = RealData::load();
    let plain = real.mean_fd(&balanced(), None);
    let flipped = real.mean_fd(&balanced(), Some(&mut ddpm_web::noise::NoiseSource::new(7)));
    assert!(flipped > 2.5 * plain, "half flipped {flipped}, as they are {plain}");
}
