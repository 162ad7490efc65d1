// The engine's wasm comes in two modules split from one build (tools/build/split.mjs): ddpm-web_bg.wasm
// has everything sampling needs; ddpm-train_bg.wasm, the training code, is fetched when training
// starts and joins the first (it imports its memory, table and functions, and fills its table).
import init from "./ddpm-web.js";

const TRAINING = new URL("./ddpm-train_bg.wasm", import.meta.url);
let joined = false; // the training code is in
let training = null; // the fetch of the training code, once asked for

// The first module's exports reach `split.primary` from wasm-bindgen's glue (tools/build/split.mjs).
const split = { primary: null, placeholders: null };
globalThis.ddpmSplit = split;

function join(bytes) {
  new WebAssembly.Instance(new WebAssembly.Module(bytes), { primary: split.primary });
  joined = true;
}

// A training function called before the training code is in lands here: fetch the code
// synchronously (a worker may), then make the call. The split means this never to happen, so it
// is logged as an error (the browser tests fail on one).
split.placeholders = new Proxy(
  {},
  {
    get:
      (_, slot) =>
      (...args) => {
        if (!joined) {
          console.error(`ddpm-web: function slot ${String(slot)} is in the training code, which was not loaded yet; loading it now`);
          const request = new XMLHttpRequest();
          request.open("GET", TRAINING, false);
          request.responseType = "arraybuffer";
          request.send();
          if (request.status !== 200) throw new Error(`the server answered ${request.status} for ddpm-train_bg.wasm`);
          join(request.response);
        }
        return split.primary["%table"].get(Number(slot))(...args);
      },
  },
);

export async function loadEngine() {
  return init({ module_or_path: new URL("./ddpm-web_bg.wasm", import.meta.url) });
}

// Resolves once the training code is in; `loading` is told first if it must be fetched.
export function loadTraining(loading) {
  if (joined) return Promise.resolve();
  training ??= (async () => {
    loading();
    const response = await fetch(TRAINING);
    if (!response.ok) throw new Error(`the server answered ${response.status} for ddpm-train_bg.wasm`);
    const bytes = await response.arrayBuffer();
    if (!joined) join(bytes);
  })();
  training.catch(() => {
    training = null;
  });
  return training;
}
