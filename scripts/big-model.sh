#!/usr/bin/env bash
# A random-weight Llama reward model of a public shape (135m, 0.5b, 1.1b, 3b, 8b; bf16, HF layout,
# 5 GB shards) captured on 16 preference pairs: prints the checkpoint's stored size, the
# capture's peak RSS (GNU time) and its tokens/s. The model is written once into
# reports/tmp/big-model/SHAPE (ignored by git; `rm -r` it to free the disk).
#   bash scripts/big-model.sh 1.1b [--batch-size 8] [other capture flags]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
shape="${1:?usage: scripts/big-model.sh SHAPE (135m, 0.5b, 1.1b, 3b, 8b) [capture flags]}"
shift
dir="reports/tmp/big-model/$shape"
cargo build --release --quiet --example big_model
cargo build --release --quiet
if [ ! -f "$dir/model.safetensors.index.json" ]; then
  ./target/release/examples/big_model "$shape" "$dir" models/all-minilm-l6-v2/tokenizer.json
fi
data="reports/tmp/big-model/pairs16.jsonl"
head -n 16 probes/w2s/source.jsonl > "$data"
log="reports/tmp/big-model/$shape.time"
/usr/bin/time -v -o "$log" ./target/release/repdrift capture --model "$dir" --data "$data" \
  --out "reports/tmp/big-model/$shape-store" --force --max-tokens 128 "$@" 2>&1 | tail -n 1
stored=$(du -cb "$dir"/*.safetensors | tail -n 1 | cut -f1)
rss_kb=$(grep "Maximum resident set size" "$log" | awk '{print $NF}')
wall=$(grep "Elapsed (wall clock)" "$log" | awk '{print $NF}')
awk -v s="$stored" -v r="$rss_kb" -v w="$wall" -v n="$shape" 'BEGIN {
  printf "big-model %s: stored %.2f GB, peak RSS %.2f GB (%.2f x stored), wall %s\n", n, s/1e9, r*1024/1e9, r*1024/s, w }'
