// The page ↔ worker protocol: every message and its fields are described here, and only here.
// The page (app.js, train.js, models.js) and every <ddpm-demo> (embed.js) reach the engine's
// worker (worker.js, train-worker.js) only through an EngineWorker, started with startEngine.
//
// The envelope. A request is { op, id?, ...fields }. `call` gives it a fresh id and waits for the
// reply with that id; `send` posts it without one, and what follows comes as events. A handler
// that fails replies { op: "error", context: <op>, id, message }, which `call` turns into a
// rejected promise; one that returns nothing posts nothing. Events come without an id; those of a
// generation or a training run carry the `tag` of the settings that started it (the element
// routes them to its demo by it; the page ignores it).
//
// Start-up. The worker posts `ready` once its module has loaded; startEngine then calls `start`,
// and the page or the element `load`. If `start` fails on WebGPU, startEngine starts a fresh
// worker on the CPU.

import { DEFAULT_SAMPLER, INTERVALS, RANGES, SAMPLERS, classIndex, clampNumber, randomSeed, stepsFor } from "./settings.js";
import { moduleWorkers, probeWebGpu } from "./webgpu.js";

// Requests: their fields → the reply (for `call`) or the events that follow (for `send`).
export const OP = Object.freeze({
  // backend ("webgpu" | "cpu"); canvases ({ gen, fwd, train }: OffscreenCanvases, transferred;
  // {} from the element, which draws the values it is sent); gpuCanvas (a WebGPU canvas shows
  // what is drawn on it: probe.js); pagePixels (the page draws the pixels it is posted); check
  // (on WebGPU: weights to check the GPU's answers against the CPU's with, before anything is
  // drawn); faults (tests only: window.ddpmTestFaults) → started: backend, adapter, software,
  // note (a note for the reader, or null), drawing ("webgpu" | "canvas2d" | "page"), check (what
  // the GPU check found, or null). Called by app.js and embed.js.
  start: "start",
  // bytes (a .ddpm file) → loaded: description (the model's: unet.image_size, timesteps,
  // train_steps, …). Called by app.js, models.js and embed.js.
  load: "load",
  // settings (generateSettings below) → events begin, step…, finished. Sent by app.js and embed.js.
  generate: "generate",
  // → event paused. Sent by app.js and embed.js.
  pause: "pause",
  resume: "resume",
  // view, colormap, target (as in generateSettings): the last step drawn again. Sent by app.js.
  redraw: "redraw",
  // images (Float32Array in [-1, 1]), size (their side), t, schedule, seed, target → forwarded:
  // t, schedule, values (only when the worker has no `fwd` canvas). Called by app.js, embed.js.
  forward: "forward",
  // schedules (names) → alphas: curves ({ schedule: its ᾱ_t for each t }). Called by app.js.
  alphas: "alphas",
  // → png: blob (the finished run's images) | gif: blob, frames (the run's steps; a morph's
  // images there and back). Called by app.js.
  png: "png",
  gif: "gif",
  // name ("gen" | "fwd" | "train") → snapshot: width, height, data (RGBA of what the canvas
  // shows). Called by app.js (window.ddpm.snapshot, for tests).
  snapshot: "snapshot",
  // → memory: wasmBytes, workerHeap, device (GPU allocator bytes in use and reserved, or null).
  // Called by app.js (window.ddpm.memory, for the soak test).
  memory: "memory",
  // → event device-lost. Sent by app.js (window.ddpm.loseDevice, for tests).
  loseDevice: "lose-device",
  // settings: options (handed to the engine's beginTraining: from ("active" | "scratch"),
  // classes, batch, lr, seed, ema, flips; defaults in settings.js's TRAINING), steps, evalEvery,
  // previewEvery, target, sendValues, tag → events train-*. Sent by train.js and embed.js.
  train: "train",
  // → events train-paused, train-resumed, train-finished. Sent by train.js and embed.js.
  trainPause: "train-pause",
  trainResume: "train-resume",
  trainStop: "train-stop",
  // → saved: bytes (the model in use as a .ddpm file). Called by models.js.
  save: "save",
});

// Events the worker sends unasked: their fields, and who listens.
export const EVENT = Object.freeze({
  // The worker's module loaded; requests may follow (startEngine).
  ready: "ready",
  // message: the worker's module could not be loaded (embed.js's blob worker; startEngine).
  bootFailed: "boot-failed",
  // directive, blocked: what the host page's Content-Security-Policy refused (embed.js's blob).
  blocked: "blocked",
  // A generation: tag, total, size (the images' side), values (x_T and x̂_0, if sendValues).
  // Heard by app.js and embed.js, as are step and finished.
  begin: "begin",
  // Each step: tag, done, total, t, millis, drawMs, frame (a hash of the picture, if trace),
  // values (x_t and x̂_0, if sendValues).
  step: "step",
  // tag, done, total (app.js ignores it).
  paused: "paused",
  // tag, total, seconds, final (x̂_0 of the last step), medianMs.
  finished: "finished",
  // name, rgba, width, height: a picture for a page that draws the worker's pictures (app.js).
  pixels: "pixels",
  // message: worth telling the reader, nothing failed (drawing falls back to Canvas 2D; app.js).
  notice: "notice",
  // tag, context (the op), id (a request's), message: a run failed (also a failed request's
  // reply). app.js, embed.js.
  error: "error",
  // message: the wasm module crashed (self.ddpmOnPanic); the worker is unusable and app.js and
  // embed.js replace it.
  panic: "panic",
  // message: the GPU device is gone (self.ddpmOnDeviceLost); as panic.
  deviceLost: "device-lost",
  // message: a GPU error (WebGPU's uncaptured errors, Burn's, CubeCL's and wgpu's logged ones):
  // the run goes on, its numbers suspect. app.js shows a notice, embed.js a note under each demo.
  gpuError: "gpu-error",
  // Training: every event is heard by train.js, those marked (embed.js) by the element too.
  // tag, message: fetching the images, how many loaded (embed.js).
  trainStatus: "train-status",
  // tag, description (of the model being trained), steps (embed.js).
  trainBegin: "train-begin",
  // Each call of a few steps: tag, done, losses, millis, imagesPerSecond (embed.js).
  trainStep: "train-step",
  // Every evalEvery steps: tag, done, loss (on the held-out batch).
  trainEval: "train-eval",
  // Every previewEvery steps: tag, done, values (if sendValues) (embed.js).
  trainPreview: "train-preview",
  // Every 30 s: tag, done, bytes (the weights so far, restored if the engine restarts).
  trainSnapshot: "train-snapshot",
  // tag, done, description (the trained model, now the one in use) (embed.js).
  trainPaused: "train-paused",
  // tag, done.
  trainResumed: "train-resumed",
  // tag, done, description (embed.js).
  trainFinished: "train-finished",
  // tag, message (embed.js).
  trainError: "train-error",
});

// The settings of a `generate` request (the page's Generate, Morph and Repaint, and every
// <ddpm-demo>), from what was chosen, as text or numbers; what is missing, unreadable or out of
// range becomes its default (www/limits.json). The fields, as src/web/engine.rs reads them:
// sampler, steps (0 for the samplers that take none), eta, seed, class (-1: any), guidance,
// interval ("0-600" | "all"), batch; morphTo (a seed: the batch passes from `seed`'s garment to
// this one's, in one row) or inpaint ({ image, painted, resample }: a repaint). For the worker:
// view ("both" | "xt" | "x0"), colormap (0 grey, 1 viridis), target (the display's width in
// device pixels; 0 where the worker does not draw), trace (hash each frame), sendValues (the
// values in each event, for the element), tag (whose run).
export function generateSettings(chosen) {
  const sampler = SAMPLERS.includes(chosen.sampler) ? chosen.sampler : DEFAULT_SAMPLER;
  const number = (name) => clampNumber(chosen[name], RANGES[name]) ?? RANGES[name].def;
  return {
    sampler,
    steps: stepsFor(sampler, chosen.steps) ?? 0,
    eta: number("eta"),
    seed: clampNumber(chosen.seed, RANGES.seed) ?? randomSeed(),
    class: classIndex(chosen.class),
    guidance: number("guidance"),
    interval: INTERVALS.includes(chosen.interval) ? chosen.interval : INTERVALS[0],
    batch: number("batch"),
    view: ["both", "xt", "x0"].includes(chosen.view) ? chosen.view : "both",
    colormap: chosen.colormap === "viridis" ? 1 : 0,
    target: chosen.target ?? 0,
    trace: Boolean(chosen.trace),
    sendValues: Boolean(chosen.sendValues),
    tag: chosen.tag,
    ...(chosen.morphTo !== undefined && { morphTo: clampNumber(chosen.morphTo, RANGES.seed) ?? randomSeed() }),
    ...(chosen.inpaint && { inpaint: chosen.inpaint }),
  };
}

export const NO_MODULE_WORKERS = "this browser has no module workers (Chrome 80+, Firefox 114+ and Safari 15+ have them)";

// One worker running the engine, with its requests in flight.
export class EngineWorker {
  // Starts the worker at `url`; resolves once its module has loaded. `onEvent(m)` hears every
  // event, `onError(message)` a worker that failed after starting.
  static async open(url, { onEvent = () => {}, onError = () => {} } = {}) {
    const engine = new EngineWorker(new Worker(url, { type: "module" }));
    try {
      await new Promise((resolve, reject) => {
        engine.worker.onmessage = ({ data }) => {
          if (data.op === EVENT.ready) resolve();
          else if (data.op === EVENT.bootFailed) reject(new Error(data.message));
          else onEvent(data);
        };
        engine.worker.onerror = (e) => reject(new Error(e.message || "the worker failed to start"));
      });
    } catch (e) {
      setTimeout(() => engine.worker.terminate(), 1000); // what it has left to report may be on its way
      throw e;
    }
    engine.worker.onmessage = ({ data }) => engine.receive(data, onEvent);
    engine.worker.onerror = (e) => onError(e.message || "unknown error");
    return engine;
  }

  constructor(worker) {
    this.worker = worker;
    this.pending = new Map(); // request id → { resolve, reject }
    this.nextId = 1;
  }

  // A request; resolves with the reply, rejects with the worker's error message.
  call(op, fields = {}, transfer = []) {
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.worker.postMessage({ op, id, ...fields }, transfer);
    });
  }

  // A message that needs no answer (what follows from it comes as events).
  send(op, fields = {}) {
    this.worker.postMessage({ op, ...fields });
  }

  receive(m, onEvent) {
    const waiting = m.id && this.pending.get(m.id);
    if (!waiting) return onEvent(m);
    this.pending.delete(m.id);
    if (m.op === EVENT.error) waiting.reject(new Error(m.message));
    else waiting.resolve(m);
  }

  // Ends the worker; requests still unanswered fail with `reason`.
  terminate(reason = "the engine stopped") {
    this.worker.terminate();
    const error = new Error(reason);
    this.pending.forEach(({ reject }) => reject(error));
    this.pending.clear();
  }
}

// The backend `wanted` ("auto", "webgpu" or "cpu") asks for, given the WebGPU probe: "auto"
// takes the CPU where WebGPU is missing or a software renderer (there the CPU path is faster).
export function chooseBackend(wanted, gpu) {
  return wanted === "cpu" || (wanted === "auto" && (!gpu.ok || gpu.software)) ? "cpu" : "webgpu";
}

// Starts the engine: a worker at `url` on the chosen backend, and on the CPU if WebGPU fails to
// start. Each attempt gets a fresh worker, as canvases can be transferred only once:
// `startFields(backend, gpu)` returns that attempt's { fields, transfer } for the start request.
// Resolves with { engine, info (the started reply), backend, gpu, webgpuError }.
export async function startEngine({ url, wanted = "auto", startFields = async () => ({}), onAttempt = () => {}, onEvent, onError }) {
  if (!moduleWorkers()) throw new Error(NO_MODULE_WORKERS);
  const gpu = await probeWebGpu();
  let backend = chooseBackend(wanted, gpu);
  let webgpuError = null;
  for (;;) {
    onAttempt(backend);
    const engine = await EngineWorker.open(url, { onEvent, onError });
    const { fields = {}, transfer = [] } = await startFields(backend, gpu);
    try {
      const info = await engine.call(OP.start, { backend, ...fields }, transfer);
      return { engine, info, backend, gpu, webgpuError };
    } catch (e) {
      engine.terminate();
      if (backend === "cpu") throw e;
      webgpuError = e.message;
      backend = "cpu";
    }
  }
}
