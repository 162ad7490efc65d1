// The page's generated modules, written by `make web`: www/version.js from Cargo.toml's version
// (the one version: the page's footer, DdpmDemo.version, the package), and www/limits.js from
// www/limits.json (which the engine compiles in). A module, not JSON: a host page's CSP checks a
// JSON module against connect-src, and the element could not even say so.
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { pathToFileURL } from "node:url";

export function cargoVersion(root = ".") {
  const toml = readFileSync(join(root, "Cargo.toml"), "utf8");
  const pkg = toml.split(/^\[/m).find((section) => section.startsWith("package]"));
  const version = pkg?.match(/^version\s*=\s*"([^"]+)"/m)?.[1];
  if (!version) throw new Error("Cargo.toml has no [package] version");
  return version;
}

const HEAD = "// Written by tools/build/package/modules.mjs (make web): do not edit.\n";

export function writeModules(root = ".") {
  writeFileSync(join(root, "www/version.js"), `${HEAD}export const VERSION = ${JSON.stringify(cargoVersion(root))};\n`);
  const limits = JSON.parse(readFileSync(join(root, "www/limits.json"), "utf8"));
  writeFileSync(join(root, "www/limits.js"), `${HEAD}export default ${JSON.stringify(limits, null, 2)};\n`);
}

if (import.meta.url === pathToFileURL(process.argv[1]).href) writeModules();
