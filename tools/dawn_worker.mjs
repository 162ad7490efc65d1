// What a dedicated worker offers the page's engine, set up in Node on Dawn (npm `webgpu`, Chrome's
// WebGPU): navigator.gpu, a WorkerGlobalScope (wgpu looks for one to find navigator), and fetch
// for the files beside the module. DAWN holds Dawn's options, comma-separated.
import { readFile } from "node:fs/promises";
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
