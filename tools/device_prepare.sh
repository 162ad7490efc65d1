#!/bin/bash
# Makes .device/: what tools/device_train.sh needs on a lent GPU machine, which has the NVIDIA
# driver but neither Rust, nor the data set, nor a Vulkan loader: the ddpm binary (stripped, xz),
# Fashion-MNIST's IDX files, Debian's libvulkan1 and the GL dispatch libraries that NVIDIA's Vulkan
# driver links against (without them the loader finds no adapter). Ignored by git; ~41 MB of the 64 MiB a call
# may carry. Usage: tools/device_prepare.sh   (then see tools/device_train.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${DATA:-/usr/share/datasets/fashion-mnist}
CACHE=${CACHE:-$HOME/.cache/ddpm-web}
make cli
rm -rf .device && mkdir -p .device/data .device/gl
strip -o .device/ddpm "$CACHE/target/debug/ddpm"
xz -T0 -6 .device/ddpm
cp "$DATA"/*-ubyte.gz .device/data/
(cd .device/gl && apt-get download libvulkan1 libegl1 libglvnd0 libopengl0 libgl1 libglx0 libgles2 2>/dev/null)
git rev-parse HEAD > .device/commit
exclude=$(git rev-parse --git-path info/exclude)
mkdir -p "$(dirname "$exclude")"
grep -qx '/.device/' "$exclude" 2>/dev/null || echo '/.device/' >> "$exclude"
echo ".device/ is ready ($(du -sh .device | cut -f1)), built from $(cut -c1-7 .device/commit)"
