// A static file server for dist/: correct MIME types (application/wasm included), loopback only.
// Used by `make run` and by the browser tests.
import { createServer } from "node:http";
import { readFile, stat } from "node:fs/promises";
import { extname, join, normalize, resolve } from "node:path";
import { pathToFileURL } from "node:url";

const TYPES = {
  ".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8", ".mjs": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8", ".wasm": "application/wasm", ".json": "application/json",
  ".png": "image/png", ".svg": "image/svg+xml", ".bin": "application/octet-stream",
  ".bpk": "application/octet-stream", ".ico": "image/x-icon", ".gz": "application/gzip",
  ".onnx": "application/octet-stream",
};

// `prefix` serves dist/ under a sub-path (e.g. "/blog/ddpm/"), as a blog host would; `onServe(path,
// body)` hears of every file sent (the bench counts the bytes of a cold load with it).
export function serve(root, port = 0, host = "127.0.0.1", prefix = "/", onServe = null) {
  root = resolve(root);
  const server = createServer(async (req, res) => {
    try {
      const url = new URL(req.url, "http://x").pathname;
      if (!url.startsWith(prefix)) throw Object.assign(new Error("outside prefix"), { code: "ENOENT" });
      const path = normalize(decodeURIComponent("/" + url.slice(prefix.length)));
      let file = join(root, path);
      if (!file.startsWith(root)) throw Object.assign(new Error("outside root"), { code: "ENOENT" });
      if ((await stat(file)).isDirectory()) file = join(file, "index.html");
      const body = await readFile(file);
      res.writeHead(200, { "content-type": TYPES[extname(file)] || "application/octet-stream", "cache-control": "no-cache" });
      res.end(body);
      onServe?.(url, body);
    } catch (e) {
      res.writeHead(e.code === "ENOENT" ? 404 : 500, { "content-type": "text/plain" });
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
