// What a dedicated worker offers the page's engine, set up in Node on Dawn (npm `webgpu`, Chrome's
// WebGPU): navigator.gpu, a WorkerGlobalScope (wgpu looks for one to find navigator), and fetch
// for the files beside the module. DAWN holds Dawn's options, comma-separated.
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { create, globals } from "webgpu";

export function actAsWorker() {
  const gpu = create((process.env.DAWN ?? "").split(",").filter(Boolean));
  Object.assign(globalThis, globals);
  Object.defineProperty(globalThis, "navigator", { value: { gpu }, configurable: true });
  globalThis.WorkerGlobalScope ??= class WorkerGlobalScope {};
  const webFetch = globalThis.fetch;
  globalThis.fetch = async (url) => {
    const u = new URL(url);
    if (u.protocol !== "file:") return webFetch(url);
    const type = u.pathname.endsWith(".wasm") ? "application/wasm" : "application/octet-stream";
    return new Response(await readFile(u), { headers: { "content-type": type } });
  };
  return gpu;
}

/** Starts fine-tuning `engine`'s model at batch 16 on Fashion-MNIST's test split (class 7), the
 * training step the tools time; DATA holds the IDX files. */
export async function beginTraining(engine, loadTraining) {
  const data = process.env.DATA ?? "/usr/share/datasets/fashion-mnist";
  await loadTraining(() => {});
  const [images, labels] = await Promise.all(["t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"].map((f) => readFile(join(data, f))));
  engine.loadData(images, labels);
  engine.beginTraining(JSON.stringify({ from: "active", classes: [7], batch: 16, lr: 1e-4, seed: 1, ema: 0.999 }));
}
