#!/bin/bash
# Makes .device/: what tools/device/train.sh needs on a lent GPU machine (tools/device/common.sh
# says what it lacks): the ddpm binary (stripped, xz), Fashion-MNIST's IDX files, Debian's Vulkan
# loader and GL dispatch libraries. Ignored by git. A call carries at most 64 MiB: the tracked tree
# and .device/, with any weights copied there to be measured (WEIGHTS=.device/x.ddpm), which this
# script keeps and counts.
# Usage: tools/device/train-prepare.sh   (then see tools/device/train.sh)
set -euo pipefail
. "$(dirname "$0")/common.sh"
make cli
# Weights to measure (WEIGHTS=.device/….ddpm) stay, and are counted below.
find .device -mindepth 1 -maxdepth 1 ! -name '*.ddpm' -exec rm -rf {} + 2>/dev/null || true
mkdir -p .device
strip -o .device/ddpm "$CACHE/target/release/ddpm"
xz -T0 -6 .device/ddpm
pack_data .device/data "$DATA"/*-ubyte.gz
download_gl .device
ready .device
