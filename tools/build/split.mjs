// `make web`: splits the engine's wasm (built with the `train` feature) in two with binaryen's
// wasm-split, so the page downloads Burn and CubeCL once:
//   ddpm-web_bg.wasm    what sampling can reach: every function called, directly or through calls,
//                       from an export or a table entry that the sampling-only build also has
//                       (matched by name), short of crates and modules only training has;
//   ddpm-train_bg.wasm  the rest (autodiff, Adam, the trainer), which www/wasm.js fetches when
//                       training starts. It imports the first module's memory, tables and functions.
// A split function called before then goes through a placeholder that loads the second module
// synchronously (www/wasm.js): a wrong guess costs a download, never a wrong result.
// Usage: node tools/build/split.mjs TRAIN_BG.wasm SAMPLING_BG.wasm OUT_DIR
// (both inputs from wasm-bindgen with their name sections; OUT_DIR holds wasm-bindgen's ddpm-web.js)
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const [trainPath, samplingPath, outDir] = process.argv.slice(2);
if (!outDir) {
  console.error("usage: node tools/build/split.mjs TRAIN_BG.wasm SAMPLING_BG.wasm OUT_DIR");
  process.exit(2);
}

function leb(bytes, at) {
  let value = 0,
    shift = 0,
    byte;
  do {
    byte = bytes[at++];
    value += (byte & 0x7f) * 2 ** shift;
    shift += 7;
  } while (byte & 0x80);
  return [value, at];
}
function uleb(value) {
  const out = [];
  do {
    let byte = value % 128;
    value = Math.floor(value / 128);
    if (value) byte |= 0x80;
    out.push(byte);
  } while (value);
  return out;
}

// The module's sections, and its function names (index → name) from the name section.
function readModule(path, needNames = true) {
  const bytes = readFileSync(path);
  const sections = [];
  const names = new Map();
  for (let at = 8; at < bytes.length; ) {
    const id = bytes[at];
    const [size, body] = leb(bytes, at + 1);
    sections.push({ id, start: at, body, end: body + size });
    if (id === 0) {
      const [len, nameAt] = leb(bytes, body);
      if (bytes.toString("latin1", nameAt, nameAt + len) === "name") sections.at(-1).isName = true;
      for (let sub = nameAt + len; sections.at(-1).isName && sub < body + size; ) {
        const kind = bytes[sub];
        const [subSize, subBody] = leb(bytes, sub + 1);
        if (kind === 1) {
          let [count, p] = leb(bytes, subBody);
          for (; count > 0; count--) {
            let index, nameLen;
            [index, p] = leb(bytes, p);
            [nameLen, p] = leb(bytes, p);
            names.set(index, bytes.toString("utf8", p, p + nameLen));
            p += nameLen;
          }
        }
        sub = subBody + subSize;
      }
    }
    at = body + size;
  }
  // Function imports come first in the index space; wasm-split keeps them in the first module.
  let imports = 0;
  const importSection = sections.find((s) => s.id === 2);
  if (importSection) {
    let [count, p] = leb(bytes, importSection.body);
    for (; count > 0; count--) {
      for (let field = 0; field < 2; field++) {
        const [len, q] = leb(bytes, p);
        p = q + len;
      }
      const kind = bytes[p++];
      if (kind === 0) {
        imports++;
        p = leb(bytes, p)[1];
        continue;
      }
      if (kind === 1) p++; // a table's element type
      if (kind === 3) {
        p += 2;
        continue;
      } // a global's type and mutability
      if (kind === 4) {
        p = leb(bytes, p + 1)[1];
        continue;
      } // a tag
      const flags = bytes[p++];
      p = leb(bytes, p)[1];
      if (flags & 1) p = leb(bytes, p)[1];
    }
  }
  const functionSection = sections.find((s) => s.id === 3);
  const functions = imports + (functionSection ? leb(bytes, functionSection.body)[0] : 0);
  if (needNames && !names.size) throw new Error(`${path} has no function names: run wasm-bindgen without --remove-name-section`);
  return { bytes, sections, names, imports, functions };
}

// The same function in two builds: its demangled path without the symbol hash (which changes with
// the crate's features) and without the numbering of duplicates.
const key = (name) => name.replace(/::h[0-9a-f]{16}/g, "").replace(/\[\d+\]$/, "");

const [FUNCTION, TABLE] = [0, 1];
const train = readModule(trainPath);
const samplingModule = readModule(samplingPath);
const sampling = new Set([...samplingModule.names.values()].map(key));
// wasm-ld wraps every export in the static constructors unless the module runs them itself
// (src/web/mod.rs); then each call from JavaScript re-runs them all.
const rerun = [...train.names.values()].filter((name) => name.endsWith(".command_export"));
if (rerun.length) {
  console.error(`split: ${rerun.length} exports re-run the static constructors (${rerun[0]}, …): the start function must call __wasm_call_ctors`);
  process.exit(1);
}
// A function's crate and module ("burn_autodiff", "burn_autodiff::ops"), from its demangled path.
const origin = (name) => {
  const m = /^<?([a-z_][a-z0-9_]*)(?:\[[0-9a-f]+\])?::([A-Za-z_][A-Za-z0-9_]*)/.exec(name);
  return m ? [m[1], `${m[1]}::${m[2]}`] : [null, null];
};
const samplingOrigins = new Set([...samplingModule.names.values()].flatMap(origin));
// A function the sampling-only build has no instance of, from a crate or module it lacks altogether
// (autodiff, the optimiser, the trainer): only training calls it, even where a shared function (a
// backend dispatch with an autodiff arm) could.
const inSampling = (index) => sampling.has(key(train.names.get(index) ?? ""));
const trainingOnly = (index) => {
  if (inSampling(index)) return false;
  const [crate, module] = origin(train.names.get(index) ?? "");
  return crate !== null && !(samplingOrigins.has(crate) && samplingOrigins.has(module));
};
// Exports by name, but wasm-bindgen numbers its closure shims' exports in the order it meets them.
const exportKey = (name) => name.replace(/_\d+$/, "");
const samplingExports = new Set(exportsOf(samplingModule.bytes, samplingModule.sections, FUNCTION).map((e) => exportKey(e.name)));

// wasm-split reads --keep-funcs as a comma-separated list, and Rust's names hold commas: name every
// function by its index for the split (the outputs carry no names). Binaryen would name a function
// the name section leaves out by another count, so each gets one.
const entries = [];
for (let index = 0; index < train.functions; index++) {
  entries.push(...uleb(index), ...uleb(`f${index}`.length), ...Buffer.from(`f${index}`));
}
const functionNames = [1, ...uleb(uleb(train.functions).length + entries.length), ...uleb(train.functions), ...entries];
const nameBody = [...uleb(4), ...Buffer.from("name"), ...functionNames];
const parts = [train.bytes.subarray(0, 8)];
for (const s of train.sections) {
  parts.push(s.isName ? Buffer.from([0, ...uleb(nameBody.length), ...nameBody]) : train.bytes.subarray(s.start, s.end));
}

// Functions reachable through direct calls from `exported` and from the table entries that
// `matched` accepts, in binaryen's call graph of the module, never through one `excluded` names.
function reachable(path, exported, matched, excluded) {
  const graph = spawnSync("wasm-opt", ["--all-features", path, "--print-call-graph", "-o", "/dev/null"], { encoding: "utf8", maxBuffer: 1 << 30 });
  if (graph.error || graph.status !== 0) throw new Error(`wasm-opt --print-call-graph: ${graph.error?.message ?? graph.stderr}`);
  const calls = new Map();
  const roots = new Set(exported);
  let tableEntries = 0;
  for (const line of graph.stdout.split("\n")) {
    const edge = /^\s*"f(\d+)" -> "f(\d+)"/.exec(line);
    if (edge) {
      const from = Number(edge[1]);
      if (!calls.has(from)) calls.set(from, []);
      calls.get(from).push(Number(edge[2]));
      continue;
    }
    // Table entries (indirect call targets) are drawn rounded.
    const node = /^\s*"f(\d+)" \[style="filled, rounded"\]/.exec(line);
    if (node) tableEntries++;
    if (node && matched(Number(node[1]))) roots.add(Number(node[1]));
  }
  if (!tableEntries) throw new Error("wasm-opt --print-call-graph printed no table entries");
  const seen = new Set(roots);
  for (const stack = [...roots]; stack.length; ) {
    for (const callee of calls.get(stack.pop()) ?? []) {
      if (!seen.has(callee) && !excluded(callee)) {
        seen.add(callee);
        stack.push(callee);
      }
    }
  }
  return [...seen].sort((a, b) => a - b);
}

// Binaryen 108's wasm-split points every table export of the first module at table 0 (wasm-bindgen's
// `__wbindgen_externrefs` is table 1): point each back at the table it exported before the split.
function repairTableExports(path) {
  const bytes = readFileSync(path);
  const before = new Map(exportsOf(train.bytes, train.sections, TABLE).map((e) => [e.name, e.index]));
  for (const e of exportsOf(bytes, readModule(path, false).sections, TABLE)) {
    if (!before.has(e.name) || before.get(e.name) === e.index) continue;
    if (e.index > 127 || before.get(e.name) > 127) throw new Error(`table export ${e.name}: index too large to repair in place`);
    bytes[e.indexAt] = before.get(e.name);
  }
  writeFileSync(path, bytes);
}

function exportsOf(bytes, sections, wanted) {
  const section = sections.find((s) => s.id === 7);
  const found = [];
  let [count, p] = leb(bytes, section.body);
  for (; count > 0; count--) {
    const [len, nameAt] = leb(bytes, p);
    const name = bytes.toString("utf8", nameAt, nameAt + len);
    const kind = bytes[nameAt + len];
    const [index, next] = leb(bytes, nameAt + len + 1);
    if (kind === wanted) found.push({ name, index, indexAt: nameAt + len + 1 });
    p = next;
  }
  return found;
}

const work = mkdtempSync(join(tmpdir(), "ddpm-split-"));
try {
  writeFileSync(join(work, "in.wasm"), Buffer.concat(parts));
  const exported = exportsOf(train.bytes, train.sections, FUNCTION)
    .filter((e) => samplingExports.has(exportKey(e.name)))
    .map((e) => e.index);
  const keep = reachable(join(work, "in.wasm"), exported, inSampling, trainingOnly)
    .filter((index) => index >= train.imports)
    .map((index) => `f${index}`);
  writeFileSync(join(work, "keep.txt"), `${keep.join("\n")}\n`);
  const primary = join(outDir, "ddpm-web_bg.wasm");
  const secondary = join(outDir, "ddpm-train_bg.wasm");
  const split = spawnSync(
    "wasm-split",
    [
      "--all-features",
      join(work, "in.wasm"),
      "-o1",
      primary,
      "-o2",
      secondary,
      `--keep-funcs=@${join(work, "keep.txt")}`,
      "--export-prefix=%",
      "--import-namespace=primary",
      "--placeholder-namespace=placeholder",
    ],
    { stdio: ["ignore", "inherit", "inherit"] },
  );
  if (split.error) throw new Error(`wasm-split: ${split.error.message} (make setup installs Debian's binaryen)`);
  if (split.status !== 0) throw new Error(`wasm-split failed with status ${split.status}`);
  repairTableExports(primary);

  // wasm-bindgen's glue instantiates the first module with its own imports: add the placeholders',
  // and hand www/wasm.js the instance's exports before the module's start function runs.
  const gluePath = join(outDir, "ddpm-web.js");
  let glue = readFileSync(gluePath, "utf8");
  for (const [anchor, addition] of [
    ['"./ddpm-web_bg.js": import0,', "\n        placeholder: globalThis.ddpmSplit.placeholders,"],
    ["    wasm = instance.exports;", "\n    globalThis.ddpmSplit.primary = wasm;"],
  ]) {
    if (glue.split(anchor).length !== 2) throw new Error(`${gluePath}: wasm-bindgen's glue changed shape at ${anchor}; update tools/build/split.mjs`);
    glue = glue.replace(anchor, anchor + addition);
  }
  writeFileSync(gluePath, glue);

  const mb = (path) => (readFileSync(path).length / 1e6).toFixed(2);
  console.log(
    `split: ${keep.length} of ${train.functions - train.imports} functions kept in ddpm-web_bg.wasm (${mb(primary)} MB), the rest in ddpm-train_bg.wasm (${mb(secondary)} MB)`,
  );
} finally {
  rmSync(work, { recursive: true, force: true });
}
