// The npm package as a blogger uses it: `make package`'s tarball unpacked on a "CDN" (one origin,
// with CORS headers, at /npm/ddpm-web@<version>/) and a blog post on another origin, at a sub-path,
// under a strict Content-Security-Policy that names only the CDN (and the blog's own files). In
// Chromium, Firefox and WebKit: every mode finishes, nothing errs, nothing goes elsewhere; a CSP or a
// host that refuses what the demo needs gets a message in the element that names the cause.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium } from "playwright-core";
import { serve } from "../../tools/dev/serve.mjs";
import { build, NAME } from "../../tools/build/package/build.mjs";
import { ATTRIBUTES, EVENTS, TAG } from "../../tools/build/package/element.mjs";
import { CHROMIUM_ARGS, demos } from "./harness.mjs";
import { launchFirefox } from "./firefox.mjs";
import { launchWebKit } from "./webkit.mjs";

let pkg; // { tgz, version, size, unpackedSize }
let root; // the unpacked package
let cdn, blog; // servers: { url, origin, log, server }
let site; // the blog's folder
let cdnCors = "all"; // "all", or "scripts": CORS headers with .js and .json files only

before(async () => {
  const tmp = mkdtempSync(join(tmpdir(), "ddpm-package-"));
  pkg = build("dist", tmp);
  root = join(tmp, "cdn", "npm", `${NAME}@${pkg.version}`);
  mkdirSync(root, { recursive: true });
  execFileSync("tar", ["xzf", pkg.tgz, "-C", root, "--strip-components=1"]);
  cdn = await server(join(tmp, "cdn"), (url) => (cdnCors === "all" || /\.(m?js|json)$/.test(url) ? { "access-control-allow-origin": "*" } : {}));
  cdn.url = `${cdn.origin}/npm/${NAME}@${pkg.version}/`;
  site = join(tmp, "blog");
  mkdirSync(join(site, "blog"), { recursive: true });
  writeFileSync(join(site, "blog", "watch.js"), WATCH);
  writeFileSync(join(site, "favicon.ico"), "");
  writeFileSync(
    join(site, "blog", "post.css"),
    "body { font: 16px Georgia, serif; } ddpm-demo { display: inline-block; width: 300px; margin: 4px; vertical-align: top; }\n",
  );
  blog = await server(site);
});
after(() => {
  cdn?.server.close();
  blog?.server.close();
});

async function server(dir, headers) {
  const s = await serve(dir, 0, "127.0.0.1", "/", null, { headers });
  const log = [];
  s.on("request", (req) => log.push(req.url));
  return { server: s, origin: `http://127.0.0.1:${s.address().port}`, log };
}

// The blog's own script: what a reader's browser reports, and the demos' events.
const WATCH = `window.seen = { errors: [], violations: [], events: [] };
addEventListener("error", (e) => seen.errors.push(String(e.message)));
addEventListener("unhandledrejection", (e) => seen.errors.push(String(e.reason)));
document.addEventListener("securitypolicyviolation", (e) => seen.violations.push(e.effectiveDirective + " " + e.blockedURI));
for (const name of ${JSON.stringify(Object.keys(EVENTS))}) document.addEventListener(name, (e) => seen.events.push([e.target.getAttribute("mode"), name]));
`;

// What docs/embed.md tells a strict host to allow. Firefox checks a worker's imports against
// worker-src, so the CDN is named there too; Chromium and WebKit need only blob: (embed.js imports
// with import(), which they check against script-src).
const STRICT = (c) => ({ "script-src": `'self' ${c} 'wasm-unsafe-eval'`, "worker-src": `blob: ${c}`, "connect-src": c });

// Writes a post at /blog/<name>/ whose CSP is `csp` (directives → sources), with `demos`.
function post(name, csp, demos) {
  const policy = Object.entries({ "default-src": "'self'", ...csp, "object-src": "'none'", "base-uri": "'none'" })
    .map(([k, v]) => `${k} ${v}`)
    .join("; ");
  const html = `<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="${policy}">
<title>Diffusion, drawn</title>
<link rel="stylesheet" href="../post.css">
<script src="../watch.js"></script>
<script type="module" src="${cdn.url}embed.js"></script>
</head><body><h1>Diffusion, drawn</h1>
${demos}
</body></html>
`;
  return { name, html };
}

const ALL_MODES = `<${TAG} mode="generate" class="sneaker" steps="5" batch="1" seed="3" autoplay></${TAG}>
<${TAG} mode="morph" seed="3" to="8" count="5" steps="5" class="sneaker" autoplay></${TAG}>
<${TAG} mode="forward" t="500"></${TAG}>
<${TAG} mode="train" steps="6" autoplay></${TAG}>`;

// Serves `p` from the blog and opens it in `browser`: { page, console errors, requests seen, close }.
async function visit(browser, p) {
  const dir = join(site, "blog", p.name);
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, "index.html"), p.html);
  const url = `${blog.origin}/blog/${p.name}/`;
  if (browser === "webkit") {
    const page = await launchWebKit();
    await page.goto(url);
    return { page, errors: [], requests: [], close: () => page.close() };
  }
  const b =
    browser === "firefox"
      ? await launchFirefox()
      : await chromium.launch({ executablePath: process.env.CHROMIUM || "/usr/bin/chromium", headless: true, args: CHROMIUM_ARGS });
  const page = await b.newPage({ viewport: { width: 1280, height: 900 } });
  const errors = [];
  const requests = [];
  page.on("console", (m) => {
    if (m.type() === "error") errors.push(m.text());
  });
  page.on("pageerror", (e) => errors.push(String(e)));
  page.on("request", (r) => requests.push(r.url()));
  await page.goto(url);
  return { page, errors, requests, close: () => b.close() };
}

const settled = () => [...document.querySelectorAll("ddpm-demo")].every((d) => ["done", "error"].includes(d.ddpm?.state));

for (const browser of ["chromium", "firefox", "webkit"]) {
  test(`${browser}: the package from a CDN origin, in a post on another origin under a strict CSP: every mode finishes`, async () => {
    cdnCors = "all";
    const p = post(`strict-${browser}`, STRICT(cdn.origin), ALL_MODES);
    const logged = blog.log.length;
    const v = await visit(browser, p);
    try {
      await v.page.waitForFunction(settled, null, { timeout: 300000 });
      const all = await demos(v.page);
      for (const d of all) assert.equal(d.state, "done", `${d.mode}: ${d.status}`);
      const seen = await v.page.evaluate(() => ({ ...window.seen, version: customElements.get("ddpm-demo").version }));
      assert.equal(seen.version, pkg.version, "DdpmDemo.version is the package's");
      assert.deepEqual(seen.errors, []);
      assert.deepEqual(seen.violations, []);
      for (const mode of ["generate", "morph", "forward", "train"]) {
        assert.ok(
          seen.events.some(([m, e]) => m === mode && e === "ddpm-done"),
          `${mode} sent ddpm-done`,
        );
      }
      assert.deepEqual(v.errors, []);
      const elsewhere = v.requests.filter((u) => !u.startsWith(cdn.origin) && !u.startsWith(blog.origin) && !/^(data|blob):/.test(u));
      assert.deepEqual(elsewhere, [], "no request leaves the CDN and the blog");
      const asked = new Set(blog.log.slice(logged));
      assert.ok(
        [...asked].every((u) => [`/blog/${p.name}/`, "/blog/post.css", "/blog/watch.js", "/favicon.ico"].includes(u)),
        `the blog was asked only for the post: ${[...asked]}`,
      );
    } finally {
      await v.close();
    }
  });

  test(`${browser}: a CSP or a host that refuses the demo gets a message naming the cause`, async () => {
    const c = cdn.origin;
    const cases = [
      {
        why: "worker-src without blob:",
        csp: { ...STRICT(c), "worker-src": c },
        expect: /Content-Security-Policy refused a blob: worker \(worker-src\); add blob: to its worker-src/,
      },
      {
        why: "worker-src without the CDN",
        csp: { ...STRICT(c), "worker-src": "blob:" },
        expect: new RegExp(`Content-Security-Policy refused ${c}/\\S+ \\(worker-src\\); add ${c} to its worker-src`),
        works: ["chromium", "webkit"],
      },
      {
        why: "connect-src without the CDN",
        csp: { ...STRICT(c), "connect-src": "'self'" },
        expect: new RegExp(`Content-Security-Policy refused .* \\(connect-src\\); add ${c} to its connect-src`),
      },
      {
        why: "script-src without 'wasm-unsafe-eval'",
        csp: { ...STRICT(c), "script-src": `'self' ${c}` },
        expect: /refused WebAssembly .*; add 'wasm-unsafe-eval' to its script-src/,
      },
      {
        why: "a host sending CORS headers with scripts only",
        cors: "scripts",
        csp: STRICT(c),
        expect: new RegExp(`${c} sends no CORS header \\(Access-Control-Allow-Origin\\) with ddpm-web_bg\\.wasm`),
      },
    ];
    for (const [i, k] of cases.entries()) {
      cdnCors = k.cors ?? "all";
      const v = await visit(browser, post(`bad-${browser}-${i}`, k.csp, `<${TAG} mode="generate" steps="5" batch="1" autoplay></${TAG}>`));
      try {
        await v.page.waitForFunction(settled, null, { timeout: 120000 }).catch(async (e) => {
          throw new Error(
            `${k.why}: ${JSON.stringify(await v.page.evaluate(() => [window.seen, customElements.get("ddpm-demo") !== undefined]))}: ${e.message}`,
          );
        });
        const [d] = await demos(v.page);
        if (k.works?.includes(browser)) {
          assert.equal(d.state, "done", `${k.why} is enough in ${browser}: ${d.status}`);
          continue;
        }
        assert.equal(d.state, "error", `${k.why}: ${d.status}`);
        assert.match(d.status, k.expect, k.why);
        const events = await v.page.evaluate(() => window.seen.events);
        assert.deepEqual(events, [["generate", "ddpm-error"]], `${k.why}: one ddpm-error event`);
      } finally {
        await v.close();
      }
    }
    cdnCors = "all";
  });
}

test("the page's footer shows the version", async () => {
  const b = await chromium.launch({ executablePath: process.env.CHROMIUM || "/usr/bin/chromium", headless: true, args: CHROMIUM_ARGS });
  try {
    const page = await b.newPage();
    await page.goto(`${cdn.url}index.html?backend=cpu`);
    await page.waitForFunction((v) => document.getElementById("version")?.textContent === `ddpm-web ${v}`, pkg.version, { timeout: 30000 });
  } finally {
    await b.close();
  }
});

test("the package: one version, files, and a manifest and types that match the element", () => {
  const json = JSON.parse(readFileSync(join(root, "package.json"), "utf8"));
  const cargo = readFileSync("Cargo.toml", "utf8").match(/^version = "([^"]+)"/m)[1];
  assert.equal(json.version, cargo);
  assert.equal(json.name, NAME);
  assert.equal(json.type, "module");
  assert.equal(json.customElements, "custom-elements.json");
  assert.equal(readFileSync(join(root, "version.js"), "utf8").match(/VERSION = "([^"]+)"/)[1], cargo);
  for (const f of [
    "embed.js",
    "embed.html",
    "worker.js",
    "ddpm-web_bg.wasm",
    "ddpm-train_bg.wasm",
    "assets/model.json",
    "assets/examples.u8",
    "data/t10k-images-idx3-ubyte.gz",
    "embed.d.ts",
    "custom-elements.json",
    "README.md",
  ]) {
    assert.ok(readFileSync(join(root, f)).length > 0, f);
  }
  assert.ok(!/\.br$|\.wasm\.gz$/.test(execFileSync("tar", ["tzf", pkg.tgz], { encoding: "utf8" })), "no precompressed copies");
  const snippet = `cdn.jsdelivr.net/npm/${NAME}@${pkg.version}/embed.js`;
  for (const doc of [join(root, "README.md"), "README.md", "docs/embed.md"]) assert.ok(readFileSync(doc, "utf8").includes(snippet), `${doc} pins ${snippet}`);
  assert.match(readFileSync("CHANGELOG.md", "utf8"), new RegExp(`^## \\[${pkg.version.replace(/\./g, "\\.")}\\]`, "m"), "CHANGELOG.md has the version");

  // The attributes embed.js reads and the events it sends are those the manifest lists.
  const source = readFileSync("www/embed.js", "utf8");
  const read = new Set([...source.matchAll(/(?:getAttribute|\ba)\("([a-z]+)"\)/g)].map((m) => m[1]));
  assert.deepEqual([...read].sort(), Object.keys(ATTRIBUTES).sort());
  const sent = new Set([...source.matchAll(/emit\("([a-z-]+)"/g)].map((m) => m[1]));
  assert.deepEqual([...sent].sort(), Object.keys(EVENTS).sort());
  const manifest = JSON.parse(readFileSync(join(root, "custom-elements.json"), "utf8"));
  const [element] = manifest.modules[0].declarations;
  assert.equal(element.tagName, TAG);
  assert.deepEqual(element.attributes.map((a) => a.name).sort(), Object.keys(ATTRIBUTES).sort());
});

test("the package's TypeScript declarations type-check a blog's use of the element", () => {
  const dir = mkdtempSync(join(tmpdir(), "ddpm-types-"));
  writeFileSync(
    join(dir, "use.ts"),
    `import { DdpmDemo } from "${root}/embed.js";
const demo = document.createElement("ddpm-demo");
const same: DdpmDemo = demo;
demo.addEventListener("ddpm-step", (e) => { const n: number = e.detail.done + e.detail.total; void n; });
demo.addEventListener("ddpm-error", (e) => { const m: string = e.detail.message; void m; });
const v: string = DdpmDemo.version;
const state: "idle" | "waiting" | "running" | "paused" | "away" | "done" | "error" = same.ddpm.state;
void v; void state;
// @ts-expect-error: no such event detail
demo.addEventListener("ddpm-step", (e) => e.detail.nothing);
`,
  );
  execFileSync(
    "node",
    [
      "node_modules/typescript/bin/tsc",
      "--noEmit",
      "--strict",
      "--target",
      "es2022",
      "--module",
      "es2022",
      "--moduleResolution",
      "bundler",
      "--lib",
      "es2022,dom",
      join(dir, "use.ts"),
    ],
    { stdio: "pipe" },
  );
});
