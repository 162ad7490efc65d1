// Draws a batch of images (one f32 per pixel, in [-1, 1]) as a grid of tiles on the canvas:
// one or two panels (x_t, and x̂_0 beside it), nearest-neighbour upscaling, grey or a colour map.
// The grey mapping is exactly `ddpm sample`'s PNG: round((clamp(v) + 1) · 127.5).

struct Layout {
    cols: u32,      // tiles per row
    rows: u32,      // tiles per column
    size: u32,      // image side in pixels (28)
    count: u32,     // images per panel
    panels: u32,    // 1 or 2
    colormap: u32,  // 0 grey, 1 viridis
    width: u32,     // canvas size in device pixels
    height: u32,
}

@group(0) @binding(0) var<uniform> grid: Layout;
@group(0) @binding(1) var<storage, read> values: array<f32>;

const GAP: u32 = 2u;          // between tiles, in image pixels (as the CLI's grid)
const PANEL_GAP: u32 = 6u;    // between the x_t and x̂_0 panels
const BACKGROUND: f32 = 32.0 / 255.0;

@vertex
fn vs_main(@builtin(vertex_index) i: u32) -> @builtin(position) vec4<f32> {
    // One triangle that covers the whole canvas.
    let uv = vec2<f32>(f32((i << 1u) & 2u), f32(i & 2u));
    return vec4<f32>(uv * 2.0 - 1.0, 0.0, 1.0);
}

// A polynomial fit of matplotlib's viridis (Matt Zucker's coefficients).
fn viridis(t: f32) -> vec3<f32> {
    let c0 = vec3<f32>(0.2777273272234177, 0.005407344544966578, 0.3340998053353061);
    let c1 = vec3<f32>(0.1050930431085774, 1.404613529898575, 1.384590162594685);
    let c2 = vec3<f32>(-0.3308618287255563, 0.214847559468213, 0.09509516302823659);
    let c3 = vec3<f32>(-4.634230498983486, -5.799100973351585, -19.33244095627987);
    let c4 = vec3<f32>(6.228269936347081, 14.17993336680509, 56.69055260068105);
    let c5 = vec3<f32>(4.776384997670288, -13.74514537774601, -65.35303263337234);
    let c6 = vec3<f32>(-5.435455855934631, 4.645852612178535, 26.3124352495832);
    return c0 + t * (c1 + t * (c2 + t * (c3 + t * (c4 + t * (c5 + t * c6)))));
}

@fragment
fn fs_main(@builtin(position) pos: vec4<f32>) -> @location(0) vec4<f32> {
    let tile = grid.size + GAP;
    let panel_w = grid.cols * tile + GAP;
    let panel_h = grid.rows * tile + GAP;
    let virtual_w = grid.panels * panel_w + (grid.panels - 1u) * PANEL_GAP;
    // Nearest neighbour: each canvas pixel shows the image pixel it falls in.
    let vx = u32(floor(pos.x * f32(virtual_w) / f32(grid.width)));
    let vy = u32(floor(pos.y * f32(panel_h) / f32(grid.height)));
    let panel = vx / (panel_w + PANEL_GAP);
    let px = vx - panel * (panel_w + PANEL_GAP);
    let background = vec4<f32>(BACKGROUND, BACKGROUND, BACKGROUND, 1.0);
    if panel >= grid.panels || px >= panel_w || px < GAP || vy < GAP {
        return background;
    }
    let cx = (px - GAP) / tile;
    let cy = (vy - GAP) / tile;
    let ix = (px - GAP) % tile;
    let iy = (vy - GAP) % tile;
    let image = cy * grid.cols + cx;
    if ix >= grid.size || iy >= grid.size || cx >= grid.cols || image >= grid.count {
        return background;
    }
    let index = ((panel * grid.count + image) * grid.size + iy) * grid.size + ix;
    let v = (clamp(values[index], -1.0, 1.0) + 1.0) * 0.5;
    if grid.colormap == 1u {
        return vec4<f32>(clamp(viridis(v), vec3<f32>(0.0), vec3<f32>(1.0)), 1.0);
    }
    return vec4<f32>(v, v, v, 1.0);
}
