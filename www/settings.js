// What the page's URL and the embed element's attributes may ask of the model: the classes, the
// samplers and their step counts, the forward explorer's schedules, and the numeric ranges. They live in limits.json (as limits.js, written by make web), which the
// engine (src/limits.rs) reads too, so the page and the engine agree on them.
// DDIM's step counts divide T = 1000, DPM-Solver++'s need not; guidance applies at time indices 0–600 (measured best for
// the shipped model: docs/model-card.md) or at every step.

import LIMITS from "./limits.js";

export const CLASS_NAMES = LIMITS.classes;
export const SAMPLERS = LIMITS.samplers;
export const DEFAULT_SAMPLER = LIMITS.defaultSampler;
// The samplers that take a step count (the others walk all T steps): their choices and defaults.
export const STEPS = LIMITS.steps;
// A step count for `sampler`: `wanted` if it is one of its choices, else its default.
export const stepsFor = (sampler, wanted) => (STEPS[sampler]?.choices.includes(Number(wanted)) ? Number(wanted) : (STEPS[sampler]?.def ?? null));
export const INTERVALS = LIMITS.intervals;
export const SCHEDULES = LIMITS.schedules;
export const RANGES = LIMITS.ranges;

// A class index from text: a name ("Sneaker", "ankle boot") or an index 0–9; anything else
// (absent, "any", -1) is -1, any class.
export function classIndex(raw) {
  if (raw === null || raw === undefined) return -1;
  const letters = (name) =>
    String(name)
      .toLowerCase()
      .replace(/[^a-z]/g, "");
  const byName = CLASS_NAMES.findIndex((n) => letters(n) === letters(raw));
  if (byName >= 0) return byName;
  const i = Number(raw);
  return String(raw).trim() !== "" && Number.isInteger(i) && i >= 0 && i < CLASS_NAMES.length ? i : -1;
}

// Training in the tab (the Train card, <ddpm-demo mode="train">): the batch and learning rate
// for each starting point, a small new model or the model in use; the EMA decay (short runs: the
// average should follow within ~100 steps) and the seed.
export const TRAINING = Object.freeze({
  scratch: { batch: 8, lr: 0.001 },
  active: { batch: 16, lr: 0.0003 },
  ema: 0.99,
  seed: 0,
});

export const randomSeed = () => crypto.getRandomValues(new Uint32Array(1))[0];

// A number from text, clamped into `range` (rounded where it must be whole); null if unreadable.
export function clampNumber(raw, { min, max, int = false }) {
  const v = Number(raw);
  if (raw === null || raw === undefined || String(raw).trim() === "" || !Number.isFinite(v)) return null;
  return Math.min(max, Math.max(min, int ? Math.round(v) : v));
}
