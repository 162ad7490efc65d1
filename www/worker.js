// The model runs here, off the main thread, so the page never freezes: the wasm engine steps
// the sampler and draws each step into the canvases the page transferred to us.
import { Engine, alphasCumprod, encodeGif, setKernels } from "./ddpm-web.js";
import { context2d, drawGrid, gridPng, gridPixels, scaledLayout } from "./draw2d.js";
import { EVENT, OP } from "./protocol.js";
import { trainHandlers } from "./train-worker.js";
import { loadEngine, loadTraining } from "./wasm.js";

const post = (msg, transfer) => postMessage(msg, transfer || []);
// The wasm module calls these (src/web): a panic or a lost device ends this worker's usefulness.
self.ddpmOnPanic = (message) => post({ op: EVENT.panic, message: String(message).split("\n")[0] });
self.ddpmOnDeviceLost = (message) => post({ op: EVENT.deviceLost, message });
// A lost device is logged as an error too (the console has it); its own event tells the page.
self.ddpmOnGpuError = (message) => {
  if (!/device (was )?lost/i.test(message)) post({ op: EVENT.gpuError, message });
};

let engine = null;
let wasm = null; // the module's exports (its memory is reported to soak tests)
let size = null; // the loaded model's image side, from its description
let timesteps = 1000;
const surfaces = {}; // name → { canvas, painter (WebGPU) or null (2D) }
// Where the page cannot give us its canvases (no transferable canvas, or one this thread cannot
// draw into), it draws itself: each picture is posted to it as pixels at one pixel per image pixel.
let pagePixels = false;
const posted = {}; // name → the last { rgba, width, height } posted (for snapshots)
let run = null; // the generation in progress or last finished
let wake = null; // resolves when a paused run is continued

// Draws into a transferred canvas, or posts the pixels to a page that draws itself; without
// either (the embed element draws from the values it is sent) does nothing.
function draw(name, values, layout) {
  const s = surfaces[name];
  if (!s && !pagePixels) return 0;
  const t0 = performance.now();
  if (!s) {
    posted[name] = gridPixels(values, layout);
    const { rgba, width, height } = posted[name];
    post({ op: EVENT.pixels, name, rgba, width, height });
    return performance.now() - t0;
  }
  const full = scaledLayout(layout, layout.target);
  if (s.painter) {
    s.painter.paint(values, JSON.stringify(full));
  } else {
    drawGrid(s.canvas, values, full);
  }
  return performance.now() - t0;
}

// The values a view shows: x_t, x̂_0, or both panels.
function viewValues(values, count, view) {
  const n = count * size * size;
  if (view === "xt") return { values: values.subarray(0, n), panels: 1 };
  if (view === "x0") return { values: values.subarray(n, 2 * n), panels: 1 };
  return { values, panels: 2 };
}

// A morph is one row; other runs are as square as their batch allows.
const columns = (s) => (s.morphTo === undefined ? Math.ceil(Math.sqrt(s.batch)) : s.batch);

function drawRun() {
  const { last, settings: s } = run;
  const { values, panels } = viewValues(last, s.batch, s.view);
  return draw("gen", values, { count: s.batch, cols: columns(s), size, panels, colormap: s.colormap, target: s.target });
}

async function generate(settings) {
  // Every message of this run carries its tag, so a page with several demos knows whose it is.
  const say = (m) => post({ ...m, tag: settings.tag });
  const total = engine.begin(JSON.stringify(settings));
  const token = {};
  const noise = await engine.noise();
  // Before the first step x_T and x̂_0 are both shown as the starting noise.
  const both = new Float32Array(noise.length * 2);
  both.set(noise);
  both.set(noise, noise.length);
  run = { token, settings, last: both, paused: false, done: 0, total, millis: [], frames: [], every: Math.max(1, Math.ceil(total / 60)) };
  drawRun();
  keepFrame();
  say({ op: EVENT.begin, total, size, values: settings.sendValues ? run.last : undefined });
  const started = performance.now();
  for (;;) {
    // Let messages (stop, continue, new settings) in between steps, even when a step resolves
    // without a real wait (the CPU backend).
    await new Promise((r) => setTimeout(r, 0));
    if (run.token !== token) return; // superseded by a newer Generate
    if (run.paused) {
      say({ op: EVENT.paused, done: run.done, total });
      await new Promise((r) => {
        wake = r;
      });
      if (run.token !== token) return;
    }
    const report = await engine.step();
    if (!report) break;
    run.last = report.values;
    run.done = report.done;
    run.millis.push(report.millis);
    const t = report.t;
    report.free();
    const drawMs = drawRun();
    if (run.done % run.every === 0 || run.done === total) keepFrame();
    const frame = settings.trace ? await fingerprint("gen") : undefined;
    say({ op: EVENT.step, done: run.done, total, t, millis: run.millis.at(-1), drawMs, frame, values: settings.sendValues ? run.last : undefined });
  }
  const n = settings.batch * size * size;
  say({ op: EVENT.finished, total, seconds: (performance.now() - started) / 1000, final: run.last.slice(0, n), medianMs: median(run.millis) });
}

// A grey frame of x_t beside x̂_0 for the GIF (about 60 of them, whatever the step count).
function keepFrame() {
  const count = run.settings.batch;
  const { grey, width, height } = greyPixels(run.last, { count, cols: columns(run.settings), size, panels: 2, colormap: 0 });
  run.frames.push(grey);
  run.frameSize = [width, height];
}

function greyPixels(values, layout) {
  const { rgba, width, height } = gridPixels(values, layout);
  const grey = new Uint8Array(width * height);
  for (let i = 0; i < grey.length; i++) grey[i] = rgba[4 * i];
  return { grey, width, height };
}

// A finished morph as a GIF: its images one at a time, first to last and back, each pixel 4×4.
function morphFrames(scale = 4) {
  const n = run.settings.batch;
  const order = [...Array(n).keys(), ...[...Array(n).keys()].slice(1, -1).reverse()];
  const frames = order.map((i) => greyPixels(run.last.subarray(i * size * size, (i + 1) * size * size), { count: 1, cols: 1, size, panels: 1, colormap: 0 }));
  const [width, height] = [frames[0].width * scale, frames[0].height * scale];
  const enlarge = ({ grey, width: w }) =>
    Uint8Array.from({ length: width * height }, (_, k) => grey[Math.floor(k / width / scale) * w + Math.floor((k % width) / scale)]);
  return { frames: frames.map(enlarge), width, height };
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? 0;

// A hash of the pixels a canvas shows now (for tests: did this step change the picture?).
async function fingerprint(name) {
  const { data } = await snapshot(name);
  let h = 2166136261;
  for (let i = 0; i < data.length; i++) h = Math.imul(h ^ data[i], 16777619);
  return h >>> 0;
}

async function snapshot(name) {
  if (!surfaces[name]) {
    const { width, height, rgba: data } = posted[name];
    return { width, height, data };
  }
  const bitmap = await createImageBitmap(surfaces[name].canvas);
  const ctx = new OffscreenCanvas(bitmap.width, bitmap.height).getContext("2d");
  ctx.drawImage(bitmap, 0, 0);
  return { width: bitmap.width, height: bitmap.height, data: ctx.getImageData(0, 0, bitmap.width, bitmap.height).data };
}

// Faults the tests inject (the page passes `window.ddpmTestFaults`; nobody else sets it):
// `defaultsOnly`: the adapter grants no limit above WebGPU's defaults (many phones), and refuses
// a device that asks for more. `gpuError`: once started, the engine reports this GPU error, as it
// does a shader WebGPU rejected.
const WEBGPU_DEFAULTS = {
  maxBufferSize: 268435456,
  maxStorageBufferBindingSize: 134217728,
  maxStorageBuffersPerShaderStage: 8,
  maxComputeWorkgroupStorageSize: 16384,
  maxComputeInvocationsPerWorkgroup: 256,
  maxComputeWorkgroupsPerDimension: 65535,
};
function injectFaults(faults) {
  if (faults?.gpuError) setTimeout(() => self.ddpmOnGpuError(faults.gpuError), 0);
  if (!faults?.defaultsOnly || !self.GPUAdapter || GPUAdapter.prototype.requestDevice.faulty) return;
  const real = GPUAdapter.prototype.requestDevice;
  const faulty = function (descriptor) {
    const over = Object.entries(WEBGPU_DEFAULTS).find(([k, v]) => (descriptor?.requiredLimits?.[k] ?? 0) > v);
    if (over) return Promise.reject(new DOMException(`${over[0]} above WebGPU's default`, "OperationError"));
    return real.call(this, descriptor);
  };
  faulty.faulty = true;
  GPUAdapter.prototype.requestDevice = faulty;
}

// The reader's GPU against the CPU path, before the first picture (src/self_check.rs): with the
// U-Net's kernels, then with Burn's operations alone. If both are wrong the start fails, and the
// page starts again on the CPU. `faults.wrongKernels` / `faults.wrongGpu` (tests) make the GPU's
// answer wrong with the kernels on, or always.
async function selfCheck(bytes, faults = {}) {
  const run = async (kernels) => JSON.parse(await engine.checkAgainstCpu(bytes, Boolean(faults.wrongGpu || (faults.wrongKernels && kernels))));
  const by = (c) => (c.maxDiff === null ? "non-finite values" : `up to ${c.maxDiff.toPrecision(2)}`);
  const first = await run(true);
  if (first.ok) return { check: { ...first, kernels: true } };
  setKernels(false);
  const second = await run(false);
  const millis = first.millis + second.millis;
  if (second.ok) {
    const note = `The GPU's answers with the U-Net's own kernels differed from the CPU's (${by(first)}), so the model runs on Burn's standard operations on this GPU, which agree.`;
    return { check: { ...second, millis, kernels: false }, note };
  }
  setKernels(true);
  throw new Error(`the GPU's answers differ from the CPU's (${by(second)}) with and without the U-Net's own kernels`);
}

const handlers = {
  // `gpuCanvas`: the page found that WebGPU canvases work here (www/probe.js). `pagePixels`: the
  // page could not transfer its canvases and draws the pixels we post.
  // `check`: the weights to check the GPU with (on WebGPU).
  async [OP.start]({ backend, canvases = {}, gpuCanvas, pagePixels: wanted = false, faults, check: weights }) {
    injectFaults(faults);
    wasm = await loadEngine();
    engine = await Engine.start(backend, gpuCanvas);
    const { check = null, note: checkNote = null } = engine.backend === "webgpu" && weights ? await selfCheck(new Uint8Array(weights), faults) : {};
    pagePixels = wanted;
    for (const [name, canvas] of Object.entries(canvases)) {
      let painter = null;
      if (gpuCanvas) {
        try {
          painter = engine.painter(canvas) ?? null;
        } catch (e) {
          post({ op: EVENT.notice, message: `Drawing with Canvas 2D: ${e.message}` });
        }
      }
      try {
        if (!painter && !context2d(canvas)) throw new Error("no 2D context");
        surfaces[name] = { canvas, painter };
      } catch {
        pagePixels = true; // a canvas this thread cannot draw into: the page draws them all
      }
    }
    if (pagePixels) for (const name of Object.keys(surfaces)) delete surfaces[name];
    const drawing = pagePixels ? "page" : surfaces.gen?.painter ? "webgpu" : "canvas2d";
    return { op: "started", backend: engine.backend, adapter: engine.adapter, software: engine.software, note: checkNote, drawing, check };
  },
  async [OP.load]({ bytes }) {
    const description = JSON.parse(engine.load(new Uint8Array(bytes)));
    size = description.unet.image_size;
    timesteps = description.timesteps;
    return { op: "loaded", description };
  },
  async [OP.generate]({ settings }) {
    if (run) {
      run.token = null;
      wake?.();
    }
    generate(settings).catch((e) => post({ op: EVENT.error, context: "generate", tag: settings.tag, message: e.message || String(e) }));
    return null;
  },
  async [OP.pause]() {
    if (run) run.paused = true;
    return null;
  },
  async [OP.resume]() {
    if (run) {
      run.paused = false;
      wake?.();
      wake = null;
    }
    return null;
  },
  async [OP.redraw]({ view, colormap, target }) {
    if (run) {
      Object.assign(run.settings, { view, colormap, target });
      drawRun();
    }
    return null;
  },
  // The forward process needs no model: `size` is the images' own.
  async [OP.forward]({ images, size, t, schedule, seed, target }) {
    const values = await engine.forward(images, JSON.stringify({ size, t, schedule, timesteps, seed }));
    const count = images.length / (size * size);
    draw("fwd", values, { count, cols: count, size, panels: 1, colormap: 0, target });
    return { op: "forwarded", t, schedule, values: surfaces.fwd ? undefined : values };
  },
  async [OP.alphas]({ schedules }) {
    return { op: "alphas", curves: Object.fromEntries(schedules.map((s) => [s, Array.from(alphasCumprod(s, timesteps))])) };
  },
  async [OP.png]() {
    if (!run || run.done < run.total) throw new Error("nothing finished to export yet");
    const n = run.settings.batch;
    return { op: "png", blob: await gridPng(run.last.subarray(0, n * size * size), n, columns(run.settings), size) };
  },
  async [OP.gif]() {
    if (!run || run.done < run.total) throw new Error("nothing finished to export yet");
    const { frames, width, height } =
      run.settings.morphTo === undefined ? { frames: run.frames, width: run.frameSize[0], height: run.frameSize[1] } : morphFrames();
    const all = new Uint8Array(frames.length * width * height);
    frames.forEach((f, i) => all.set(f, i * width * height));
    return { op: "gif", blob: new Blob([encodeGif(all, width, height)], { type: "image/gif" }), frames: frames.length };
  },
  async [OP.snapshot]({ name }) {
    return { op: "snapshot", ...(await snapshot(name)) };
  },
  async [OP.loseDevice]() {
    engine.loseDevice();
    return null;
  },
  // Memory in use here: the wasm heap (it only grows; a leak shows as growth) and this worker's JS heap.
  async [OP.memory]() {
    const device = engine?.deviceMemory();
    return {
      op: "memory",
      wasmBytes: wasm?.memory.buffer.byteLength ?? 0,
      workerHeap: performance.memory?.usedJSHeapSize ?? null,
      device: device ? JSON.parse(device) : null,
    };
  },
};
// Training needs the training code (autodiff and Adam), fetched on the first training run.
const trainingEngine = (say) => loadTraining(() => say({ op: EVENT.trainStatus, message: "Loading the training code…" }));

Object.assign(
  handlers,
  trainHandlers({
    get engine() {
      return engine;
    },
    post,
    draw,
    trainingEngine,
  }),
);

self.onmessage = async ({ data }) => {
  try {
    if (!Object.hasOwn(handlers, data.op)) throw new Error(`no request named ${JSON.stringify(data.op)}`);
    const reply = await handlers[data.op](data);
    if (reply) post({ ...reply, id: data.id });
  } catch (e) {
    post({ op: EVENT.error, context: data.op, id: data.id, message: e.message || String(e) });
  }
};
post({ op: EVENT.ready });
