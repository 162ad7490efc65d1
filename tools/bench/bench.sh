#!/bin/bash
# `make bench`: every figure beside its peer, measured in this run (see docs/benchmarks.md for the last
# one). Takes about 7 minutes on 2 cores. Other work on the machine skews it: run it on a quiet one.
set -euo pipefail
CACHE=${CACHE:-$HOME/.cache/ddpm-web}
B=$CACHE/bench
DDPM=$CACHE/target/release/ddpm
RUNS=${RUNS:-5}
mkdir -p "$B"
read -r load _ < /proc/loadavg
echo "load average now: $load (on $(nproc) cores; a busy machine makes every figure slower)"

# The PyTorch reference lives in its own virtual environment in the cache (CPU use only).
VENV=$CACHE/torch-venv
if ! "$VENV/bin/python" -c "import torch, einops, safetensors, onnx, onnxscript" 2>/dev/null; then
  echo "Installing PyTorch, einops, safetensors and onnx into $VENV (once)…"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q torch einops safetensors onnx onnxscript
fi

echo "== native: Burn CPU, Burn wgpu"
"$DDPM" export -o "$B/model.safetensors"
"$DDPM" bench --device cpu --runs "$RUNS" > "$B/cpu.json"
"$DDPM" bench --device wgpu --runs "$RUNS" --train-batches 16 2>/dev/null > "$B/wgpu.json"
echo "== native: PyTorch reference (same threads), FLOPs, ONNX export"
"$VENV/bin/python" -W ignore tools/bench/pytorch.py --safetensors "$B/model.safetensors" --threads "$(nproc)" \
  --runs "$RUNS" --onnx "$B/unet.onnx" --json "$B/torch.json" > /dev/null
echo "== browser: our page and onnxruntime-web, WebGPU and wasm"
RUNS=$RUNS node tools/bench/browser.mjs "$B" > /dev/null
echo "== browser engines: the page in Chromium, Firefox and WebKit, on the path each takes"
node tools/bench/engines.mjs "$B" > /dev/null
node tools/bench/report.mjs "$B"
