#!/bin/bash
# Copies a weights file into www/assets/model.ddpm and writes the manifest the page checks:
# the SHA-256 and size of the file. Usage: tools/ship_weights.sh path/to/model.ddpm
set -euo pipefail
src=${1:?usage: tools/ship_weights.sh WEIGHTS}
dir=$(dirname "$0")/../www/assets
cp "$src" "$dir/model.ddpm"
sha=$(sha256sum "$dir/model.ddpm" | cut -d' ' -f1)
bytes=$(stat -c %s "$dir/model.ddpm")
printf '{"file": "model.ddpm", "sha256": "%s", "bytes": %s}\n' "$sha" "$bytes" > "$dir/model.json"
cat "$dir/model.json"
