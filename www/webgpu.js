// Is there a WebGPU adapter, and is it a real GPU? (On a software adapter such as SwiftShader the
// CPU path in wasm is much faster, so the page and the embed element both choose it there.)
export async function probeWebGpu() {
  if (!("gpu" in navigator)) return { ok: false, why: "This browser has no WebGPU." };
  let adapter = null;
  try {
    adapter = await navigator.gpu.requestAdapter({ powerPreference: "high-performance" });
  } catch {
    /* below */
  }
  if (!adapter) return { ok: false, why: "WebGPU is present but offers no GPU adapter." };
  const info = adapter.info || {};
  const software = Boolean(info.isFallbackAdapter) || info.architecture === "swiftshader";
  return { ok: true, software, name: [info.vendor, info.architecture].filter(Boolean).join(" ") || "WebGPU adapter" };
}

// Module workers (the engine's worker imports the wasm module): asked without starting one, by
// whether the browser reads the `type` option at all.
export function moduleWorkers() {
  let asked = false;
  try {
    new Worker("http://[", {
      get type() {
        asked = true;
        return "module";
      },
    });
  } catch {
    /* the URL is invalid on purpose: nothing starts */
  }
  return asked;
}
