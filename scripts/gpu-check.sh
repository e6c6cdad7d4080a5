#!/usr/bin/env bash
# Run first on a machine with an NVIDIA GPU (and CUDA toolkit): builds repdrift with
# `--features cuda`, captures 16 pairs with SmolLM2-135M on the CPU and on the GPU and holds
# every layer's hidden states to the CPU's (worst relative difference ≤ 1e-4, f32 compute on
# both), then measures capture on the 1.1B bf16 shape on the GPU (its own bf16 and f32).
#   bash scripts/gpu-check.sh            (≈ 5–10 min, most of it the CUDA build)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
[ -f models/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf ] || bash scripts/fetch-models.sh
cargo build --release --features cuda --quiet
cargo build --release --features cuda --quiet --example store_diff --example big_model
out=reports/tmp/gpu-check
mkdir -p "$out"
head -n 16 probes/w2s/source.jsonl > "$out/pairs16.jsonl"
cap() { ./target/release/repdrift capture --model "$1" --data "$out/pairs16.jsonl" --out "$2" \
  --force --max-tokens 128 --device "$3" "${@:4}" 2>&1 | tail -n 1; }
m=models/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf
cap "$m" "$out/cpu" cpu
cap "$m" "$out/gpu" cuda:0 --dtype f32
./target/release/examples/store_diff "$out/cpu" "$out/gpu" 1e-4 | tail -n 1
big=reports/tmp/big-model/1.1b
[ -f "$big/model.safetensors.index.json" ] || \
  ./target/release/examples/big_model 1.1b "$big" models/all-minilm-l6-v2/tokenizer.json
for dt in bf16 f32; do
  printf '1.1b on the GPU in %s: ' "$dt"
  cap "$big" "$out/big-$dt" cuda:0 --dtype "$dt"
done
echo "gpu-check: passed"
