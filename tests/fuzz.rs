//! Fuzzing the two readers of untrusted bytes: the weights loader and the IDX reader. Mutated
//! files (truncated, bits flipped, bytes overwritten, length fields rewritten, random noise) must
//! give `Ok` or a named error, never a panic. `FUZZ_CASES` sets the number of cases per property
//! (`make soak` runs 100,000; `make test` a short run).

use burn::prelude::*;
use ddpm_web::data::Dataset;
use ddpm_web::schedule::BetaSchedule;
use ddpm_web::unet::UNetConfig;
use ddpm_web::weights::{ModelDescription, Precision, from_bytes, to_bytes};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::OnceLock;

fn cases() -> u32 {
    std::env::var("FUZZ_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(500)
}

fn runner() -> TestRunner {
    TestRunner::new(Config { cases: cases(), failure_persistence: None, ..Config::default() })
}

/// One edit to a file.
#[derive(Clone, Debug)]
enum Mutation {
    Truncate(usize),
    FlipBit(usize, u8),
    Overwrite(usize, Vec<u8>),
    /// A 32-bit little- or big-endian length field rewritten (header words sit at 4-byte steps).
    Length {
        at: usize,
        value: u32,
        big_endian: bool,
    },
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        any::<usize>().prop_map(Mutation::Truncate),
        (any::<usize>(), 0u8..8).prop_map(|(i, b)| Mutation::FlipBit(i, b)),
        (any::<usize>(), proptest::collection::vec(any::<u8>(), 1..16)).prop_map(|(i, v)| Mutation::Overwrite(i, v)),
        (0usize..64, prop_oneof![any::<u32>(), Just(u32::MAX), Just(0), Just(10_000_000)], any::<bool>()).prop_map(|(w, value, big_endian)| Mutation::Length {
            at: 4 * w,
            value,
            big_endian
        }),
    ]
}

fn apply(mut bytes: Vec<u8>, mutations: &[Mutation]) -> Vec<u8> {
    for m in mutations {
        if bytes.is_empty() {
            break;
        }
        let n = bytes.len();
        match m {
            Mutation::Truncate(at) => bytes.truncate(at % n),
            Mutation::FlipBit(at, bit) => bytes[at % n] ^= 1 << bit,
            Mutation::Overwrite(at, with) => {
                let at = at % n;
                let end = (at + with.len()).min(n);
                bytes[at..end].copy_from_slice(&with[..end - at]);
            }
            Mutation::Length { at, value, big_endian } => {
                if at + 4 <= n {
                    let word = if *big_endian { value.to_be_bytes() } else { value.to_le_bytes() };
                    bytes[*at..at + 4].copy_from_slice(&word);
                }
            }
        }
    }
    bytes
}

fn weights_file() -> &'static Vec<u8> {
    static FILE: OnceLock<Vec<u8>> = OnceLock::new();
    FILE.get_or_init(|| {
        let unet = UNetConfig::new()
            .with_dim(4)
            .with_dim_mults(vec![1, 2])
            .with_image_size(4)
            .with_resnet_block_groups(2)
            .with_attn_heads(1)
            .with_attn_dim_head(4)
            .with_num_classes(10);
        let description = ModelDescription {
            unet: unet.clone(),
            schedule: BetaSchedule::Linear,
            timesteps: 10,
            train_steps: 1,
            data_checksum: None,
            precision: Precision::F32,
        };
        to_bytes(&unet.init(&Device::flex()), &description).unwrap()
    })
}

/// Loads `bytes`: a panic fails the property, an error must say something.
fn load_never_panics(bytes: &[u8]) -> Result<(), TestCaseError> {
    match catch_unwind(AssertUnwindSafe(|| from_bytes(bytes, &Device::flex()).map(|_| ()))) {
        Err(_) => Err(TestCaseError::fail(format!("the loader panicked on {} bytes", bytes.len()))),
        Ok(Err(e)) if e.to_string().trim().is_empty() => Err(TestCaseError::fail("an error without a message")),
        Ok(_) => Ok(()),
    }
}

#[test]
fn the_weights_loader_survives_mutated_files() {
    runner().run(&proptest::collection::vec(mutation(), 1..4), |mutations| load_never_panics(&apply(weights_file().clone(), &mutations))).unwrap();
}

#[test]
fn the_weights_loader_survives_random_bytes_after_a_valid_header() {
    // Past the magic and the description, straight into the tensor container.
    let file = weights_file();
    let json_len = u32::from_le_bytes(file[8..12].try_into().unwrap()) as usize;
    let head = file[..12 + json_len].to_vec();
    runner()
        .run(&proptest::collection::vec(any::<u8>(), 0..512), |tail| {
            let mut bytes = head.clone();
            bytes.extend(tail);
            load_never_panics(&bytes)
        })
        .unwrap();
}

fn idx_files() -> (Vec<u8>, Vec<u8>) {
    let (n, rows, cols) = (3u32, 4u32, 4u32);
    let mut images: Vec<u8> = [0x0803u32, n, rows, cols].iter().flat_map(|w| w.to_be_bytes()).collect();
    images.extend((0..n * rows * cols).map(|i| (i * 7 % 256) as u8));
    let mut labels: Vec<u8> = [0x0801u32, n].iter().flat_map(|w| w.to_be_bytes()).collect();
    labels.extend([1, 7, 9]);
    (images, labels)
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

#[test]
fn the_idx_reader_survives_mutated_files() {
    let (images, labels) = idx_files();
    let strategy = (proptest::collection::vec(mutation(), 0..4), proptest::collection::vec(mutation(), 0..4), any::<bool>());
    runner()
        .run(&strategy, |(mi, ml, zipped)| {
            let (mut i, mut l) = (apply(images.clone(), &mi), apply(labels.clone(), &ml));
            if zipped {
                // Mutate the compressed stream too: a damaged gzip file must be an error.
                i = apply(gzip(&images), &mi);
                l = gzip(&l);
            }
            match catch_unwind(|| Dataset::from_idx(i, l).map(|d| d.len())) {
                Err(_) => Err(TestCaseError::fail("the IDX reader panicked")),
                Ok(_) => Ok(()),
            }
        })
        .unwrap();
}
