// The page's glue: waits for the wasm module, picks a backend, and shows what happened.
// All computation happens in Rust (src/web); this file only talks to the DOM.

const $ = (id) => document.getElementById(id);
const N = 64;
let gpuAvailable = false;

function enableButtons(on) {
  $("run-cpu").disabled = !on;
  $("run-webgpu").disabled = !on || !gpuAvailable;
}

// Called by the wasm module's panic hook: after a panic the module cannot be used again.
window.ddpmOnPanic = (message) => {
  setStatus("error", "The model runtime crashed. Reload the page to start again.");
  notice(`Details: ${String(message).split("\n")[0]}`);
  enableButtons(false);
};

function setStatus(state, text) {
  const el = $("status");
  el.dataset.state = state;
  el.textContent = text;
}

function notice(text) {
  const el = $("notice");
  el.hidden = !text;
  el.textContent = text || "";
}

// Resolves with Trunk's wasm bindings, or rejects if the module never starts.
function wasmReady(timeoutMs = 60000) {
  if (window.wasmBindings) return Promise.resolve(window.wasmBindings);
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error("the WebAssembly module did not start")), timeoutMs);
    addEventListener("TrunkApplicationStarted", () => { clearTimeout(timer); resolve(window.wasmBindings); }, { once: true });
  });
}

// What the browser offers: no WebGPU at all, no adapter, a software adapter, or a real GPU.
async function probeWebGpu() {
  if (!("gpu" in navigator)) return { ok: false, why: "This browser has no WebGPU." };
  let adapter = null;
  try { adapter = await navigator.gpu.requestAdapter(); } catch (e) { /* reported below */ }
  if (!adapter) return { ok: false, why: "WebGPU is present but offers no GPU adapter." };
  const info = adapter.info || {};
  const software = info.isFallbackAdapter || info.architecture === "swiftshader";
  return { ok: true, software, name: [info.vendor, info.architecture].filter(Boolean).join(" ") };
}

async function run(bindings, backend, gpuName) {
  enableButtons(false);
  setStatus("running", `Running a ${N}×${N} matrix product on ${backend === "webgpu" ? "WebGPU" : "the CPU"}…`);
  try {
    const report = await bindings.selftest(backend, N);
    const product = report.product;
    let checksum = 0;
    for (let i = 0; i < product.length; i++) checksum += product[i] * ((i % 7) - 3);
    $("backend").textContent = backend === "webgpu" ? "WebGPU (Burn wgpu)" : "CPU (Burn flex, wasm)";
    const adapter = report.adapter || gpuName || "WebGPU adapter";
    $("adapter").textContent = adapter + (report.fallback ? " (software)" : "");
    $("timing").textContent = `${report.millis.toFixed(1)} ms`;
    $("checksum").textContent = checksum.toFixed(4);
    window.ddpmSelftest = { backend, n: report.n, product: Array.from(product), adapter };
    setStatus("done", `Done: Burn computed the product on ${backend === "webgpu" ? "the GPU" : "the CPU"}.`);
  } catch (e) {
    setStatus("error", `Failed on ${backend}: ${e.message || e}`);
  } finally {
    enableButtons(true);
  }
}

async function main() {
  let bindings;
  try {
    bindings = await wasmReady();
  } catch (e) {
    setStatus("error", `Could not start: ${e.message}. Reload the page; if it persists, your browser may not support WebAssembly.`);
    return;
  }
  const gpu = await probeWebGpu();
  gpuAvailable = gpu.ok;
  enableButtons(true);
  $("run-webgpu").addEventListener("click", () => run(bindings, "webgpu", gpu.name));
  $("run-cpu").addEventListener("click", () => run(bindings, "cpu"));
  if (!gpu.ok) {
    notice(`${gpu.why} Running on the CPU instead (slower). Chrome, Edge and recent Safari/Firefox have WebGPU.`);
    return run(bindings, "cpu");
  }
  if (gpu.software) {
    notice(`Your WebGPU adapter (${gpu.name}) is a software renderer; on it the CPU path is usually faster.`);
  }
  return run(bindings, "webgpu", gpu.name);
}

main();
