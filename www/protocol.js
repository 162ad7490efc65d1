// The page ↔ worker protocol, in one place. The page (app.js, train.js) and every <ddpm-demo>
// (embed.js) reach the engine's worker (worker.js, train-worker.js) only through an EngineWorker,
// and both start it with startEngine. docs/architecture.md draws the exchange.
//
// A request is { op, id, ...fields }; the worker answers it with the same id (or with
// { op: "error", id, message }). A message sent with `send` has no id and gets no answer.
// Events come without an id; those of a run carry the `tag` of whoever started the run.

import { DEFAULT_SAMPLER, INTERVALS, RANGES, SAMPLERS, classIndex, clampNumber, randomSeed, stepsFor } from "./settings.js";
import { moduleWorkers, probeWebGpu } from "./webgpu.js";

// Requests, with their fields → the reply's op and fields.
export const OP = Object.freeze({
  start: "start",             // backend, canvases, gpuCanvas, pagePixels, faults, check → started: backend, adapter, software, note, drawing, check
  load: "load",               // bytes → loaded: description
  generate: "generate",       // settings (sent) → events begin, step…, finished
  pause: "pause",             // (sent) → event paused
  resume: "resume",           // (sent)
  redraw: "redraw",           // view, colormap, target (sent)
  forward: "forward",         // images, t, schedule, seed, target → forwarded: t, schedule, values?
  alphas: "alphas",           // schedules → alphas: curves
  png: "png",                 // → png: blob
  gif: "gif",                 // → gif: blob, frames
  snapshot: "snapshot",       // name → snapshot: width, height, data
  memory: "memory",           // → memory: wasmBytes, workerHeap, device
  loseDevice: "lose-device",  // (sent; tests only)
  train: "train",             // settings: options, steps, evalEvery, previewEvery, target, tag (sent) → train-* events
  trainPause: "train-pause",  // (sent) → event train-paused
  trainResume: "train-resume", // (sent) → event train-resumed
  trainStop: "train-stop",     // (sent) → event train-finished
  save: "save",               // → saved: bytes
});

// Events the worker sends unasked.
export const EVENT = Object.freeze({
  ready: "ready",                  // the worker's module loaded; requests may follow
  bootFailed: "boot-failed",       // message: the worker's module could not be loaded (embed.js's blob)
  blocked: "blocked",              // directive, blocked: what the page's Content-Security-Policy refused
  begin: "begin",                  // tag, total, values?
  step: "step",                    // tag, done, total, t, millis, drawMs, frame?, values?
  pixels: "pixels",                // name, rgba, width, height: a picture for the page to draw
  paused: "paused",                // tag, done, total
  finished: "finished",            // tag, total, seconds, final, medianMs
  notice: "notice",                // message: worth telling the reader, nothing failed
  error: "error",                  // tag, context, message: a run failed (also the failed reply)
  panic: "panic",                  // message: the wasm module crashed; the worker is unusable
  deviceLost: "device-lost",       // message: the GPU device is gone; the worker is unusable
  gpuError: "gpu-error",           // message: a GPU error; the run goes on, its numbers are suspect
  trainStatus: "train-status",     // tag, message
  trainBegin: "train-begin",       // tag, description, steps
  trainStep: "train-step",         // tag, done, losses, millis, imagesPerSecond
  trainEval: "train-eval",         // tag, done, loss (held-out)
  trainPreview: "train-preview",   // tag, done, values?
  trainSnapshot: "train-snapshot", // tag, done, bytes (weights kept in case the tab dies)
  trainPaused: "train-paused",     // tag, done, description
  trainResumed: "train-resumed",   // tag, done
  trainFinished: "train-finished", // tag, done, description
  trainError: "train-error",       // tag, message
});

// The settings of a `generate` request (the page's Generate, Morph and Repaint, and every
// <ddpm-demo>), from what was chosen, as text or numbers: what is missing, unreadable or out of
// range becomes its default (www/limits.json).
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
