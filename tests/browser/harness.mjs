// Shared set-up for the browser tests: serve dist/ and start Debian's chromium with WebGPU.
import assert from "node:assert/strict";
import { chromium } from "playwright-core";
import { serve } from "../serve.mjs";

export const CHROMIUM_ARGS = [
  "--no-sandbox", "--enable-unsafe-webgpu", "--disable-background-networking",
  "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic",
  "--js-flags=--expose-gc", // lets soak runs collect garbage before reading the heap
];

export async function start({ prefix = "/" } = {}) {
  const server = await serve("dist", 0, "127.0.0.1", prefix);
  const url = `http://127.0.0.1:${server.address().port}${prefix}`;
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    headless: true,
    args: CHROMIUM_ARGS,
  });
  return {
    url,
    browser,
    async close() { await browser.close(); server.close(); },
  };
}

// A page that records console errors and every request that leaves the page's origin.
export async function open(ctx, { initScript, query = "", viewport } = {}) {
  const page = await ctx.browser.newPage(viewport ? { viewport } : {});
  const errors = [];
  const foreign = [];
  page.on("console", (m) => { if (m.type() === "error") errors.push(m.text()); });
  page.on("pageerror", (e) => errors.push(String(e)));
  page.on("request", (r) => { if (!r.url().startsWith(ctx.url) && !r.url().startsWith("data:")) foreign.push(r.url()); });
  if (process.env.DEBUG) page.on("console", (m) => console.log("console:", m.type(), m.text().slice(0, 300)));
  if (initScript) await page.addInitScript(initScript);
  await page.goto(ctx.url + query);
  return { page, errors, foreign };
}

// An init script that records main-thread tasks over 50 ms (the page must never freeze).
export const watchLongTasks = () => {
  window.__longTasks = [];
  new PerformanceObserver((list) => window.__longTasks.push(...list.getEntries().map((e) => e.duration))).observe({ type: "longtask" });
};

// Waits until the page has started its engine and loaded the weights.
export async function ready(page) {
  await page.waitForFunction(() => ["ready", "error"].includes(window.ddpm?.state), null, { timeout: 180000 });
  const state = await page.evaluate(() => [window.ddpm.state, document.getElementById("status").textContent]);
  assert.equal(state[0], "ready", state[1]);
}
