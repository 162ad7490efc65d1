// `make package`: the npm package a blog loads from a CDN, packed from dist/.
//   node tools/build/package/build.mjs [dist] [out folder]  →  <out>/ddpm-web-<version>.tgz
// The package is dist/ without its precompressed copies (CDNs compress by themselves), plus
// package.json, the Custom Elements Manifest, TypeScript declarations, a README and the licences.
import { execFileSync } from "node:child_process";
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { CLASS, TAG, declarations, manifest } from "./element.mjs";
import { cargoVersion } from "./modules.mjs";

export const NAME = "ddpm-web";

// Every file under `dir`, as paths relative to it.
function walk(dir, root = dir) {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? walk(path, root) : [relative(root, path)];
  });
}

// dist/'s files, less FILE.br and FILE.gz written beside FILE by tools/build/compress.mjs
// (data/*.gz are the data itself, and stay).
export function distFiles(dist) {
  const all = new Set(walk(dist));
  return [...all].filter((f) => !(/\.(br|gz)$/.test(f) && all.has(f.replace(/\.(br|gz)$/, "")))).sort();
}

function packageJson(version, files) {
  const top = [...new Set(files.map((f) => f.split("/")[0]))].sort();
  return {
    name: NAME,
    version,
    description:
      "A denoising diffusion model (DDPM) drawing Fashion-MNIST garments step by step in the reader's browser: Rust + Burn compiled to WebAssembly, on WebGPU or the CPU. One custom element, <ddpm-demo>.",
    license: "(MIT OR Apache-2.0)",
    type: "module",
    // The element loads its worker, wasm and weights next to itself, by URL: load it from a CDN
    // or a copy of this folder, not through a bundler.
    exports: {
      ".": { types: "./embed.d.ts", default: "./embed.js" },
      "./embed.js": { types: "./embed.d.ts", default: "./embed.js" },
      "./embed.html": "./embed.html",
      "./custom-elements.json": "./custom-elements.json",
      "./package.json": "./package.json",
    },
    types: "./embed.d.ts",
    customElements: "custom-elements.json",
    // What jsDelivr and unpkg serve for the bare package URL.
    jsdelivr: "embed.js",
    unpkg: "embed.js",
    browser: "embed.js",
    sideEffects: ["./embed.js"],
    files: [...top, "custom-elements.json", "embed.d.ts", "LICENSE-MIT", "LICENSE-APACHE"].filter((f, i, a) => a.indexOf(f) === i).sort(),
    keywords: ["diffusion", "ddpm", "webgpu", "webassembly", "custom-element", "web-component", "fashion-mnist", "burn"],
  };
}

function readme(version) {
  const cdn = `https://cdn.jsdelivr.net/npm/${NAME}@${version}`;
  return `# ${NAME} ${version}

A denoising diffusion model (DDPM) that draws Fashion-MNIST garments one denoising step at a
time, in the reader's browser: Rust + Burn compiled to WebAssembly, on the reader's GPU through
WebGPU, or on the CPU where there is none. Nothing is sent anywhere: the model and its weights
come from this package's folder, and everything runs on the reader's machine.

## In a blog post: two lines

\`\`\`html
<script type="module" src="${cdn}/embed.js"></script>
<${TAG} mode="generate" class="sneaker" steps="20" autoplay></${TAG}>
\`\`\`

Pin the version, as above: a post keeps working when a later version changes.

A page with a Content-Security-Policy needs these sources (besides its own):

\`\`\`
script-src ${new URL(cdn).origin} 'wasm-unsafe-eval'; worker-src blob:; connect-src ${new URL(cdn).origin}
\`\`\`

If something is missing, the demo says what: the directive and the source to add.

## Without scripts: the iframe version

\`\`\`html
<iframe src="https://your.site/ddpm/embed.html?mode=generate&class=sneaker&autoplay"
        style="border:0;width:100%;aspect-ratio:2/1"></iframe>
\`\`\`

\`embed.html\` must come from a host that serves HTML as HTML (jsDelivr serves it as text): copy
this package's folder to your site and point the iframe there.

## The element

Modes \`generate\`, \`morph\`, \`forward\` and \`train\`; its attributes, events and properties are
in \`custom-elements.json\` and \`embed.d.ts\` (\`${CLASS}\`, \`HTMLElementTagNameMap["${TAG}"]\`).
\`${CLASS}.version\` is \`"${version}"\`. A demo sends \`ddpm-step\`, \`ddpm-done\` and \`ddpm-error\` events.

## Self-hosting

Copy this folder to any static host, at any path, and load \`embed.js\` from there. From another
origin than the page, the host must send CORS headers (\`Access-Control-Allow-Origin\`) and serve
\`.wasm\` as \`application/wasm\`. A post without a \`train\` demo needs neither
\`ddpm-train_bg.wasm\` nor \`data/\`.

Licensed under MIT or Apache-2.0, at your option.
`;
}

export function build(dist = "dist", out = ".") {
  const version = cargoVersion();
  const built = readFileSync(join(dist, "version.js"), "utf8").match(/VERSION = "([^"]+)"/)?.[1];
  if (built !== version) throw new Error(`${dist}/ was built for version ${built}, Cargo.toml says ${version}: run make dist`);
  const dir = resolve(out, ".package", NAME);
  rmSync(dir, { recursive: true, force: true });
  const files = distFiles(dist);
  for (const f of files) {
    mkdirSync(dirname(join(dir, f)), { recursive: true });
    copyFileSync(join(dist, f), join(dir, f));
  }
  for (const f of ["LICENSE-MIT", "LICENSE-APACHE"]) copyFileSync(f, join(dir, f));
  writeFileSync(join(dir, "package.json"), `${JSON.stringify(packageJson(version, files), null, 2)}\n`);
  writeFileSync(join(dir, "custom-elements.json"), `${JSON.stringify(manifest(version), null, 2)}\n`);
  writeFileSync(join(dir, "embed.d.ts"), declarations(version));
  writeFileSync(join(dir, "README.md"), readme(version));
  const [packed] = JSON.parse(execFileSync("npm", ["pack", dir, "--pack-destination", resolve(out), "--json", "--loglevel=error"], { encoding: "utf8" }));
  rmSync(resolve(out, ".package"), { recursive: true, force: true });
  const tgz = resolve(out, packed.filename);
  if (!existsSync(tgz)) throw new Error(`npm pack wrote no ${packed.filename}`);
  return { tgz, version, size: packed.size, unpackedSize: packed.unpackedSize, entries: packed.entryCount };
}

if (import.meta.url === pathToFileURL(process.argv[1]).href) {
  const { tgz, size, unpackedSize, entries } = build(process.argv[2], process.argv[3]);
  const mb = (n) => `${(n / 1e6).toFixed(1)} MB`;
  console.log(`${relative(".", tgz)}: ${mb(size)} packed, ${mb(unpackedSize)} unpacked, ${entries} files`);
}
