#!/bin/bash
# `make gpu-check` on a GPU lent through the `device` tool, whose image has the NVIDIA driver but
# neither Node.js, nor the Vulkan loader, nor the page's build.
#   here:  tools/device/gpu-check.sh prepare      (makes .device-gpu/: Node.js, Dawn's dawn.node and
#          the webgpu package, the page's wasm engine from dist/, the test images, the Vulkan
#          loader and GL dispatch libraries; ignored by git; checks the 64 MiB a call carries)
#   there: run(command="bash tools/device/gpu-check.sh run", carry=[".device-gpu"], timeout_s=600)
# $OUT gets gpu-check.json and gpu-check.log; commit them under docs/lab/device/.
# STEPS, BATCHES, TRAIN_STEPS and DAWN pass through to tools/device/gpu-check.mjs.
set -euo pipefail
cd "$(dirname "$0")/../.."
here=.device-gpu
DATA=${DATA:-/usr/share/datasets/fashion-mnist}

prepare() {
  make web
  rm -rf $here
  mkdir -p $here/dist/assets $here/webgpu $here/data $here/gl
  xz -T0 -6 -c "$(readlink -f "$(command -v node)")" > $here/node.xz
  cp node_modules/webgpu/package.json node_modules/webgpu/index.js $here/webgpu/
  xz -T0 -6 -c node_modules/webgpu/dist/linux-x64/dawn.node > $here/webgpu/dawn.node.xz
  cp dist/ddpm-web.js dist/wasm.js dist/ddpm-train_bg.wasm $here/dist/
  xz -T0 -6 -c dist/ddpm-web_bg.wasm > $here/dist/ddpm-web_bg.wasm.xz
  cp dist/assets/model.ddpm $here/dist/assets/
  zcat "$DATA/t10k-images-idx3-ubyte.gz" | xz -T0 -9 > $here/data/t10k-images-idx3-ubyte.xz
  cp "$DATA/t10k-labels-idx1-ubyte.gz" $here/data/
  (cd $here/gl && apt-get download libvulkan1 libegl1 libglvnd0 libopengl0 libgl1 libglx0 libgles2 > /dev/null)
  git rev-parse HEAD > $here/commit
  local exclude
  exclude=$(git rev-parse --git-path info/exclude)
  grep -qx "/$here/" "$exclude" 2>/dev/null || echo "/$here/" >> "$exclude"
  local tree size limit=$((64 * 1024 * 1024))
  tree=$(git ls-files -z --cached --others --exclude-standard | xargs -0 stat -c %s 2>/dev/null | awk '{s += $1} END {print s + 0}')
  size=$(du -sb $here | cut -f1)
  echo "$here/ is ready: $((size / 1000000)) MB + the tree's $((tree / 1000000)) MB of the $((limit / 1000000)) MB a call carries"
  [ $((tree + size)) -le $limit ] || { echo "over the limit: a call would be refused" >&2; exit 1; }
}

run() {
  local out=${OUT:?OUT: where the results go (the device tool sets it)} work
  [ -f $here/node.xz ] || { echo "no $here/: run tools/device/gpu-check.sh prepare here and carry $here" >&2; exit 2; }
  unxz() { xz -dc "$1" 2>/dev/null || python3 -c "import lzma,sys; sys.stdout.buffer.write(lzma.open(sys.argv[1]).read())" "$1"; }
  work=$(mktemp -d)
  for f in $here/gl/*.deb; do dpkg -x "$f" /; done
  ldconfig
  export XDG_RUNTIME_DIR=${XDG_RUNTIME_DIR:-$(mktemp -d)}
  local icd=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
  [ -f $icd ] && export VK_DRIVER_FILES=${VK_DRIVER_FILES:-$icd}
  unxz $here/node.xz > "$work/node" && chmod +x "$work/node"
  # tools/device/gpu-check.mjs imports "webgpu" from the tree's node_modules.
  mkdir -p node_modules/webgpu/dist/linux-x64 "$work/dist/assets" "$work/data"
  cp $here/webgpu/package.json $here/webgpu/index.js node_modules/webgpu/
  unxz $here/webgpu/dawn.node.xz > node_modules/webgpu/dist/linux-x64/dawn.node
  cp $here/dist/*.js $here/dist/ddpm-train_bg.wasm "$work/dist/"
  cp $here/dist/assets/model.ddpm "$work/dist/assets/"
  unxz $here/dist/ddpm-web_bg.wasm.xz > "$work/dist/ddpm-web_bg.wasm"
  unxz $here/data/t10k-images-idx3-ubyte.xz | gzip -1 > "$work/data/t10k-images-idx3-ubyte.gz"
  cp $here/data/t10k-labels-idx1-ubyte.gz "$work/data/"
  { nvidia-smi -L || true; echo "engine from $(cat $here/commit)"; } 2>&1 | tee "$out/gpu-check.log"
  DATA="$work/data" "$work/node" tools/device/gpu-check.mjs "$work/dist" --json "$out/gpu-check.json" 2>&1 | tee -a "$out/gpu-check.log"
}

case ${1:-} in
  prepare) prepare ;;
  run) run ;;
  *) echo "usage: tools/device/gpu-check.sh prepare|run" >&2; exit 2 ;;
esac
