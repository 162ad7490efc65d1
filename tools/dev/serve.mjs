// A static file server for dist/: correct MIME types (application/wasm included), loopback only.
// Where the browser accepts brotli or gzip and `make dist` wrote FILE.br or FILE.gz beside FILE
// (tools/build/compress.mjs), it sends that with Content-Encoding, as nginx's brotli_static/gzip_static do.
// Used by `make run`, the browser tests and the bench.
import { createServer } from "node:http";
import { readFile, stat } from "node:fs/promises";
import { extname, join, normalize, resolve } from "node:path";
import { pathToFileURL } from "node:url";

const TYPES = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".mjs": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".wasm": "application/wasm",
  ".json": "application/json",
  ".png": "image/png",
  ".svg": "image/svg+xml",
  ".bin": "application/octet-stream",
  ".bpk": "application/octet-stream",
  ".ico": "image/x-icon",
  ".gz": "application/gzip",
  ".onnx": "application/octet-stream",
  ".txt": "text/plain; charset=utf-8",
};

// The codings a request's Accept-Encoding allows, best first: brotli before gzip at equal q; q=0
// refuses one; `*` stands for those not named.
export function acceptedEncodings(header = "") {
  const q = {};
  for (const part of String(header).split(",")) {
    const [name, ...params] = part.trim().toLowerCase().split(";");
    if (!name) continue;
    const qp = params.map((p) => p.trim()).find((p) => p.startsWith("q="));
    const value = qp ? Number(qp.slice(2)) : 1;
    q[name] = Number.isFinite(value) ? value : 0;
  }
  const of = (name) => q[name] ?? q["*"] ?? 0;
  return [
    ["br", ".br"],
    ["gzip", ".gz"],
  ]
    .filter(([name]) => of(name) > 0)
    .sort((a, b) => of(b[0]) - of(a[0]));
}

// The precompressed copy to send for `file`, if any: it must be at least as new as the file (a
// copy left from an older build is not sent). Never for .gz/.br themselves (data/*.gz are real
// gzip files the page decompresses itself: they are sent as they are).
async function precompressed(file, acceptEncoding, fileTime) {
  if ([".gz", ".br"].includes(extname(file))) return null;
  for (const [encoding, ext] of acceptedEncodings(acceptEncoding)) {
    const info = await stat(file + ext).catch(() => null);
    if (info?.isFile() && info.mtimeMs >= fileTime) return { encoding, file: file + ext };
  }
  return null;
}

// `headers(path)` adds response headers (the package test's CDN sends CORS headers with it).
export function serve(root, port = 0, host = "127.0.0.1", prefix = "/", onServe = null, { headers: extra = () => ({}) } = {}) {
  root = resolve(root);
  const server = createServer(async (req, res) => {
    try {
      const url = new URL(req.url, "http://x").pathname;
      if (!url.startsWith(prefix)) throw Object.assign(new Error("outside prefix"), { code: "ENOENT" });
      const path = normalize(decodeURIComponent(`/${url.slice(prefix.length)}`));
      let file = join(root, path);
      if (!file.startsWith(root)) throw Object.assign(new Error("outside root"), { code: "ENOENT" });
      let info = await stat(file);
      if (info.isDirectory()) {
        file = join(file, "index.html");
        info = await stat(file);
      }
      const headers = { "content-type": TYPES[extname(file)] || "application/octet-stream", "cache-control": "no-cache", ...extra(url) };
      const packed = await precompressed(file, req.headers["accept-encoding"], info.mtimeMs);
      const body = await readFile(packed?.file ?? file);
      if (packed) headers["content-encoding"] = packed.encoding;
      if (![".gz", ".br"].includes(extname(file))) headers.vary = "Accept-Encoding";
      headers["content-length"] = body.length;
      res.writeHead(200, headers);
      if (req.method === "HEAD") return void res.end();
      res.end(body);
      onServe?.(url, body, packed?.encoding ?? null);
    } catch (e) {
      res.writeHead(e.code === "ENOENT" ? 404 : 500, { "content-type": "text/plain", ...extra(req.url) });
      res.end(e.code === "ENOENT" ? "not found" : "server error");
    }
  });
  return new Promise((ok) => server.listen(port, host, () => ok(server)));
}

if (import.meta.url === pathToFileURL(process.argv[1]).href) {
  const [root = "dist", port = "8080"] = process.argv.slice(2);
  const server = await serve(root, Number(port));
  console.log(`ddpm-web is served at http://127.0.0.1:${server.address().port}/ (Ctrl-C stops it)`);
}
