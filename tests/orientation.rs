//! Fashion-MNIST's shoes all face one way (toe to the left). A model trained with random
//! left-right flips draws half of them mirrored, which the test set never shows: half-flipped
//! real images read FD ~14 against the test set, where unflipped ones read ~4.4 (docs/model-card.md → Quality).
//! These tests hold the shipped model to the data's orientation.

use burn::prelude::*;
use ddpm_web::data::{DEFAULT_DIR, Dataset, Split};
use ddpm_web::sampler::{Guidance, SamplerKind, SamplingRun, X0};

const SHOES: [usize; 3] = [5, 7, 9]; // sandal, sneaker, ankle boot
const SIDE: usize = 28;

fn mirror(image: &[f32]) -> Vec<f32> {
    image.chunks(SIDE).flat_map(|row| row.iter().rev().copied()).collect()
}

fn correlation(a: &[f32], b: &[f32]) -> f64 {
    let mean = |v: &[f32]| v.iter().map(|&x| x as f64).sum::<f64>() / v.len() as f64;
    let (ma, mb) = (mean(a), mean(b));
    let (mut ab, mut aa, mut bb) = (0.0, 0.0, 0.0);
    for (&x, &y) in a.iter().zip(b) {
        let (x, y) = (x as f64 - ma, y as f64 - mb);
        ab += x * y;
        aa += x * x;
        bb += y * y;
    }
    ab / (aa * bb).sqrt()
}

/// Each class's mean train image: the orientation its images share.
fn class_means(train: &Dataset) -> Vec<Vec<f32>> {
    let mut sums = vec![vec![0f32; SIDE * SIDE]; 10];
    for i in 0..train.len() {
        let c = train.labels[i] as usize;
        for (s, p) in sums[c].iter_mut().zip(train.image(i, false)) {
            *s += p;
        }
    }
    sums
}

/// Whether an image of class `c` looks more like its class's mean than like the mirrored mean.
fn faces_the_data_way(image: &[f32], mean: &[f32]) -> bool {
    correlation(image, mean) > correlation(image, &mirror(mean))
}

fn share_facing(images: &[(Vec<f32>, usize)], means: &[Vec<f32>]) -> f64 {
    let n = images.iter().filter(|(x, c)| faces_the_data_way(x, &means[*c])).count();
    n as f64 / images.len() as f64
}

fn train_set() -> Dataset {
    Dataset::load(DEFAULT_DIR.as_ref(), Split::Train).expect("dataset-fashion-mnist is installed by make setup")
}

#[test]
fn real_shoes_face_the_way_of_their_class_mean_and_mirrored_ones_do_not() {
    let means = class_means(&train_set());
    let test = Dataset::load(DEFAULT_DIR.as_ref(), Split::Test).unwrap();
    let shoes: Vec<(Vec<f32>, usize)> =
        (0..test.len()).filter(|&i| SHOES.contains(&(test.labels[i] as usize))).map(|i| (test.image(i, false), test.labels[i] as usize)).collect();
    let mirrored: Vec<(Vec<f32>, usize)> = shoes.iter().map(|(x, c)| (mirror(x), *c)).collect();
    let (plain, flipped) = (share_facing(&shoes, &means), share_facing(&mirrored, &means));
    eprintln!("test shoes facing the data's way: {plain:.3}, mirrored: {flipped:.3}");
    assert!(plain > 0.95, "{plain}");
    assert!(flipped < 0.05, "{flipped}");
}

#[test]
fn the_shipped_model_draws_shoes_facing_the_data_way() {
    let path = std::env::var("DDPM_WEIGHTS").unwrap_or_else(|_| "www/assets/model.ddpm".into());
    let device = Device::flex();
    let (model, description) = ddpm_web::weights::from_bytes(&std::fs::read(&path).unwrap(), &device).unwrap();
    let model = model.for_inference();
    let schedule = description.schedule();
    let per = 8;
    let labels: Vec<Option<usize>> = SHOES.iter().flat_map(|&c| std::iter::repeat_n(Some(c), per)).collect();
    // The page's default: DDIM 50 steps, guidance 2 at t ≤ 600.
    let sampler = SamplerKind::Ddim { steps: 50, eta: 0.0 }.build(&schedule, X0::Raw).unwrap();
    let guidance = Guidance::new(labels.clone(), 2.0).within(Some(0..=600), schedule.len()).unwrap();
    let run = SamplingRun::new(sampler, [labels.len(), 1, SIDE, SIDE], guidance, 0, &device);
    let pixels = run.finish(&model).into_data().try_into_vec::<f32>().unwrap();
    let samples: Vec<(Vec<f32>, usize)> = pixels.chunks(SIDE * SIDE).zip(&labels).map(|(x, c)| (x.to_vec(), c.unwrap())).collect();
    let share = share_facing(&samples, &class_means(&train_set()));
    eprintln!("{path}: samples facing the data's way: {share:.3}");
    assert!(share >= 0.9, "{path}: only {share:.3} of {} shoes face the way Fashion-MNIST's do", samples.len());
}
