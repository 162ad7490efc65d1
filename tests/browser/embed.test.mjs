// The embed element, as a blog would use it: dist/ served under a sub-path, the example article
// with three demos, the iframe version, and a demo scrolled away mid-run.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { start, open, inBrowser, demos } from "./harness.mjs";

let ctx;
before(async () => {
  ctx = await start({ prefix: "/blog/ddpm/" });
});
after(async () => {
  await ctx?.close();
});

// The host's own globals, set before any script of the page runs; the embed must leave them be.
const hostScript = () => {
  window.engine = "host engine";
  window.$ = "host dollar";
  window.CLASS_NAMES = "host names";
  window.__globalsBefore = Object.getOwnPropertyNames(window);
};

const EXAMPLE_ARTICLE = "the example article: the visible demos generate, the off-screen one waits to be scrolled to, the host is untouched";
test(EXAMPLE_ARTICLE, () => exampleArticle(ctx));
test(`Firefox: ${EXAMPLE_ARTICLE}`, () => inBrowser("firefox", exampleArticle, { prefix: "/blog/ddpm/" }));

async function exampleArticle(ctx) {
  const { page, errors, foreign } = await open(ctx, { query: "embed-example.html", initScript: hostScript });
  const weightRequests = [];
  page.on("request", (r) => {
    if (r.url().endsWith(".ddpm")) weightRequests.push(r.url());
  });
  await page.waitForFunction(
    () => {
      const d = [...document.querySelectorAll("ddpm-demo")];
      return d.length === 4 && d.slice(0, 2).every((x) => ["done", "error"].includes(x.ddpm.state));
    },
    null,
    { timeout: 300000 },
  );
  let all = await demos(page);
  for (const d of all.slice(0, 2)) {
    assert.equal(d.state, "done", d.status);
    assert.equal(d.steps, 20);
    assert.equal(d.final.length, 4 * 28 * 28);
    assert.ok(d.final.every(Number.isFinite));
  }
  assert.ok(
    all[0].final.some((v, i) => Math.abs(v - all[1].final[i]) > 0.5),
    "two demos, two different samples",
  );

  // The forward demo and the training demo are below the fold: nothing has started there.
  assert.deepEqual(
    all.slice(2).map((d) => [d.seen, d.state]),
    [
      [false, "idle"],
      [false, "idle"],
    ],
  );
  await page.evaluate(() => document.querySelector('ddpm-demo[mode="forward"]').scrollIntoView());
  await page.waitForFunction(() => document.querySelector('ddpm-demo[mode="forward"]').ddpm.state === "done", null, { timeout: 60000 });
  all = await demos(page);
  assert.equal(all[2].status, "t = 250");
  assert.equal(all[3].state, "idle", "the training demo waits for its Train button");

  // Styles do not cross the shadow boundary in either direction.
  const styles = await page.evaluate(() => {
    const demo = document.querySelector("ddpm-demo");
    const inner = demo.shadowRoot.querySelector("button");
    return {
      host: getComputedStyle(document.querySelector(".subscribe")).backgroundColor,
      inner: getComputedStyle(inner).backgroundColor,
      innerCanvasBorder: getComputedStyle(demo.shadowRoot.querySelector("canvas")).borderTopWidth,
      bodyFont: getComputedStyle(document.body).fontFamily,
    };
  });
  assert.equal(styles.host, "rgb(192, 57, 43)", "the host's button keeps its style");
  assert.notEqual(styles.inner, "rgb(192, 57, 43)", "the host's button style does not reach the demo");
  assert.equal(styles.innerCanvasBorder, "0px", "the host's canvas border does not reach the demo");
  assert.match(styles.bodyFont, /Georgia/);

  const globals = await page.evaluate(() => ({
    values: [window.engine, window.$, window.CLASS_NAMES],
    added: Object.getOwnPropertyNames(window).filter((k) => !window.__globalsBefore.includes(k) && k !== "__globalsBefore"),
  }));
  globals.added = globals.added.filter((k) => !(page.driverGlobals ?? []).includes(k));
  assert.deepEqual(globals.values, ["host engine", "host dollar", "host names"]);
  assert.deepEqual(globals.added, [], "the embed defines no globals");

  assert.equal(weightRequests.length, 1, `the weights are fetched once for all demos: ${weightRequests}`);
  assert.ok(page.url().includes("/blog/ddpm/"), "served from a sub-path");
  assert.deepEqual(foreign, []);
  assert.deepEqual(errors, []);
  await page.close();
}

test("a demo scrolled out of view pauses, and goes on when scrolled back", async () => {
  const { page, errors } = await open(ctx, { query: "embed-example.html" });
  await page.waitForFunction(() => document.querySelector("ddpm-demo")?.ddpm.state === "done", null, { timeout: 300000 });
  const train = () => page.evaluate(() => document.querySelector('ddpm-demo[mode="train"]').ddpm);
  // Scroll and click at once, while the sneaker demo still runs and before the page has noticed
  // that it left the view: it must give way to the clicked demo when it notices.
  await page.evaluate(() => {
    const demo = document.querySelector('ddpm-demo[mode="train"]');
    demo.scrollIntoView();
    demo.shadowRoot.getElementById("go").click();
  });
  await page.waitForFunction(() => document.querySelector('ddpm-demo[mode="train"]').ddpm.steps >= 3, null, { timeout: 120000 });
  await page.evaluate(() => window.scrollTo(0, 0));
  await page.waitForFunction(() => document.querySelector('ddpm-demo[mode="train"]').ddpm.state === "away");
  await page.waitForTimeout(1000); // the step in flight finishes
  const away = (await train()).steps;
  await page.waitForTimeout(2000);
  assert.equal((await train()).steps, away, "no training while out of view");
  await page.evaluate(() => document.querySelector('ddpm-demo[mode="train"]').scrollIntoView());
  await page.waitForFunction((n) => document.querySelector('ddpm-demo[mode="train"]').ddpm.steps > n, away, { timeout: 60000 });
  assert.equal((await train()).state, "running");
  assert.deepEqual(errors, []);
  await page.close();
});

test("the iframe version takes its settings from the query string", () => iframeVersion(ctx));
test("Firefox: the iframe version takes its settings from the query string", () => inBrowser("firefox", iframeVersion, { prefix: "/blog/ddpm/" }));

async function iframeVersion(ctx) {
  const { page, errors, foreign } = await open(ctx, { query: "embed.html?mode=generate&steps=10&batch=1&seed=4&class=trouser&autoplay" });
  await page.waitForFunction(() => ["done", "error"].includes(document.querySelector("ddpm-demo")?.ddpm.state), null, { timeout: 300000 });
  const [d] = await demos(page);
  assert.equal(d.state, "done", d.status);
  assert.equal(d.steps, 10);
  assert.equal(d.final.length, 28 * 28);
  assert.deepEqual(d.settings, { class: 1, steps: 10, batch: 1, seed: 4, sampler: "dpm-solver" });
  // A trouser: two legs, so in the lower half the middle column is darker than the legs beside it.
  const column = (x) => d.final.filter((_, i) => i % 28 === x && i >= 28 * 16).reduce((a, v) => a + v, 0);
  assert.ok(column(14) < (column(11) + column(12) + column(16) + column(17)) / 4 - 2, "guided towards trousers");
  assert.deepEqual(foreign, []);
  assert.deepEqual(errors, []);
  await page.close();
}

test('<ddpm-demo mode="morph"> draws a row whose ends are the two seeds\' garments', async () => {
  const finished = async (query) => {
    const { page, errors, foreign } = await open(ctx, { query });
    await page.waitForFunction(() => ["done", "error"].includes(document.querySelector("ddpm-demo")?.ddpm.state), null, { timeout: 300000 });
    const [d] = await demos(page);
    assert.equal(d.state, "done", d.status);
    assert.deepEqual([errors, foreign], [[], []]);
    await page.close();
    return d;
  };
  const common = "class=sneaker&guidance=2&sampler=dpm-solver&steps=5&autoplay";
  const strip = await finished(`embed.html?mode=morph&seed=3&to=8&count=5&${common}`);
  assert.equal(strip.final.length, 5 * 28 * 28, "five images");
  assert.equal(strip.settings.batch, 5);
  const image = (i) => strip.final.slice(i * 784, (i + 1) * 784);
  const distance = (a, b) => Math.sqrt(a.reduce((s, v, i) => s + (v - b[i]) ** 2, 0));
  for (const [seed, i] of [
    [3, 0],
    [8, 4],
  ]) {
    const alone = await finished(`embed.html?mode=generate&seed=${seed}&batch=1&${common}`);
    assert.ok(distance(image(i), alone.final) < 1e-2, `image ${i} is seed ${seed}'s garment`);
  }
});
