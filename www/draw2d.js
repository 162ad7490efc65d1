// Canvas 2D drawing for browsers without WebGPU, and the PNG export. It mirrors
// shaders/grid.wgsl (layout, grey mapping, colour map) so both paths draw the same pixels.

export const GAP = 2;
export const PANEL_GAP = 6;
const BACKGROUND = 32;

// The grid's size in image pixels: `panels` panels of `count` tiles, `cols` to a row.
export function gridSize({ count, cols, size, panels }) {
  const tile = size + GAP;
  const panelW = cols * tile + GAP;
  const panelH = Math.ceil(count / cols) * tile + GAP;
  return { width: panels * panelW + (panels - 1) * PANEL_GAP, height: panelH, panelW };
}

// ddpm sample's grey level: round((clamp(v) + 1) · 127.5).
export const grey = (v) => Math.round((Math.min(1, Math.max(-1, v)) + 1) * 127.5);

// The shader's polynomial fit of viridis, on t in [0, 1].
const C = [
  [0.2777273272234177, 0.005407344544966578, 0.3340998053353061],
  [0.1050930431085774, 1.404613529898575, 1.384590162594685],
  [-0.3308618287255563, 0.214847559468213, 0.09509516302823659],
  [-4.634230498983486, -5.799100973351585, -19.33244095627987],
  [6.228269936347081, 14.17993336680509, 56.69055260068105],
  [4.776384997670288, -13.74514537774601, -65.35303263337234],
  [-5.435455855934631, 4.645852612178535, 26.3124352495832],
];
function viridis(t) {
  return [0, 1, 2].map((k) => {
    let c = C[6][k];
    for (let i = 5; i >= 0; i--) c = C[i][k] + t * c;
    return Math.round(Math.min(1, Math.max(0, c)) * 255);
  });
}

// RGBA pixels of the grid at one image pixel per pixel.
export function gridPixels(values, layout) {
  const { count, cols, size, panels, colormap } = layout;
  const { width, height, panelW } = gridSize(layout);
  const rgba = new Uint8ClampedArray(width * height * 4);
  for (let i = 0; i < rgba.length; i += 4) rgba.set([BACKGROUND, BACKGROUND, BACKGROUND, 255], i);
  for (let p = 0; p < panels; p++)
    for (let n = 0; n < count; n++) {
      const x0 = p * (panelW + PANEL_GAP) + GAP + (n % cols) * (size + GAP);
      const y0 = GAP + Math.floor(n / cols) * (size + GAP);
      for (let y = 0; y < size; y++)
        for (let x = 0; x < size; x++) {
          const v = values[((p * count + n) * size + y) * size + x];
          const g = grey(v);
          const rgb = colormap === 1 ? viridis(g / 255) : [g, g, g];
          rgba.set([...rgb, 255], ((y0 + y) * width + x0 + x) * 4);
        }
    }
  return { rgba, width, height };
}

// One 2D context per canvas, asked for once: Firefox refuses a second getContext on a canvas
// transferred to a worker ("Cannot update created context to different thread").
const contexts = new WeakMap();
export function context2d(canvas) {
  if (!contexts.has(canvas)) contexts.set(canvas, canvas.getContext("2d"));
  return contexts.get(canvas);
}

// Draws the grid into a 2D canvas of the given size, nearest-neighbour scaled.
export function drawGrid(canvas, values, layout) {
  const { rgba, width, height } = gridPixels(values, layout);
  const small = new OffscreenCanvas(width, height);
  small.getContext("2d").putImageData(new ImageData(rgba, width, height), 0, 0);
  if (canvas.width !== layout.width) canvas.width = layout.width;
  if (canvas.height !== layout.height) canvas.height = layout.height;
  const ctx = context2d(canvas);
  ctx.imageSmoothingEnabled = false;
  ctx.drawImage(small, 0, 0, layout.width, layout.height);
}

// The grid at the largest integer scale (square pixels) that fits `target` device pixels across.
export function scaledLayout(layout, target) {
  const { width, height } = gridSize(layout);
  const scale = Math.max(1, Math.floor(target / width));
  return { ...layout, width: width * scale, height: height * scale };
}

// A PNG of the final images laid out exactly as `ddpm sample` writes them (grey, 2-pixel gaps).
export async function gridPng(values, count, cols, size) {
  const { rgba, width, height } = gridPixels(values, { count, cols, size, panels: 1, colormap: 0 });
  const canvas = new OffscreenCanvas(width, height);
  canvas.getContext("2d").putImageData(new ImageData(rgba, width, height), 0, 0);
  return canvas.convertToBlob({ type: "image/png" });
}

// A 2D context for a plot, sized to the canvas's displayed size in device pixels, with the plots'
// font and axis colours; `padding` is in CSS pixels.
export function plotContext(canvas, padding) {
  const dpr = devicePixelRatio || 1;
  const w = canvas.clientWidth * dpr,
    h = canvas.clientHeight * dpr;
  canvas.width = w;
  canvas.height = h;
  const ctx = canvas.getContext("2d");
  ctx.font = `${12 * dpr}px system-ui, sans-serif`;
  ctx.fillStyle = "#9aa0a6";
  ctx.strokeStyle = "#333a45";
  ctx.lineWidth = dpr;
  const pad = Object.fromEntries(Object.entries(padding).map(([k, v]) => [k, v * dpr]));
  return { ctx, w, h, dpr, pad };
}
