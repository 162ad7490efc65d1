// Which model Generate uses: the pretrained one, weights trained in this tab, weights saved in
// IndexedDB, or a file from disk. The active model's bytes are kept so that restarting the
// engine (after a lost GPU device) brings the same model back.

import { $, saveFile } from "./dom.js";
import { OP } from "./protocol.js";
import { loadModel, saveModel } from "./store.js";

const SAVED_KEY = "trained";

export function initModels({ call, notice, onChange }) {
  let pretrained = null; // { name, kind, bytes }
  let active = null; // { name, kind, bytes, description }
  let saved = null;

  function show() {
    const d = active?.description;
    const steps = d ? `${d.train_steps.toLocaleString("en")} training steps` : "";
    for (const el of document.querySelectorAll(".model-name")) el.textContent = active?.name ?? "—";
    for (const el of document.querySelectorAll(".model-detail")) el.textContent = steps && `(${steps}, ${d.unet.dim_mults.length} levels, width ${d.unet.dim})`;
    $("model-pretrained").disabled = !active || active.kind === "pretrained";
    $("model-save").disabled = !active || active.kind === "pretrained";
    $("model-saved").hidden = !saved;
    if (saved) $("model-saved").textContent = `Use saved (${saved.description.train_steps.toLocaleString("en")} steps)`;
    window.ddpm.model = active && { name: active.name, kind: active.kind, description: active.description };
  }

  // Loads `record` into the engine; on failure the model in use stays as it was.
  async function use(record) {
    const { description } = await call(OP.load, { bytes: record.bytes.slice().buffer });
    active = { ...record, description };
    show();
    onChange();
  }

  async function fromFile(file) {
    try {
      await use({ name: file.name, kind: "file", bytes: new Uint8Array(await file.arrayBuffer()) });
      notice("");
    } catch (e) {
      notice(`${file.name} is not a model this page can use: ${e.message}. The model in use is unchanged.`);
    }
  }

  async function save() {
    const record = { name: active.name, kind: "saved", bytes: active.bytes, description: active.description, savedAt: Date.now() };
    try {
      await saveModel(SAVED_KEY, record);
      saved = record;
    } catch (e) {
      notice(`The browser did not keep the model (${e.message}); the downloaded file still has it.`);
    }
    saveFile(new Blob([record.bytes], { type: "application/octet-stream" }), `ddpm-trained-${record.description.train_steps}steps.ddpm`);
    show();
  }

  $("model-pretrained").addEventListener("click", () => use(pretrained).catch((e) => notice(`Could not switch models: ${e.message}`)));
  $("model-saved").addEventListener("click", () =>
    use({ ...saved, name: "saved in this browser" }).catch((e) => notice(`The saved model could not be used: ${e.message}`)),
  );
  $("model-save").addEventListener("click", () => save());
  $("model-file").addEventListener("change", (e) => {
    const f = e.target.files[0];
    e.target.value = "";
    if (f) fromFile(f);
  });
  loadModel(SAVED_KEY).then((record) => {
    saved = record?.bytes ? record : null;
    show();
  });

  return {
    // The bytes the engine should load when it (re)starts.
    startBytes: () => (active ?? pretrained).bytes,
    // Called once the engine loaded `startBytes()`.
    started(description) {
      active = active ? { ...active, description } : { ...pretrained, description };
      show();
    },
    setPretrained(bytes) {
      pretrained = { name: "pretrained", kind: "pretrained", bytes };
    },
    // The engine switched to weights from the training run; keep their bytes for restarts and saving.
    async trained(description) {
      const { bytes } = await call(OP.save);
      active = { name: "trained in this tab", kind: "trained", bytes: new Uint8Array(bytes), description };
      show();
      onChange();
    },
    // Weights kept from an interrupted training run become the model in use.
    recover: (record) => use(record),
    active: () => active,
  };
}
