// The peer of `make bench`: onnxruntime-web (npm) running the reference PyTorch U-Net, exported
// to ONNX with our weights, on the WebGPU or the wasm execution provider. It first checks its
// output against Burn's on the probe (tools/bench/pytorch.py writes both), then times session.run.
import * as ort from "./ort/ort.all.min.mjs";

ort.env.wasm.wasmPaths = new URL("./ort/", location.href).href;
// Our CPU fallback is single-threaded wasm; without cross-origin isolation ORT is too.
ort.env.wasm.numThreads = 1;

const feeds = (x, t, labels, batch) => ({
  x: new ort.Tensor("float32", x, [batch, 1, 28, 28]),
  t: new ort.Tensor("float32", Float32Array.from(t), [batch]),
  labels: new ort.Tensor("int64", BigInt64Array.from(labels, BigInt), [batch]),
});

window.runBench = async ({ ep, batches, runs, nullClass }) => {
  const session = await ort.InferenceSession.create("unet.onnx", { executionProviders: [ep] });
  const probe = await (await fetch("model.probe.json")).json();
  const [n] = probe.shape;
  const out = await session.run(feeds(Float32Array.from(probe.x), probe.t, probe.labels, n));
  const maxDiff = out.eps.data.reduce((m, v, i) => Math.max(m, Math.abs(v - probe.eps[i])), 0);
  const ms = {};
  for (const batch of batches) {
    const x = Float32Array.from({ length: batch * 784 }, (_, i) => Math.sin(i * 12.9898) % 1);
    const f = feeds(x, Array(batch).fill(500), Array(batch).fill(nullClass), batch);
    await session.run(f); // warm-up: shader compilation, allocation
    ms[batch] = [];
    for (let i = 0; i < runs; i++) {
      const started = performance.now();
      const r = await session.run(f);
      r.eps.data; // on the CPU already (ORT's default output location), as the page's step reads x back
      ms[batch].push(performance.now() - started);
    }
  }
  await session.release();
  return { maxDiff, ms };
};
window.benchReady = true;
