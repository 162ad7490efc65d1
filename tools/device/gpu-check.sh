#!/bin/bash
# `make gpu-check` on a GPU lent through the `device` tool (tools/device/common.sh says what its
# image lacks; here, also Node.js and the page's build).
#   here:  tools/device/gpu-check.sh prepare      (makes .device-gpu/: Node.js, Dawn's dawn.node and
#          the webgpu package, the page's wasm engine from dist/, the test images, the Vulkan
#          loader and GL dispatch libraries; ignored by git; checks the 64 MiB a call carries)
#   there: run(command="bash tools/device/gpu-check.sh run", carry=[".device-gpu"], timeout_s=600)
# $OUT gets gpu-check.json and gpu-check.log; commit them under docs/lab/device/.
# STEPS, BATCHES, TRAIN_STEPS and DAWN pass through to tools/device/gpu-check.mjs.
set -euo pipefail
. "$(dirname "$0")/common.sh"
here=.device-gpu

prepare() {
  make web
  rm -rf $here
  mkdir -p $here/dist/assets $here/webgpu
  xz -T0 -6 -c "$(readlink -f "$(command -v node)")" > $here/node.xz
  cp node_modules/webgpu/package.json node_modules/webgpu/index.js $here/webgpu/
  xz -T0 -6 -c node_modules/webgpu/dist/linux-x64/dawn.node > $here/webgpu/dawn.node.xz
  cp dist/ddpm-web.js dist/wasm.js dist/ddpm-train_bg.wasm $here/dist/
  xz -T0 -6 -c dist/ddpm-web_bg.wasm > $here/dist/ddpm-web_bg.wasm.xz
  cp dist/assets/model.ddpm $here/dist/assets/
  pack_data $here/data "$DATA/t10k-images-idx3-ubyte.gz" "$DATA/t10k-labels-idx1-ubyte.gz"
  download_gl $here
  ready $here
}

run() {
  local out=${OUT:?OUT: where the results go (the device tool sets it)} work
  carried $here/node.xz "tools/device/gpu-check.sh prepare"
  work=$(mktemp -d)
  setup_vulkan $here
  unxz $here/node.xz > "$work/node" && chmod +x "$work/node"
  # tools/device/gpu-check.mjs imports "webgpu" from the tree's node_modules.
  mkdir -p node_modules/webgpu/dist/linux-x64 "$work/dist/assets"
  cp $here/webgpu/package.json $here/webgpu/index.js node_modules/webgpu/
  unxz $here/webgpu/dawn.node.xz > node_modules/webgpu/dist/linux-x64/dawn.node
  cp $here/dist/*.js $here/dist/ddpm-train_bg.wasm "$work/dist/"
  cp $here/dist/assets/model.ddpm "$work/dist/assets/"
  unxz $here/dist/ddpm-web_bg.wasm.xz > "$work/dist/ddpm-web_bg.wasm"
  # The training step reads FILE.gz (tools/device/dawn-worker.mjs).
  unpack_data $here/data "$work/data" gz
  describe $here engine 2>&1 | tee "$out/gpu-check.log"
  DATA="$work/data" "$work/node" tools/device/gpu-check.mjs "$work/dist" --json "$out/gpu-check.json" 2>&1 | tee -a "$out/gpu-check.log"
}

case ${1:-} in
  prepare) prepare ;;
  run) run ;;
  *) echo "usage: tools/device/gpu-check.sh prepare|run" >&2; exit 2 ;;
esac
