//! `ddpm sample`: a PNG grid of samples (or a morph between two seeds) and an animated GIF of the
//! reverse process.

use crate::load_weights;
use crate::{DeviceArg, GuidanceArgs, SamplerArg};
use burn::prelude::*;
use ddpm_web::data::class_names;
use ddpm_web::sampler::{Inpaint, SamplingRun, X0, morph_noise};
use ddpm_web::unet::UNet;
use image::codecs::gif::{GifEncoder, Repeat};
use image::{Delay, Frame, GrayImage, Luma, RgbaImage};
use indicatif::ProgressBar;
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct Args {
    /// Weights written by `ddpm train`.
    #[arg(long, short, default_value = "model.ddpm")]
    weights: PathBuf,
    #[arg(long, value_enum, default_value = "ddim")]
    sampler: SamplerArg,
    /// DDIM steps (must divide T) or DPM-Solver++ steps (any up to T).
    #[arg(long, default_value_t = 50)]
    steps: usize,
    /// DDIM η: 0 deterministic, 1 as noisy as DDPM.
    #[arg(long, default_value_t = 0.0, value_parser = crate::non_negative_f64)]
    eta: f64,
    /// Clamp each step's x̂_0 to [−1, 1] (Ho et al.'s released code; the paper's Algorithm 2 does not).
    #[arg(long)]
    clip_x0: bool,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Class index 0–9 (or "any"); see --per-class for one row per class.
    #[arg(long, default_value = "any")]
    class: String,
    /// One row per class (count becomes a multiple of 10).
    #[arg(long)]
    per_class: bool,
    /// A morph: --count images in one row, from seed A's sample to seed B's, sampled from
    /// spherical interpolations of their starting noise (needs DDIM with η = 0 or DPM-Solver++).
    #[arg(long, value_name = "A,B", value_parser = parse_seeds, conflicts_with = "per_class")]
    morph: Option<(u64, u64)>,
    /// Repaint this grey image (the model's size, e.g. 28×28): the pixels white in --mask are
    /// painted by the model, the others kept; --count repaints, each from its own noise.
    #[arg(long, value_name = "IMAGE.png", requires = "mask", conflicts_with = "morph")]
    inpaint: Option<PathBuf>,
    /// The pixels to repaint (white) and to keep (black), the image's size.
    #[arg(long, value_name = "MASK.png", requires = "inpaint")]
    mask: Option<PathBuf>,
    /// RePaint's resampling: take each reverse step this many times, noising back in between
    /// (DDPM or DDIM; the cost grows as much).
    #[arg(long, default_value_t = 1, requires = "inpaint", value_parser = clap::value_parser!(u32).range(1..=20))]
    resample: u32,
    #[command(flatten)]
    guide: GuidanceArgs,
    #[arg(long, default_value_t = 16)]
    count: usize,
    /// The PNG grid.
    #[arg(long, short, default_value = "samples.png")]
    out: PathBuf,
    /// Enlarge the PNG grid this many times (nearest neighbour), for documents; 1 writes the
    /// pixels exactly as the page's Download PNG does.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=8))]
    scale: u32,
    /// An animated GIF of x_t beside x̂_0.
    #[arg(long)]
    gif: Option<PathBuf>,
    /// Keep every k-th step in the GIF (0: about 40 frames).
    #[arg(long, default_value_t = 0)]
    gif_every: usize,
    #[arg(long, value_enum, default_value = "cpu")]
    device: DeviceArg,
}

pub fn run(args: Args) -> Result<(), String> {
    let device = args.device.device()?;
    let (model, description) = load_weights(&args.weights, &device)?;
    let model = model.for_inference();
    let layout = Layout::of(&args, model.null_class().is_some())?;
    let schedule = description.schedule();
    let kind = args.sampler.kind(args.steps, args.eta);
    let sampler = kind.build(&schedule, if args.clip_x0 { X0::Clipped } else { X0::Raw })?;
    let size = description.unet.image_size;
    let shape = [layout.count, description.unet.channels, size, size];
    let guidance = args.guide.for_labels(layout.labels.clone(), schedule.len())?;
    let mut run = match args.morph {
        Some(seeds) => {
            if !kind.is_deterministic() {
                return Err("--morph needs a deterministic sampler: --sampler ddim with --eta 0, or dpm-solver".into());
            }
            let noise = morph_noise(seeds, layout.count, [shape[1], size, size], &device);
            SamplingRun::from_noise(sampler, noise, guidance, args.seed)
        }
        None => SamplingRun::new(sampler, shape, guidance, args.seed, &device),
    };
    if let (Some(image), Some(mask)) = (&args.inpaint, &args.mask) {
        if args.resample > 1 && !kind.is_single_step() {
            return Err("--resample needs a single-step sampler: ddpm, ddpm-tilde or ddim".into());
        }
        let original = grey_png(image, shape, &device)?.mul_scalar(2.0 / 255.0).sub_scalar(1.0);
        let painted = grey_png(mask, shape, &device)?.greater_elem(127.5).float();
        run = run.inpainting(Inpaint::new(schedule.clone(), original, painted, args.seed).resampling(args.resample as usize));
    }
    let total = run.total_steps();
    let frame_every = args.gif.is_some().then(|| if args.gif_every == 0 { (total / 40).max(1) } else { args.gif_every });
    let started = std::time::Instant::now();
    let frames = reverse_process(&mut run, &model, &layout, size, frame_every);
    let secs = started.elapsed().as_secs_f64();
    let mut image = grid(&to_pixels(run.current()), layout.count, layout.cols, size);
    if args.scale > 1 {
        image = image::imageops::resize(&image, image.width() * args.scale, image.height() * args.scale, image::imageops::FilterType::Nearest);
    }
    image.save(&args.out).map_err(|e| format!("{}: {e}", args.out.display()))?;
    println!(
        "{} samples, {total} steps in {secs:.1} s ({:.1} ms/step) → {}{}",
        layout.count,
        secs * 1000.0 / total as f64,
        args.out.display(),
        if args.per_class { format!(" (rows: {})", class_names().join(", ")) } else { String::new() }
    );
    if let Some(path) = args.gif {
        write_gif(&path, frames).map_err(|e| format!("{}: {e}", path.display()))?;
        println!("reverse process (x_t | x̂_0) → {}", path.display());
    }
    Ok(())
}

/// How many samples, how many to a row of the grid, and the class each asks for.
struct Layout {
    count: usize,
    cols: usize,
    labels: Vec<Option<usize>>,
}

impl Layout {
    fn of(args: &Args, conditional: bool) -> Result<Self, String> {
        let class = match args.class.as_str() {
            "any" => None,
            s => match s.parse::<usize>() {
                Ok(c) if c < 10 => Some(c),
                _ => return Err(format!("--class must be 0–9 or any, not {s:?}")),
            },
        };
        if !conditional && (class.is_some() || args.per_class) {
            return Err("these weights are unconditional: --class and --per-class need a class-conditional model".into());
        }
        let layout = if args.morph.is_some() {
            if !(2..=64).contains(&args.count) {
                return Err("--morph needs --count between 2 and 64".into());
            }
            Self { count: args.count, cols: args.count, labels: vec![class; args.count] }
        } else if args.per_class {
            let per = args.count.div_ceil(10).max(1);
            Self { count: per * 10, cols: per, labels: (0..10).flat_map(|c| std::iter::repeat_n(Some(c), per)).collect() }
        } else {
            let cols = (args.count as f64).sqrt().ceil() as usize;
            Self { count: args.count, cols: cols.max(1), labels: vec![class; args.count] }
        };
        if layout.count == 0 || layout.count > 1024 {
            return Err("--count must be between 1 and 1024".into());
        }
        Ok(layout)
    }
}

/// Runs the reverse process to its end, keeping x_t beside x̂_0 every `frame_every` steps (and at
/// the last) as frames for the GIF.
fn reverse_process(run: &mut SamplingRun, model: &UNet, layout: &Layout, size: usize, frame_every: Option<usize>) -> Vec<RgbaImage> {
    let total = run.total_steps();
    let mut frames = Vec::new();
    let bar = ProgressBar::new(total as u64);
    while let Some(step) = run.step(model) {
        bar.inc(1);
        let done = run.steps_done();
        if frame_every.is_some_and(|every| done.is_multiple_of(every) || done == total) {
            let left = grid(&to_pixels(step.x_prev), layout.count, layout.cols, size);
            let right = grid(&to_pixels(step.x0), layout.count, layout.cols, size);
            frames.push(side_by_side(&left, &right));
        }
    }
    bar.finish_and_clear();
    frames
}

/// [-1, 1] floats to grey bytes, one image after another.
fn to_pixels(x: Tensor<4>) -> Vec<u8> {
    let v = x.into_data().try_into_vec::<f32>().expect("f32 tensor");
    v.iter().map(|&p| ((p.clamp(-1.0, 1.0) + 1.0) * 127.5).round() as u8).collect()
}

/// Lays out `count` single-channel images `cols` to a row, with a 2-pixel gap.
fn grid(pixels: &[u8], count: usize, cols: usize, size: usize) -> GrayImage {
    let rows = count.div_ceil(cols);
    let pad = 2;
    let mut out = GrayImage::from_pixel((cols * (size + pad) + pad) as u32, (rows * (size + pad) + pad) as u32, Luma([32]));
    for i in 0..count {
        let (r, c) = (i / cols, i % cols);
        for y in 0..size {
            for x in 0..size {
                let v = pixels[i * size * size + y * size + x];
                out.put_pixel((pad + c * (size + pad) + x) as u32, (pad + r * (size + pad) + y) as u32, Luma([v]));
            }
        }
    }
    out
}

fn side_by_side(a: &GrayImage, b: &GrayImage) -> RgbaImage {
    let gap = 8;
    let mut out = RgbaImage::from_pixel(a.width() * 2 + gap, a.height(), image::Rgba([16, 16, 16, 255]));
    for (dx, img) in [(0, a), (a.width() + gap, b)] {
        for (x, y, p) in img.enumerate_pixels() {
            out.put_pixel(x + dx, y, image::Rgba([p[0], p[0], p[0], 255]));
        }
    }
    image::imageops::resize(&out, out.width() * 3, out.height() * 3, image::imageops::FilterType::Nearest)
}

fn write_gif(path: &PathBuf, frames: Vec<RgbaImage>) -> Result<(), String> {
    let file = std::fs::File::create(path).map_err(|e| e.to_string())?;
    let mut enc = GifEncoder::new_with_speed(file, 10);
    enc.set_repeat(Repeat::Infinite).map_err(|e| e.to_string())?;
    let n = frames.len();
    for (i, f) in frames.into_iter().enumerate() {
        let hold = if i + 1 == n { 2000 } else { 80 };
        enc.encode_frame(Frame::from_parts(f, 0, 0, Delay::from_numer_denom_ms(hold, 1))).map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// Two seeds written `A,B`.
fn parse_seeds(s: &str) -> Result<(u64, u64), String> {
    let parsed = s.split_once(',').and_then(|(a, b)| Some((a.trim().parse().ok()?, b.trim().parse().ok()?)));
    parsed.ok_or_else(|| format!("expected two seeds A,B, e.g. 3,8, not {s:?}"))
}

/// A grey PNG of the model's image size, as 0–255 values repeated over the batch of `shape`.
fn grey_png(path: &std::path::Path, shape: [usize; 4], device: &Device) -> Result<Tensor<4>, String> {
    let image = image::open(path).map_err(|e| format!("{}: {e}", path.display()))?.to_luma8();
    let [batch, channels, h, w] = shape;
    if (image.width() as usize, image.height() as usize, channels) != (w, h, 1) {
        return Err(format!("{}: {}×{} pixels, but the model draws {w}×{h} grey images", path.display(), image.width(), image.height()));
    }
    let values: Vec<f32> = image.into_raw().into_iter().map(f32::from).collect();
    Ok(Tensor::<4>::from_data(TensorData::new(values, [1, 1, h, w]), device).repeat_dim(0, batch))
}
