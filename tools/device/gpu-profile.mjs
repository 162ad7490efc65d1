// Where a sampling step's time goes on Dawn (npm `webgpu`), for the page's own wasm engine: it
// records every dispatch of one reverse step, then replays each alone (its pipeline, bind groups
// and workgroup count, three times in one submit) and sums the time per kernel. It also gives the
// CPU time of the thread that runs the wasm during the step: a step far longer than its kernels'
// sum is spent in the engine, not on the GPU. Not a test, and not a benchmark: replayed kernels
// run without their neighbours, so their sum is a share, not a prediction.
// Usage: node tools/device/gpu-profile.mjs [DIST]   (`make web` first; SwiftShader: VK_ICD_FILENAMES=
// /usr/lib/chromium/vk_swiftshader_icd.json). Environment: BATCH (1); SKIP (steps before the one
// recorded, 1; with CLASS set, steps from t = 600 on are guided, two forwards each); CLASS (none);
// TRAIN=1 records a training step at batch 16 instead (DATA: Fashion-MNIST's IDX files).
import { readFileSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { actAsWorker, beginTraining } from "./dawn-worker.mjs";

const dist = resolve(process.argv[2] ?? "dist");
const BATCH = Number(process.env.BATCH ?? 1);
const SKIP = Number(process.env.SKIP ?? 1);
actAsWorker();
globalThis.ddpmOnGpuError = (message) => console.error(`GPU error: ${message}`);

// Name every pipeline after its shader's label (CubeCL names the kernel), and note each dispatch
// while recording.
const kernelName = new Map();
let device = null;
const Device = globalThis.GPUDevice.prototype;
for (const create of ["createComputePipeline", "createComputePipelineAsync"]) {
  const original = Device[create];
  Device[create] = function (descriptor) {
    device = this;
    const name = descriptor.label || descriptor.compute.module.label || "?";
    const pipeline = original.call(this, descriptor);
    if (pipeline instanceof Promise) {
      return pipeline.then((p) => {
        kernelName.set(p, name);
        return p;
      });
    }
    kernelName.set(pipeline, name);
    return pipeline;
  };
}
const Pass = globalThis.GPUComputePassEncoder.prototype;
const { setPipeline, setBindGroup, dispatchWorkgroups } = Pass;
let recording = false;
const dispatches = [];
const state = new WeakMap();
Pass.setPipeline = function (pipeline) {
  state.set(this, { ...state.get(this), pipeline });
  return setPipeline.call(this, pipeline);
};
Pass.setBindGroup = function (index, group, ...rest) {
  const s = state.get(this) ?? {};
  const groups = [...(s.groups ?? [])];
  groups[index] = [group, ...rest];
  state.set(this, { ...s, groups });
  return setBindGroup.call(this, index, group, ...rest);
};
Pass.dispatchWorkgroups = function (x, y = 1, z = 1) {
  if (recording) dispatches.push({ ...state.get(this), size: [x, y, z] });
  return dispatchWorkgroups.call(this, x, y, z);
};

// CPU time (ms) of this thread: Node runs the wasm on its main thread, Dawn's GPU work elsewhere.
const threadCpuMs = () => {
  const fields = readFileSync(`/proc/self/task/${process.pid}/stat`, "utf8").split(") ")[1].split(" ");
  return (Number(fields[11]) + Number(fields[12])) * 10;
};

const { Engine, setKernels } = await import(pathToFileURL(join(dist, "ddpm-web.js")));
const { loadEngine, loadTraining } = await import(pathToFileURL(join(dist, "wasm.js")));
await loadEngine();
setKernels(process.env.KERNELS !== "off");
const engine = await Engine.start("webgpu", false);
engine.load(await readFile(join(dist, "assets/model.ddpm")));
let step;
if (process.env.TRAIN === "1") {
  await beginTraining(engine, loadTraining);
  step = () => engine.trainSteps(1);
} else {
  const guided = process.env.CLASS !== undefined;
  const settings = {
    sampler: "ddim",
    steps: 10,
    eta: 0,
    seed: 3,
    class: guided ? Number(process.env.CLASS) : -1,
    guidance: guided ? 2 : 0,
    interval: "0-600",
    batch: BATCH,
  };
  engine.begin(JSON.stringify(settings));
  await engine.noise();
  step = () => engine.step();
}
for (let i = 0; i <= SKIP; i++) {
  const report = await step();
  console.log(`step ${i + 1}: ${report.millis.toFixed(1)} ms`);
  report.free();
}
const cpuBefore = threadCpuMs();
recording = true;
const report = await step();
recording = false;
console.log(`recorded step: ${report.millis.toFixed(1)} ms, ${dispatches.length} dispatches, ${threadCpuMs() - cpuBefore} ms CPU on the engine's thread`);
report.free();

const REPEAT = 3;
const perKernel = new Map();
let total = 0;
for (const d of dispatches) {
  const encoder = device.createCommandEncoder();
  const pass = encoder.beginComputePass();
  setPipeline.call(pass, d.pipeline);
  (d.groups ?? []).forEach((g, i) => g && setBindGroup.call(pass, i, ...g));
  for (let k = 0; k < REPEAT; k++) dispatchWorkgroups.call(pass, ...d.size);
  pass.end();
  await device.queue.onSubmittedWorkDone();
  const started = performance.now();
  device.queue.submit([encoder.finish()]);
  await device.queue.onSubmittedWorkDone();
  const ms = (performance.now() - started) / REPEAT;
  total += ms;
  const name = kernelName.get(d.pipeline) ?? "?";
  const entry = perKernel.get(name) ?? { launches: 0, ms: 0 };
  perKernel.set(name, { launches: entry.launches + 1, ms: entry.ms + ms });
}
console.log(`replayed alone: ${total.toFixed(1)} ms in all\n     ms  launches  kernel`);
for (const [name, { launches, ms }] of [...perKernel].sort((a, b) => b[1].ms - a[1].ms)) {
  console.log(`${ms.toFixed(1).padStart(7)}  ${String(launches).padStart(8)}  ${name}`);
}
process.exit(0);
