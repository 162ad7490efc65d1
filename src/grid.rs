//! The render pipeline of `shaders/grid.wgsl` and the layout it reads, shared by the page's
//! painter (src/web) and the native test that checks the shader's pixels.

use burn::tensor::wgpu::wgpu;

/// Mirrors `Layout` in the shader.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct GridLayout {
    pub cols: u32,
    pub rows: u32,
    pub size: u32,
    pub count: u32,
    pub panels: u32,
    pub colormap: u32,
    pub width: u32,
    pub height: u32,
}

impl GridLayout {
    pub fn bytes(&self) -> Vec<u8> {
        [self.cols, self.rows, self.size, self.count, self.panels, self.colormap, self.width, self.height].iter().flat_map(|v| v.to_le_bytes()).collect()
    }
}

/// A pipeline that draws one full-screen triangle with the grid shader into `format` targets.
pub fn pipeline(device: &wgpu::Device, format: wgpu::TextureFormat) -> wgpu::RenderPipeline {
    let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
        label: Some("grid.wgsl"),
        source: wgpu::ShaderSource::Wgsl(include_str!("../shaders/grid.wgsl").into()),
    });
    device.create_render_pipeline(&wgpu::RenderPipelineDescriptor {
        label: Some("grid"),
        layout: None,
        vertex: wgpu::VertexState { module: &module, entry_point: Some("vs_main"), compilation_options: Default::default(), buffers: &[] },
        primitive: Default::default(),
        depth_stencil: None,
        multisample: Default::default(),
        fragment: Some(wgpu::FragmentState {
            module: &module,
            entry_point: Some("fs_main"),
            compilation_options: Default::default(),
            targets: &[Some(format.into())],
        }),
        multiview_mask: None,
        cache: None,
    })
}
