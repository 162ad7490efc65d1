// The pretrained weights: fetched with progress, checked against the SHA-256 in their manifest,
// and kept in the Cache API so a second visit downloads nothing. A damaged cached copy is noticed
// by its checksum and fetched again. `base` is the folder holding assets/ (the page, or the
// folder the embed script was loaded from).

import { CLASS_NAMES } from "./settings.js";

const WEIGHTS_CACHE = "ddpm-web-weights-v1";

async function sha256(bytes) {
  if (!crypto.subtle) return null; // only in secure contexts (https, localhost)
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
  return Array.from(digest, (b) => b.toString(16).padStart(2, "0")).join("");
}

// Resolves to { bytes, source: "cache" | "network" }; `on.progress(fraction)`, `on.notice(text)`,
// `on.downloading()` report along the way.
export async function fetchWeights(base, on = {}) {
  const manifest = await (await fetch(new URL("assets/model.json", base), { cache: "no-cache" })).json();
  const url = new URL(`assets/${manifest.file}`, base).href;
  let cache = null;
  try {
    cache = await caches.open(WEIGHTS_CACHE);
  } catch {
    /* no Cache API (e.g. insecure context) */
  }
  const hit = cache && (await cache.match(url));
  if (hit) {
    const bytes = new Uint8Array(await hit.arrayBuffer());
    if ((await sha256(bytes)) === manifest.sha256) return { bytes, source: "cache" };
    await cache.delete(url);
    on.notice?.("The cached weights were damaged; fetching them again.");
  }
  on.downloading?.();
  const response = await fetch(url, { cache: "no-cache" });
  if (!response.ok) throw new Error(`the server answered ${response.status} for ${manifest.file}`);
  const reader = response.body.getReader();
  const bytes = new Uint8Array(manifest.bytes);
  let got = 0;
  for (;;) {
    const { done, value: chunk } = await reader.read();
    if (done) break;
    if (got + chunk.length > bytes.length) throw new Error("the weights file is larger than its manifest says");
    bytes.set(chunk, got);
    got += chunk.length;
    on.progress?.(got / manifest.bytes);
  }
  if (got !== manifest.bytes) throw new Error(`the download was cut short (${got} of ${manifest.bytes} bytes)`);
  const digest = await sha256(bytes);
  if (digest !== null && digest !== manifest.sha256) throw new Error("the weights' SHA-256 does not match their manifest");
  await cache?.put(url, new Response(bytes, { headers: { "content-type": "application/octet-stream" } }));
  return { bytes, source: "network" };
}

// The forward explorer's test images, one per class (assets/examples.u8, one byte per pixel):
// { values in [-1, 1], count, size (each image's side) }.
export async function fetchExamples(base) {
  const response = await fetch(new URL("assets/examples.u8", base));
  if (!response.ok) throw new Error(`the server answered ${response.status} for assets/examples.u8`);
  const bytes = new Uint8Array(await response.arrayBuffer());
  const count = CLASS_NAMES.length;
  const size = Math.sqrt(bytes.length / count);
  if (!Number.isInteger(size)) throw new Error(`assets/examples.u8 does not hold ${count} square images`);
  return { values: Float32Array.from(bytes, (b) => b / 127.5 - 1), count, size };
}
