// `make gpu-check`: the page's own wasm engine (dist/, as the browser loads it) in Node on Dawn,
// Chrome's WebGPU implementation (npm `webgpu`), on whatever adapter Dawn finds. It prints the
// adapter; per batch, the first step (pipeline compilation) and the steady step of guided DDIM; a
// training step; and how far the WebGPU images are from the CPU path's (the same engine on Burn's
// flex backend). Exits 1 if they differ by more than the page's own test allows.
// Usage: node tools/device/gpu-check.mjs [DIST] [--json FILE]
// Environment: DAWN (Dawn's options, comma-separated, e.g. "backend=vulkan,adapter=NVIDIA");
// STEPS (DDIM steps, 10); BATCHES ("1,16"); TRAIN_STEPS (3); DATA (Fashion-MNIST's IDX files);
// KERNELS=off (Burn's operations alone, without the U-Net's own kernels: what they save).
import { readFile, writeFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { actAsWorker, beginTraining } from "./dawn-worker.mjs";

const args = process.argv.slice(2);
const jsonAt = args.indexOf("--json");
const jsonPath = jsonAt >= 0 ? args.splice(jsonAt, 2)[1] : null;
const dist = resolve(args[0] ?? "dist");
const STEPS = Number(process.env.STEPS ?? 10);
const BATCHES = (process.env.BATCHES ?? "1,16").split(",").map(Number);
const TRAIN_STEPS = Number(process.env.TRAIN_STEPS ?? 3);
// The page's test "forced WebGPU generates the same images as the CPU path" allows this much.
const TOLERANCE = 0.02;

const gpu = actAsWorker();
const gpuErrors = [];
globalThis.ddpmOnGpuError = (message) => {
  gpuErrors.push(message);
  console.error(`GPU error: ${message}`);
};
globalThis.ddpmOnDeviceLost = (message) => {
  gpuErrors.push(`device lost: ${message}`);
  console.error(`device lost: ${message}`);
};
globalThis.ddpmOnPanic = (message) => console.error(`panic: ${message}`);

const adapter = await gpu.requestAdapter({ powerPreference: "high-performance" });
if (!adapter) {
  console.error("Dawn found no adapter. On a machine without a GPU, `make gpu-check SOFTWARE=1` uses Chromium's SwiftShader.");
  process.exit(2);
}
const info = adapter.info;
const adapterInfo = {
  vendor: info.vendor,
  architecture: info.architecture,
  device: info.device,
  description: info.description,
  subgroups: adapter.features.has("subgroups"),
};
console.log(`adapter: ${JSON.stringify(adapterInfo)}`);

const { Engine, setKernels } = await import(pathToFileURL(join(dist, "ddpm-web.js")));
const { loadEngine, loadTraining } = await import(pathToFileURL(join(dist, "wasm.js")));
await loadEngine();
const kernels = process.env.KERNELS !== "off";
setKernels(kernels);
console.log(`the U-Net's own kernels: ${kernels ? "on" : "off (Burn's operations alone)"}`);
const weights = await readFile(join(dist, "assets/model.ddpm"));
const median = (xs) => (xs.length ? [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] : null);
const ms = (x, digits) => (x === null ? "–" : `${x.toFixed(digits)} ms`);

async function sample(engine, batch) {
  const settings = { sampler: "ddim", steps: STEPS, eta: 0, seed: 3, class: 7, guidance: 2, interval: "0-600", batch };
  engine.begin(JSON.stringify(settings));
  await engine.noise();
  const millis = [];
  let values = null;
  for (let report = await engine.step(); report; report = await engine.step()) {
    millis.push(report.millis);
    values = report.values;
    report.free();
  }
  return { millis, final: values.slice(0, batch * 28 * 28) };
}

const gpuEngine = await Engine.start("webgpu", false);
const cpuEngine = await Engine.start("cpu", false);
console.log(`engine: ${gpuEngine.adapter}${gpuEngine.software ? " (a software adapter)" : ""}${gpuEngine.note ? `; ${gpuEngine.note}` : ""}`);
gpuEngine.load(weights);
cpuEngine.load(weights);

const result = { adapter: adapterInfo, engine: gpuEngine.adapter, kernels, steps: STEPS, sampling: [], training: null, gpuErrors };
let worst = 0;
for (const batch of BATCHES) {
  const webgpu = await sample(gpuEngine, batch);
  const cpu = await sample(cpuEngine, batch);
  const diff = webgpu.final.reduce((m, v, i) => Math.max(m, Math.abs(v - cpu.final[i])), 0);
  worst = Math.max(worst, diff);
  const row = {
    batch,
    firstStepMs: webgpu.millis[0],
    steadyStepMs: median(webgpu.millis.slice(1)),
    cpuStepMs: median(cpu.millis.slice(1)),
    maxDiffFromCpu: diff,
  };
  result.sampling.push(row);
  console.log(
    `guided DDIM step, batch ${batch}: first ${ms(row.firstStepMs, 0)}, then ${ms(row.steadyStepMs, 1)} (CPU path ${ms(row.cpuStepMs, 1)}); max |webgpu − cpu| ${diff.toExponential(2)}`,
  );
}

if (TRAIN_STEPS > 0) {
  await beginTraining(gpuEngine, loadTraining);
  const millis = [];
  for (let i = 0; i < TRAIN_STEPS; i++) {
    const report = await gpuEngine.trainSteps(1);
    millis.push(report.millis);
    report.free();
  }
  gpuEngine.endTraining();
  result.training = { batch: 16, firstStepMs: millis[0], steadyStepMs: median(millis.slice(1)) };
  console.log(`training step, batch 16: first ${ms(millis[0], 0)}, then ${ms(result.training.steadyStepMs, 1)}`);
}

if (jsonPath) await writeFile(jsonPath, `${JSON.stringify(result, null, 2)}\n`);
const ok = worst <= TOLERANCE && gpuErrors.length === 0;
console.log(
  ok
    ? `gpu-check: passed (images within ${TOLERANCE} of the CPU path's, no GPU errors)`
    : `gpu-check: FAILED (max difference ${worst}, ${gpuErrors.length} GPU errors)`,
);
process.exit(ok ? 0 : 1);
