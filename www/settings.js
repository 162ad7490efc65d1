// What the page's URL and the embed element's attributes may ask of the model, in one place:
// the classes, the samplers and their step counts, and the numeric ranges.

export const CLASS_NAMES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"];
export const SAMPLERS = ["ddim", "ddpm", "ddpm-tilde"];
export const DDIM_STEPS = [10, 20, 25, 40, 50, 100, 125, 200, 250, 500, 1000]; // divisors of T = 1000
// Where guidance applies: time indices 0–600 (measured best for the shipped model: README,
// model card) or every step.
export const INTERVALS = ["0-600", "all"];
export const RANGES = {
  eta: { min: 0, max: 1, def: 0 },
  seed: { min: 0, max: 4294967295, int: true },
  guidance: { min: 0, max: 8, def: 2 },
  batch: { min: 1, max: 16, int: true },
};

export const randomSeed = () => crypto.getRandomValues(new Uint32Array(1))[0];

// A number from text, clamped into `range` (rounded where it must be whole); null if unreadable.
export function clampNumber(raw, { min, max, int = false }) {
  const v = Number(raw);
  if (raw === null || raw === undefined || String(raw).trim() === "" || !Number.isFinite(v)) return null;
  return Math.min(max, Math.max(min, int ? Math.round(v) : v));
}
