//! Fashion-MNIST (or MNIST) in the IDX format: reading, scaling to [-1, 1], and batches with
//! random horizontal flips.

use crate::noise::NoiseSource;
use burn::prelude::*;
use std::io::Read;
use std::path::{Path, PathBuf};

/// Where Debian's `dataset-fashion-mnist` puts the files.
pub const DEFAULT_DIR: &str = "/usr/share/datasets/fashion-mnist";

/// The ten Fashion-MNIST classes, in label order (from www/limits.json, as the page names them).
pub fn class_names() -> &'static [String] {
    &crate::limits::limits().classes
}

const IMAGES_MAGIC: u32 = 0x0000_0803;
const LABELS_MAGIC: u32 = 0x0000_0801;

#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error("cannot read {path}: {source} (install Debian's dataset-fashion-mnist, or pass --data DIR)")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{what}: not gzip data that can be read ({source})")]
    Gzip { what: String, source: std::io::Error },
    #[error("{what}: wrong magic number {found:#010x}, expected {expected:#010x} (not an IDX {kind} file)")]
    Magic { what: String, found: u32, expected: u32, kind: &'static str },
    #[error("{what}: truncated: the header promises {expected} bytes, the file has {found}")]
    Truncated { what: String, expected: usize, found: usize },
    #[error("{images} images but {labels} labels")]
    CountMismatch { images: usize, labels: usize },
    #[error("{what}: label {label} at index {index} is not a class in 0..10")]
    BadLabel { what: String, index: usize, label: u8 },
}

/// Images as bytes (row-major, one after another) with their labels.
#[derive(Clone, Debug)]
pub struct Dataset {
    pub pixels: Vec<u8>,
    pub labels: Vec<u8>,
    pub rows: usize,
    pub cols: usize,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Split {
    Train,
    Test,
}

impl Split {
    fn prefix(self) -> &'static str {
        match self {
            Split::Train => "train",
            Split::Test => "t10k",
        }
    }
}

/// Whether the bytes start with gzip's magic (IDX files and evaluation journals may come either way).
pub fn is_gzip(bytes: &[u8]) -> bool {
    bytes.starts_with(&[0x1f, 0x8b])
}

/// Undoes gzip when the bytes start with its magic; IDX files may come either way.
pub fn maybe_gunzip(bytes: Vec<u8>, what: &str) -> Result<Vec<u8>, DataError> {
    if is_gzip(&bytes) {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(&bytes[..]).read_to_end(&mut out).map_err(|source| DataError::Gzip { what: what.into(), source })?;
        Ok(out)
    } else {
        Ok(bytes)
    }
}

fn header(bytes: &[u8], what: &str, words: usize) -> Result<Vec<u32>, DataError> {
    if bytes.len() < 4 * words {
        return Err(DataError::Truncated { what: what.into(), expected: 4 * words, found: bytes.len() });
    }
    Ok((0..words).map(|i| u32::from_be_bytes(bytes[4 * i..4 * i + 4].try_into().unwrap())).collect())
}

fn check_magic(found: u32, expected: u32, what: &str, kind: &'static str) -> Result<(), DataError> {
    if found != expected {
        return Err(DataError::Magic { what: what.into(), found, expected, kind });
    }
    Ok(())
}

fn body(bytes: &[u8], offset: usize, len: Option<usize>, what: &str) -> Result<Vec<u8>, DataError> {
    let expected = len.and_then(|l| l.checked_add(offset));
    match expected {
        Some(total) if bytes.len() >= total => Ok(bytes[offset..total].to_vec()),
        _ => Err(DataError::Truncated { what: what.into(), expected: expected.unwrap_or(usize::MAX), found: bytes.len() }),
    }
}

/// Parses an IDX3 image file: returns (count, rows, cols, pixels).
pub fn parse_images(bytes: &[u8], what: &str) -> Result<(usize, usize, usize, Vec<u8>), DataError> {
    check_magic(header(bytes, what, 1)?[0], IMAGES_MAGIC, what, "image")?;
    let h = header(bytes, what, 4)?;
    let (n, rows, cols) = (h[1] as usize, h[2] as usize, h[3] as usize);
    let len = n.checked_mul(rows).and_then(|v| v.checked_mul(cols));
    Ok((n, rows, cols, body(bytes, 16, len, what)?))
}

/// Parses an IDX1 label file.
pub fn parse_labels(bytes: &[u8], what: &str) -> Result<Vec<u8>, DataError> {
    check_magic(header(bytes, what, 1)?[0], LABELS_MAGIC, what, "label")?;
    let h = header(bytes, what, 2)?;
    let labels = body(bytes, 8, Some(h[1] as usize), what)?;
    if let Some((index, &label)) = labels.iter().enumerate().find(|(_, l)| **l >= 10) {
        return Err(DataError::BadLabel { what: what.into(), index, label });
    }
    Ok(labels)
}

impl Dataset {
    /// Builds a data set from the bytes of an image file and a label file (gzip or plain).
    pub fn from_idx(images: Vec<u8>, labels: Vec<u8>) -> Result<Self, DataError> {
        let images = maybe_gunzip(images, "images")?;
        let labels = maybe_gunzip(labels, "labels")?;
        let (n, rows, cols, pixels) = parse_images(&images, "images")?;
        let labels = parse_labels(&labels, "labels")?;
        if labels.len() != n {
            return Err(DataError::CountMismatch { images: n, labels: labels.len() });
        }
        Ok(Self { pixels, labels, rows, cols })
    }

    /// Reads `{train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]` from `dir`.
    pub fn load(dir: &Path, split: Split) -> Result<Self, DataError> {
        let read = |stem: &str| -> Result<Vec<u8>, DataError> {
            let plain = dir.join(format!("{}-{stem}-ubyte", split.prefix()));
            let gz = dir.join(format!("{}-{stem}-ubyte.gz", split.prefix()));
            let path = if gz.exists() || !plain.exists() { gz } else { plain };
            std::fs::read(&path).map_err(|source| DataError::Io { path, source })
        };
        Self::from_idx(read("images-idx3")?, read("labels-idx1")?)
    }

    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Keeps only the images whose label is in `classes`.
    pub fn filter_classes(&self, classes: &[usize]) -> Self {
        let size = self.rows * self.cols;
        let keep: Vec<usize> = (0..self.len()).filter(|&i| classes.contains(&(self.labels[i] as usize))).collect();
        Self {
            pixels: keep.iter().flat_map(|&i| self.pixels[i * size..(i + 1) * size].iter().copied()).collect(),
            labels: keep.iter().map(|&i| self.labels[i]).collect(),
            rows: self.rows,
            cols: self.cols,
        }
    }

    /// The first `n` images.
    pub fn take(&self, n: usize) -> Self {
        let n = n.min(self.len());
        Self { pixels: self.pixels[..n * self.rows * self.cols].to_vec(), labels: self.labels[..n].to_vec(), rows: self.rows, cols: self.cols }
    }

    /// Image `i` scaled from [0, 255] to [-1, 1], optionally mirrored left–right.
    pub fn image(&self, i: usize, flip: bool) -> Vec<f32> {
        let size = self.rows * self.cols;
        let src = &self.pixels[i * size..(i + 1) * size];
        let mut out = Vec::with_capacity(size);
        for r in 0..self.rows {
            for c in 0..self.cols {
                let c = if flip { self.cols - 1 - c } else { c };
                out.push(src[r * self.cols + c] as f32 / 127.5 - 1.0);
            }
        }
        out
    }

    /// A `[B, 1, H, W]` batch of the given images (each flipped with probability ½ when `flips`
    /// is given) and their labels.
    pub fn batch(&self, indices: &[usize], flips: Option<&mut NoiseSource>, device: &Device) -> (Tensor<4>, Vec<usize>) {
        let mut flips = flips;
        let mut data = Vec::with_capacity(indices.len() * self.rows * self.cols);
        for &i in indices {
            let flip = flips.as_mut().is_some_and(|rng| rng.below(2) == 1);
            data.extend(self.image(i, flip));
        }
        let images = Tensor::from_data(TensorData::new(data, [indices.len(), 1, self.rows, self.cols]), device);
        (images, indices.iter().map(|&i| self.labels[i] as usize).collect())
    }

    /// A short fingerprint of the pixels and labels (FNV-1a), recorded with trained weights.
    pub fn checksum(&self) -> String {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for &b in self.pixels.iter().chain(&self.labels) {
            h = (h ^ b as u64).wrapping_mul(0x100_0000_01b3);
        }
        format!("{h:016x}")
    }
}

/// Visits `0..len` in a fresh random order every epoch, a batch at a time; a batch that runs
/// past the end of an epoch continues into the next one.
pub struct Epochs {
    order: Vec<usize>,
    next: usize,
}

impl Epochs {
    pub fn new(len: usize) -> Self {
        Self { order: (0..len).collect(), next: 0 }
    }

    /// The next `batch` indices (empty when the data set is).
    pub fn next_batch(&mut self, batch: usize, rng: &mut NoiseSource) -> Vec<usize> {
        if self.order.is_empty() {
            return Vec::new();
        }
        (0..batch)
            .map(|_| {
                if self.next == 0 {
                    rng.shuffle(&mut self.order);
                }
                let i = self.order[self.next];
                self.next = (self.next + 1) % self.order.len();
                i
            })
            .collect()
    }
}
