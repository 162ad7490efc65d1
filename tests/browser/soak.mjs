// `make soak` (not part of `make test`): long runs must keep memory flat. Clicks Generate
// GENERATIONS times (default 500; DDIM 10 steps, one image, CPU path), then GPU_GENERATIONS
// times on WebGPU (default 40: a software adapter here takes seconds a step) reading the GPU
// allocator's bytes, and then trains for TRAIN_MINUTES (default 30; the small model), sampling
// the wasm heap of the worker and the JS heaps of page and worker along the way. Prints the
// curves and fails if the heaps grew in the second half of a run (after warm-up) by more than
// 5 % + 256 KB.
import assert from "node:assert/strict";
import { start, open, ready } from "./harness.mjs";

const GENERATIONS = Number(process.env.GENERATIONS || 500);
const TRAIN_MINUTES = Number(process.env.TRAIN_MINUTES || 30);
const GPU_GENERATIONS = Number(process.env.GPU_GENERATIONS ?? 40);
const mb = (b) => (b === null ? "n/a" : (b / 2 ** 20).toFixed(2));

const QUERY = "?sampler=ddim&steps=10&batch=1&seed=1";
const ctx = await start();
let { page, errors } = await open(ctx, { query: QUERY });
const memory = async () => {
  await page.evaluate(() => window.gc?.());
  const { device, ...m } = await page.evaluate(() => window.ddpm.memory());
  return { ...m, deviceInUse: device?.inUse ?? null, deviceReserved: device?.reserved ?? null };
};

function check(name, samples) {
  console.log(`${name}:`);
  for (const s of samples)
    console.log(
      `  ${String(s.at).padStart(6)}  wasm ${mb(s.wasmBytes)} MB  worker JS heap ${mb(s.workerHeap)} MB  page heap ${mb(s.pageHeap)} MB  GPU buffers in use ${mb(s.deviceInUse)} MB, reserved ${mb(s.deviceReserved)} MB`,
    );
  const half = samples[Math.floor(samples.length / 2)],
    last = samples.at(-1);
  for (const key of ["wasmBytes", "workerHeap", "pageHeap", "deviceInUse", "deviceReserved"].filter((k) => last[k] !== null)) {
    assert.ok(last[key] <= half[key] * 1.05 + 2 ** 18, `${name}: ${key} grew from ${mb(half[key])} to ${mb(last[key])} MB`);
  }
}

try {
  await ready(page);
  await clicks(GENERATIONS, "Generate clicks (CPU)");
  if (GPU_GENERATIONS > 0) {
    await reopen(`${QUERY}&backend=webgpu`);
    assert.equal(await page.evaluate(() => window.ddpm.backend), "webgpu");
    await clicks(GPU_GENERATIONS, "Generate clicks (WebGPU)");
    await reopen(QUERY);
  }
  if (TRAIN_MINUTES > 0) await soakTraining();
  assert.deepEqual(errors, []);
  console.log("soak: memory stayed flat");
} finally {
  await ctx.close();
}

// A fresh page (after checking that the last one logged no error).
async function reopen(query) {
  assert.deepEqual(errors, []);
  await page.close();
  ({ page, errors } = await open(ctx, { query }));
  await ready(page);
}

async function clicks(count, name) {
  const samples = [];
  for (let i = 1; i <= count; i++) {
    await page.evaluate(() => {
      window.ddpm.final = null;
    });
    await page.click("#generate");
    // waitForFunction hands back a handle to the final images: dispose of it, or the test itself
    // keeps every generation's images alive in the page (3 KB a click, which looked like a leak).
    await (await page.waitForFunction(() => window.ddpm.final || window.ddpm.state === "error", null, { timeout: 120000 })).dispose();
    assert.equal(await page.evaluate(() => window.ddpm.state), "done");
    if (i % Math.max(1, Math.floor(count / 20)) === 0 || i === 1) samples.push({ at: i, ...(await memory()) });
  }
  check(`${count} ${name}`, samples);
}

async function soakTraining() {
  await page.selectOption("#train-from", "scratch");
  await page.fill("#train-steps", "20000");
  await page.click("#train-start");
  const train = [];
  const t0 = Date.now();
  while (Date.now() - t0 < TRAIN_MINUTES * 60000) {
    await page.waitForTimeout(Math.min(60000, (TRAIN_MINUTES * 60000) / 20));
    const steps = await page.evaluate(() => window.ddpm.train.done);
    train.push({ at: `${Math.round((Date.now() - t0) / 1000)}s/${steps}`, ...(await memory()) });
  }
  await page.click("#train-stop");
  check(`${TRAIN_MINUTES} minutes of training`, train);
}
