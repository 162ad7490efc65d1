# ddpm-web: `make run` builds and serves the page; `make test` runs every test.
SHELL := /bin/bash
.SHELLFLAGS := -eo pipefail -c
CACHE ?= $(HOME)/.cache/ddpm-web
# Fashion-MNIST (Debian's dataset-fashion-mnist); its 10,000 test images are served with the page for training in the tab.
DATA ?= /usr/share/datasets/fashion-mnist
PORT ?= 8080
export PATH := $(HOME)/.cargo/bin:$(PATH)
# Caches live outside the clone, so fresh clones (CI's too) reuse the last build.
NATIVE_ENV := CARGO_TARGET_DIR=$(CACHE)/target
# The wasm build goes through tools/build/wasm-toolchain/cargo when setup chose Debian's rustc-web.
WASM_ENV = CARGO_TARGET_DIR=$(CACHE)/target-wasm TRUNK_SKIP_VERSION_CHECK=true \
  PATH=$$([ "$$(cat $(CACHE)/wasm-toolchain 2>/dev/null)" = debian ] && echo "$(CURDIR)/tools/build/wasm-toolchain:")$$PATH

.PHONY: setup run web dist package test lint test-native test-browser cli clean-dist soak bench gpu-check

setup:
	@bash tools/build/setup.sh

# The crate through wasm-bindgen into $(CACHE)/bindgen/$(1), with $(2) its Cargo features. Function
# names are kept for tools/build/split.mjs; its outputs carry none (a third of the compressed bytes).
# The page's CPU fallback runs Burn's flex backend in wasm: without 128-bit SIMD its matmuls and
# element-wise kernels run scalar (every browser since 2021-23 has wasm SIMD; onnxruntime-web
# ships only SIMD builds).
wasm_bindgen = $(WASM_ENV) cargo build --profile wasm --lib --target wasm32-unknown-unknown --no-default-features $(2) && \
  wasm-bindgen --target web --no-typescript --remove-producers-section --out-dir $(CACHE)/bindgen/$(1) \
    --out-name ddpm-web $(CACHE)/target-wasm/wasm32-unknown-unknown/wasm/ddpm_web.wasm

## The page, built in release into dist/: Trunk copies the page; the crate is built with the `train`
## feature and split (tools/build/split.mjs) into what sampling needs (ddpm-web_bg.wasm) and the training
## code (ddpm-train_bg.wasm, fetched when training starts). The sampling-only build names what to keep.
web: setup
	@mkdir -p www/data && cp $(DATA)/t10k-images-idx3-ubyte.gz $(DATA)/t10k-labels-idx1-ubyte.gz www/data/
	node tools/build/package/modules.mjs
	$(WASM_ENV) trunk build --release
	@echo "Building the wasm (a cold build takes 20-25 minutes on 2 cores)…"
	$(call wasm_bindgen,sampling,)
	$(call wasm_bindgen,train,--features train)
	cp $(CACHE)/bindgen/train/ddpm-web.js dist/
	node tools/build/split.mjs $(CACHE)/bindgen/train/ddpm-web_bg.wasm $(CACHE)/bindgen/sampling/ddpm-web_bg.wasm dist

## dist/: the page, the embed element and its example, self-contained, relative URLs only; with
## FILE.br and FILE.gz beside each large file, for hosts that serve precompressed files (README.md).
dist: web
	node tools/build/compress.mjs dist
	@echo "dist/ is ready to copy to any static host or sub-path ($$(du -sh dist | cut -f1), .br/.gz copies included); open embed-example.html for the embed."

## ddpm-web-<version>.tgz: the npm package a blog loads from a CDN (dist/ without the .br/.gz
## copies, package.json, custom-elements.json, embed.d.ts, README; tools/build/package/build.mjs).
package: dist
	node tools/build/package/build.mjs dist .

run: dist
	node tools/dev/serve.mjs dist $(PORT)

## The native CLI: the release build the tests use, and what `cargo install --path .` installs.
cli: setup
	$(NATIVE_ENV) cargo build --release --bin ddpm
	@echo "built $(CACHE)/target/release/ddpm"

## Formatting and lints, quickest first (docs/testing.md): rustfmt (rustfmt.toml), Biome over the page,
## the tools and the browser tests (biome.jsonc), clippy with warnings denied natively and for wasm32,
## with and without training. Clippy shares the builds' caches: seconds warm, 8 minutes cold on 2 cores.
## Debian's rustc-web (setup's fallback) has no clippy: there the wasm32 passes are skipped.
WASM_CLIPPY = $(WASM_ENV) cargo clippy --profile wasm --target wasm32-unknown-unknown --no-default-features
# Read when lint's recipe runs, after setup has chosen.
debian_wasm = $(filter debian,$(shell cat $(CACHE)/wasm-toolchain 2>/dev/null))
lint: setup
	cargo fmt --check
	node_modules/.bin/biome ci --error-on-warnings
	$(NATIVE_ENV) cargo clippy --release --all-targets -- -D warnings
	$(if $(debian_wasm),@echo "lint: clippy for wasm32 skipped (Debian's rustc-web has no clippy)",$(WASM_CLIPPY) --features train -- -D warnings)
	$(if $(debian_wasm),,$(WASM_CLIPPY) -- -D warnings)

test-native: setup
	$(NATIVE_ENV) cargo test --release

test-browser: web cli
	npm test

test: lint test-native test-browser

## Long runs, not part of `make test`: the loader and IDX fuzzers at 100,000 cases each, then
## 500 Generate clicks and 30 minutes of training in the page with memory sampled (tests/browser/soak.mjs).
soak: web
	FUZZ_CASES=100000 $(NATIVE_ENV) cargo test --release --test fuzz -- --nocapture
	node tests/browser/soak.mjs

## Speed beside the peers a user would pick instead (onnxruntime-web, PyTorch), measured in one run:
## prints a table, writes docs/benchmarks.md and docs/benchmarks.json. Not part of `make test`; takes minutes.
bench: dist cli
	CACHE=$(CACHE) bash tools/bench/bench.sh

## The page's wasm engine in Node on Dawn, Chrome's WebGPU (tools/device/gpu-check.mjs), on this machine's
## GPU: adapter, step times, a training step, images against the CPU path. SOFTWARE=1 runs it on
## Chromium's SwiftShader, for a machine without a GPU. Never part of `make test`.
gpu-check: web
	$(if $(SOFTWARE),VK_ICD_FILENAMES=/usr/lib/chromium/vk_swiftshader_icd.json) node tools/device/gpu-check.mjs dist $(if $(JSON),--json $(JSON))

clean-dist:
	rm -rf dist
