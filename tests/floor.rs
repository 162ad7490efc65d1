//! The floor's real images (`ddpm_web::floor`): drawn to the samples' class plan, disjoint.

use ddpm_web::floor::real_sets;

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

/// With the real data and the committed classifier: 500 images of 50 per class read a far lower
/// FD than 500 in a row, whose classes' shares wander; `ddpm eval` asks for 50 of each, so its
/// floor must be drawn that way.
#[test]
fn class_balanced_real_images_read_a_lower_floor_than_images_in_a_row() {
    use burn::prelude::*;
    use burn::store::{BurnpackStore, ModuleSnapshot};
    use ddpm_web::classifier::{Classifier, FEATURES, dataset_features};
    use ddpm_web::data::{DEFAULT_DIR, Dataset, Split};
    use ddpm_web::frechet::{frechet_to, gaussian_fit};
    let train = Dataset::load(DEFAULT_DIR.as_ref(), Split::Train).unwrap();
    let test = Dataset::load(DEFAULT_DIR.as_ref(), Split::Test).unwrap();
    let device = Device::flex();
    let mut classifier = Classifier::new(&device);
    classifier.load_from(&mut BurnpackStore::from_file("docs/eval/classifier.bpk")).unwrap();
    let reference = gaussian_fit(&dataset_features(&classifier, &test, &(0..test.len()).collect::<Vec<_>>(), &device), FEATURES);
    let mean_fd = |plan: &[Option<usize>]| {
        let sets = real_sets(&train.labels, plan, 8);
        assert_eq!(sets.len(), 8);
        sets.iter().map(|set| frechet_to(&dataset_features(&classifier, &train, set, &device), (&reference.0, &reference.1), FEATURES)).sum::<f64>() / 8.0
    };
    let balanced = mean_fd(&(0..500).map(|i| Some(i % 10)).collect::<Vec<_>>());
    let in_a_row = mean_fd(&[None; 500]);
    // Over 120 draws each: 4.3 (sd 0.5) and 6.1 (sd 1.3); eight draws separate them by ~4 standard errors.
    assert!(balanced < in_a_row - 0.6, "balanced {balanced}, in a row {in_a_row}");
}
