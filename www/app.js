// The page: controls, the URL, the weights, and the worker that runs the model (www/worker.js).
// Nothing heavy happens on this thread, so the page stays responsive while the model works.

import { $, saveFile } from "./dom.js";
import { context2d, plotContext } from "./draw2d.js";
import { initModels } from "./models.js";
import { initRepaint } from "./repaint.js";
import { initTrain } from "./train.js";
import { fetchExamples, fetchWeights as fetchWeightsFrom } from "./weights.js";
import { EVENT, NO_MODULE_WORKERS, OP, generateSettings, startEngine as startWorker } from "./protocol.js";
import { CLASS_NAMES, DEFAULT_SAMPLER, INTERVALS, RANGES, SAMPLERS, SCHEDULES, STEPS, clampNumber, randomSeed, stepsFor } from "./settings.js";
import { VERSION } from "./version.js";

$("version").textContent = `ddpm-web ${VERSION}`;

// Every setting the URL can carry: how to read it, its range, and its default.
const SETTINGS = {
  sampler: { choices: SAMPLERS, def: DEFAULT_SAMPLER },
  // Any sampler's count is read from a link; applySettings keeps it only where the sampler offers it.
  // None (null, and no steps= in links) for the samplers that walk all T steps.
  steps: { choices: [...new Set(Object.values(STEPS).flatMap((s) => s.choices.map(String)))], def: () => stepsFor($("sampler").value)?.toString() ?? null },
  eta: RANGES.eta,
  seed: { ...RANGES.seed, def: () => randomSeed() },
  morph: { ...RANGES.seed, def: () => randomSeed() },
  frames: { choices: ["5", "7", "9"], def: "7" },
  class: { choices: ["any", ...CLASS_NAMES.map((_, i) => String(i))], def: "any" },
  guidance: RANGES.guidance,
  interval: { choices: INTERVALS, def: INTERVALS[0] },
  batch: { ...RANGES.batch, def: () => (engineInfo.backend === "cpu" ? RANGES.batch.def : RANGES.batch.max) },
  view: { choices: ["both", "xt", "x0"], def: "both" },
  colormap: { choices: ["grey", "viridis"], def: "grey" },
  backend: { choices: ["auto", "webgpu", "cpu"], def: "auto" },
};

let worker = null; // the engine's EngineWorker (www/protocol.js)
let engineInfo = {};
let weights = null; // the verified pretrained weights file
let models = null; // which model is in use (www/models.js)
let train = null; // the Train card (www/train.js)
let repaint = null; // the Repaint card (www/repaint.js)
let generating = false;
let paused = false;
// What tests (and curious readers, from the console) can inspect.
const ddpm = { steps: [], notices: [], state: "loading" };
window.ddpm = ddpm;

const value = (spec) => (typeof spec.def === "function" ? spec.def() : spec.def);

function setStatus(state, text) {
  $("status").dataset.state = state;
  $("status").textContent = text;
  ddpm.state = state;
}

function notice(text, { recover = false, label = "Restart the engine" } = {}) {
  $("notice").hidden = !text;
  $("notice-text").textContent = text || "";
  $("recover").hidden = !recover;
  $("recover").textContent = label;
  if (text) ddpm.notices.push(text);
}

// ---------- settings ⇄ controls ⇄ URL ----------

// Reads the URL; garbage or out-of-range values are replaced or clamped, and the reader is told.
function readUrl() {
  const params = new URLSearchParams(location.search);
  const fixed = [];
  const out = {};
  for (const [key, spec] of Object.entries(SETTINGS)) {
    const raw = params.get(key);
    if (raw === null) {
      out[key] = null;
      continue;
    }
    if (spec.choices) {
      if (!spec.choices.includes(raw)) {
        fixed.push(`${key}=${raw}`);
        out[key] = null;
        continue;
      }
      out[key] = raw;
      continue;
    }
    const clamped = clampNumber(raw, spec);
    if (clamped === null) {
      fixed.push(`${key}=${raw}`);
      out[key] = null;
      continue;
    }
    if (clamped !== Number(raw)) fixed.push(`${key}=${raw} (using ${clamped})`);
    out[key] = clamped;
  }
  if (fixed.length) notice(`Some link settings were out of range or unreadable and were adjusted: ${fixed.join(", ")}.`);
  return out;
}

function applySettings(s) {
  for (const [key, spec] of Object.entries(SETTINGS)) {
    if (key === "steps") continue;
    $(key).value = String(s[key] ?? value(spec));
  }
  fillSteps(s.steps);
  syncOutputs();
}

// The steps menu offers the chosen sampler's counts: `wanted` where it is one of them, else the
// sampler's default.
function fillSteps(wanted) {
  const sampler = $("sampler").value;
  $("steps").replaceChildren(...(STEPS[sampler]?.choices ?? []).map((n) => new Option(`${n} steps`, String(n))));
  $("steps").value = String(stepsFor(sampler, wanted) ?? "");
}

function currentSettings() {
  const s = {};
  for (const [key, spec] of Object.entries(SETTINGS)) {
    const raw = $(key).value;
    if (spec.choices) {
      s[key] = spec.choices.includes(raw) ? raw : value(spec);
      continue;
    }
    const v = Number(raw);
    s[key] = Number.isFinite(v) && raw !== "" ? Math.min(spec.max, Math.max(spec.min, spec.int ? Math.round(v) : v)) : value(spec);
  }
  return s;
}

function writeUrl() {
  const params = new URLSearchParams(
    Object.entries(currentSettings())
      .filter(([, v]) => v !== null)
      .map(([k, v]) => [k, String(v)]),
  );
  history.replaceState(null, "", `${location.pathname}?${params}`);
}

function syncOutputs() {
  $("eta-out").textContent = Number($("eta").value).toFixed(2);
  $("guidance-out").textContent = Number($("guidance").value).toFixed(1);
  $("batch-out").textContent = $("batch").value;
  const sampler = $("sampler").value;
  for (const el of document.querySelectorAll("[data-for]"))
    el.classList.toggle("off", el.dataset.for === "steps" ? !STEPS[sampler] : el.dataset.for !== sampler);
  $("steps").disabled = !STEPS[sampler];
  $("eta").disabled = sampler !== "ddim";
  $("guidance").disabled = $("interval").disabled = $("class").value === "any";
  $("panel-labels").dataset.view = $("view").value;
}

// ---------- the worker ----------

const call = (op, fields) => worker.call(op, fields);

const CANVASES = { gen: "gen-canvas", fwd: "fwd-canvas", train: "train-canvas" };

// Canvases can be handed to a worker once, so each new worker gets fresh ones.
function freshCanvas(id, transfer) {
  const old = $(id);
  const canvas = old.cloneNode(false);
  old.replaceWith(canvas);
  return transfer ? canvas.transferControlToOffscreen() : canvas;
}

// Where canvases cannot be transferred to a worker, the worker posts pixels and they are drawn
// here at one pixel per image pixel; the canvas's CSS scales them up with square pixels.
function showPixels({ name, rgba, width, height }) {
  const canvas = $(CANVASES[name]);
  if (canvas.width !== width) canvas.width = width;
  if (canvas.height !== height) canvas.height = height;
  context2d(canvas).putImageData(new ImageData(rgba, width, height), 0, 0);
}

function onWorkerEvent(m) {
  switch (m.op) {
    case EVENT.begin:
      onBegin(m);
      break;
    case EVENT.step:
      onStep(m);
      break;
    case EVENT.pixels:
      showPixels(m);
      break;
    case EVENT.paused:
      break;
    case EVENT.finished:
      onFinished(m);
      break;
    case EVENT.notice:
      notice(m.message);
      break;
    case EVENT.error:
      failed(`Generating failed: ${m.message}`);
      break;
    case EVENT.panic:
      crashed(`The model runtime crashed (${m.message}).`);
      break;
    case EVENT.deviceLost:
      crashed(`The GPU device was lost (${m.message}). This happens when the graphics driver resets or the tab was in the background for long.`);
      break;
    case EVENT.gpuError:
      gpuError(m.message);
      break;
    default:
      if (m.op.startsWith("train-")) train.onMessage(m);
  }
}

// After a crash or a lost device the worker cannot be trusted: offer a fresh one.
function crashed(text) {
  generating = false;
  setStatus("error", "Stopped.");
  notice(`${text} Restart the engine to go on; your settings are kept.`, { recover: true });
  setButtons();
}

// A GPU error (a shader WebGPU rejected, an out-of-memory) leaves the run going but its numbers
// suspect; the first one per engine is shown, all go to the console.
let gpuErrorText = null;
function gpuError(message) {
  console.error("WebGPU:", message);
  if (gpuErrorText) return;
  gpuErrorText = `The GPU reported an error (${message}); pictures from it may be wrong. Choose “CPU” under “Run on”, or restart the engine.`;
  notice(gpuErrorText, { recover: true });
}

function failed(text) {
  generating = false;
  setStatus("error", text);
  setButtons();
}

let gpuCanvas = null; // whether a WebGPU canvas shows what is drawn (probed once)

function probeCanvas() {
  return new Promise((resolve) => {
    const probe = new Worker(new URL("./probe.js", import.meta.url));
    const done = (ok) => {
      probe.terminate();
      clearTimeout(timer);
      resolve(ok);
    };
    const timer = setTimeout(() => done(false), 10000);
    probe.onmessage = ({ data }) => done(data === true);
    probe.onerror = () => done(false);
  });
}

// Starts a worker on the chosen backend (falling back to the CPU if WebGPU fails) and loads the weights.
async function startEngine() {
  setStatus("loading", "Starting the model…"); // at once, so nothing reads the old error state
  worker?.terminate("the engine restarted");
  worker = null;
  generating = false;
  gpuErrorText = null;
  setButtons();
  const wanted = $("backend").value;
  // Feature-tested, not browser-named: without transferable canvases the page draws itself.
  const transfer = typeof HTMLCanvasElement.prototype.transferControlToOffscreen === "function";
  // The weights download while the worker starts: its check of the GPU needs them.
  const loading = weights
    ? Promise.resolve()
    : fetchWeights().then((w) => {
        weights = w;
        models.setPretrained(w);
      });
  loading.catch(() => {}); // reported where the weights are loaded, below
  let started;
  try {
    started = await startWorker({
      url: new URL("./worker.js", import.meta.url),
      wanted,
      onAttempt: (backend) => setStatus("loading", `Starting the model on ${backend === "webgpu" ? "WebGPU" : "the CPU"}…`),
      async startFields(backend, gpu) {
        gpuCanvas ??= gpu.ok && (await probeCanvas());
        const canvases = transfer ? Object.fromEntries(Object.entries(CANVASES).map(([name, id]) => [name, freshCanvas(id, true)])) : {};
        const check =
          backend === "webgpu"
            ? await loading.then(
                () => models.startBytes().slice().buffer,
                () => undefined,
              )
            : undefined;
        return {
          fields: { canvases, gpuCanvas, pagePixels: !transfer, faults: window.ddpmTestFaults, check },
          transfer: [...Object.values(canvases), ...(check ? [check] : [])],
        };
      },
      onEvent: onWorkerEvent,
      onError: (message) => failed(`The worker failed: ${message}.`),
    });
  } catch (e) {
    setStatus(
      "error",
      e.message === NO_MODULE_WORKERS
        ? `This browser cannot run the model: ${NO_MODULE_WORKERS.replace(/^this browser /, "it ")}.`
        : `The model could not start on this device: ${e.message}. Try another browser (Chrome, Edge, Safari 18+ or Firefox 141+).`,
    );
    return;
  }
  const { gpu, backend } = started;
  worker = started.engine;
  engineInfo = started.info;
  // The worker could not draw into a transferred canvas: fresh ones, drawn here.
  if (transfer && engineInfo.drawing === "page") for (const id of Object.values(CANVASES)) freshCanvas(id, false);
  const notes = [];
  if (!gpu.ok) notes.push(`${gpu.why} Running on the CPU in WebAssembly instead (slower; fewer images by default).`);
  else if (gpu.software && wanted === "auto")
    notes.push(
      `Your WebGPU adapter (${gpu.name}) is a software renderer, where the CPU path is much faster, so the model runs on the CPU. Choose “WebGPU” under “Run on” to try it anyway.`,
    );
  if (started.webgpuError) notes.push(`WebGPU failed to start: ${started.webgpuError}. The model runs on the CPU instead.`);
  if (engineInfo.note) notes.push(engineInfo.note);
  $("device").textContent =
    backend === "webgpu"
      ? `Running on WebGPU: ${engineInfo.adapter || gpu.name}${engineInfo.software ? " (software)" : ""}.`
      : `Running on the CPU (Burn's flex backend in WebAssembly).`;
  // A GPU error during start-up stays on screen beside the start-up notes.
  notice([...notes, gpuErrorText ?? ""].join(" ").trim(), { recover: Boolean(gpuErrorText) });
  try {
    await loading;
    const { description } = await call(OP.load, { bytes: models.startBytes().slice().buffer });
    ddpm.description = description;
    models.started(description);
  } catch (e) {
    setStatus("error", `Could not load the model weights: ${e.message}.`);
    notice("Check your connection and try again.", { recover: true, label: "Try again" });
    return;
  }
  // The default batch depends on the backend, known only now.
  if (!new URLSearchParams(location.search).has("batch") && !ddpm.batchTouched) $("batch").value = value(SETTINGS.batch);
  syncOutputs();
  ddpm.backend = backend;
  ddpm.check = engineInfo.check;
  ddpm.drawing = engineInfo.drawing;
  $("stage-note").textContent = {
    webgpu: "Drawn by a WGSL shader.",
    canvas2d: "Drawn with Canvas 2D (WebGPU canvases are unavailable here).",
    page: "Drawn with Canvas 2D on the page (this browser cannot draw from a worker).",
  }[engineInfo.drawing];
  setStatus("ready", "Ready. Click Generate.");
  setButtons();
  train.engineReady();
  drawForward();
  plotSchedules();
}

// ---------- weights (www/weights.js) ----------

async function fetchWeights() {
  try {
    const { bytes, source } = await fetchWeightsFrom(location.href, {
      notice,
      // The download starts beside the engine: if the engine failed first, its error stays.
      downloading: () => {
        if (ddpm.state !== "loading") return;
        setStatus("loading", "Downloading the model weights…");
        $("progress").hidden = false;
      },
      progress: (f) => {
        $("progress-bar").style.width = `${100 * f}%`;
      },
    });
    ddpm.weightsSource = source;
    return bytes;
  } finally {
    $("progress").hidden = true;
  }
}

// ---------- generate ----------

function setButtons() {
  const ready = ["ready", "done", "running", "paused"].includes(ddpm.state) || (ddpm.state === "error" && worker && ddpm.description);
  $("generate").disabled = $("morph-go").disabled = !ready || train.running();
  $("generate").title = train.running() ? "Pause or stop training to generate." : "";
  repaint?.enable(ready && !train.running());
  $("pause").disabled = !generating;
  $("pause").textContent = paused ? "Continue" : "Pause";
  $("download").disabled = $("download-gif").disabled = !ddpm.final || generating;
}

// Display width in device pixels: the worker scales the grid by an integer factor up to this.
const targetWidth = (id) => Math.round($(id).parentElement.clientWidth * (devicePixelRatio || 1));

// A morph needs a sampler whose image x_T alone decides.
const deterministic = (s) => s.sampler === "dpm-solver" || (s.sampler === "ddim" && s.eta === 0);

function morph() {
  if (!deterministic(currentSettings())) {
    notice("A morph needs a deterministic sampler: choose DPM-Solver++, or DDIM with η = 0.");
    return;
  }
  notice("");
  const s = currentSettings();
  generate(null, { morphTo: s.morph, batch: Number(s.frames) });
}

// The `generate` settings the controls choose; `extra` makes the run a morph (morphTo, batch)
// or a repaint (inpaint).
const chosenSettings = (extra = {}) => generateSettings({ ...currentSettings(), target: targetWidth("gen-canvas"), trace: ddpm.trace, ...extra });

function generate(event, extra = {}) {
  event?.preventDefault();
  writeUrl();
  const settings = chosenSettings(extra);
  ddpm.steps = [];
  ddpm.final = null;
  ddpm.settings = settings;
  generating = true;
  paused = false;
  setStatus("running", "Generating…");
  setButtons();
  worker.send(OP.generate, { settings });
}

function onBegin({ total, size }) {
  ddpm.size = size; // the images' side: the model's
  $("step-info").textContent = `Step 0 / ${total}: pure noise x_T`;
  $("step-bar").style.width = "0%";
}

function onStep(m) {
  ddpm.steps.push(m);
  $("step-info").textContent = `Step ${m.done} / ${m.total} · t = ${m.t}`;
  $("timing").textContent = `${m.millis.toFixed(0)} ms/step (drawing ${m.drawMs.toFixed(1)} ms)`;
  $("step-bar").style.width = `${(100 * m.done) / m.total}%`;
}

function onFinished(m) {
  generating = false;
  paused = false;
  ddpm.final = m.final;
  ddpm.finished = m;
  $("timing").textContent = `${m.medianMs.toFixed(0)} ms/step (median) · ${m.seconds.toFixed(1)} s in all`;
  setStatus("done", `Done: ${m.total} steps.`);
  setButtons();
  repaint.finished();
}

function togglePause() {
  paused = !paused;
  worker.send(paused ? OP.pause : OP.resume);
  setStatus(paused ? "paused" : "running", paused ? "Paused." : "Generating…");
  setButtons();
}

async function download(kind) {
  const { blob } = await call(kind);
  const s = currentSettings();
  const seeds = ddpm.settings?.morphTo === undefined ? `seed${s.seed}` : `morph${ddpm.settings.seed}-${ddpm.settings.morphTo}`;
  saveFile(blob, `ddpm-${s.sampler}-${STEPS[s.sampler] ? `${s.steps}steps-` : ""}${seeds}.${kind}`);
}

// ---------- forward process explorer ----------

let examples = null;
let forwardBusy = false;
let forwardAgain = false;

async function drawForward() {
  if (forwardBusy) {
    forwardAgain = true;
    return;
  }
  forwardBusy = true;
  try {
    examples ??= await fetchExamples(location.href);
    do {
      forwardAgain = false;
      const t = Number($("t").value);
      $("t-out").textContent = t;
      ddpm.forward = await call(OP.forward, {
        images: examples.values,
        size: examples.size,
        t,
        schedule: $("schedule").value,
        seed: 7,
        target: targetWidth("fwd-canvas"),
      });
      marker();
    } while (forwardAgain);
  } catch (e) {
    notice(`The forward-process view failed: ${e.message}`);
  } finally {
    forwardBusy = false;
  }
}

let curves = null;
async function plotSchedules() {
  ({ curves } = await call(OP.alphas, { schedules: SCHEDULES }));
  marker();
}

// ᾱ_t for the four schedules, with the chosen one bold and a marker at the slider's t.
function marker() {
  if (!curves) return;
  const { ctx, w, h, dpr, pad } = plotContext($("plot"), { l: 40, r: 12, t: 12, b: 28 });
  const X = (t, n) => pad.l + (t / (n - 1)) * (w - pad.l - pad.r);
  const Y = (v) => h - pad.b - v * (h - pad.t - pad.b);
  for (const v of [0, 0.5, 1]) {
    ctx.beginPath();
    ctx.moveTo(pad.l, Y(v));
    ctx.lineTo(w - pad.r, Y(v));
    ctx.stroke();
    ctx.fillText(v.toFixed(1), 6 * dpr, Y(v) + 4 * dpr);
  }
  ctx.fillText("t →", w - pad.r - 24 * dpr, pad.t + 10 * dpr); // top right, clear of the legend and the curves
  ctx.fillText("ᾱ_t", pad.l + 4 * dpr, pad.t + 10 * dpr);
  const colours = { linear: "#7cc4ff", cosine: "#ffcc66", quadratic: "#8be28b", sigmoid: "#ff9ad5" };
  const chosen = $("schedule").value;
  let lx = pad.l + 40 * dpr;
  for (const [name, ys] of Object.entries(curves)) {
    ctx.strokeStyle = colours[name];
    ctx.lineWidth = (name === chosen ? 3 : 1.25) * dpr;
    ctx.beginPath();
    ys.forEach((v, t) => (t ? ctx.lineTo(X(t, ys.length), Y(v)) : ctx.moveTo(X(t, ys.length), Y(v))));
    ctx.stroke();
    ctx.fillStyle = colours[name];
    ctx.fillText(name, lx, h - 8 * dpr);
    lx += ctx.measureText(name).width + 14 * dpr;
  }
  const t = Number($("t").value);
  const ys = curves[chosen];
  ctx.fillStyle = "#e8e6e3";
  ctx.beginPath();
  ctx.arc(X(t, ys.length), Y(ys[t]), 4 * dpr, 0, 2 * Math.PI);
  ctx.fill();
}

// ---------- wiring ----------

function init() {
  $("class").add(new Option("Any", "any"));
  CLASS_NAMES.forEach((name, i) => $("class").add(new Option(name, String(i))));
  applySettings(readUrl());
  $("controls").addEventListener("submit", generate);
  $("controls").addEventListener("input", (e) => {
    if (e.target.id === "batch") ddpm.batchTouched = true;
    if (e.target.id === "sampler") fillSteps();
    syncOutputs();
    if (["view", "colormap"].includes(e.target.id) && worker) {
      const { view, colormap, target } = chosenSettings();
      worker.send(OP.redraw, { view, colormap, target });
    }
    writeUrl();
  });
  $("backend").addEventListener("change", () => startEngine());
  $("dice").addEventListener("click", () => {
    $("seed").value = randomSeed();
    writeUrl();
  });
  $("morph-go").addEventListener("click", morph);
  $("pause").addEventListener("click", togglePause);
  $("download").addEventListener("click", () => download("png").catch((e) => notice(`Export failed: ${e.message}`)));
  $("download-gif").addEventListener("click", () => download("gif").catch((e) => notice(`Export failed: ${e.message}`)));
  $("share").addEventListener("click", async () => {
    writeUrl();
    try {
      await navigator.clipboard.writeText(location.href);
      $("share").textContent = "Link copied";
    } catch {
      $("share").textContent = "Copy the address bar";
    }
    setTimeout(() => ($("share").textContent = "Copy link"), 2000);
  });
  $("recover").addEventListener("click", () => {
    notice("");
    startEngine();
  });
  $("t").addEventListener("input", drawForward);
  $("schedule").addEventListener("change", () => {
    drawForward();
    marker();
  });
  addEventListener("resize", marker);
  ddpm.loseDevice = () => worker.send(OP.loseDevice);
  ddpm.snapshot = (name) => call(OP.snapshot, { name });
  ddpm.memory = async () => ({ ...(await call(OP.memory)), pageHeap: performance.memory?.usedJSHeapSize ?? null });
  models = initModels({
    call,
    notice,
    onChange: () => {
      ddpm.description = models.active().description;
    },
  });
  train = initTrain({
    send: (op, fields) => worker.send(op, fields),
    notice,
    backend: () => ddpm.backend,
    targetWidth,
    models,
    classNames: CLASS_NAMES,
    onBusy: () => setButtons(),
  });
  repaint = initRepaint({
    classNames: CLASS_NAMES,
    examples: async () => (examples ??= await fetchExamples(location.href)),
    lastSample: () => ddpm.final && { values: ddpm.final, size: ddpm.size },
    repaint: (inpaint) => generate(null, { inpaint }),
  });
  startEngine();
}

init();
