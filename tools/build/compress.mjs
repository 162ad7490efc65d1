// `make dist`: writes FILE.br (brotli, quality 11) and FILE.gz (gzip, level 9) beside each
// compressible file of DIR of at least 1 KiB, for hosts that serve precompressed files (nginx
// `brotli_static`/`gzip_static`, Caddy `precompressed`, tools/dev/serve.mjs). A compressed copy is kept
// only when it is smaller than its source. Copies whose source is gone, or newer, are removed (and
// rewritten where the source remains); up-to-date copies are kept, so a second run is quick.
// The page's own .gz data files (www/data/*.gz, decompressed by the page) are left alone.
// Usage: node tools/build/compress.mjs DIR
import { readdir, readFile, rename, stat, unlink, writeFile } from "node:fs/promises";
import { extname, join, relative } from "node:path";
import { promisify } from "node:util";
import { brotliCompress, constants, gzip } from "node:zlib";

const COMPRESSIBLE = new Set([".wasm", ".js", ".mjs", ".json", ".html", ".css", ".u8", ".ddpm", ".svg", ".txt"]);
const MIN_SIZE = 1024;
const ENCODINGS = {
  ".br": (data) =>
    promisify(brotliCompress)(data, {
      params: {
        [constants.BROTLI_PARAM_QUALITY]: 11,
        [constants.BROTLI_PARAM_LGWIN]: 24,
        [constants.BROTLI_PARAM_SIZE_HINT]: data.length,
        [constants.BROTLI_PARAM_MODE]: constants.BROTLI_MODE_GENERIC,
      },
    }),
  ".gz": (data) => promisify(gzip)(data, { level: 9 }),
};

const dir = process.argv[2];
if (!dir) {
  console.error("usage: node tools/build/compress.mjs DIR");
  process.exit(2);
}

async function* walk(d) {
  for (const entry of await readdir(d, { withFileTypes: true })) {
    const path = join(d, entry.name);
    if (entry.isDirectory()) yield* walk(path);
    else if (entry.isFile()) yield path;
  }
}

const mtime = async (path) => (await stat(path).catch(() => null))?.mtimeMs ?? null;
const remove = (path) =>
  unlink(path).catch((e) => {
    if (e.code !== "ENOENT") throw e;
  });

const files = [];
for await (const path of walk(dir)) files.push(path);
const present = new Set(files);

// Stale copies: FILE.br / FILE.gz of a compressible FILE that is gone. (A .gz whose stripped name is
// not compressible, such as data/t10k-images-idx3-ubyte.gz, is a real data file: kept.)
for (const path of files) {
  if (/\.(br|gz)\.tmp$/.test(path)) await remove(path); // left by a run cut short
  const ext = extname(path);
  if (!(ext in ENCODINGS)) continue;
  const source = path.slice(0, -ext.length);
  if (COMPRESSIBLE.has(extname(source)) && !present.has(source)) {
    await remove(path);
    console.log(`removed ${relative(dir, path)} (its source is gone)`);
  }
}

const kb = (n) => `${(n / 1024).toFixed(0).padStart(7)} KB`;
const total = { raw: 0, ".gz": 0, ".br": 0 };
let count = 0;
const started = Date.now();
for (const path of files.sort()) {
  if (!COMPRESSIBLE.has(extname(path))) continue;
  const info = await stat(path);
  const sizes = {};
  if (info.size < MIN_SIZE) {
    for (const ext of Object.keys(ENCODINGS)) await remove(path + ext);
    continue;
  }
  let data = null;
  for (const [ext, compress] of Object.entries(ENCODINGS)) {
    const out = path + ext;
    const outTime = await mtime(out);
    if (outTime !== null && outTime >= info.mtimeMs) {
      sizes[ext] = (await stat(out)).size; // up to date
      continue;
    }
    data ??= await readFile(path);
    const packed = await compress(data);
    sizes[ext] = packed.length;
    if (packed.length < data.length) {
      await writeFile(`${out}.tmp`, packed); // a run cut short leaves no truncated copy behind
      await rename(`${out}.tmp`, out);
    } else {
      await remove(out); // no gain: the raw file is served
      sizes[ext] = info.size;
    }
  }
  total.raw += info.size;
  for (const ext of Object.keys(ENCODINGS)) total[ext] += sizes[ext];
  count += 1;
  console.log(`${kb(info.size)} raw ${kb(sizes[".gz"])} gzip ${kb(sizes[".br"])} brotli  ${relative(dir, path)}`);
}
console.log(
  `${kb(total.raw)} raw ${kb(total[".gz"])} gzip ${kb(total[".br"])} brotli  total, ${count} files (${((Date.now() - started) / 1000).toFixed(0)} s)`,
);
