// The Repaint card: a garment (the last finished sample or a shipped test image), a brush that
// paints a mask over it with pointer events, Undo and Clear. Repaint asks the page to generate
// with the garment and the mask; the engine keeps the unpainted pixels (src/sampler/inpaint.rs).

import { $ } from "./dom.js";

const BRUSH = 1.6; // radius in image pixels

// `examples()`: the test images ({ values, size }, www/weights.js); `lastSample()`: the last
// finished run's ({ values, size }) or null.
export function initRepaint({ classNames, examples, lastSample, repaint }) {
  const canvas = $("repaint-canvas");
  const ctx = canvas.getContext("2d");
  // The garment, `size` pixels square, and the mask painted over it.
  const state = { image: null, size: 0, painted: new Float32Array(0), undo: [] };
  window.ddpm.repaint = state;

  // The shipped test images, one per class; "last" is the first image of the last finished run.
  function fillSources() {
    const select = $("repaint-source");
    const chosen = select.value;
    select.replaceChildren(
      ...(lastSample() ? [new Option("The last generated image", "last")] : []),
      ...classNames.map((name, i) => new Option(`Test image: ${name}`, String(i))),
    );
    select.value = [...select.options].some((o) => o.value === chosen) ? chosen : select.options[0].value;
  }

  async function choose() {
    const v = $("repaint-source").value;
    const { values, size } = v === "last" ? lastSample() : await examples();
    const first = v === "last" ? 0 : Number(v);
    state.image = Float32Array.from(values.subarray(first * size * size, (first + 1) * size * size));
    state.size = size;
    state.painted = new Float32Array(size * size);
    state.undo = [];
    state.source = v;
    draw();
  }

  function draw() {
    const { size } = state;
    if (!size) return; // the garment is still on its way
    const scale = canvas.width / size;
    const img = ctx.createImageData(canvas.width, canvas.height);
    for (let y = 0; y < canvas.height; y++)
      for (let x = 0; x < canvas.width; x++) {
        const i = Math.floor(y / scale) * size + Math.floor(x / scale);
        const g = Math.round((Math.min(1, Math.max(-1, state.image?.[i] ?? -1)) + 1) * 127.5);
        const p = state.painted[i];
        img.data.set([g * (1 - p) + (0.5 * g + 120) * p, g * (1 - p) + 0.5 * g * p, g * (1 - p) + 0.5 * g * p, 255], (y * canvas.width + x) * 4);
      }
    ctx.putImageData(img, 0, 0);
    $("repaint-info").textContent = `${state.painted.reduce((a, v) => a + v, 0)} of ${size * size} pixels painted.`;
  }

  function paintAt(event) {
    const { size } = state;
    const r = canvas.getBoundingClientRect();
    const [cx, cy] = [((event.clientX - r.left) / r.width) * size, ((event.clientY - r.top) / r.height) * size];
    for (let y = Math.floor(cy - BRUSH); y <= cy + BRUSH; y++)
      for (let x = Math.floor(cx - BRUSH); x <= cx + BRUSH; x++)
        if (x >= 0 && y >= 0 && x < size && y < size && (x + 0.5 - cx) ** 2 + (y + 0.5 - cy) ** 2 <= BRUSH * BRUSH) state.painted[y * size + x] = 1;
    draw();
  }

  // The browser may drop a 2D canvas's pixels and hand it back blank (Chromium does once while
  // the page starts up): draw the garment again.
  canvas.addEventListener("contextrestored", draw);
  canvas.addEventListener("pointerdown", (e) => {
    state.undo.push(Float32Array.from(state.painted));
    canvas.setPointerCapture(e.pointerId);
    paintAt(e);
  });
  canvas.addEventListener("pointermove", (e) => {
    if (canvas.hasPointerCapture(e.pointerId)) paintAt(e);
  });
  $("repaint-undo").addEventListener("click", () => {
    if (state.undo.length) {
      state.painted = state.undo.pop();
      draw();
    }
  });
  $("repaint-clear").addEventListener("click", () => {
    state.undo.push(Float32Array.from(state.painted));
    state.painted.fill(0);
    draw();
  });
  $("repaint-source").addEventListener("change", choose);
  $("repaint-go").addEventListener("click", () =>
    repaint({ image: Array.from(state.image), painted: Array.from(state.painted), resample: Number($("repaint-resample").value) }),
  );

  fillSources();
  choose();
  return {
    // A run finished: its first image can be repainted.
    finished() {
      fillSources();
    },
    enable(ready) {
      $("repaint-go").disabled = !ready;
    },
  };
}
