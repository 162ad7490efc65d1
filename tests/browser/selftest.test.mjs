// The walking skeleton: the page starts Burn on WebGPU (or the CPU when there is none), runs a
// matrix product, and the test checks it against a product computed here in float64.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { start, open } from "./harness.mjs";

let ctx;
before(async () => { ctx = await start(); });
after(async () => { await ctx?.close(); });

// The same closed forms as src/web (a = sin(i + 2j), b = cos(3i − j)), multiplied independently.
function expectedProduct(n) {
  const a = (i, j) => Math.sin(Math.fround(i + 2 * j));
  const b = (i, j) => Math.cos(Math.fround(3 * i - j));
  const c = new Float64Array(n * n);
  for (let i = 0; i < n; i++)
    for (let j = 0; j < n; j++) {
      let s = 0;
      for (let k = 0; k < n; k++) s += a(i, k) * b(k, j);
      c[i * n + j] = s;
    }
  return c;
}

async function finished(page) {
  await page.waitForFunction(() => ["done", "error"].includes(document.getElementById("status").dataset.state), null, { timeout: 120000 });
  return page.evaluate(() => ({
    state: document.getElementById("status").dataset.state,
    status: document.getElementById("status").textContent,
    notice: document.getElementById("notice").hidden ? "" : document.getElementById("notice").textContent,
    result: window.ddpmSelftest,
  }));
}

function assertProduct(result) {
  const want = expectedProduct(result.n);
  assert.equal(result.product.length, want.length);
  let worst = 0;
  for (let i = 0; i < want.length; i++) worst = Math.max(worst, Math.abs(result.product[i] - want[i]));
  assert.ok(worst < 1e-3, `max |gpu − reference| = ${worst}`);
}

test("Burn on WebGPU computes the right product and names the adapter", async () => {
  const { page, errors, foreign } = await open(ctx);
  const out = await finished(page);
  assert.equal(out.state, "done", out.status);
  assert.equal(out.result.backend, "webgpu");
  assert.ok(out.result.adapter.length > 0, "adapter name shown");
  assertProduct(out.result);
  // SwiftShader is a software adapter: the page must say so.
  assert.match(out.notice, /software/);
  assert.deepEqual(errors, []);
  assert.deepEqual(foreign, []);
  await page.close();
});

test("without WebGPU the page says so and runs on the CPU", async () => {
  const { page, errors } = await open(ctx, { initScript: () => { delete Navigator.prototype.gpu; } });
  const out = await finished(page);
  assert.equal(out.state, "done", out.status);
  assert.equal(out.result.backend, "cpu");
  assert.match(out.notice, /no WebGPU/);
  assert.ok(await page.locator("#run-webgpu").isDisabled(), "the WebGPU button is disabled");
  assertProduct(out.result);
  assert.deepEqual(errors, []);
  await page.close();
});

test("a person can switch backends by clicking", async () => {
  const { page } = await open(ctx);
  await finished(page);
  await page.click("#run-cpu");
  await page.waitForFunction(() => window.ddpmSelftest?.backend === "cpu" && document.getElementById("status").dataset.state === "done");
  const result = await page.evaluate(() => window.ddpmSelftest);
  assertProduct(result);
  if (process.env.SCREENSHOT) await page.screenshot({ path: process.env.SCREENSHOT, fullPage: true });
  await page.close();
});
