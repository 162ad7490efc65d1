//! shaders/grid.wgsl, rendered natively with wgpu (software Vulkan on machines without a GPU)
//! into a texture and read back: the page's drawing must put every image pixel where the CLI's
//! grid puts it, with the CLI's grey level, and the gaps in the background grey.

use burn::prelude::*;
use burn::tensor::wgpu::wgpu;
use ddpm_web::grid::{self, GridLayout};

const SIZE: u32 = 28;
const GAP: u32 = 2;

/// Renders `values` (panels × count images) with the shader at an integer `scale`; returns the
/// red channel of every pixel and the image's width.
fn render(gpu: &(wgpu::Device, wgpu::Queue), values: &[f32], count: u32, cols: u32, panels: u32, scale: u32) -> (Vec<u8>, u32, u32) {
    let (device, queue) = gpu;
    let rows = count.div_ceil(cols);
    let panel_w = cols * (SIZE + GAP) + GAP;
    let (w, h) = ((panels * panel_w + (panels - 1) * 6) * scale, (rows * (SIZE + GAP) + GAP) * scale);
    let format = wgpu::TextureFormat::Rgba8Unorm;
    let pipeline = grid::pipeline(device, format);
    let buffer = |bytes: &[u8], usage| {
        let b = device.create_buffer(&wgpu::BufferDescriptor {
            label: None,
            size: bytes.len() as u64,
            usage: usage | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        queue.write_buffer(&b, 0, bytes);
        b
    };
    let layout = GridLayout { cols, rows, size: SIZE, count, panels, colormap: 0, width: w, height: h }.bytes();
    let uniform = buffer(&layout, wgpu::BufferUsages::UNIFORM);
    let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    let storage = buffer(&bytes, wgpu::BufferUsages::STORAGE);
    let texture = device.create_texture(&wgpu::TextureDescriptor {
        label: None,
        size: wgpu::Extent3d { width: w, height: h, depth_or_array_layers: 1 },
        mip_level_count: 1,
        sample_count: 1,
        dimension: wgpu::TextureDimension::D2,
        format,
        usage: wgpu::TextureUsages::RENDER_ATTACHMENT | wgpu::TextureUsages::COPY_SRC,
        view_formats: &[],
    });
    let view = texture.create_view(&Default::default());
    let bind = device.create_bind_group(&wgpu::BindGroupDescriptor {
        label: None,
        layout: &pipeline.get_bind_group_layout(0),
        entries: &[
            wgpu::BindGroupEntry { binding: 0, resource: uniform.as_entire_binding() },
            wgpu::BindGroupEntry { binding: 1, resource: storage.as_entire_binding() },
        ],
    });
    let row_bytes = (w * 4).div_ceil(256) * 256;
    let readback = device.create_buffer(&wgpu::BufferDescriptor {
        label: None,
        size: u64::from(row_bytes * h),
        usage: wgpu::BufferUsages::COPY_DST | wgpu::BufferUsages::MAP_READ,
        mapped_at_creation: false,
    });
    let mut encoder = device.create_command_encoder(&Default::default());
    {
        let mut pass = encoder.begin_render_pass(&wgpu::RenderPassDescriptor {
            color_attachments: &[Some(wgpu::RenderPassColorAttachment {
                view: &view,
                depth_slice: None,
                resolve_target: None,
                ops: wgpu::Operations { load: wgpu::LoadOp::Clear(wgpu::Color::RED), store: wgpu::StoreOp::Store },
            })],
            ..Default::default()
        });
        pass.set_pipeline(&pipeline);
        pass.set_bind_group(0, &bind, &[]);
        pass.draw(0..3, 0..1);
    }
    encoder.copy_texture_to_buffer(
        texture.as_image_copy(),
        wgpu::TexelCopyBufferInfo {
            buffer: &readback,
            layout: wgpu::TexelCopyBufferLayout { offset: 0, bytes_per_row: Some(row_bytes), rows_per_image: None },
        },
        wgpu::Extent3d { width: w, height: h, depth_or_array_layers: 1 },
    );
    queue.submit([encoder.finish()]);
    readback.slice(..).map_async(wgpu::MapMode::Read, |r| r.expect("map"));
    device.poll(wgpu::PollType::wait_indefinitely()).expect("poll");
    let data = readback.slice(..).get_mapped_range().expect("mapped");
    let mut red = Vec::with_capacity((w * h) as usize);
    for y in 0..h {
        for x in 0..w {
            red.push(data[(y * row_bytes + x * 4) as usize]);
        }
    }
    (red, w, h)
}

#[test]
fn the_shader_draws_the_clis_grid_at_any_integer_scale() {
    let (count, cols, panels) = (5u32, 3u32, 2u32);
    // Values that sweep [-1.2, 1.2] (so clamping shows) and differ per image and panel.
    let n = (panels * count * SIZE * SIZE) as usize;
    let values: Vec<f32> = (0..n).map(|i| ((i * 7919) % 241) as f32 / 100.0 - 1.2).collect();
    let (_, setup) = Device::wgpu_options().init_with_setup().expect("a wgpu adapter (lavapipe without a GPU)");
    let gpu = (setup.device, setup.queue);
    for scale in [1u32, 3] {
        let (red, w, h) = render(&gpu, &values, count, cols, panels, scale);
        let panel_w = cols * (SIZE + GAP) + GAP;
        // The expectation, written from the CLI's rules: 2-pixel gaps of grey 32, panels 6 apart,
        // each pixel round((clamp(v) + 1) · 127.5).
        let mut mismatches = 0;
        for y in 0..h {
            for x in 0..w {
                let (vx, vy) = (x / scale, y / scale);
                let panel = vx / (panel_w + 6);
                let px = vx - panel * (panel_w + 6);
                let inside = px >= GAP && vy >= GAP && px < panel_w;
                let (cx, cy) = ((px.wrapping_sub(GAP)) / (SIZE + GAP), (vy.wrapping_sub(GAP)) / (SIZE + GAP));
                let (ix, iy) = ((px.wrapping_sub(GAP)) % (SIZE + GAP), (vy.wrapping_sub(GAP)) % (SIZE + GAP));
                let image = cy * cols + cx;
                let want = if inside && panel < panels && ix < SIZE && iy < SIZE && cx < cols && image < count {
                    let v = values[(((panel * count + image) * SIZE + iy) * SIZE + ix) as usize];
                    ((v.clamp(-1.0, 1.0) + 1.0) * 127.5).round() as i32
                } else {
                    32
                };
                if (i32::from(red[(y * w + x) as usize]) - want).abs() > 1 {
                    mismatches += 1;
                }
            }
        }
        assert_eq!(mismatches, 0, "scale {scale}: {mismatches} of {} pixels differ", w * h);
    }
}
