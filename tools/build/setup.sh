#!/usr/bin/env bash
# Installs everything the build and the tests need on a fresh Debian 12 machine. Idempotent:
# each step checks first and says what it does. See docs/toolchain.md for why each choice.
set -euo pipefail
cd "$(dirname "$0")/../.."

CACHE="${DDPM_CACHE:-$HOME/.cache/ddpm-web}"
WASM_BINDGEN_VERSION=0.2.130   # must equal the wasm-bindgen crate in Cargo.lock
TRUNK_VERSION=0.21.14          # 0.22 needs rustc ≥ 1.96.1
mkdir -p "$CACHE"
say() { printf '\033[1msetup:\033[0m %s\n' "$*"; }
export PATH="$HOME/.cargo/bin:$PATH"

apt_updated=0
apt_install() {
    local missing=()
    for p in "$@"; do dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p"); done
    [ ${#missing[@]} -eq 0 ] && return 0
    if [ $apt_updated -eq 0 ]; then say "apt-get update"; apt-get update -qq; apt_updated=1; fi
    say "apt-get install ${missing[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
}

# Browser with WebGPU (SwiftShader), software Vulkan for native wgpu tests, the data set; the other
# engines the page is tested in: Firefox ESR (over WebDriver BiDi) and WebKitGTK's MiniBrowser with
# its WebDriver, which needs a display (Xvfb).
apt_install chromium mesa-vulkan-drivers dataset-fashion-mnist ca-certificates firefox-esr webkit2gtk-driver xvfb
# binaryen: wasm-split, which cuts the training code out of the page's wasm (tools/build/split.mjs).
apt_install binaryen

# A Rust that targets wasm32: rustup's target if it can be had, else Debian's rustc-web.
if rustup target list --installed 2>/dev/null | grep -q '^wasm32-unknown-unknown$'; then
    echo rustup > "$CACHE/wasm-toolchain"
elif [ "$(cat "$CACHE/wasm-toolchain" 2>/dev/null)" != debian ] && \
     { say "rustup target add wasm32-unknown-unknown (60 s at most)"; timeout 60 rustup target add wasm32-unknown-unknown >/dev/null 2>&1; }; then
    echo rustup > "$CACHE/wasm-toolchain"
else
    say "no rustup wasm32 target here: using Debian's rustc-web with -Zbuild-std"
    apt_install rustc-web cargo-web rust-web-src lld-22
    echo debian > "$CACHE/wasm-toolchain"
fi

# rustfmt and clippy, for `make lint` (rustup's default profile has them, its minimal one does not).
if ! cargo fmt --version >/dev/null 2>&1 || ! cargo clippy --version >/dev/null 2>&1; then
    say "rustup component add rustfmt clippy"
    rustup component add rustfmt clippy
fi

if ! wasm-bindgen --version 2>/dev/null | grep -q " $WASM_BINDGEN_VERSION"; then
    say "cargo install wasm-bindgen-cli $WASM_BINDGEN_VERSION (a few minutes)"
    # Not --locked: one of its locked dependency versions is missing from the registry.
    cargo install -q wasm-bindgen-cli --version "=$WASM_BINDGEN_VERSION"
fi
if ! trunk --version 2>/dev/null | grep -q " $TRUNK_VERSION"; then
    say "cargo install trunk $TRUNK_VERSION (about ten minutes)"
    cargo install -q trunk --version "=$TRUNK_VERSION" --locked
fi

# playwright-core (driving Debian's chromium, never a downloaded browser), onnxruntime-web (the bench's peer), webgpu (Dawn in Node, for make gpu-check).
if [ ! -f node_modules/.package-lock.json ] || ! cmp -s package-lock.json node_modules/.ddpm-lock; then
    say "npm ci"
    npm ci --no-audit --no-fund --loglevel=error
    cp package-lock.json node_modules/.ddpm-lock
fi
say "ready ($(cat "$CACHE/wasm-toolchain") wasm toolchain)"
