// The browser-engine part of `make bench` (not a test): the page's reverse step in each engine the
// tests drive (Chromium, Firefox, WebKit), on the path each takes by itself, at batch 1 and 4.
// Usage: node tools/bench/engines.mjs [BENCH_DIR]  (writes engines.json there, prints a table)
import { writeFileSync, mkdirSync } from "node:fs";
import { join, resolve } from "node:path";
import { generate, inBrowser, open, ready } from "../../tests/browser/harness.mjs";
import { inWebKit } from "../../tests/browser/webkit.mjs";

const dir = resolve(process.argv[2] || `${process.env.HOME}/.cache/ddpm-web/bench`);
const BATCHES = [1, 4];
const STEPS = 20; // the first two (allocation, warm-up) are dropped
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const query = (batch) => `?sampler=ddim&steps=${STEPS}&eta=0&seed=1&class=7&guidance=2&batch=${batch}`;

async function measure(page) {
  await ready(page);
  const row = await page.evaluate(() => ({
    backend: window.ddpm.backend,
    drawing: window.ddpm.drawing,
    webgpu: "gpu" in navigator,
    agent: navigator.userAgent,
  }));
  row.step_ms = {};
  for (const batch of BATCHES) {
    await page.evaluate((b) => {
      document.getElementById("batch").value = String(b);
    }, batch);
    const { steps } = await generate(page);
    row.step_ms[batch] = median(steps.slice(2).map((s) => s.millis + s.drawMs));
  }
  return row;
}

const results = {};
for (const name of ["chromium", "firefox"]) {
  results[name] = await inBrowser(name, async (ctx) => {
    const { page } = await open(ctx, { query: query(1) });
    return measure(page);
  });
}
results.webkit = await inWebKit(query(1), async (page) => ({ ...(await measure(page)), version: page.version })).catch((e) => ({ error: e.message }));
mkdirSync(dir, { recursive: true });
writeFileSync(join(dir, "engines.json"), `${JSON.stringify(results, null, 1)}\n`);
for (const [name, r] of Object.entries(results)) {
  console.log(
    r.error
      ? `${name}: ${r.error}`
      : `${name}: ${r.backend} (drawing: ${r.drawing}), ${BATCHES.map((b) => `batch ${b} ${r.step_ms[b].toFixed(0)} ms/step`).join(", ")}`,
  );
}
