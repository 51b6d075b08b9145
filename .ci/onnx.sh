#!/usr/bin/env bash
# CI for the `onnx` feature (issue 14; wired by .ci/run): the ONNX tests of atlas-models
# (committed fixtures, no Python), then the onnx-enabled `atlas` binary optimizes the
# scikit-learn MLP (examples/models/mlp.onnx, exported by skl2onnx) and onnxruntime, in a
# fresh venv, must predict Atlas's reported objective for the returned plan within 1e-5
# relative. The build replaces target/release/atlas with an onnx-enabled one (the default
# features plus `onnx`).
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s (%s)\n' "$*" "$(date +%H:%M:%S)"; }

step "atlas-models with the onnx feature: tests against the committed ONNX fixtures"
started=$(date +%s)
cargo test --release -p atlas-models --features onnx
echo "cargo test -p atlas-models --features onnx: $(( $(date +%s) - started )) s"

step "the onnx-enabled atlas binary"
cargo build --release --features onnx --bin atlas

step "onnxruntime agrees with Atlas's objective for the MLP's optimized plan"
python3 -m venv target/onnx-venv
target/onnx-venv/bin/pip install -q --upgrade pip
target/onnx-venv/bin/pip install -q onnxruntime numpy
target/onnx-venv/bin/python examples/models/check_mlp.py target/release/atlas
