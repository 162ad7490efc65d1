// WebKit (Debian's WebKitGTK MiniBrowser), driven over classic WebDriver by its WebKitWebDriver.
// WebKitGTK has no headless mode, so it runs in an Xvfb display of its own.
import { spawn } from "node:child_process";
import { createServer } from "node:net";
import { serve } from "../../tools/dev/serve.mjs";

export const MINIBROWSER = process.env.MINIBROWSER || "/usr/lib/x86_64-linux-gnu/webkit2gtk-4.1/MiniBrowser";

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const freePort = () =>
  new Promise((ok) => {
    const s = createServer().listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => ok(port));
    });
  });

// Xvfb picks a free display and writes its number to the pipe.
function startXvfb() {
  const xvfb = spawn("Xvfb", ["-displayfd", "3", "-screen", "0", "1280x1024x24", "-nolisten", "tcp"], { stdio: ["ignore", "ignore", "ignore", "pipe"] });
  return new Promise((ok, fail) => {
    xvfb.stdio[3].once("data", (d) => ok({ xvfb, display: `:${String(d).trim()}` }));
    xvfb.once("error", fail);
  });
}

export async function launchWebKit() {
  const { xvfb, display } = await startXvfb();
  const port = await freePort();
  const driver = spawn("WebKitWebDriver", [`--port=${port}`], { env: { ...process.env, DISPLAY: display }, stdio: "ignore" });
  const base = `http://127.0.0.1:${port}`;
  const send = async (method, path, body) => {
    const response = await fetch(base + path, { method, headers: { "content-type": "application/json" }, body: body && JSON.stringify(body) });
    const { value } = await response.json();
    if (value?.error) throw new Error(`WebDriver ${path}: ${value.error}: ${value.message}`);
    return value;
  };
  let session = null;
  for (let tries = 0; !session; tries++) {
    try {
      session = await send("POST", "/session", {
        capabilities: { alwaysMatch: { browserName: "MiniBrowser", "webkitgtk:browserOptions": { binary: MINIBROWSER, args: ["--automation"] } } },
      });
    } catch (e) {
      if (tries > 50) throw e;
      await sleep(200); // the driver is still starting
    }
  }
  const at = `/session/${session.sessionId}`;
  // MiniBrowser's own small window leaves controls below the fold, where clicks went astray.
  await send("POST", `${at}/window/rect`, { width: 1280, height: 1000 });
  return {
    version: session.capabilities?.browserVersion,
    goto: (url) => send("POST", `${at}/url`, { url }),
    // Playwright's signatures, so the shared helpers (harness.mjs) drive this page too.
    evaluate: (fn, arg) =>
      send("POST", `${at}/execute/async`, {
        script: `const done = arguments[1]; Promise.resolve((${fn})(arguments[0])).then((v) => done({ v }), (e) => done({ error: String(e) }));`,
        args: [arg ?? null],
      }).then((r) => {
        if (r.error) throw new Error(r.error);
        return r.v;
      }),
    async waitForFunction(fn, arg, { timeout = 30000 } = {}) {
      const deadline = Date.now() + timeout;
      while (!(await this.evaluate(fn, arg))) {
        if (Date.now() > deadline) throw new Error(`timed out after ${timeout} ms waiting for ${fn}`);
        await sleep(250);
      }
    },
    async click(selector) {
      const element = await send("POST", `${at}/element`, { using: "css selector", value: selector });
      await send("POST", `${at}/element/${Object.values(element)[0]}/click`, {});
    },
    async close() {
      await send("DELETE", at).catch(() => {});
      driver.kill();
      xvfb.kill();
    },
  };
}

// Serves dist/, opens `query` in a WebKit of its own and runs `body(page)` (as harness.mjs's
// inBrowser does for Chromium and Firefox).
export async function inWebKit(query, body) {
  const server = await serve("dist", 0, "127.0.0.1", "/");
  const page = await launchWebKit();
  try {
    await page.goto(`http://127.0.0.1:${server.address().port}/${query}`);
    return await body(page);
  } finally {
    await page.close();
    server.close();
  }
}
