// Not a test: opens the page with the query given (default a small CPU run), clicks Generate and
// saves a screenshot to /tmp/shots/page.png, for looking at the page as a reader does.
// Usage: node tools/dev/screenshot.mjs "?seed=1&steps=20&batch=16"   (CLICK=#morph-go clicks Morph instead)
import { start, open } from "../../tests/browser/harness.mjs";
const ctx = await start();
const q = process.argv[2] || "?seed=1&steps=20&batch=4";
const viewport = process.env.VIEWPORT ? Object.fromEntries(process.env.VIEWPORT.split("x").map((v, i) => [i ? "height" : "width", Number(v)])) : undefined;
const { page, errors, foreign } = await open(ctx, { query: q, viewport });

const t0 = Date.now();
try {
  await page.waitForFunction(() => ["ready", "error"].includes(window.ddpm?.state), null, { timeout: 180000 });
  console.log(
    "state",
    await page.evaluate(() => [
      window.ddpm.state,
      document.getElementById("status").textContent,
      document.getElementById("device").textContent,
      window.ddpm.notices,
    ]),
    (Date.now() - t0) / 1000,
  );
  await page.click(process.env.CLICK || "#generate");
  await page.waitForFunction(() => window.ddpm.final || window.ddpm.state === "error", null, { timeout: 300000 });
  console.log(
    "done",
    await page.evaluate(() => [window.ddpm.state, document.getElementById("status").textContent, window.ddpm.steps.length, window.ddpm.finished?.medianMs]),
    (Date.now() - t0) / 1000,
  );
} catch (e) {
  console.log("ERR", e.message, await page.evaluate(() => [window.ddpm?.state, document.getElementById("status").textContent]));
}
await page.screenshot({ path: "/tmp/shots/page.png", fullPage: true });
console.log("errors", errors, "foreign", foreign);
await ctx.close();
