// <ddpm-demo>: the demo as one custom element, for a blog post:
//
//   <script type="module" src="https://your.site/ddpm/embed.js"></script>
//   <ddpm-demo mode="generate" class="sneaker"></ddpm-demo>
//
// It renders in a shadow root (the host's CSS cannot reach in, its own cannot leak out) and
// defines nothing global but the element. All demos on a page share one worker, hence one GPU
// device and one copy of the weights; a demo starts when scrolled into view, pauses when
// scrolled away, and demos take turns on the engine.

import { $, el } from "./dom.js";
import { drawGrid, plotContext, scaledLayout } from "./draw2d.js";
import { fetchExamples, fetchWeights } from "./weights.js";
import { EVENT, OP, generateSettings, startEngine as startWorker } from "./protocol.js";
import { CLASS_NAMES, DEFAULT_SAMPLER, SCHEDULES, TRAINING, classIndex, clampNumber } from "./settings.js";
import { VERSION } from "./version.js";

const BASE = new URL("./", import.meta.url);
const BACKENDS = ["auto", "webgpu", "cpu"];

// ---------- one engine for every demo on the page ----------

const engine = {
  started: null, // promise of { backend } once the worker runs
  worker: null, // its EngineWorker (www/protocol.js)
  owner: null, // the demo whose generation or training the worker is running
  waiting: [], // demos waiting for their turn: { demo, resolve }
  weights: new Map(), // src ("" = the shipped model) → promise of bytes: each fetched once
  loaded: null, // the src the worker holds
  demos: new Set(),
  blocked: [], // what the host page's Content-Security-Policy refused us: { directive, blocked }
};

const call = (op, fields) => engine.worker.call(op, fields);

function onEvent(m) {
  if (m.op === EVENT.blocked) return void engine.blocked.push(m);
  if (m.op === EVENT.panic || m.op === EVENT.deviceLost) {
    // The worker is unusable: every demo says so, and the next click starts a fresh one.
    const why = m.op === EVENT.panic ? `the model runtime crashed (${m.message})` : `the GPU device was lost (${m.message})`;
    engine.worker.terminate(why);
    Object.assign(engine, { started: null, owner: null, loaded: null, gpuError: false });
    const lost = new Error(why);
    engine.waiting.splice(0).forEach(({ reject }) => reject(lost));
    engine.demos.forEach((d) => d.failed(`Stopped: ${why}. Click to start again.`));
    return;
  }
  if (m.op === EVENT.gpuError) {
    // The run goes on, but its numbers are suspect: say so under every demo, once.
    console.error("WebGPU:", m.message);
    if (!engine.gpuError)
      engine.demos.forEach((d) => d.note(`The GPU reported an error (${m.message}); pictures may be wrong. Set backend="cpu" to avoid it.`));
    engine.gpuError = true;
    return;
  }
  // Messages of a run carry the tag of the demo that started it (a superseded run may still
  // report its last step after another demo took over).
  const demo = [...engine.demos].find((d) => d.tag === m.tag);
  demo?.onEngine(m);
}

// A worker must come from the page's origin; from elsewhere a same-origin blob starts it, and
// imports ours with import(): a CSP checks that against script-src, where Chromium checks a module
// worker's static imports against worker-src. The blob reports what a CSP refused it.
function workerUrl() {
  const url = new URL("worker.js", BASE);
  if (url.origin === location.origin) return url;
  const boot = `addEventListener("securitypolicyviolation", (e) => postMessage({ op: "${EVENT.blocked}", directive: e.effectiveDirective, blocked: e.blockedURI }));
import(${JSON.stringify(url.href)}).catch((e) => postMessage({ op: "${EVENT.bootFailed}", message: String(e?.message ?? e) }));`;
  return URL.createObjectURL(new Blob([boot], { type: "text/javascript" }));
}

// The page's own refusals (a blob worker, a fetch of the weights), where they concern the demo.
document.addEventListener("securitypolicyviolation", (e) => {
  const uri = e.blockedURI;
  if (uri.startsWith(BASE.origin) || uri.startsWith("blob") || uri.includes("eval")) engine.blocked.push({ directive: e.effectiveDirective, blocked: uri });
});

// What the host page must change, for a refusal its CSP reported.
function cspAdvice({ directive, blocked }) {
  const what = blocked.includes("eval") ? "WebAssembly" : blocked.startsWith("blob") ? "a blob: worker" : blocked;
  const allow = blocked.includes("eval") ? "'wasm-unsafe-eval'" : blocked.startsWith("blob") ? "blob:" : new URL(blocked).origin;
  const into = blocked.includes("eval") ? "script-src" : directive;
  return `the page's Content-Security-Policy refused ${what} (${directive}); add ${allow} to its ${into}`;
}

// Why the engine could not start, in terms a blog's author can act on: a CSP refusal, a host that
// sends no CORS headers with some of the demo's files, or the error itself.
async function explain(error) {
  const settle = () => new Promise((r) => setTimeout(r, 100)); // violation reports come after the failure
  await settle();
  if (engine.blocked.length) return cspAdvice(engine.blocked[0]);
  // Not every engine reports a refused WebAssembly compilation as a violation event.
  if (/WebAssembly/i.test(error.message) && /Content.Security|CSP|unsafe-eval/i.test(error.message))
    return cspAdvice({ directive: "script-src", blocked: "wasm-eval" });
  if (BASE.origin === location.origin) return error.message;
  const get = (file, mode) =>
    fetch(new URL(file, BASE), { method: "HEAD", mode, cache: "no-store" }).then(
      () => true,
      () => false,
    );
  for (const file of ["worker.js", "ddpm-web_bg.wasm", "assets/model.json", "assets/model.ddpm"]) {
    if (await get(file, "cors")) continue;
    const reachable = await get(file, "no-cors");
    await settle();
    if (engine.blocked.length) return cspAdvice(engine.blocked[0]);
    return reachable
      ? `${BASE.origin} sends no CORS header (Access-Control-Allow-Origin) with ${file}, and a page on another origin needs one with every file of the demo`
      : `${BASE.origin} could not be reached (${error.message})`;
  }
  return error.message;
}

async function startEngine() {
  engine.blocked = [];
  // The demos draw the values they are sent: no canvases go to the worker.
  // Demos share one engine: the first that names a backend chooses it.
  const wanted = [...engine.demos].map((d) => d.getAttribute("backend")).find((b) => BACKENDS.includes(b)) ?? "auto";
  // On WebGPU the worker checks the GPU against the CPU with the shipped weights first.
  const {
    engine: worker,
    backend,
    info,
    webgpuError,
  } = await startWorker({
    url: workerUrl(),
    wanted,
    startFields: async (backend) => {
      const check = backend === "webgpu" ? (await weightsFor("")).slice().buffer : undefined;
      return { fields: { canvases: {}, gpuCanvas: false, check, faults: globalThis.ddpmTestFaults }, transfer: check ? [check] : [] };
    },
    onEvent,
    onError: (message) => engine.demos.forEach((d) => d.failed(`Stopped: the worker failed (${message}). Click to start again.`)),
  });
  engine.worker = worker;
  const notes = [webgpuError && `WebGPU failed to start: ${webgpuError}. The model runs on the CPU instead.`, info.note].filter(Boolean);
  if (notes.length) engine.demos.forEach((d) => d.note(notes.join(" ")));
  return { backend };
}

function weightsFor(src) {
  if (!engine.weights.has(src)) {
    const bytes = src
      ? fetch(new URL(src, location.href)).then(async (r) => {
          if (!r.ok) throw new Error(`the server answered ${r.status} for ${src}`);
          return new Uint8Array(await r.arrayBuffer());
        })
      : fetchWeights(BASE).then((w) => w.bytes);
    engine.weights.set(src, bytes);
    bytes.catch(() => engine.weights.delete(src)); // a failed fetch may be retried
  }
  return engine.weights.get(src);
}

async function ensureStarted() {
  engine.started ??= startEngine().catch(async (e) => {
    engine.started = null;
    throw new Error(await explain(e));
  });
  return engine.started;
}

// Waits for the engine and for `demo`'s turn, with its weights loaded. A demo scrolled out of
// view gives way at once; one in view finishes first.
async function take(demo) {
  await ensureStarted();
  if (engine.owner && engine.owner !== demo) {
    if (engine.owner.offscreen) engine.owner.interrupted();
    else await new Promise((resolve, reject) => engine.waiting.push({ demo, resolve, reject }));
  }
  engine.owner = demo;
  const src = demo.getAttribute("src") || "";
  const bytes = await weightsFor(src).catch(async (e) => {
    throw new Error(await explain(e));
  });
  if (engine.loaded !== src) {
    await call(OP.load, { bytes: bytes.slice().buffer });
    engine.loaded = src;
  }
}

function release(demo) {
  if (engine.owner !== demo) return;
  engine.owner = null;
  const next = engine.waiting.shift();
  if (next) {
    engine.owner = next.demo;
    next.resolve();
  }
}

// ---------- the element ----------

const STYLE = `
:host { display: block; contain: content; font: 14px/1.4 system-ui, sans-serif; color: #e8e6e3; }
.demo { background: #181b22; border: 1px solid #262a33; border-radius: 10px; padding: 10px; }
canvas { display: block; width: 100%; image-rendering: pixelated; background: #202020; border-radius: 6px; }
.bar { display: flex; flex-wrap: wrap; gap: 8px; align-items: center; margin-top: 8px; }
.status { color: #9aa0a6; font-variant-numeric: tabular-nums; flex: 1; min-width: 10em; }
button, select { font: inherit; border-radius: 6px; border: 0; padding: 5px 12px; cursor: pointer; }
button { background: #7cc4ff; color: #0f1115; font-weight: 600; }
button.second { background: #2b313c; color: #e8e6e3; font-weight: 500; }
button:disabled { opacity: 0.45; cursor: default; }
select { background: #10131a; color: #e8e6e3; border: 1px solid #343a46; }
input[type=range] { flex: 1; min-width: 8em; accent-color: #7cc4ff; }
.note { margin: 6px 0 0; color: #f0c674; font-size: 13px; }
.note[hidden] { display: none; }
`;
let demoCount = 0;
let sheet = null; // one constructed stylesheet for every demo (no inline <style>, so a strict CSP is fine)

const number = (raw, min, max, def, int = false) => clampNumber(raw, { min, max, int }) ?? def;

// Events (bubbling, composed): ddpm-step { done, total }, ddpm-done { steps, seconds } (a forward
// demo: { t }), ddpm-error { message }. The package's custom-elements.json and embed.d.ts list
// them with the attributes (tools/build/package/element.mjs).
export class DdpmDemo extends HTMLElement {
  static version = VERSION;

  constructor() {
    super();
    this.attachShadow({ mode: "open" });
    this.ddpm = { state: "idle", steps: 0, finished: null, losses: [] };
    this.offscreen = true;
    this.tag = `demo-${++demoCount}`;
  }

  get mode() {
    return ["generate", "morph", "forward", "train"].includes(this.getAttribute("mode")) ? this.getAttribute("mode") : "generate";
  }
  get controls() {
    return ["full", "minimal", "none"].includes(this.getAttribute("controls")) ? this.getAttribute("controls") : "minimal";
  }
  get autoplay() {
    const a = this.getAttribute("autoplay");
    return a !== null ? a !== "false" : this.controls === "none";
  }

  // This demo's `generate` settings, from its attributes (www/protocol.js reads and bounds them).
  settings() {
    const a = (k) => this.getAttribute(k);
    const morph = this.mode === "morph";
    // A morph needs a deterministic sampler: DDPM falls back to the default (η is always 0 here).
    const sampler = morph && a("sampler")?.startsWith("ddpm") ? DEFAULT_SAMPLER : a("sampler");
    return generateSettings({
      sampler,
      steps: a("steps"),
      seed: this.seed ?? a("seed"),
      guidance: a("guidance"),
      interval: a("interval"),
      batch: a("batch"),
      class: this.$("class")?.value ?? a("class"),
      sendValues: true,
      tag: this.tag,
      ...(morph && { morphTo: this.to ?? a("to"), batch: number(a("count"), 5, 9, 7, true) }),
    });
  }

  $(id) {
    return $(id, this.shadowRoot);
  }

  connectedCallback() {
    engine.demos.add(this);
    if (this.built) return;
    this.built = true;
    if (!sheet) {
      sheet = new CSSStyleSheet();
      sheet.replaceSync(STYLE);
    }
    this.shadowRoot.adoptedStyleSheets = [sheet];
    this.build();
    this.observer = new IntersectionObserver(([e]) => this.visibility(e.isIntersecting), { threshold: 0.2 });
    this.observer.observe(this);
  }

  disconnectedCallback() {
    engine.demos.delete(this);
    if (engine.owner === this) {
      engine.worker.send(this.mode === "train" ? OP.trainStop : OP.pause);
      release(this);
    }
  }

  build() {
    const demo = el("div", { className: "demo" }, { part: "demo" });
    const canvas = el("canvas", { id: "canvas" });
    const ratio = { generate: [2, 1], morph: [number(this.getAttribute("count"), 5, 9, 7, true), 1.1], forward: [10, 1.3], train: [8, 1] }[this.mode];
    canvas.style.aspectRatio = `${ratio[0]} / ${ratio[1]}`; // CSSOM, not a style attribute: a strict CSP allows it
    if (this.mode === "train") {
      const plot = el("canvas", { id: "plot" });
      Object.assign(plot.style, { aspectRatio: "4 / 1", marginBottom: "6px" });
      demo.append(plot);
    }
    demo.append(canvas);
    const bar = el("div", { className: "bar" });
    const button = (id, text, className = "") => el("button", { id, textContent: text, className, type: "button" });
    if (this.controls !== "none") {
      if (this.mode === "generate" || this.mode === "morph") {
        bar.append(button("go", this.mode === "morph" ? "Morph" : "Generate"), button("pause", "Pause", "second"));
        if (this.controls === "full") {
          const select = el("select", { id: "class" }, { "aria-label": "Class" });
          select.add(new Option("Any class", "-1"));
          CLASS_NAMES.forEach((n, i) => select.add(new Option(n, String(i))));
          select.value = String(classIndex(this.getAttribute("class")));
          bar.append(select, button("dice", "New seed", "second"));
        }
      } else if (this.mode === "train") {
        bar.append(button("go", "Train"), button("pause", "Pause", "second"));
      } else {
        bar.append(
          el("input", { type: "range", min: 0, max: 999, value: number(this.getAttribute("t"), 0, 999, 250, true), id: "t" }, { "aria-label": "Time step t" }),
        );
      }
    }
    bar.append(el("span", { id: "status", className: "status" }, { role: "status" }));
    demo.append(bar, el("p", { id: "note", className: "note", hidden: true }, { role: "note" }));
    this.shadowRoot.append(demo);
    this.$("go")?.addEventListener("click", () => this.start());
    this.$("pause")?.addEventListener("click", () => this.togglePause());
    this.$("dice")?.addEventListener("click", () => {
      [this.seed, this.to] = crypto.getRandomValues(new Uint32Array(2));
      this.start();
    });
    this.$("t")?.addEventListener("input", () => this.forward());
    const hint = { forward: "", train: "Train a small model on sneakers, here.", morph: "Click Morph: one garment turns into another." };
    this.setState("idle", hint[this.mode] ?? "Click Generate.");
  }

  setState(state, text) {
    this.ddpm.state = state;
    if (text !== undefined) this.$("status").textContent = text;
    if (this.$("pause")) {
      this.$("pause").disabled = !["running", "paused"].includes(state);
      this.$("pause").textContent = state === "paused" ? "Continue" : "Pause";
    }
    if (this.$("go")) this.$("go").disabled = ["waiting", "running", "paused"].includes(state);
  }

  // A warning that leaves the demo running (a GPU error), kept in ddpm.notes for the curious.
  // A line under the demo that stays (the status line changes at every step).
  note(text) {
    Object.assign(this.$("note"), { textContent: text, hidden: false });
    this.ddpm.notes ??= [];
    this.ddpm.notes.push(text);
  }

  emit(name, detail) {
    this.dispatchEvent(new CustomEvent(name, { detail, bubbles: true, composed: true }));
  }

  failed(text) {
    release(this);
    this.setState("error", text);
    this.emit("ddpm-error", { message: text });
    if (this.$("go")) this.$("go").disabled = false;
  }

  visibility(visible) {
    this.offscreen = !visible;
    if (visible) {
      this.ddpm.seen = true;
      if (this.ddpm.state === "away") this.resume();
      else if (this.ddpm.state === "idle") {
        if (this.mode === "forward") this.forward();
        else if (this.autoplay) this.start();
        else ensureStarted().catch(() => {}); // warm up, so a click is answered quickly
      }
    } else if (this.ddpm.state === "running" && engine.owner === this) {
      engine.worker.send(this.mode === "train" ? OP.trainPause : OP.pause);
      this.setState("away", "Paused while out of view.");
      // A demo in view may be waiting for the engine (it was clicked before this one left the
      // view): give way now, and start over when seen again.
      if (engine.waiting.length) {
        this.interrupted();
        release(this);
      }
    }
  }

  // Another demo needed the engine while this one was out of view: start over when seen again.
  interrupted() {
    this.ddpm.restart = true;
    this.setState("away", "Paused while out of view.");
  }

  resume() {
    if (this.ddpm.restart || engine.owner !== this) {
      this.ddpm.restart = false;
      this.start();
      return;
    }
    engine.worker.send(this.mode === "train" ? OP.trainResume : OP.resume);
    this.setState("running", this.mode === "train" ? "Training…" : "Generating…");
  }

  togglePause() {
    const paused = this.ddpm.state === "paused";
    const train = this.mode === "train";
    engine.worker.send(paused ? (train ? OP.trainResume : OP.resume) : train ? OP.trainPause : OP.pause);
    this.setState(paused ? "running" : "paused", paused ? "Continuing…" : "Paused.");
  }

  async start() {
    this.setState("waiting", "Starting the model…");
    try {
      await take(this);
    } catch (e) {
      this.failed(`The model could not start: ${e.message.replace(/\.$/, "")}.`);
      return;
    }
    this.ddpm.steps = 0;
    this.ddpm.finished = null;
    if (this.mode === "train") {
      this.ddpm.losses = [];
      const cls = classIndex(this.getAttribute("class"));
      const options = {
        from: "scratch",
        classes: [cls >= 0 ? cls : CLASS_NAMES.indexOf("Sneaker")],
        ...TRAINING.scratch,
        seed: TRAINING.seed,
        ema: TRAINING.ema,
      };
      const steps = number(this.getAttribute("steps"), 1, 5000, 300, true);
      this.ddpm.total = steps;
      this.ddpm.began = performance.now();
      engine.worker.send(OP.train, { settings: { options, steps, evalEvery: 1e9, previewEvery: 25, target: 0, sendValues: true, tag: this.tag } });
      this.setState("running", "Training…");
    } else {
      this.current = this.ddpm.settings = this.settings();
      engine.worker.send(OP.generate, { settings: this.current });
      this.setState("running", "Generating…");
    }
  }

  async forward() {
    if (this.busy) {
      this.again = true;
      return;
    }
    this.busy = true;
    try {
      await ensureStarted();
      this.examples ??= await fetchExamples(BASE);
      do {
        this.again = false;
        const t = Number(this.$("t")?.value ?? number(this.getAttribute("t"), 0, 999, 250, true));
        const schedule = SCHEDULES.includes(this.getAttribute("schedule")) ? this.getAttribute("schedule") : "linear";
        const { values: images, count, size } = this.examples;
        const { values } = await call(OP.forward, { images, size, t, schedule, seed: 7, target: 0 });
        this.draw(values, { count, cols: count, size, panels: 1 });
        this.ddpm.t = t;
        this.setState("done", `t = ${t}`);
        this.emit("ddpm-done", { t });
      } while (this.again);
    } catch (e) {
      this.failed(`The forward process could not be shown: ${e.message}.`);
    } finally {
      this.busy = false;
    }
  }

  // `layout`: count, cols, size (the images' side), panels (www/draw2d.js).
  draw(values, layout) {
    const canvas = this.$("canvas");
    const target = Math.round(canvas.clientWidth * (devicePixelRatio || 1)) || 560;
    drawGrid(canvas, values, scaledLayout({ ...layout, colormap: 0 }, target));
  }

  // A generation's x_t beside x̂_0; a morph's row of x_t alone. `this.size`: the model's, from
  // the run's begin event.
  drawRun(values) {
    const { batch } = this.current;
    const size = this.size;
    if (this.mode === "morph") this.draw(values.subarray(0, batch * size * size), { count: batch, cols: batch, size, panels: 1 });
    else this.draw(values, { count: batch, cols: Math.ceil(Math.sqrt(batch)), size, panels: 2 });
  }

  onEngine(m) {
    switch (m.op) {
      case EVENT.begin:
        this.size = m.size;
        this.drawRun(m.values);
        break;
      case EVENT.step:
        this.drawRun(m.values);
        this.ddpm.steps = m.done;
        if (this.ddpm.state === "running") this.$("status").textContent = `Step ${m.done} / ${m.total} · ${m.millis.toFixed(0)} ms`;
        this.emit("ddpm-step", { done: m.done, total: m.total });
        break;
      case EVENT.finished:
        this.ddpm.finished = { total: m.total, seconds: m.seconds, final: m.final };
        release(this);
        this.setState("done", `Done: ${m.total} steps in ${m.seconds.toFixed(1)} s.`);
        this.emit("ddpm-done", { steps: m.total, seconds: m.seconds });
        break;
      case EVENT.trainBegin:
        this.size = m.description.unet.image_size;
        break;
      case EVENT.trainStatus:
        this.$("status").textContent = m.message;
        break;
      case EVENT.trainStep:
        this.ddpm.steps = m.done;
        this.ddpm.losses.push(...m.losses);
        this.$("status").textContent = `Step ${m.done} · ${m.imagesPerSecond.toFixed(0)} images/s`;
        this.emit("ddpm-step", { done: m.done, total: this.ddpm.total });
        this.plotLoss();
        break;
      case EVENT.trainPreview:
        this.draw(m.values, { count: 8, cols: 8, size: this.size, panels: 1 });
        break;
      case EVENT.trainPaused:
        engine.loaded = null; // the worker now holds the weights being trained
        break;
      case EVENT.trainFinished:
        engine.loaded = null;
        release(this);
        this.setState("done", `Done: ${m.done} steps.`);
        this.emit("ddpm-done", { steps: m.done, seconds: (performance.now() - this.ddpm.began) / 1000 });
        break;
      case EVENT.error:
      case EVENT.trainError:
        this.failed(`Stopped: ${m.message}`);
        break;
    }
  }

  plotLoss() {
    const { ctx, w, h, pad } = plotContext(this.$("plot"), { l: 8, r: 8, t: 8, b: 8 });
    const ls = this.ddpm.losses.map((l) => Math.log10(Math.max(l, 1e-4)));
    const lo = Math.min(...ls),
      hi = Math.max(...ls);
    ctx.strokeStyle = "#7cc4ff";
    ctx.beginPath();
    ls.forEach((v, i) => {
      const x = pad.l + (i / Math.max(1, ls.length - 1)) * (w - pad.l - pad.r);
      const y = pad.t + ((hi - v) / Math.max(1e-6, hi - lo)) * (h - pad.t - pad.b);
      i ? ctx.lineTo(x, y) : ctx.moveTo(x, y);
    });
    ctx.stroke();
  }
}

if (!customElements.get("ddpm-demo")) customElements.define("ddpm-demo", DdpmDemo);
