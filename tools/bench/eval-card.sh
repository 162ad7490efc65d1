#!/bin/bash
# The model card's measurements of a weights file: FD (raw and FD∞) beside the floor and ceiling,
# and the class accuracy of guided samples, for DDIM 20, DDIM 50 and DDPM 1000 (guidance 2,
# 500 samples each). Each run keeps a journal in docs/lab/eval/<first 12 hex of the weights' SHA-256>/
# (committed: the card's numbers can be recomputed from it in a minute, and a run interrupted on
# one machine goes on from it on another): DDPM's 1000 steps take about 4-5 hours on 2 CPU cores.
# Usage: tools/bench/eval-card.sh WEIGHTS [CLASSIFIER]   (make cli first)
# Environment: DEVICE=cpu|wgpu, DATA=IDX folder, DDPM_BATCH (25 on a CPU; a GPU takes all 250 at
# once), GUIDANCE (2, the card's; other scales keep their files apart, e.g. ddim50-g1.5.txt),
# INTERVAL (LO-HI: guidance only at those time indices, e.g. 0-600 → ddim50-g2-t0-600.txt),
# SEED (the sampler's, 0 by default; others keep their files apart, e.g. ddim20-seed1.txt),
# RUNS (which rows, of "ddim20 ddim50 ddpm1000", the default; also ddpmtilde1000, DDPM with
# σ² = β̃, written as ddpm-tilde1000*, and dpm10, dpm15, … DPM-Solver++(2M) in that many steps), CLIP=1 (x̂_0 clamped to [−1, 1] at each step, as Ho et
# al.'s released sampler does: files end in -clip), TAG (appended to the file names, e.g. -b250 for
# a DDPM_BATCH whose journals must not meet the batch-25 ones: the batch size picks the noise).
set -euo pipefail
weights=${1:?usage: tools/bench/eval-card.sh WEIGHTS [CLASSIFIER]}
CACHE=${CACHE:-$HOME/.cache/ddpm-web}
ddpm=${DDPM:-$CACHE/target/release/ddpm}
evals=${EVALS:-$(dirname "$0")/../../docs/lab/eval}
device=${DEVICE:-cpu}
guidance=${GUIDANCE:-2}
interval=${INTERVAL:-}
seed=${SEED:-0}
clip=${CLIP:-}
tag=$([ "$guidance" = 2 ] && [ -z "$interval" ] || echo "-g$guidance")${interval:+-t$interval}$([ "$seed" = 0 ] || echo "-seed$seed")${clip:+-clip}${TAG:-}
extra=(${interval:+--guidance-interval "$interval"} ${clip:+--clip-x0})
data=${DATA:-/usr/share/datasets/fashion-mnist}
# The feature extractor is part of the measure: the committed one, so numbers agree across machines.
classifier=${2:-$(dirname "$0")/../../assets/classifier.bpk}
[ -f "$classifier" ] || "$ddpm" classifier train -o "$classifier" --data "$data" --device "$device"
dir=$evals/$(sha256sum "$weights" | cut -c1-12)
mkdir -p "$dir"
# DDPM in batches of 25 so that an interruption loses at most ~15 minutes.
for run in ${RUNS:-ddim20 ddim50 ddpm1000}; do
  case $run in
    ddim20) sampler=ddim steps=20 batch=250 ;;
    ddim50) sampler=ddim steps=50 batch=250 ;;
    dpm5|dpm8|dpm10|dpm12|dpm15|dpm20|dpm25) sampler=dpm-solver steps=${run#dpm} batch=250 ;;
    ddpm1000) sampler=ddpm steps=1000 batch=${DDPM_BATCH:-25} ;;
    ddpmtilde1000) sampler=ddpm-tilde steps=1000 batch=${DDPM_BATCH:-25} ;;
    *) echo "RUNS: $run? expected ddim20, ddim50, dpm5…dpm25 (DPM-Solver++), ddpm1000 or ddpmtilde1000" >&2; exit 2 ;;
  esac
  out=$dir/$sampler$steps$tag.txt
  if [ ! -s "$out" ]; then
    echo "== $sampler $steps steps → $out" >&2
    "$ddpm" eval -w "$weights" --classifier "$classifier" --count 500 --guidance "$guidance" "${extra[@]}" \
      --seed "$seed" --data "$data" --device "$device" --sampler "$sampler" --steps "$steps" --batch "$batch" --resume "$dir/$sampler$steps$tag.jsonl.gz" > "$out.tmp"
    mv "$out.tmp" "$out"
  fi
  cat "$out"
done
