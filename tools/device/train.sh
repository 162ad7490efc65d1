#!/bin/bash
# Trains and measures the model within one call on a GPU lent through the `device` tool (15 minutes
# of device time a session, 10 a call). Prepare here with tools/device/train-prepare.sh, then:
#   run(command="bash tools/device/train.sh", carry=[".device"], timeout_s=600)
# There it trains for MINUTES with Burn's wgpu backend on the GPU's Vulkan driver, the run's length
# and cosine decay fitted to them (`ddpm train --minutes`), draws sample grids, and runs
# tools/bench/eval-card.sh (1.5 at t ≤ 600 with sampler seeds 0, 1, 2; 2 at t ≤ 600, the page's; 2) on the GPU
# until DEADLINE seconds after its start.
# $OUT gets model.ddpm (the EMA weights), model.ddpm.raw and .optim (for --resume) and
# results.tar (logs, journals, card rows, grids): commit the journals to docs/lab/eval/ and ship with
# tools/fixtures/ship-weights.sh.
# WEIGHTS=www/assets/model.ddpm (a file in the tree or in .device/; run tools/device/train-prepare.sh after
# copying one there: it says whether the call's 64 MiB still hold it) skips training and measures that file: a
# DDPM row of 500 takes the GPU minutes where 2 CPU cores take hours. SETTINGS picks the rows, as
# "guidance interval|- seed [rows]" items separated by ";" (rows as tools/bench/eval-card.sh's RUNS), e.g.
# SETTINGS="1.5 0-600 3 ddpm1000; 1.5 0-600 4 ddpm1000". CLIP and TAG pass through to eval-card.sh
# (TAG=-b250: the GPU's batch of 250 draws other noise than the CPU's 25, so its journals keep apart).
# Not set -e: a step that fails still leaves what the others measured in results.tar.
set -uo pipefail
t0=$SECONDS
. "$(dirname "$0")/common.sh"
MINUTES=${MINUTES:-4.5}
DEADLINE=${DEADLINE:-575}
# The dim-24 candidate (docs/lab/train/2026-11-26-dim24: 1.37 M, 1.7× the shipped model's CPU forward),
# which 2 CPU cores trained to parity with the shipped model in 160,000 images. Batch 512: on the
# H200 a step at batch 128 kept the GPU busy 27 % of the time (docs/lab/device/2026-11-26-h200-2), so
# a larger batch costs little more per step.
# No flips: Fashion-MNIST's shoes all face left (docs/model-card.md).
TRAIN_ARGS=${TRAIN_ARGS:---dim 24 --dim-mults 1,2,4 --attn-heads 2 --attn-dim-head 16 --batch 512 --lr 1e-3 --warmup 200 --clip 1 --ema 0.999 --lr-schedule cosine --checkpoint-every 500 --seed 0 --no-flips}
out=${OUT:?OUT: where the results go (the device tool sets it)}
here=.device
carried $here/ddpm.xz tools/device/train-prepare.sh
work=$(mktemp -d)
pack() { tar -C "$work" -cf "$out/results.tar" .; }
left() { echo $((DEADLINE - (SECONDS - t0))); }

setup_vulkan $here
ddpm=/tmp/ddpm
unxz $here/ddpm.xz > $ddpm
chmod +x $ddpm
# The images travel as xz; the loader reads IDX plain or gzipped.
data=$(mktemp -d)
unpack_data $here/data "$data"
describe $here ddpm 2>&1 | tee "$work/device.txt"
adapter() { $ddpm info --time --device wgpu 2>&1 | tail -3 | tee -a "$work/device.txt"; }
found=
if adapter; then
  found=1
else
  # Another copy of NVIDIA's ICD manifest, if the image keeps one elsewhere.
  for icd in $(find / -xdev \( -path /proc -o -path /sys \) -prune -o -name 'nvidia_icd*.json' -print 2>/dev/null); do
    echo "trying $icd" | tee -a "$work/device.txt"
    VK_DRIVER_FILES=$icd adapter && { export VK_DRIVER_FILES=$icd; found=1; break; }
  done
fi
if [ -z "$found" ]; then
  # What the Vulkan loader saw, for the next try.
  { ls -l "$(dirname $NVIDIA_ICD)" /usr/share/vulkan/icd.d /etc/vulkan/icd.d
    VK_LOADER_DEBUG=error,warn,driver $ddpm info --device wgpu 2>&1 | tail -40; } >> "$work/device.txt" 2>&1
  pack; exit 1
fi

# The GPU's load through the run: at 100 % a slow run is the kernels' fault, not the launches'.
nvidia-smi --query-gpu=timestamp,utilization.gpu,memory.used --format=csv -l 5 > "$work/gpu.csv" 2>/dev/null &
if [ -n "${WEIGHTS:-}" ]; then
  cp "$WEIGHTS" "$out/model.ddpm"
else
  # shellcheck disable=SC2086  # TRAIN_ARGS is a list of options
  $ddpm train --device wgpu --data $data --out "$out/model.ddpm" --minutes "$MINUTES" $TRAIN_ARGS 2>&1 | tee "$work/train.log"
fi
[ -s "$out/model.ddpm" ] || { pack; exit 1; }
pack
$ddpm sample -w "$out/model.ddpm" --device wgpu --sampler ddim --steps 50 --per-class --count 40 \
  --guidance 2 --guidance-interval 0-600 --scale 2 -o "$work/samples-ddim50.png" > /dev/null
pack
# (timeout 0 would mean no limit: only start what has time left.)
# The bar's decisive setting first, 1.5 at t ≤ 600 (DDPM's best on the shipped model), at the three
# sampler seeds the card reports; then the page's 2 at t ≤ 600 and the card's first table, 2.
IFS=';' read -ra settings <<< "${SETTINGS:-1.5 0-600 0; 1.5 0-600 1; 1.5 0-600 2; 2 0-600 0; 2 - 0}"
for setting in "${settings[@]}"; do
  read -r guidance interval seed runs <<< "$setting"
  [ "$interval" = - ] && interval=
  if [ "$(left)" -gt 10 ]; then
    echo "[$((SECONDS - t0)) s] guidance $guidance, t $interval, seed $seed ${runs:-}" | tee -a "$work/eval.log"
    RUNS=$runs GUIDANCE=$guidance INTERVAL=$interval SEED=$seed DEVICE=wgpu DATA=$data DDPM=$ddpm EVALS=$work/eval DDPM_BATCH=250 \
      timeout "$(left)" bash tools/bench/eval-card.sh "$out/model.ddpm" assets/classifier.bpk 2>&1 | tee -a "$work/eval.log"
    pack
  fi
done
if [ "$(left)" -gt 30 ]; then
  timeout "$(left)" $ddpm sample -w "$out/model.ddpm" --device wgpu --sampler ddpm --per-class --count 40 \
    --guidance 2 --scale 2 -o "$work/samples-ddpm1000.png" > /dev/null
  pack
fi
echo "done in $((SECONDS - t0)) s"
