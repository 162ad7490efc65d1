// WebKit (WebKitGTK's MiniBrowser under Xvfb, over WebDriver): Generate on the CPU path draws every
// step, and the Download PNG button gives `ddpm sample`'s picture.
import { test } from "node:test";
import assert from "node:assert/strict";
import { generate, pngDifference, ready, REFERENCE_RUN, referencePng } from "./harness.mjs";
import { inWebKit } from "./webkit.mjs";

test("WebKit: Generate on the CPU path: every step redraws, the PNG equals `ddpm sample`", () =>
  inWebKit(REFERENCE_RUN.query, async (page) => {
    await ready(page);
    const out = await generate(page, { trace: true });
    assert.equal(out.steps.length, REFERENCE_RUN.steps);
    assert.equal(new Set(out.steps.map((s) => s.frame)).size, REFERENCE_RUN.steps, "the canvas changed at every step");
    // MiniBrowser's downloads are out of WebDriver's reach: the file the button's link points to is
    // read instead (the page's CSP allows no fetch of a blob: URL, so it is kept as it is made).
    await page.evaluate(() => {
      const make = URL.createObjectURL;
      URL.createObjectURL = (blob) => {
        window.__blob = blob;
        return make(blob);
      };
      HTMLAnchorElement.prototype.click = function () {
        window.__download = this.download;
      };
    });
    await page.click("#download");
    await page.waitForFunction(() => window.__download);
    const [name, png] = await page.evaluate(async () => {
      const bytes = new Uint8Array(await window.__blob.arrayBuffer());
      return [window.__download, btoa(Array.from(bytes, (b) => String.fromCharCode(b)).join(""))];
    });
    assert.match(name, /^ddpm-ddim-20steps-seed3\.png$/);
    const diff = await pngDifference(page, referencePng(), Buffer.from(png, "base64"));
    assert.equal(diff.size, null, `PNG sizes differ: ${diff.size}`);
    assert.ok(diff.max <= 2 && diff.mean < 0.05, `page vs CLI: max ${diff.max}, mean ${diff.mean} grey levels`);
  }));
