//! Save → load round trips, and every kind of broken file gives a named error.

use burn::prelude::*;
use ddpm_web::noise::NoiseSource;
use ddpm_web::schedule::BetaSchedule;
use ddpm_web::unet::{UNet, UNetConfig};
use ddpm_web::weights::{ModelDescription, Precision, WeightsError, from_bytes, read_description, to_bytes};

fn small() -> (UNet, ModelDescription) {
    let config = UNetConfig::new().with_dim(8).with_dim_mults(vec![1, 2]).with_image_size(8).with_num_classes(10);
    let description = ModelDescription {
        unet: config.clone(),
        schedule: BetaSchedule::Cosine,
        timesteps: 200,
        train_steps: 12,
        data_checksum: Some("abc".into()),
        precision: Precision::F32,
    };
    (config.init(&Device::flex()), description)
}

fn output(model: &UNet) -> Vec<f32> {
    let device = Device::flex();
    let x = NoiseSource::new(3).normal([2, 1, 8, 8], &device);
    let t = Tensor::<1>::from_data(TensorData::new(vec![5.0f32, 150.0], [2]), &device);
    let labels = Tensor::<1, Int>::from_data(TensorData::new(vec![4i64, 10], [2]), &device);
    model.forward(x, t, Some(labels)).into_data().try_into_vec().unwrap()
}

#[test]
fn round_trip_is_bit_identical() {
    let (model, description) = small();
    let bytes = to_bytes(&model, &description).unwrap();
    let (loaded, back) = from_bytes(&bytes, &Device::flex()).unwrap();
    assert_eq!(back, description);
    assert_eq!(output(&loaded), output(&model));
}

#[test]
fn f16_storage_halves_the_file_and_stays_close() {
    let (model, mut description) = small();
    let full = to_bytes(&model, &description).unwrap();
    description.precision = Precision::F16;
    let half = to_bytes(&model, &description).unwrap();
    assert!(half.len() * 10 < full.len() * 6, "{} vs {} bytes", half.len(), full.len());
    let (loaded, _) = from_bytes(&half, &Device::flex()).unwrap();
    let (a, b) = (output(&loaded), output(&model));
    let worst = a.iter().zip(&b).fold(0f32, |m, (x, y)| m.max((x - y).abs()));
    assert!(worst < 2e-2, "f16 weights change the output by {worst}");
}

#[test]
fn broken_files_are_named_errors() {
    let (model, description) = small();
    let bytes = to_bytes(&model, &description).unwrap();
    let device = Device::flex();
    let err = |b: &[u8]| from_bytes(b, &device).expect_err("must fail");

    assert!(matches!(err(b"PK\x03\x04 a zip file"), WeightsError::Magic));
    assert!(matches!(err(&bytes[..10]), WeightsError::Truncated(_)));
    // A header claiming a 4 GB description.
    let mut absurd = bytes.clone();
    absurd[8..12].copy_from_slice(&u32::MAX.to_le_bytes());
    assert!(matches!(err(&absurd), WeightsError::Truncated(_)));
    // The description says the model is wider than the tensors are.
    let (_, pack) = read_description(&bytes).unwrap();
    let mut lying = description.clone();
    lying.unet.dim = 16;
    let json = serde_json::to_vec(&lying).unwrap();
    let mut forged = b"DDPMWEB1".to_vec();
    forged.extend((json.len() as u32).to_le_bytes());
    forged.extend(json);
    forged.extend_from_slice(pack);
    let e = err(&forged);
    assert!(matches!(e, WeightsError::Mismatch(_) | WeightsError::Container(_)), "{e}");
    // An impossible configuration in the description.
    let text = String::from_utf8_lossy(&bytes[12..12 + u32::from_le_bytes(bytes[8..12].try_into().unwrap()) as usize]).to_string();
    let bad = text.replace("\"image_size\":8", "\"image_size\":7");
    let mut forged = b"DDPMWEB1".to_vec();
    forged.extend((bad.len() as u32).to_le_bytes());
    forged.extend(bad.as_bytes());
    forged.extend_from_slice(pack);
    assert!(matches!(err(&forged), WeightsError::InvalidConfig(_)));
    // Tensor bytes cut short.
    let e = err(&bytes[..bytes.len() - 100]);
    assert!(matches!(e, WeightsError::Container(_) | WeightsError::Mismatch(_)), "{e}");
}

/// Polls a future to completion on this thread (the CPU device answers without waiting).
fn block_on<F: std::future::Future>(future: F) -> F::Output {
    let mut future = std::pin::pin!(future);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    loop {
        if let std::task::Poll::Ready(out) = future.as_mut().poll(&mut cx) {
            return out;
        }
        std::thread::yield_now();
    }
}

#[test]
fn the_asynchronous_save_gives_back_the_same_model() {
    let (model, description) = small();
    let sync = to_bytes(&model, &description).unwrap();
    let async_ = block_on(ddpm_web::weights::to_bytes_async(&model, &description)).unwrap();
    // Same size and the same model back (the container also records parameter ids, which differ).
    assert_eq!(async_.len(), sync.len());
    let (loaded, back) = from_bytes(&async_, &Device::flex()).unwrap();
    assert_eq!(back, description);
    assert_eq!(output(&loaded), output(&model));
}
