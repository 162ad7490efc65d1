// The Train card: settings, Start / Pause / Stop, the live loss curve, images per second and the
// preview. The training itself runs in the worker (www/train-worker.js).

import { $, el } from "./dom.js";
import { plotContext } from "./draw2d.js";
import { EVENT, OP } from "./protocol.js";
import { TRAINING, clampNumber } from "./settings.js";

const SMOOTHING = 0.1;

export function initTrain({ send, notice, backend, targetWidth, models, classNames, onBusy }) {
  const state = { state: "idle", done: 0, losses: [], evals: [], rates: [], previews: 0 };
  window.ddpm.train = state;
  let total = 0;
  let snapshot = null; // { done, bytes }: the run's latest trained weights, kept for a restart

  classNames.forEach((name, i) => {
    const label = el("label");
    label.append(el("input", { type: "checkbox", value: String(i), checked: true }), ` ${name}`);
    $("train-classes").append(label);
  });
  const boxes = () => [...$("train-classes").querySelectorAll("input")];
  $("classes-all").addEventListener("click", () => boxes().forEach((b) => (b.checked = true)));
  $("classes-none").addEventListener("click", () => boxes().forEach((b) => (b.checked = false)));
  $("train-from").addEventListener("change", () => {
    $("train-lr").value = String(TRAINING[$("train-from").value].lr);
  });

  function setState(s, info) {
    state.state = s;
    if (info) $("train-info").textContent = info;
    const running = s === "running" || s === "starting";
    $("train-start").disabled = running || s === "paused" || !models.active();
    $("train-pause").disabled = !(s === "running" || s === "paused");
    $("train-pause").textContent = s === "paused" ? "Resume" : "Pause";
    $("train-stop").disabled = !(s === "running" || s === "paused");
    for (const el of $("train-controls").querySelectorAll("select, input, .link")) el.disabled = running || s === "paused";
    onBusy(running);
  }

  // Called when the engine (re)starts: training does not survive a new worker.
  function engineReady() {
    const cpu = backend() === "cpu";
    if (!state.touched) {
      const from = cpu ? "scratch" : "active";
      $("train-from").value = from;
      $("train-batch").value = String(TRAINING[from].batch);
      $("train-lr").value = String(TRAINING[from].lr);
    }
    $("train-note").textContent = cpu
      ? "No usable WebGPU here, so training runs on the CPU in WebAssembly, on one core. That is slow: a few dozen images per second for the small new model, a handful when fine-tuning the full one."
      : "Training runs on your GPU through WebGPU. The preview samples 8 images with DDIM in 10 steps from the averaged (EMA) weights, always from the same noise.";
    // A run that had not finished: running or paused, or stopped by an error (a lost device makes
    // the worker's pending step fail before the page hears of the loss).
    const interrupted = ["running", "paused", "starting"].includes(state.state) || (state.state === "error" && snapshot !== null);
    setState(interrupted ? "idle" : state.state, interrupted ? `Training was interrupted at step ${state.done} by the engine restart.` : undefined);
    if (interrupted && snapshot) recover(snapshot);
  }

  // After an interrupted run the latest snapshot becomes the model in use, so fine-tuning from
  // it goes on where the run left off (less at most half a minute).
  async function recover({ done, bytes }) {
    snapshot = null;
    try {
      await models.recover({ name: "trained in this tab", kind: "trained", bytes });
      $("train-from").value = "active";
      $("train-info").textContent =
        `Training was interrupted at step ${state.done}; the weights trained up to step ${done} are the model in use. Start again (from the model in use) to go on.`;
      state.recoveredAt = done;
    } catch (e) {
      notice(`The weights trained before the interruption could not be restored: ${e.message}.`);
    }
  }

  function start(event) {
    event?.preventDefault();
    const classes = boxes()
      .filter((b) => b.checked)
      .map((b) => Number(b.value));
    if (!classes.length) {
      notice("Choose at least one class to train on.");
      return;
    }
    const input = $("train-steps"); // its bounds and default are in index.html
    const steps = clampNumber(input.value, { min: Number(input.min), max: Number(input.max), int: true }) ?? Number(input.defaultValue);
    input.value = steps;
    const cpu = backend() === "cpu";
    const options = {
      from: $("train-from").value,
      classes,
      batch: Number($("train-batch").value),
      lr: Number($("train-lr").value),
      seed: state.seed ?? TRAINING.seed,
      ema: TRAINING.ema,
      flips: $("train-flips").checked,
    };
    Object.assign(state, { done: 0, losses: [], evals: [], rates: [], previews: 0, snapshotAt: null, recoveredAt: null, options, finished: null });
    snapshot = null;
    total = steps;
    plot();
    setState("starting", "Starting…");
    send(OP.train, { settings: { options, steps, evalEvery: 10, previewEvery: cpu ? 50 : 25, target: targetWidth("train-canvas") } });
  }

  function onMessage(m) {
    switch (m.op) {
      case EVENT.trainStatus:
        $("train-info").textContent = m.message;
        break;
      case EVENT.trainBegin:
        setState("running", `Step 0 / ${m.steps}`);
        break;
      case EVENT.trainStep: {
        state.done = m.done;
        state.losses.push(...m.losses);
        state.rates.push(m.imagesPerSecond);
        $("train-info").textContent = `Step ${m.done} / ${total} · loss ${smoothed().at(-1).toFixed(4)}`;
        $("train-rate").textContent = `${m.imagesPerSecond.toFixed(1)} images/s`;
        $("train-bar").style.width = `${(100 * m.done) / total}%`;
        plot();
        break;
      }
      case EVENT.trainEval:
        state.evals.push({ step: m.done, loss: m.loss });
        $("train-eval").textContent = `held-out loss ${m.loss.toFixed(4)}`;
        plot();
        break;
      case EVENT.trainPreview:
        state.previews++;
        break;
      case EVENT.trainSnapshot:
        snapshot = { done: m.done, bytes: new Uint8Array(m.bytes) };
        state.snapshotAt = m.done;
        break;
      case EVENT.trainPaused:
        setState("paused", `Paused at step ${m.done} / ${total}. Generate now uses these weights.`);
        models.trained(m.description);
        break;
      case EVENT.trainResumed:
        setState("running");
        break;
      case EVENT.trainFinished:
        state.finished = m;
        setState("done", `Done: ${m.done} steps. Generate now uses the trained weights; Save keeps them.`);
        models.trained(m.description);
        break;
      case EVENT.trainError:
        setState("error", `Training stopped: ${m.message}`);
        break;
    }
  }

  // An exponential moving average, debiased (as TensorBoard does) so that it starts at the data.
  function smoothed() {
    let s = 0;
    return state.losses.map((l, i) => {
      s = (1 - SMOOTHING) * s + SMOOTHING * l;
      return s / (1 - (1 - SMOOTHING) ** (i + 1));
    });
  }

  // Loss by step on a log scale: raw (faint), smoothed (bold) and the held-out loss (dots).
  function plot() {
    const { ctx, w, h, dpr, pad } = plotContext($("loss-plot"), { l: 48, r: 12, t: 10, b: 24 });
    const all = [...state.losses, ...state.evals.map((e) => e.loss)].filter((v) => v > 0);
    if (!all.length) {
      ctx.fillText("The loss appears here once training starts.", pad.l, h / 2);
      return;
    }
    const lo = Math.floor(Math.log10(Math.min(...all))),
      hi = Math.ceil(Math.log10(Math.max(...all)) + 1e-9);
    const span = Math.max(1, hi - lo);
    const X = (step) => pad.l + (step / Math.max(1, total)) * (w - pad.l - pad.r);
    const Y = (v) => pad.t + ((hi - Math.log10(v)) / span) * (h - pad.t - pad.b);
    for (let e = lo; e <= hi; e++) {
      ctx.beginPath();
      ctx.moveTo(pad.l, Y(10 ** e));
      ctx.lineTo(w - pad.r, Y(10 ** e));
      ctx.stroke();
      ctx.fillText(String(10 ** e >= 1 ? 10 ** e : (10 ** e).toFixed(-e)), 4 * dpr, Y(10 ** e) + 4 * dpr);
    }
    ctx.fillText(`step → ${total}`, w - pad.r - 80 * dpr, h - 6 * dpr);
    const line = (values, colour, width) => {
      ctx.strokeStyle = colour;
      ctx.lineWidth = width * dpr;
      ctx.beginPath();
      values.forEach((v, i) => (i ? ctx.lineTo(X(i + 1), Y(v)) : ctx.moveTo(X(i + 1), Y(v))));
      ctx.stroke();
    };
    line(state.losses, "rgba(124,196,255,0.35)", 1);
    line(smoothed(), "#7cc4ff", 2.5);
    ctx.fillStyle = "#ffcc66";
    for (const { step, loss } of state.evals) {
      ctx.beginPath();
      ctx.arc(X(step), Y(loss), 3.5 * dpr, 0, 2 * Math.PI);
      ctx.fill();
    }
    ctx.fillStyle = "#7cc4ff";
    ctx.fillText("training loss (smoothed)", pad.l + 8 * dpr, h - 6 * dpr);
    ctx.fillStyle = "#ffcc66";
    ctx.fillText("● held-out batch", pad.l + 170 * dpr, h - 6 * dpr);
  }

  $("train-controls").addEventListener("submit", start);
  $("train-controls").addEventListener("input", () => (state.touched = true));
  $("train-pause").addEventListener("click", () => {
    const resume = state.state === "paused";
    send(resume ? OP.trainResume : OP.trainPause);
    $("train-info").textContent = resume ? "Resuming…" : "Pausing after this step…";
  });
  $("train-stop").addEventListener("click", () => {
    send(OP.trainStop);
    $("train-info").textContent = "Stopping…";
  });
  addEventListener("resize", plot);
  plot();
  return { onMessage, engineReady, running: () => ["running", "starting"].includes(state.state), paused: () => state.state === "paused" };
}
