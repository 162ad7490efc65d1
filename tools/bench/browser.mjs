// The browser half of `make bench` (not a test: it asserts nothing about speed). In one headless
// Chromium, on one adapter: our page's reverse step on WebGPU and on its CPU fallback, against
// onnxruntime-web running the same U-Net and weights (tools/bench/ort-bench.js); the share of a
// step spent drawing; page open → first finished sample, cold and warm; bytes of a cold load.
// Usage: node tools/bench/browser.mjs BENCH_DIR  (BENCH_DIR holds unet.onnx and model.probe.json)
import { mkdir, rm, symlink, copyFile, writeFile } from "node:fs/promises";
import { resolve, join } from "node:path";
import { createHash } from "node:crypto";
import { brotliCompressSync, brotliDecompressSync, constants, gunzipSync, gzipSync } from "node:zlib";
import { chromium } from "playwright-core";
import { serve } from "../dev/serve.mjs";
import { CHROMIUM_ARGS } from "../../tests/browser/harness.mjs";

const dir = resolve(process.argv[2] || `${process.env.HOME}/.cache/ddpm-web/bench`);
const RUNS = Number(process.env.RUNS || 5);
const BATCHES = [1, 16];
const here = new URL(".", import.meta.url).pathname;

// One origin serves both: our page under /app/, the peer and its model at the root.
const site = join(dir, "site");
await rm(site, { recursive: true, force: true });
await mkdir(site, { recursive: true });
await symlink(resolve("dist"), join(site, "app"));
await symlink(resolve("node_modules/onnxruntime-web/dist"), join(site, "ort"));
for (const f of ["ort.html", "ort-bench.js"]) await copyFile(join(here, f), join(site, f));
for (const f of ["unet.onnx", "model.probe.json"]) await symlink(join(dir, f), join(site, f));

// Bytes of a load, per kind of file: raw (the file as the page reads it), sent (what went on the wire,
// brotli or gzip where the browser asked for it and `make dist` wrote FILE.br/FILE.gz, else raw), and
// what gzip -9 and brotli -q 11 would make of it. The server only notes each body; compressing waits
// until the timed run is over (brotli at quality 11 would stall the server for a minute).
let served = null; // while set, the files sent
const server = await serve(site, 0, "127.0.0.1", "/", (path, body, encoding) => served?.push({ path, body, encoding }));
const kindOf = (path) =>
  path.endsWith(".wasm")
    ? /ddpm-train[^/]*\.wasm$/.test(path)
      ? "wasm (training)"
      : "wasm (sampling)"
    : path.endsWith(".js")
      ? "js"
      : path.endsWith(".ddpm")
        ? "weights"
        : path.includes("/data/")
          ? "data"
          : "other";
const packedSizes = new Map(); // sha-1 of the raw bytes → { gzip, brotli }
function tally(files) {
  const bytes = {};
  for (const { path, body, encoding } of files) {
    const raw = encoding === "br" ? brotliDecompressSync(body) : encoding === "gzip" ? gunzipSync(body) : body;
    const key = createHash("sha1").update(raw).digest("hex");
    if (!packedSizes.has(key)) {
      packedSizes.set(key, {
        gzip: gzipSync(raw, { level: 9 }).length,
        brotli: brotliCompressSync(raw, {
          params: { [constants.BROTLI_PARAM_QUALITY]: 11, [constants.BROTLI_PARAM_LGWIN]: 24, [constants.BROTLI_PARAM_SIZE_HINT]: raw.length },
        }).length,
      });
    }
    const kind = kindOf(path);
    bytes[kind] ??= { raw: 0, gzip: 0, brotli: 0, sent: 0, files: 0, encodings: [] };
    const b = bytes[kind];
    b.raw += raw.length;
    b.gzip += packedSizes.get(key).gzip;
    b.brotli += packedSizes.get(key).brotli;
    b.sent += body.length;
    b.files += 1;
    if (!b.encodings.includes(encoding ?? "identity")) b.encodings.push(encoding ?? "identity");
  }
  return bytes;
}
const base = `http://127.0.0.1:${server.address().port}/`;
const browser = await chromium.launch({ executablePath: process.env.CHROMIUM || "/usr/bin/chromium", headless: true, args: CHROMIUM_ARGS });
const stats = (ms) => {
  const s = [...ms].sort((a, b) => a - b);
  return { median: s[Math.floor(s.length / 2)], min: s[0], max: s.at(-1), runs: s.length };
};
const log = (...a) => console.error("bench:", ...a);

async function pageReady(page) {
  await page.waitForFunction(() => ["ready", "error"].includes(window.ddpm?.state), null, { timeout: 300000 });
  const [state, status] = await page.evaluate(() => [window.ddpm.state, document.getElementById("status").textContent]);
  if (state !== "ready") throw new Error(`the page did not start: ${status}`);
}

async function generate(page) {
  await page.evaluate(() => {
    window.ddpm.final = null;
  });
  await page.click("#generate");
  await (await page.waitForFunction(() => window.ddpm.final || window.ddpm.state === "error", null, { timeout: 600000 })).dispose();
  return page.evaluate(() => ({ state: window.ddpm.state, steps: window.ddpm.steps.map((s) => ({ millis: s.millis, drawMs: s.drawMs })) }));
}

// Our page: DDIM, no class (one forward pass a step, as the ONNX peer does), 10 steps (20 when
// RUNS ≥ 10) of which the first (shader compilation, allocation) is dropped.
async function ours(backend, batch) {
  const page = await browser.newPage();
  const steps = RUNS < 10 ? 10 : 20;
  await page.goto(`${base}app/?backend=${backend}&sampler=ddim&steps=${steps}&batch=${batch}&class=any&seed=1`);
  await pageReady(page);
  // On WebGPU, the start-up check of the GPU against the CPU path (its cost and its difference).
  const info = await page.evaluate(() => ({
    backend: window.ddpm.backend,
    drawing: window.ddpm.drawing,
    device: document.getElementById("device").textContent,
    check: window.ddpm.check ?? null,
  }));
  const run = await generate(page);
  await page.close();
  if (run.state !== "done") throw new Error(`generation on ${backend} ended in ${run.state}`);
  const kept = run.steps.slice(1);
  const step = stats(kept.map((s) => s.millis + s.drawMs));
  const draw = stats(kept.map((s) => s.drawMs));
  log(`ours ${backend} batch ${batch}: ${step.median.toFixed(1)} ms/step (drawing ${draw.median.toFixed(2)} ms)`);
  return { ...info, step_ms: step, draw_ms: draw, draw_share: draw.median / step.median };
}

async function peer(ep) {
  const page = await browser.newPage();
  await page.goto(`${base}ort.html`);
  await page.waitForFunction(() => window.benchReady);
  try {
    const r = await page.evaluate((o) => window.runBench(o), { ep, batches: BATCHES, runs: RUNS, nullClass: 10 });
    const out = { max_abs_diff_vs_burn: r.maxDiff, step_ms: Object.fromEntries(Object.entries(r.ms).map(([b, ms]) => [b, stats(ms)])) };
    log(
      `onnxruntime-web ${ep}:`,
      Object.entries(out.step_ms)
        .map(([b, s]) => `batch ${b} ${s.median.toFixed(1)} ms`)
        .join(", "),
      `(max |diff| vs Burn ${r.maxDiff.toExponential(1)})`,
    );
    return out;
  } catch (e) {
    log(`onnxruntime-web ${ep} failed: ${e.message.split("\n")[0]}`);
    return { error: e.message.split("\n")[0] };
  } finally {
    await page.close();
  }
}

// Training in the tab on the CPU path, as a reader starts it (batch 8): the images per second the
// page reports for each chunk of steps, the first chunk (module load, first step) dropped.
const TRAIN_STEPS = RUNS < 10 ? 40 : 80;
async function trainInTab(from) {
  const page = await browser.newPage();
  await page.goto(`${base}app/?backend=cpu`);
  await pageReady(page);
  await page.selectOption("#train-from", from);
  await page.selectOption("#train-batch", "8");
  await page.fill("#train-steps", String(TRAIN_STEPS));
  await page.click("#train-start");
  await page.waitForFunction(() => ["done", "error"].includes(window.ddpm.train.state), null, { timeout: 600000 });
  const t = await page.evaluate(() => ({
    state: window.ddpm.train.state,
    rates: window.ddpm.train.rates,
    info: document.getElementById("train-info").textContent,
  }));
  await page.close();
  if (t.state !== "done") throw new Error(`training (${from}) ended in ${t.state}: ${t.info}`);
  const rate = stats(t.rates.length > 1 ? t.rates.slice(1) : t.rates);
  log(`in-tab training on the CPU, ${from}: ${rate.median.toFixed(1)} img/s`);
  return { batch: 8, steps: TRAIN_STEPS, images_per_s: rate };
}

const TRAINING_FILES = ["ddpm-train_bg.wasm", "data/t10k-images-idx3-ubyte.gz", "data/t10k-labels-idx1-ubyte.gz"];

// Page open → first finished sample with the default settings, as a reader would click; the
// warm run reloads in the same profile (weights from the Cache API; the server says no-cache, so
// the rest is fetched again). Bytes are counted as the server sends them, workers' fetches included;
// then what starting training would fetch on top.
async function firstSample() {
  const context = await browser.newContext();
  const page = await context.newPage();
  // Timed from the click on the link (navigation start), not from the load event.
  const once = async (navigate) => {
    const started = Date.now();
    await navigate();
    await pageReady(page);
    const readyMs = Date.now() - started;
    const run = await generate(page);
    return { ready_ms: readyMs, first_sample_ms: Date.now() - started, steps: run.steps.length, state: run.state };
  };
  served = [];
  const cold = await once(() => page.goto(`${base}app/`));
  const coldFiles = served;
  const backend = await page.evaluate(() => window.ddpm.backend);
  served = [];
  const warm = await once(() => page.reload());
  const warmFiles = served;
  // What starting training fetches on top (www/worker.js, www/train-worker.js): the training module
  // and the data, fetched here by the page itself so that the browser negotiates the encoding.
  served = [];
  await page.evaluate(async (paths) => {
    for (const p of paths) await (await fetch(new URL(p, location.href), { cache: "no-store" })).arrayBuffer();
  }, TRAINING_FILES);
  const trainingFiles = served;
  served = null;
  await context.close();
  log(`first sample (${backend}): cold ${cold.first_sample_ms} ms, warm ${warm.first_sample_ms} ms; counting bytes (brotli -q 11)…`);
  return { backend, cold, warm, cold_bytes: tally(coldFiles), warm_bytes: tally(warmFiles), training_bytes: tally(trainingFiles) };
}

const result = { chromium: browser.version() };
try {
  const probe = await browser.newPage();
  await probe.goto(`${base}ort.html`);
  result.adapter = await probe.evaluate(async () => {
    const a = await navigator.gpu?.requestAdapter();
    return a ? { vendor: a.info.vendor, architecture: a.info.architecture, description: a.info.description, fallback: a.info.isFallbackAdapter } : null;
  });
  await probe.close();
  log("adapter:", JSON.stringify(result.adapter));
  result.ours = { webgpu: {}, cpu: {} };
  for (const batch of BATCHES) {
    result.ours.webgpu[batch] = await ours("webgpu", batch);
    result.ours.cpu[batch] = await ours("cpu", batch);
  }
  result.ort = { webgpu: await peer("webgpu"), wasm: await peer("wasm") };
  result.train_in_tab = { finetune: await trainInTab("active"), scratch: await trainInTab("scratch") };
  result.first_sample = await firstSample();
} finally {
  await browser.close();
  server.close();
}
await writeFile(join(dir, "browser.json"), JSON.stringify(result, null, 1));
console.log(JSON.stringify(result));
