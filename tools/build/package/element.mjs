// <ddpm-demo> described once, for tools: the package's Custom Elements Manifest
// (custom-elements.json) and TypeScript declarations (embed.d.ts) are written from this, and a
// test checks it against the attributes and events www/embed.js reads and sends.
import { readFileSync } from "node:fs";

const LIMITS = JSON.parse(readFileSync(new URL("../../../www/limits.json", import.meta.url), "utf8"));
const union = (values) => values.map((v) => JSON.stringify(v)).join(" | ");

export const TAG = "ddpm-demo";
export const CLASS = "DdpmDemo";

// name → [TypeScript type of the value, description]. docs/embed.md's table says the same for readers.
export const ATTRIBUTES = {
  mode: [
    union(["generate", "morph", "forward", "train"]),
    "What the demo shows: generation, a morph between two seeds' garments, the forward (noising) process, or a small model training. Default generate.",
  ],
  sampler: [union(LIMITS.samplers), `The sampler. Default ${LIMITS.defaultSampler}.`],
  steps: [
    "string",
    'Sampler steps (dpm-solver: 5–50, default 10; ddim: steps dividing 1000, default 50); for mode="train", training steps (1–5000, default 300).',
  ],
  seed: ["string", "The sampler's seed, 0–4294967295. Default random."],
  to: ["string", 'mode="morph": the other seed. Default random.'],
  count: ["string", 'mode="morph": how many images, 5–9. Default 7.'],
  class: ["string", `A class name (${LIMITS.classes.join(", ")}) or its index 0–9; for mode="train", the class to learn. Default any class (train: Sneaker).`],
  guidance: ["string", `Classifier-free guidance scale, ${LIMITS.ranges.guidance.min}–${LIMITS.ranges.guidance.max}. Default ${LIMITS.ranges.guidance.def}.`],
  interval: [union(LIMITS.intervals), "Where guidance applies: time indices 0–600, or every step. Default 0-600."],
  batch: ["string", `How many images, ${LIMITS.ranges.batch.min}–${LIMITS.ranges.batch.max}. Default ${LIMITS.ranges.batch.def}.`],
  autoplay: ['boolean | "true" | "false"', 'Start when first seen. Default off (on with controls="none").'],
  controls: [union(["full", "minimal", "none"]), "full: Generate, Pause, class and seed; minimal: Generate and Pause; none. Default minimal."],
  backend: [
    union(["auto", "webgpu", "cpu"]),
    "Where the model runs: auto (WebGPU on a hardware GPU, else the CPU), webgpu, or cpu. Demos on a page share one engine: the first that names a backend chooses. Default auto.",
  ],
  src: ["string", "A weights file written by `ddpm train`, relative to the page. Default the shipped model."],
  t: ["string", 'mode="forward": the starting time index, 0–999. Default 250.'],
  schedule: [union(LIMITS.schedules), 'mode="forward": the β schedule. Default linear.'],
};

// name → [TypeScript type of `detail`, description].
export const EVENTS = {
  "ddpm-step": ["{ done: number; total: number }", "A sampler or training step finished."],
  "ddpm-done": [
    "{ steps?: number; seconds?: number; t?: number }",
    "A generation, morph or training run finished (a forward demo: the picture at t is drawn).",
  ],
  "ddpm-error": ["{ message: string }", "The demo stopped; `message` is what it shows the reader."],
};

export const STATES = ["idle", "waiting", "running", "paused", "away", "done", "error"];

// https://github.com/webcomponents/custom-elements-manifest (schema 2.1.0).
export function manifest(version) {
  const split = (type) => ({ text: type });
  return {
    schemaVersion: "2.1.0",
    readme: "README.md",
    modules: [
      {
        kind: "javascript-module",
        path: "embed.js",
        declarations: [
          {
            kind: "class",
            name: CLASS,
            tagName: TAG,
            customElement: true,
            description: `A denoising diffusion model drawing Fashion-MNIST garments step by step, in the reader's browser (ddpm-web ${version}).`,
            superclass: { name: "HTMLElement" },
            attributes: Object.entries(ATTRIBUTES).map(([name, [type, description]]) => ({ name, type: split(type), description })),
            events: Object.entries(EVENTS).map(([name, [detail, description]]) => ({ name, type: split(`CustomEvent<${detail}>`), description })),
            members: [
              {
                kind: "field",
                name: "version",
                static: true,
                readonly: true,
                type: split("string"),
                default: JSON.stringify(version),
                description: "The package's version.",
              },
              {
                kind: "field",
                name: "ddpm",
                readonly: true,
                type: split("DdpmDemoState"),
                description: "What the demo is doing: its state, steps done, the last run's settings and result.",
              },
              { kind: "method", name: "start", description: "Starts the demo's run, as its Generate (Morph, Train) button does." },
            ],
          },
        ],
        exports: [
          { kind: "js", name: CLASS, declaration: { name: CLASS, module: "embed.js" } },
          { kind: "custom-element-definition", name: TAG, declaration: { name: CLASS, module: "embed.js" } },
        ],
      },
    ],
  };
}

export function declarations(version) {
  const doc = (text, indent = "  ") => `${indent}/** ${text.replace(/\*\//g, "*\\/")} */\n`;
  const attributes = Object.entries(ATTRIBUTES)
    .map(([name, [type, d]]) => `${doc(d)}  ${name}?: ${type};\n`)
    .join("");
  const events = Object.entries(EVENTS)
    .map(([name, [detail, d]]) => `${doc(d)}  ${JSON.stringify(name)}: CustomEvent<${detail}>;\n`)
    .join("");
  return `// <${TAG}>, ddpm-web ${version}. Written by tools/build/package/element.mjs.

/** The element's attributes, as HTML takes them (for JSX and template type-checkers). */
export interface DdpmDemoAttributes {
${attributes}}

/** The events a demo sends (they bubble and cross shadow roots). */
export interface DdpmDemoEventMap extends HTMLElementEventMap {
${events}}

/** What a demo is doing. */
export interface DdpmDemoState {
  state: ${union(STATES)};
  /** Steps done in the current or last run. */
  steps: number;
  /** The last generation's settings. */
  settings?: { sampler: string; steps: number; seed: number; class: number; guidance: number; batch: number };
  /** The last finished run: its steps, seconds, and final images (values in [-1, 1], 28×28 each). */
  finished: { total: number; seconds: number; final: Float32Array } | null;
  /** Training losses so far (mode="train"). */
  losses: number[];
  /** Warnings shown while the demo went on (a GPU error). */
  notes?: string[];
}

/** <${TAG}>: a denoising diffusion model drawing Fashion-MNIST garments, step by step. */
export declare class ${CLASS} extends HTMLElement {
  /** The package's version. */
  static readonly version: string;
  readonly ddpm: DdpmDemoState;
  readonly mode: DdpmDemoAttributes["mode"];
  /** Starts the demo's run, as its Generate (Morph, Train) button does. */
  start(): Promise<void>;
  addEventListener<K extends keyof DdpmDemoEventMap>(type: K, listener: (this: ${CLASS}, ev: DdpmDemoEventMap[K]) => unknown, options?: boolean | AddEventListenerOptions): void;
  addEventListener(type: string, listener: EventListenerOrEventListenerObject, options?: boolean | AddEventListenerOptions): void;
  removeEventListener<K extends keyof DdpmDemoEventMap>(type: K, listener: (this: ${CLASS}, ev: DdpmDemoEventMap[K]) => unknown, options?: boolean | EventListenerOptions): void;
  removeEventListener(type: string, listener: EventListenerOrEventListenerObject, options?: boolean | EventListenerOptions): void;
}

declare global {
  interface HTMLElementTagNameMap {
    "${TAG}": ${CLASS};
  }
}
`;
}
