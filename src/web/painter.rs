//! Drawing a batch of images into a canvas with `shaders/grid.wgsl`: the values go up once as a
//! storage buffer and the fragment shader does the layout, upscaling and colour map.

use crate::grid::{GridLayout, pipeline};
use burn::tensor::wgpu::{WgpuSetup, wgpu};
use wasm_bindgen::prelude::*;

#[wasm_bindgen]
pub struct Painter {
    device: wgpu::Device,
    queue: wgpu::Queue,
    surface: wgpu::Surface<'static>,
    config: wgpu::SurfaceConfiguration,
    pipeline: wgpu::RenderPipeline,
    uniform: wgpu::Buffer,
    values: Option<wgpu::Buffer>,
    canvas: web_sys::OffscreenCanvas,
}

impl Painter {
    pub fn new(setup: &WgpuSetup, canvas: web_sys::OffscreenCanvas) -> Result<Self, String> {
        let surface = setup
            .instance
            .create_surface(wgpu::SurfaceTarget::OffscreenCanvas(canvas.clone()))
            .map_err(|e| format!("cannot draw on the canvas with WebGPU: {e}"))?;
        let caps = surface.get_capabilities(&setup.adapter);
        // A linear (non-sRGB) format, so that grey levels land exactly where the CLI puts them.
        let format =
            caps.formats.iter().copied().find(|f| !f.is_srgb()).or_else(|| caps.formats.first().copied()).ok_or("the canvas offers no WebGPU format")?;
        let config = wgpu::SurfaceConfiguration {
            usage: wgpu::TextureUsages::RENDER_ATTACHMENT,
            format,
            width: canvas.width().max(1),
            height: canvas.height().max(1),
            present_mode: wgpu::PresentMode::Fifo,
            desired_maximum_frame_latency: 2,
            alpha_mode: caps.alpha_modes.first().copied().unwrap_or(wgpu::CompositeAlphaMode::Auto),
            view_formats: vec![],
            color_space: Default::default(),
        };
        let device = setup.device.clone();
        let pipeline = pipeline(&device, format);
        let uniform = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("grid layout"),
            size: std::mem::size_of::<GridLayout>() as u64,
            usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        Ok(Self { device, queue: setup.queue.clone(), surface, config, pipeline, uniform, values: None, canvas })
    }
}

/// A grid as www/draw2d.js lays it out (JSON; its other fields are ignored): `panels` panels of
/// `count` images of `size`² values each, one after the other, in `cols` columns, drawn into a
/// `width`×`height` canvas; `colormap` 0 is grey, 1 viridis.
#[derive(serde::Deserialize)]
struct PaintLayout {
    count: u32,
    cols: u32,
    size: u32,
    panels: u32,
    colormap: u32,
    width: u32,
    height: u32,
}

#[wasm_bindgen]
impl Painter {
    /// Draws `values` laid out as `layout` says (see [`PaintLayout`]).
    pub fn paint(&mut self, values: &[f32], layout: &str) -> Result<(), JsError> {
        let PaintLayout { count, cols, size, panels, colormap, width, height } =
            serde_json::from_str(layout).map_err(|e| JsError::new(&format!("paint layout: {e}")))?;
        let needed = (panels * count * size * size) as usize;
        if count == 0 || cols == 0 || !(1..=2).contains(&panels) || values.len() != needed {
            return Err(JsError::new(&format!("paint: {} values for {panels} panel(s) of {count} {size}×{size} images", values.len())));
        }
        if (width, height) != (self.config.width, self.config.height) {
            self.canvas.set_width(width);
            self.canvas.set_height(height);
            self.config.width = width.max(1);
            self.config.height = height.max(1);
            self.surface.configure(&self.device, &self.config);
        } else if self.values.is_none() {
            self.surface.configure(&self.device, &self.config);
        }
        let layout = GridLayout { cols, rows: count.div_ceil(cols), size, count, panels, colormap, width, height };
        self.queue.write_buffer(&self.uniform, 0, &layout.bytes());
        let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        if self.values.as_ref().is_none_or(|b| b.size() < bytes.len() as u64) {
            self.values = Some(self.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("grid values"),
                size: bytes.len() as u64,
                usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            }));
        }
        let buffer = self.values.as_ref().expect("allocated above");
        self.queue.write_buffer(buffer, 0, &bytes);
        let frame = match self.surface.get_current_texture() {
            wgpu::CurrentSurfaceTexture::Success(f) | wgpu::CurrentSurfaceTexture::Suboptimal(f) => f,
            other => {
                return Err(JsError::new(&format!("the canvas gave no texture to draw on: {other:?}")));
            }
        };
        let view = frame.texture.create_view(&Default::default());
        let bind = self.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: None,
            layout: &self.pipeline.get_bind_group_layout(0),
            entries: &[
                wgpu::BindGroupEntry { binding: 0, resource: self.uniform.as_entire_binding() },
                wgpu::BindGroupEntry { binding: 1, resource: buffer.as_entire_binding() },
            ],
        });
        let mut encoder = self.device.create_command_encoder(&Default::default());
        {
            let mut pass = encoder.begin_render_pass(&wgpu::RenderPassDescriptor {
                label: Some("grid"),
                color_attachments: &[Some(wgpu::RenderPassColorAttachment {
                    view: &view,
                    depth_slice: None,
                    resolve_target: None,
                    ops: wgpu::Operations { load: wgpu::LoadOp::Clear(wgpu::Color::BLACK), store: wgpu::StoreOp::Store },
                })],
                ..Default::default()
            });
            pass.set_pipeline(&self.pipeline);
            pass.set_bind_group(0, &bind, &[]);
            pass.draw(0..3, 0..1);
        }
        self.queue.submit([encoder.finish()]);
        self.queue.present(frame);
        Ok(())
    }
}
