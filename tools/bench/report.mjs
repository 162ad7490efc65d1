// Gathers the JSON that `make bench` wrote (native Burn CPU/wgpu, PyTorch, the browser run) into
// one table: printed, and written to docs/benchmarks.md and docs/benchmarks.json. Ratios are the peer's
// time over ours, so above 1 means we are faster.
// Usage: node tools/bench/report.mjs BENCH_DIR
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { cpus, totalmem } from "node:os";
import { join } from "node:path";

const dir = process.argv[2];
const read = (f) => JSON.parse(readFileSync(join(dir, f), "utf8"));
const [cpu, wgpu, torch, web] = ["cpu.json", "wgpu.json", "torch.json", "browser.json"].map(read);
const engines = existsSync(join(dir, "engines.json")) ? read("engines.json") : {};

const ms = (s) => (s ? `${s.median.toFixed(1)} ms (${s.min.toFixed(1)}–${s.max.toFixed(1)})` : "n/a");
const ratio = (peer, us) => (peer && us ? `${(peer.median / us.median).toFixed(2)}×` : "n/a");
const gflops = (flops, s) => (s ? `${(flops / (s.median / 1000) / 1e9).toFixed(2)}` : "n/a");
const kb = (b) => `${(b / 1024).toFixed(0)} KB`;
const flops1 = torch.flops_forward_batch1;

const rows = [];
const section = (title, head) => rows.push("", `### ${title}`, "", `| ${head.join(" | ")} |`, `|${head.map(() => " --- ").join("|")}|`);
const row = (...cells) => rows.push(`| ${cells.join(" | ")} |`);

section("Browser: one reverse step (U-Net forward + update + read-back), same Chromium, same adapter", [
  "batch",
  "ours, WebGPU",
  "onnxruntime-web, WebGPU EP",
  "ratio",
  "ours, CPU (wasm)",
  "onnxruntime-web, wasm EP",
  "ratio",
]);
for (const b of ["1", "16"]) {
  const ow = web.ours.webgpu[b]?.step_ms,
    oc = web.ours.cpu[b]?.step_ms;
  const pw = web.ort.webgpu.step_ms?.[b],
    pc = web.ort.wasm.step_ms?.[b];
  row(b, ms(ow), pw ? ms(pw) : (web.ort.webgpu.error ?? "n/a"), ratio(pw, ow), ms(oc), pc ? ms(pc) : (web.ort.wasm.error ?? "n/a"), ratio(pc, oc));
}

const check = web.ours.webgpu["1"]?.check;
if (check) {
  rows.push(
    "",
    `The page's start-up check on WebGPU (one batch-1 forward on the GPU and on the CPU path, compared): ${check.millis.toFixed(0)} ms, ` +
      `max |GPU − CPU| ${check.maxDiff.toExponential(1)} against a tolerance of ${check.tolerance.toExponential(1)}, U-Net's kernels ${check.kernels ? "on" : "off"}.`,
  );
}

if (web.train_in_tab) {
  section("Browser: training in the tab on the CPU path (wasm), batch 8, Chromium", ["start from", "images/s (median of the page's reports)", "steps"]);
  const t = web.train_in_tab;
  for (const [name, r] of [
    ["the shipped model (fine-tune)", t.finetune],
    ["a small new model", t.scratch],
  ]) {
    row(name, `${r.images_per_s.median.toFixed(1)} (${r.images_per_s.min.toFixed(1)}–${r.images_per_s.max.toFixed(1)})`, r.steps);
  }
}

section("Browser engines: the page's reverse step (DDIM, guided), on the path each engine takes by itself", [
  "engine",
  "runs on",
  "drawn by",
  "batch 1",
  "batch 4",
]);
for (const [name, e] of Object.entries(engines)) {
  if (e.error) row(name, e.error, "", "", "");
  else
    row(
      name,
      e.backend === "cpu" ? `CPU (wasm)${e.webgpu ? "" : ", no WebGPU"}` : "WebGPU",
      e.drawing,
      `${e.step_ms["1"].toFixed(0)} ms`,
      `${e.step_ms["4"].toFixed(0)} ms`,
    );
}

section("Native: one U-Net forward, and training (Algorithm 1 with Adam, clipping, EMA)", [
  "",
  "Burn CPU (flex)",
  "Burn wgpu",
  "PyTorch CPU (reference)",
  "ratio PyTorch / Burn CPU",
]);
for (const b of ["1", "16"])
  row(`forward, batch ${b}`, ms(cpu.forward_ms[b]), ms(wgpu.forward_ms[b]), ms(torch.forward_ms[b]), ratio(torch.forward_ms[b], cpu.forward_ms[b]));
// The CPU's kernels off: Burn's operations alone, what the CPU ran before src/kernels/cpu/.
if (cpu.forward_ms_without_kernels) {
  for (const b of ["1", "16"])
    row(
      `forward, batch ${b}, the kernels off`,
      ms(cpu.forward_ms_without_kernels[b]),
      ms(wgpu.forward_ms_without_kernels?.[b]),
      "",
      ratio(torch.forward_ms[b], cpu.forward_ms_without_kernels[b]),
    );
}
const ips = (t) => (t ? `${t.images_per_s.toFixed(1)} img/s` : "n/a");
const byBatch = (r) => r.train_by_batch ?? (r.train ? { [r.train.batch]: { train: r.train, train_without_kernels: r.train_without_kernels } } : {});
const trainRatio = (ours, peer) => (ours && peer ? `${(ours.images_per_s / peer.images_per_s).toFixed(2)}×` : "n/a");
const torchBatches = torch.train_by_batch ?? (torch.train ? { [torch.train.batch]: torch.train } : {});
for (const [b, c] of Object.entries(byBatch(cpu))) {
  const w = byBatch(wgpu)[b];
  row(`training, batch ${b}`, ips(c.train), ips(w?.train), ips(torchBatches[b]), trainRatio(c.train, torchBatches[b]));
  // Steps with and without the kernels alternate; the median of the pairs' ratios is the figure least moved by the host.
  const speedups = [c, w].map((x) => (x?.train?.speedup_over_without_kernels ? ` ${x.train.speedup_over_without_kernels.toFixed(2)}×` : ""));
  if (c.train_without_kernels || w?.train_without_kernels) {
    row(
      `training, batch ${b}, the kernels off (Burn's operations and optimiser, steps alternated with the kernels'; the kernels' speedup, median of the pairs: CPU${speedups[0]}, wgpu${speedups[1]})`,
      ips(c.train_without_kernels),
      ips(w?.train_without_kernels),
      "",
      trainRatio(c.train_without_kernels, torchBatches[b]),
    );
  }
}

section("Kernel launches (native wgpu, Burn without fusion; counted, not timed; tests/launches.rs holds them)", ["work", "launches", "most launched kernels"]);
for (const [work, l] of Object.entries(wgpu.launches ?? {})) {
  const top = Object.entries(l.by_kernel)
    .sort((a, b) => b[1] - a[1])
    .slice(0, 4)
    .map(([k, n]) => `${k} ${n}`)
    .join(", ");
  row(work, l.total, top);
}

if (wgpu.launches_by_part) {
  const { kernels, burn_ops: ops } = wgpu.launches_by_part;
  section("Kernel launches by part of the network (one forward, batch 1): the U-Net's own kernels (src/kernels/) against Burn's operations alone", [
    "part",
    "with the kernels",
    "Burn's operations",
    "ratio",
  ]);
  const sum = (o) => Object.values(o).reduce((a, b) => a + b, 0);
  for (const part of Object.keys(ops)) row(part, kernels[part], ops[part], `${(ops[part] / Math.max(kernels[part], 1)).toFixed(1)}×`);
  row("whole forward", sum(kernels), sum(ops), `${(sum(ops) / sum(kernels)).toFixed(1)}×`);
}

section("Arithmetic floor: FLOPs of one U-Net forward (PyTorch's FlopCounterMode; convolutions and matmuls)", [
  "batch",
  "GFLOP",
  "ours WebGPU GFLOP/s",
  "ours CPU wasm GFLOP/s",
  "Burn CPU native GFLOP/s",
  "PyTorch CPU GFLOP/s",
]);
for (const b of ["1", "16"]) {
  const f = flops1 * Number(b);
  row(
    b,
    (f / 1e9).toFixed(3),
    gflops(f, web.ours.webgpu[b]?.step_ms),
    gflops(f, web.ours.cpu[b]?.step_ms),
    gflops(f, cpu.forward_ms[b]),
    gflops(f, torch.forward_ms[b]),
  );
}

section("The page", ["measure", "value"]);
for (const b of ["1", "16"])
  for (const backend of ["webgpu", "cpu"]) {
    const r = web.ours[backend][b];
    if (r)
      row(`share of a step spent drawing (${backend}, batch ${b}, ${r.drawing})`, `${(100 * r.draw_share).toFixed(2)} % (${r.draw_ms.median.toFixed(2)} ms)`);
  }
const fs = web.first_sample;
row(`page open → engine ready, cold / warm (${fs.backend})`, `${fs.cold.ready_ms} ms / ${fs.warm.ready_ms} ms`);
row(
  `page open → first finished sample, default settings (${fs.cold.steps} steps), cold / warm`,
  `${fs.cold.first_sample_ms} ms / ${fs.warm.first_sample_ms} ms`,
);
// Bytes: raw, gzip -9, brotli -q 11, and what was sent (with the encoding Chromium negotiated).
const total = (bytes) =>
  Object.values(bytes ?? {}).reduce(
    (t, b) => ({
      raw: t.raw + b.raw,
      gzip: t.gzip + b.gzip,
      brotli: t.brotli + (b.brotli ?? 0),
      sent: t.sent + (b.sent ?? b.raw),
      files: t.files + b.files,
      encodings: [...new Set([...t.encodings, ...(b.encodings ?? [])])],
    }),
    { raw: 0, gzip: 0, brotli: 0, sent: 0, files: 0, encodings: [] },
  );
const sizes = (b) =>
  `${kb(b.raw)} / ${kb(b.gzip)} / ${b.brotli ? kb(b.brotli) : "n/a"} / ${kb(b.sent ?? b.raw)}${b.encodings?.length ? ` (${b.encodings.join(", ")})` : ""}`;
const files = (n) => `${n} ${n === 1 ? "file" : "files"}`;
for (const [kind, b] of [...Object.entries(fs.cold_bytes), ["all", total(fs.cold_bytes)]])
  row(`cold load: ${kind}, ${files(b.files)}; raw / gzip / brotli / sent`, sizes(b));
const warmTotal = total(fs.warm_bytes);
row(
  `warm reload: all, ${files(warmTotal.files)} (weights ${fs.warm_bytes.weights ? "fetched again" : "from the Cache API"}); raw / gzip / brotli / sent`,
  sizes(warmTotal),
);
for (const [kind, b] of Object.entries(fs.training_bytes ?? {}))
  row(`training start, on top of that: ${kind}, ${files(b.files)}; raw / gzip / brotli / sent`, sizes(b));

const machine = `${cpus()[0].model}, ${cpus().length} cores, ${(totalmem() / 2 ** 30).toFixed(0)} GiB`;
const adapter = web.adapter ? `${web.adapter.vendor} ${web.adapter.architecture}${web.adapter.fallback ? " (software fallback adapter)" : ""}` : "none";
const header = [
  "# Benchmarks",
  "",
  `Written by \`make bench\` on ${new Date().toISOString().slice(0, 10)}. Each figure is the median of ${cpu.forward_ms["1"].runs} or more runs after a warm-up, with (min–max).`,
  "Ratios are the peer's time over ours: above 1, we are faster. Same model and weights everywhere",
  `(${cpu.params.toLocaleString("en")} parameters, www/assets/model.ddpm); the peers' outputs are checked against Burn's first`,
  `(PyTorch max |Δε| ${torch.max_abs_diff_vs_burn.toExponential(1)}, onnxruntime-web WebGPU ${web.ort.webgpu.max_abs_diff_vs_burn?.toExponential(1) ?? "n/a"}, wasm ${web.ort.wasm.max_abs_diff_vs_burn?.toExponential(1) ?? "n/a"}).`,
  "",
  `- Machine: ${machine}; native threads: Burn ${cpu.threads}, PyTorch ${torch.threads} (torch ${torch.torch}).`,
  `- Browser: Chromium ${web.chromium}; WebGPU adapter: ${adapter}. Browser CPU paths are single-threaded wasm.`,
  `- Native wgpu: Burn's wgpu backend on the machine's Vulkan driver (software, lavapipe, where there is no GPU).`,
  "",
  "What each figure measures and how: [benchmark-method.md](benchmark-method.md). Earlier runs are in this file's git history.",
  "Where the CPU path's time goes: a native training step spends about a third of it in gemm's microkernels, an eighth in im2col's",
  "copies, and a few percent each in GroupNorm's passes, the zeroing of fresh outputs, the softmaxes, flex's reshapes and waking",
  "threads. Profiles before and after: [flex against the kernels](lab/bench/2026-12-07-cpu-kernels.md), [the kernels' training step](lab/bench/2026-12-08-cpu-training.md).",
];
const text = [...header, ...rows, ""].join("\n");
writeFileSync("docs/benchmarks.md", text);
writeFileSync(
  "docs/benchmarks.json",
  `${JSON.stringify({ machine, adapter: web.adapter, native: { burn_cpu: cpu, burn_wgpu: wgpu, pytorch: torch }, browser: web }, null, 1)}\n`,
);
console.log(text);
