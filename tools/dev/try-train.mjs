// Dev tool: drive the Train card once and print what happened (QUERY, FROM, STEPS env).
import { start, open } from "../../tests/browser/harness.mjs";
const ctx = await start();
try {
  const { page, errors } = await open(ctx, { query: process.env.QUERY || "", viewport: { width: 1200, height: 1600 } });
  await page.waitForFunction(() => ["ready", "error"].includes(window.ddpm?.state), null, { timeout: 180000 });
  console.log("state", await page.evaluate(() => [window.ddpm.state, window.ddpm.backend, document.getElementById("status").textContent]));
  await page.selectOption("#train-from", process.env.FROM || "scratch");
  await page.fill("#train-steps", process.env.STEPS || "30");
  const t0 = Date.now();
  await page.click("#train-start");
  const tick = setInterval(
    async () =>
      console.log(
        ((Date.now() - t0) / 1000).toFixed(0),
        "s",
        await page
          .evaluate(() => [
            window.ddpm.train.state,
            window.ddpm.train.done,
            document.getElementById("train-info").textContent,
            JSON.stringify(window.ddpm.train.evals),
          ])
          .catch(() => ""),
      ),
    10000,
  );
  await page
    .waitForFunction(() => ["done", "error"].includes(window.ddpm.train.state), null, { timeout: Number(process.env.WAIT || 600) * 1000 })
    .finally(() => clearInterval(tick));
  const t = await page.evaluate(() => ({ ...window.ddpm.train, info: document.getElementById("train-info").textContent, model: window.ddpm.model }));
  console.log(
    "took",
    (Date.now() - t0) / 1000,
    "s",
    t.state,
    t.info,
    "evals",
    JSON.stringify(t.evals),
    "rates",
    t.rates.map((r) => r.toFixed(1)).join(","),
    "previews",
    t.previews,
    "model",
    JSON.stringify(t.model).slice(0, 200),
  );
  await page.waitForTimeout(500);
  await page.screenshot({ path: "/tmp/shots/train.png", fullPage: true });
  console.log("errors", errors);
} finally {
  await ctx.close();
}
