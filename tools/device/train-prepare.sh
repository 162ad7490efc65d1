#!/bin/bash
# Makes .device/: what tools/device/train.sh needs on a lent GPU machine, which has the NVIDIA
# driver but neither Rust, nor the data set, nor a Vulkan loader: the ddpm binary (stripped, xz),
# Fashion-MNIST's IDX files (images as xz, 4 MB less than gzip), Debian's libvulkan1 and the GL
# dispatch libraries that NVIDIA's Vulkan driver links against (without them the loader finds no
# adapter). Ignored by git. A call carries at most 64 MiB: the tracked tree and .device/, with any
# weights copied there to be measured (WEIGHTS=.device/x.ddpm), which this script keeps and counts.
# Usage: tools/device/train-prepare.sh   (then see tools/device/train.sh)
set -euo pipefail
cd "$(dirname "$0")/../.."
DATA=${DATA:-/usr/share/datasets/fashion-mnist}
CACHE=${CACHE:-$HOME/.cache/ddpm-web}
make cli
# Weights to measure (WEIGHTS=.device/….ddpm) stay, and are counted below.
find .device -mindepth 1 -maxdepth 1 ! -name '*.ddpm' -exec rm -rf {} + 2>/dev/null || true
mkdir -p .device/data .device/gl
strip -o .device/ddpm "$CACHE/target/release/ddpm"
xz -T0 -6 .device/ddpm
for f in "$DATA"/*-ubyte.gz; do
  case $f in
    *images*) zcat "$f" | xz -T0 -9 > ".device/data/$(basename "$f" .gz).xz" ;;
    *) cp "$f" .device/data/ ;;
  esac
done
debs=(libvulkan1 libegl1 libglvnd0 libopengl0 libgl1 libglx0 libgles2)
(cd .device/gl && apt-get download "${debs[@]}" > /dev/null)
[ "$(ls .device/gl/*.deb | wc -l)" = ${#debs[@]} ] || { echo "apt-get download got $(ls .device/gl) of ${debs[*]}" >&2; exit 1; }
git rev-parse HEAD > .device/commit
exclude=$(git rev-parse --git-path info/exclude)
mkdir -p "$(dirname "$exclude")"
grep -qx '/.device/' "$exclude" 2>/dev/null || echo '/.device/' >> "$exclude"
# What a call carries: tracked and untracked-not-ignored files, plus .device/.
tree=$(git ls-files -z --cached --others --exclude-standard | xargs -0 stat -c %s 2>/dev/null | awk '{s += $1} END {print s + 0}')
device=$(du -sb .device | cut -f1)
limit=$((64 * 1024 * 1024))
echo ".device/ is ready, built from $(cut -c1-7 .device/commit): $((device / 1000000)) MB + the tree's $((tree / 1000000)) MB = $(((tree + device) / 1000000)) MB of the $((limit / 1000000)) MB a call carries"
[ $((tree + device)) -le $limit ] || { echo "over the limit: a call would be refused" >&2; exit 1; }
