// Firefox (Debian's firefox-esr), driven headless over WebDriver BiDi by puppeteer-core, behind the
// part of Playwright's page API the cross-browser tests use: one test body runs in either browser.
import puppeteer from "puppeteer-core";
import { copyFileSync, mkdtempSync, readdirSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, join } from "node:path";

export const FIREFOX = process.env.FIREFOX || "/usr/bin/firefox-esr";

export async function launchFirefox() {
  const downloads = mkdtempSync(join(tmpdir(), "ddpm-firefox-downloads-"));
  const browser = await puppeteer.launch({
    browser: "firefox",
    executablePath: FIREFOX,
    headless: true,
    extraPrefsFirefox: {
      // Downloads land in a folder of ours, without a dialog.
      "browser.download.dir": downloads,
      "browser.download.folderList": 2,
      "browser.download.useDownloadDir": true,
      "browser.download.always_ask_before_handling_new_types": false,
      // No background traffic: the tests count every request that leaves the page's origin.
      "app.update.enabled": false,
      "network.captive-portal-service.enabled": false,
      "network.connectivity-service.enabled": false,
    },
  });
  return {
    async newPage({ viewport = { width: 1280, height: 720 } } = {}) {
      const page = await browser.newPage();
      await page.setViewport(viewport);
      return new FirefoxPage(page, downloads);
    },
    close: () => browser.close(),
  };
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

class FirefoxPage {
  constructor(page, downloads) {
    this.page = page;
    this.downloads = downloads;
    // What puppeteer itself defines in every page (for its ARIA selectors), not the page's doing.
    this.driverGlobals = ["__ariaQuerySelector", "__ariaQuerySelectorAll"];
  }
  on(event, listener) {
    this.page.on(event, listener);
  }
  addInitScript(script) {
    return this.page.evaluateOnNewDocument(script);
  }
  goto(url) {
    return this.page.goto(url);
  }
  reload() {
    return this.page.reload();
  }
  url() {
    return this.page.url();
  }
  close() {
    return this.page.close();
  }
  screenshot(options) {
    return this.page.screenshot(options);
  }
  evaluate(fn, arg) {
    return this.page.evaluate(fn, arg);
  }
  // Playwright's order is (fn, arg, options); puppeteer's is (fn, options, ...args).
  waitForFunction(fn, arg, { timeout = 30000 } = {}) {
    return this.page.waitForFunction(fn, { timeout, polling: 100 }, arg);
  }
  waitForTimeout(ms) {
    return sleep(ms);
  }
  click(selector) {
    return this.page.click(selector);
  }
  fill(selector, value) {
    return this.page.locator(selector).fill(value);
  }
  locator(selector) {
    return { fill: (value) => this.fill(selector, value) };
  }
  waitForSelector(selector) {
    return this.page.waitForSelector(selector);
  }
  isEnabled(selector) {
    return this.page.$eval(selector, (el) => !el.disabled);
  }
  // A path, or Playwright's { name, mimeType, buffer } (written to a file of that name first).
  async setInputFiles(selector, file) {
    let path = file;
    if (typeof file !== "string") {
      path = join(mkdtempSync(join(tmpdir(), "ddpm-upload-")), file.name);
      writeFileSync(path, file.buffer);
    }
    await (await this.page.$(selector)).uploadFile(path);
  }
  async selectOption(selector, value) {
    await this.page.select(selector, value);
  }
  async check(selector) {
    if (!(await this.isChecked(selector))) await this.click(selector);
  }
  isChecked(selector) {
    return this.page.$eval(selector, (el) => el.checked);
  }
  isDisabled(selector) {
    return this.page.$eval(selector, (el) => el.disabled);
  }
  inputValue(selector) {
    return this.page.$eval(selector, (el) => el.value);
  }
  textContent(selector) {
    return this.page.$eval(selector, (el) => el.textContent);
  }

  // Resolves when a file that was not in the downloads folder before has finished arriving.
  async waitForEvent(name, { timeout = 60000 } = {}) {
    if (name !== "download") throw new Error(`waitForEvent("${name}") is not supported in Firefox here`);
    const before = new Set(readdirSync(this.downloads));
    const deadline = Date.now() + timeout;
    for (;;) {
      const files = readdirSync(this.downloads);
      const fresh = files.filter((f) => !before.has(f) && !f.endsWith(".part"));
      if (fresh.length && !files.some((f) => f.endsWith(".part"))) {
        const path = join(this.downloads, fresh[0]);
        const size = statSync(path).size;
        await sleep(100);
        if (size > 0 && statSync(path).size === size) {
          return { path: async () => path, saveAs: async (to) => copyFileSync(path, to), suggestedFilename: () => basename(path) };
        }
      }
      if (Date.now() > deadline) throw new Error("no download arrived");
      await sleep(100);
    }
  }
}
