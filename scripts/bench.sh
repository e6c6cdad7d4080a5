#!/usr/bin/env bash
# Speed side by side, in one run: every repdrift workload beside the reference a user would
# pick instead (PyTorch + transformers for capture and training, NumPy for compare,
# scikit-learn for probes), plus repdrift's scaling at 1x/4x/16x the examples.
#
#   bash scripts/bench.sh [--quick] [--repeat K]
#
# Makes (once) its own Python venv outside the repo for the references
# ($REPDRIFT_BENCH_VENV, default ~/.cache/repdrift-bench-venv: torch 2.15 CPU-capable wheel,
# transformers 5.24, NumPy, scikit-learn, safetensors, gguf; ~6 GB, ~3 min), builds the release
# binary and the side_by_side bench, then runs scripts/bench.py, which writes
# reports/bench/bench.json and reports/bench/bench.md and regenerates docs/benchmarks.md's
# performance table. The model-size part writes random-weight bf16 checkpoints of five shapes
# (135M to 8B, ~26 GB) once into reports/tmp/big-model/ (ignored; shared with
# scripts/big-model.sh). Takes ~35 min on 2 cores (plus ~5 min the first time, writing the
# checkpoints); run it on an otherwise idle machine.
# --quick: fewer repetitions and steps, no 16x, model sizes 135M and 0.5B only; writes reports/tmp/bench-quick/ and leaves the
# record and docs/benchmarks.md alone (a smoke run). --repeat K: each workload and its reference run K
# times, alternating, and the median run of each side is reported (K times as long; steadier
# ratios on a noisy machine).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
[ -f models/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf ] || bash scripts/fetch-models.sh
venv="${REPDRIFT_BENCH_VENV:-$HOME/.cache/repdrift-bench-venv}"
if ! "$venv/bin/python" -c "import torch, transformers, numpy, sklearn, safetensors, gguf, accelerate" 2>/dev/null; then
  echo "bench: making the reference venv $venv" >&2
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --upgrade pip
  "$venv/bin/pip" install --quiet "torch==2.15.0" "transformers==5.24.0" numpy scikit-learn safetensors gguf accelerate
fi
cargo build --release --quiet
cargo build --release --quiet --example big_model
sxs="$(cargo bench --bench side_by_side --no-run --message-format=json 2>/dev/null \
  | "$venv/bin/python" -c 'import json,sys
for l in sys.stdin:
    m = json.loads(l)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "side_by_side" and m.get("executable"):
        print(m["executable"])')"
[ -x "$sxs" ] || { echo "bench: could not build benches/side_by_side.rs" >&2; exit 1; }
exec "$venv/bin/python" scripts/bench.py --sxs "$sxs" --big-model target/release/examples/big_model "$@"
