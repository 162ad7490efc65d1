//! Animated GIF of the reverse process, from the grey frames the worker collected.

use gif::{Encoder, Frame, Repeat};
use wasm_bindgen::prelude::*;

/// Hundredths of a second each frame shows: ~60 frames play in about five seconds.
const DELAY_CS: u16 = 8;

/// Encodes `frames` (each `width`·`height` grey bytes, one after the other) as a looping GIF;
/// the last frame stays for two seconds.
#[wasm_bindgen(js_name = encodeGif)]
pub fn encode_gif(frames: &[u8], width: u16, height: u16) -> Result<Vec<u8>, JsError> {
    let size = usize::from(width) * usize::from(height);
    if size == 0 || frames.is_empty() || !frames.len().is_multiple_of(size) {
        return Err(JsError::new(&format!("encodeGif: {} bytes are not whole {width}×{height} frames", frames.len())));
    }
    let palette: Vec<u8> = (0..=255u8).flat_map(|g| [g, g, g]).collect();
    let mut out = Vec::new();
    {
        let mut encoder = Encoder::new(&mut out, width, height, &palette).map_err(|e| JsError::new(&e.to_string()))?;
        encoder.set_repeat(Repeat::Infinite).map_err(|e| JsError::new(&e.to_string()))?;
        let count = frames.len() / size;
        for (i, pixels) in frames.chunks_exact(size).enumerate() {
            let delay = if i + 1 == count { 200 } else { DELAY_CS };
            let frame = Frame { width, height, delay, buffer: pixels.into(), ..Frame::default() };
            encoder.write_frame(&frame).map_err(|e| JsError::new(&e.to_string()))?;
        }
    }
    Ok(out)
}
