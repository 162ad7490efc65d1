// Shared set-up for the browser tests: serve dist/ and start Debian's chromium with WebGPU (or,
// for the tests that also run there, Debian's Firefox ESR: tests/browser/firefox.mjs).
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync } from "node:fs";
import { homedir, tmpdir } from "node:os";
import { join } from "node:path";
import { chromium } from "playwright-core";
import { serve } from "../../tools/dev/serve.mjs";
import { launchFirefox } from "./firefox.mjs";

// The native CLI, from `make cli`: the reference the page's pictures are compared with.
export const DDPM = process.env.DDPM_BIN || join(homedir(), ".cache/ddpm-web/target/release/ddpm");

// One generation every engine must draw as the CLI does: the page's query and `ddpm sample`'s flags
// (a class with the page's default guidance, applied at t ≤ 600 only).
export const REFERENCE_RUN = {
  query: "?seed=3&sampler=ddim&steps=20&eta=0&batch=4&class=7&guidance=2&backend=cpu",
  steps: 20,
  cli: ["--sampler", "ddim", "--steps", "20", "--eta", "0", "--seed", "3", "--count", "4", "--class", "7", "--guidance", "2", "--guidance-interval", "0-600"],
};

// `ddpm sample`'s PNG of the reference run.
export function referencePng() {
  const out = join(mkdtempSync(join(tmpdir(), "ddpm-cli-")), "cli.png");
  execFileSync(DDPM, ["sample", "--weights", "www/assets/model.ddpm", ...REFERENCE_RUN.cli, "--out", out]);
  return readFileSync(out);
}

export const CHROMIUM_ARGS = [
  "--no-sandbox",
  "--enable-unsafe-webgpu",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  "--no-first-run",
  "--disable-quic",
  "--js-flags=--expose-gc", // lets soak runs collect garbage before reading the heap
];

// `args`: Chromium flags beyond CHROMIUM_ARGS.
export async function start({ prefix = "/", browser: name = "chromium", args = [] } = {}) {
  const server = await serve("dist", 0, "127.0.0.1", prefix);
  const url = `http://127.0.0.1:${server.address().port}${prefix}`;
  const browser =
    name === "firefox"
      ? await launchFirefox()
      : await chromium.launch({
          executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
          headless: true,
          args: [...CHROMIUM_ARGS, ...args],
        });
  return {
    url,
    browser,
    name,
    async close() {
      await browser.close();
      server.close();
    },
  };
}

// Chromium's flags under which a WebGPU canvas keeps its device headless (TOOLCHAIN.md).
export const WEBGPU_CANVAS_ARGS = ["--enable-features=Vulkan", "--use-vulkan=swiftshader", "--use-angle=swiftshader"];

// Runs `body(ctx)` in a browser of its own (the cross-browser tests' Firefox runs).
export async function inBrowser(name, body, options = {}) {
  const ctx = await start({ ...options, browser: name });
  try {
    return await body(ctx);
  } finally {
    await ctx.close();
  }
}

// A page that records console errors, every request that leaves the page's origin (`foreign`) and
// the paths of those that do not (`requests`, the worker's included).
export async function open(ctx, { initScript, query = "", viewport } = {}) {
  const page = await ctx.browser.newPage(viewport ? { viewport } : {});
  const errors = [];
  const foreign = [];
  const requests = [];
  page.on("console", (m) => {
    if (m.type() === "error") errors.push(m.text());
  });
  page.on("pageerror", (e) => errors.push(String(e)));
  page.on("request", (r) => {
    if (r.url().startsWith(ctx.url)) requests.push(new URL(r.url()).pathname);
    else if (!r.url().startsWith("data:")) foreign.push(r.url());
  });
  if (process.env.DEBUG) page.on("console", (m) => console.log("console:", m.type(), m.text().slice(0, 300)));
  for (const script of [initScript].flat()) if (script) await page.addInitScript(script);
  await page.goto(ctx.url + query);
  return { page, errors, foreign, requests };
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

// Clicks Generate and waits for the last step; `trace` records a fingerprint of the canvas per step.
export async function generate(page, { trace = false } = {}) {
  await page.evaluate((trace) => {
    window.ddpm.trace = trace;
    window.__longTasks = [];
  }, trace);
  await page.click("#generate");
  await page.waitForFunction(() => window.ddpm.final || window.ddpm.state === "error", null, { timeout: 300000 });
  const out = await page.evaluate(() => ({
    state: window.ddpm.state,
    status: document.getElementById("status").textContent,
    steps: window.ddpm.steps,
    final: Array.from(window.ddpm.final || []),
    longTasks: window.__longTasks,
    notices: window.ddpm.notices,
  }));
  assert.equal(out.state, "done", out.status);
  return out;
}

// Decodes two PNGs in the page and returns the per-pixel grey differences.
export async function pngDifference(page, a, b) {
  return page.evaluate(
    async ([a, b]) => {
      const pixels = async (b64) => {
        const img = new Image();
        img.src = `data:image/png;base64,${b64}`;
        await img.decode();
        const bitmap = await createImageBitmap(img);
        const c = new OffscreenCanvas(bitmap.width, bitmap.height).getContext("2d");
        c.drawImage(bitmap, 0, 0);
        return { w: bitmap.width, h: bitmap.height, d: c.getImageData(0, 0, bitmap.width, bitmap.height).data };
      };
      const [x, y] = [await pixels(a), await pixels(b)];
      if (x.w !== y.w || x.h !== y.h) return { size: [x.w, x.h, y.w, y.h] };
      const diffs = [];
      for (let i = 0; i < x.d.length; i += 4) diffs.push(Math.abs(x.d[i] - y.d[i]));
      return { size: null, max: Math.max(...diffs), mean: diffs.reduce((s, v) => s + v, 0) / diffs.length };
    },
    [a.toString("base64"), b.toString("base64")],
  );
}

// Each <ddpm-demo> on the page: its mode, state, status line and what it last ran.
export const demos = (page) =>
  page.evaluate(() =>
    [...document.querySelectorAll("ddpm-demo")].map((d) => ({
      mode: d.getAttribute("mode"),
      state: d.ddpm.state,
      steps: d.ddpm.steps,
      seen: Boolean(d.ddpm.seen),
      status: d.shadowRoot.getElementById("status").textContent,
      settings: d.ddpm.settings && {
        class: d.ddpm.settings.class,
        steps: d.ddpm.settings.steps,
        batch: d.ddpm.settings.batch,
        seed: d.ddpm.settings.seed,
        sampler: d.ddpm.settings.sampler,
      },
      final: d.ddpm.finished?.final ? Array.from(d.ddpm.finished.final) : null,
    })),
  );
