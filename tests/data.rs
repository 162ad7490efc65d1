//! The IDX reader on files this test writes, including broken ones.

use burn::prelude::*;
use ddpm_web::data::{DataError, Dataset, Split};
use ddpm_web::noise::NoiseSource;
use flate2::{Compression, write::GzEncoder};
use std::io::Write;
use std::path::PathBuf;

fn images_file(n: u32, rows: u32, cols: u32, pixels: &[u8]) -> Vec<u8> {
    let mut out = vec![0, 0, 8, 3];
    for v in [n, rows, cols] {
        out.extend(v.to_be_bytes());
    }
    out.extend_from_slice(pixels);
    out
}

fn labels_file(labels: &[u8]) -> Vec<u8> {
    let mut out = vec![0, 0, 8, 1];
    out.extend((labels.len() as u32).to_be_bytes());
    out.extend_from_slice(labels);
    out
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = GzEncoder::new(Vec::new(), Compression::fast());
    enc.write_all(bytes).unwrap();
    enc.finish().unwrap()
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ddpm-data-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Two 2×3 images: pixel k of image i is 40·i + k.
fn two_images() -> (Vec<u8>, Vec<u8>) {
    let pixels: Vec<u8> = (0..2).flat_map(|i| (0..6).map(move |k| 40 * i + k)).collect();
    (images_file(2, 2, 3, &pixels), labels_file(&[7, 2]))
}

#[test]
fn reads_gzip_and_plain_files_from_a_directory() {
    let (images, labels) = two_images();
    for gz in [true, false] {
        let dir = temp_dir(if gz { "gz" } else { "plain" });
        let (name_i, name_l) = ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte");
        if gz {
            std::fs::write(dir.join(format!("{name_i}.gz")), gzip(&images)).unwrap();
            std::fs::write(dir.join(format!("{name_l}.gz")), gzip(&labels)).unwrap();
        } else {
            std::fs::write(dir.join(name_i), &images).unwrap();
            std::fs::write(dir.join(name_l), &labels).unwrap();
        }
        let data = Dataset::load(&dir, Split::Test).unwrap();
        assert_eq!((data.len(), data.rows, data.cols), (2, 2, 3));
        assert_eq!(data.labels, vec![7, 2]);
        assert_eq!(data.pixels[6..], [40, 41, 42, 43, 44, 45]);
    }
}

#[test]
fn images_are_scaled_to_minus_one_one_and_flipped_left_right() {
    let pixels = [0u8, 255, 51, 102, 0, 255];
    let data = Dataset::from_idx(images_file(1, 2, 3, &pixels), labels_file(&[0])).unwrap();
    let plain = data.image(0, false);
    let expected: Vec<f32> = pixels.iter().map(|&p| p as f32 * 2.0 / 255.0 - 1.0).collect();
    for (a, b) in plain.iter().zip(&expected) {
        assert!((a - b).abs() < 1e-6);
    }
    assert_eq!(data.image(0, true), vec![plain[2], plain[1], plain[0], plain[5], plain[4], plain[3]]);
    // Over many draws, about half the images of a batch are flipped.
    let big = Dataset::from_idx(images_file(200, 2, 3, &pixels.repeat(200)), labels_file(&[0; 200])).unwrap();
    let mut rng = NoiseSource::new(1);
    let (batch, labels) = big.batch(&(0..200).collect::<Vec<_>>(), Some(&mut rng), &Device::flex());
    assert_eq!(labels.len(), 200);
    let v = batch.into_data().try_into_vec::<f32>().unwrap();
    // Unflipped rows start with pixel 0 (−1); flipped ones with pixel 51 (−0.6).
    let flipped = v.chunks(6).filter(|img| img[0] > -0.9).count();
    assert!((70..130).contains(&flipped), "{flipped} of 200 flipped");
}

#[test]
fn broken_files_give_clear_errors() {
    let (images, labels) = two_images();
    let err = Dataset::from_idx(labels.clone(), labels.clone()).unwrap_err();
    assert!(matches!(err, DataError::Magic { .. }), "{err}");
    assert!(err.to_string().contains("magic"));

    let err = Dataset::from_idx(images[..images.len() - 1].to_vec(), labels.clone()).unwrap_err();
    assert!(matches!(err, DataError::Truncated { .. }), "{err}");
    let err = Dataset::from_idx(images[..10].to_vec(), labels.clone()).unwrap_err();
    assert!(matches!(err, DataError::Truncated { .. }), "{err}");

    let err = Dataset::from_idx(images.clone(), labels_file(&[1, 2, 3])).unwrap_err();
    assert!(matches!(err, DataError::CountMismatch { images: 2, labels: 3 }), "{err}");

    let err = Dataset::from_idx(images.clone(), labels_file(&[1, 12])).unwrap_err();
    assert!(matches!(err, DataError::BadLabel { index: 1, label: 12, .. }), "{err}");

    let mut corrupt_gz = gzip(&images);
    corrupt_gz.truncate(corrupt_gz.len() / 2);
    let err = Dataset::from_idx(corrupt_gz, labels.clone()).unwrap_err();
    assert!(matches!(err, DataError::Gzip { .. }), "{err}");

    // A header that claims billions of pixels is refused without allocating them.
    let err = Dataset::from_idx(images_file(u32::MAX, 28, 28, &[]), labels).unwrap_err();
    assert!(matches!(err, DataError::Truncated { .. }), "{err}");

    let missing = temp_dir("missing").join("nowhere");
    let err = Dataset::load(&missing, Split::Train).unwrap_err();
    assert!(err.to_string().contains("nowhere") && err.to_string().contains("--data"), "{err}");
}

#[test]
fn the_installed_fashion_mnist_test_set_reads() {
    let dir = std::path::Path::new(ddpm_web::data::DEFAULT_DIR);
    let data = Dataset::load(dir, Split::Test).expect("dataset-fashion-mnist is installed by make setup");
    assert_eq!((data.len(), data.rows, data.cols), (10_000, 28, 28));
    let mut counts = [0usize; 10];
    for &l in &data.labels {
        counts[l as usize] += 1;
    }
    assert_eq!(counts, [1000; 10], "the test set is balanced");
}

#[test]
fn epochs_visit_every_image_once_in_a_new_order_each_time() {
    let mut rng = NoiseSource::new(4);
    let mut epochs = ddpm_web::data::Epochs::new(10);
    // Batches of 4 over 10 images: the third batch straddles two epochs.
    let seen: Vec<usize> = (0..5).flat_map(|_| epochs.next_batch(4, &mut rng)).collect();
    let (first, second) = (&seen[..10], &seen[10..20]);
    for epoch in [first, second] {
        let mut sorted = epoch.to_vec();
        sorted.sort();
        assert_eq!(sorted, (0..10).collect::<Vec<_>>());
    }
    assert_ne!(first, second, "each epoch is shuffled anew");
    assert!(ddpm_web::data::Epochs::new(0).next_batch(3, &mut rng).is_empty());
}
