#!/usr/bin/env bash
# Per-trial overhead of atlas `tpe` and of Optuna's TPESampler at 1,000 trials on a 10-d
# problem, measured in the same run (see examples/overhead.rs and optuna_overhead.py).
# Run from the workspace root; needs Optuna in a virtual environment:
#   python3 -m venv /tmp/tpe-venv && /tmp/tpe-venv/bin/pip install optuna
#   bash crates/atlas-tpe/benches/overhead.sh [python] [n_trials] [dims]
set -euo pipefail
PY=${1:-/tmp/tpe-venv/bin/python}
N=${2:-1000}
D=${3:-10}
cargo build --release -p atlas-tpe --example overhead
BIN="${CARGO_TARGET_DIR:-target}/release/examples/overhead"
echo "# host: $(uname -srm), $(nproc) cores, load: $(cut -d' ' -f1-3 /proc/loadavg)"
"$BIN" "$N" "$D"
"$PY" "$(dirname "$0")/optuna_overhead.py" "$N" "$D"
"$BIN" "$N" "$D"
echo "# load after: $(cut -d' ' -f1-3 /proc/loadavg)"
