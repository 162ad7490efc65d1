// Training, on the worker's side: fetch the images once, step the trainer a few steps per call
// (each call's losses come back in one asynchronous read), and post the losses, the held-out
// loss and preview samples to the page. Between calls the worker reads its messages, so Pause
// and Stop take effect within one call.

import { EVENT, OP } from "./protocol.js";

const PREVIEW = { count: 8, steps: 10, seed: 1 };
// A call aims at this much work, so the page hears from us (and pause answers) a few times a second.
const CALL_MS = 250;
// How often the trained weights are copied to the page, so that a lost GPU device (or any engine
// restart) costs at most this much training.
const SNAPSHOT_MS = 30000;

export function trainHandlers(ctx) {
  let run = null; // { token, paused, stop, wake }
  let dataLoaded = false;

  async function loadData(say) {
    if (dataLoaded) return;
    say({ op: EVENT.trainStatus, message: "Fetching the training images…" });
    const get = async (name) => {
      const response = await fetch(new URL(`./data/${name}`, import.meta.url));
      if (!response.ok) throw new Error(`the server answered ${response.status} for data/${name}`);
      return new Uint8Array(await response.arrayBuffer());
    };
    const [images, labels] = await Promise.all([get("t10k-images-idx3-ubyte.gz"), get("t10k-labels-idx1-ubyte.gz")]);
    const n = ctx.engine.loadData(images, labels);
    dataLoaded = true;
    say({ op: EVENT.trainStatus, message: `${n} images loaded.` });
  }

  const post = (m) => ctx.post(m);

  // Samples of the model being trained, whose `size` its description gives.
  async function preview(size, target) {
    const values = await ctx.engine.preview(PREVIEW.count, PREVIEW.steps, PREVIEW.seed);
    ctx.draw("train", values, { count: PREVIEW.count, cols: PREVIEW.count, size, panels: 1, colormap: 0, target });
    return values;
  }

  async function evaluate(done, say) {
    say({ op: EVENT.trainEval, done, loss: await ctx.engine.evalLoss() });
  }

  async function loop(settings) {
    // Every message of this run carries its tag, so a page with several demos knows whose it is.
    const say = (m) => post({ ...m, tag: settings.tag });
    const token = {};
    run = { token, paused: false, stop: false, wake: null };
    await ctx.trainingEngine(say);
    await loadData(say);
    const description = JSON.parse(ctx.engine.beginTraining(JSON.stringify(settings.options)));
    say({ op: EVENT.trainBegin, description, steps: settings.steps });
    await evaluate(0, say);
    const size = description.unet.image_size;
    const first = await preview(size, settings.target);
    say({ op: EVENT.trainPreview, done: 0, values: settings.sendValues ? first : undefined });
    let done = 0;
    let chunk = 1;
    let evalAt = settings.evalEvery;
    let previewAt = settings.previewEvery;
    let snapshotAt = performance.now() + SNAPSHOT_MS;
    while (done < settings.steps) {
      await new Promise((r) => setTimeout(r, 0));
      if (run.token !== token) return;
      if (run.stop) break;
      if (run.paused) {
        say({ op: EVENT.trainPaused, done, description: JSON.parse(ctx.engine.useTrained()) });
        await new Promise((r) => {
          run.wake = r;
        });
        if (run.token !== token) return;
        if (run.stop) break;
        say({ op: EVENT.trainResumed, done });
      }
      const report = await ctx.engine.trainSteps(Math.min(chunk, settings.steps - done));
      const { losses, millis } = report;
      done = report.done;
      report.free();
      // Size the next call from this one's pace.
      const perStep = millis / losses.length;
      chunk = Math.max(1, Math.min(16, Math.round(CALL_MS / perStep)));
      say({ op: EVENT.trainStep, done, losses, millis, imagesPerSecond: (losses.length * settings.options.batch * 1000) / millis });
      if (done >= evalAt || done === settings.steps) {
        await evaluate(done, say);
        evalAt = done + settings.evalEvery;
      }
      if (done >= previewAt || done === settings.steps) {
        const values = await preview(size, settings.target);
        say({ op: EVENT.trainPreview, done, values: settings.sendValues ? values : undefined });
        previewAt = done + settings.previewEvery;
      }
      if (performance.now() >= snapshotAt) {
        const bytes = await ctx.engine.trainedSnapshot();
        say({ op: EVENT.trainSnapshot, done, bytes: bytes.buffer });
        snapshotAt = performance.now() + SNAPSHOT_MS;
      }
    }
    if (run.token !== token) return;
    const finalDescription = JSON.parse(ctx.engine.useTrained());
    ctx.engine.endTraining();
    run = null;
    say({ op: EVENT.trainFinished, done, description: finalDescription });
  }

  return {
    async [OP.train]({ settings }) {
      if (run) {
        run.token = null;
        run.wake?.();
      }
      loop(settings).catch((e) => {
        run = null;
        post({ op: EVENT.trainError, tag: settings.tag, message: e.message || String(e) });
      });
      return null;
    },
    async [OP.trainPause]() {
      if (run) run.paused = true;
      return null;
    },
    async [OP.trainResume]() {
      if (run) {
        run.paused = false;
        run.wake?.();
        run.wake = null;
      }
      return null;
    },
    async [OP.trainStop]() {
      if (run) {
        run.stop = true;
        run.wake?.();
        run.wake = null;
      }
      return null;
    },
    // The active model as a weights file (after training: the trained weights).
    async [OP.save]() {
      const bytes = await ctx.engine.saveActive();
      return { op: "saved", bytes: bytes.buffer };
    },
  };
}
