#!/usr/bin/env bash
# Wall time of `repdrift diagnose` beside the separate commands it replaces, on the same work:
# a base and two students, a source and two targets, every model captured on every set at all
# layers, compare on every set (with permutations), a probe per model, anchor advice, a report.
#   bash scripts/diagnose-vs-commands.sh BASE NAIVE ANCHOR [OUT]
# The demo's students serve (`repdrift demo --work W` leaves W/naive and W/anchor). Data: the
# first 300 pairs of probes/w2s/source.jsonl, the 200 pairs of target_chat and target_forum.
# Run on an idle machine; prints one line per side and the second run's capture count.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
base="${1:?usage: diagnose-vs-commands.sh BASE NAIVE ANCHOR [OUT]}"
naive="${2:?}"
anchor="${3:?}"
out="${4:-reports/tmp/diagnose-vs-commands}"
bin=./target/release/repdrift
cargo build --release --quiet
rm -rf "$out"
mkdir -p "$out/data"
head -n 300 probes/w2s/source.jsonl > "$out/data/source.jsonl"
cp probes/w2s/target_chat.jsonl "$out/data/chat.jsonl"
cp probes/w2s/target_forum.jsonl "$out/data/forum.jsonl"
tok=256
perm=100

# 1. The separate commands (what a user ran before `diagnose`).
sep="$out/separate"
t0=$(date +%s.%N)
n=0
for m in base naive anchor; do
  case $m in base) p="$base" ;; naive) p="$naive" ;; anchor) p="$anchor" ;; esac
  for s in source chat forum; do
    $bin capture --model "$p" --data "$out/data/$s.jsonl" --out "$sep/stores/$m-$s" \
      --max-tokens $tok --layers all >/dev/null 2>&1
    n=$((n + 1))
  done
done
for s in source chat forum; do
  $bin compare --base "$sep/stores/base-$s" --student "naive=$sep/stores/naive-$s" \
    --student "anchor=$sep/stores/anchor-$s" --permutations $perm --out "$sep/compare-$s" >/dev/null 2>&1
  n=$((n + 1))
done
for m in base naive anchor; do
  $bin probe --model $m --train "source=$sep/stores/$m-source" --eval "chat=$sep/stores/$m-chat" \
    --eval "forum=$sep/stores/$m-forum" --control --out "$sep/probe-$m" >/dev/null 2>&1
  n=$((n + 1))
done
for m in naive anchor; do
  $bin recommend --metrics "$sep/compare-source" --probe "$sep/probe-base" --probe "$sep/probe-$m" \
    --student $m --budget 2 --trainable all --out "$sep/recommend-$m.json" >/dev/null 2>&1
  n=$((n + 1))
done
$bin report --metrics "$sep/compare-source" --probe "$sep/probe-base" --probe "$sep/probe-naive" \
  --probe "$sep/probe-anchor" --recommendation "$sep/recommend-naive.json" --out "$sep/report" >/dev/null 2>&1
n=$((n + 1))
t1=$(date +%s.%N)
echo "separate commands: $n commands, $(python3 -c "print(f'{$t1 - $t0:.1f}')") s (no per-pair tests, no verdict)"

# 2. diagnose, the same work in one command.
t0=$(date +%s.%N)
$bin diagnose --base "$base" --student "naive=$naive" --student "anchor=$anchor" \
  --source "$out/data/source.jsonl" --target "chat=$out/data/chat.jsonl" \
  --target "forum=$out/data/forum.jsonl" --max-tokens $tok --permutations $perm \
  --out "$out/diagnose" > "$out/diagnose.stdout" 2> "$out/diagnose.stderr"
t1=$(date +%s.%N)
echo "diagnose: 1 command, $(python3 -c "print(f'{$t1 - $t0:.1f}')") s"
tail -n 1 "$out/diagnose.stdout"

# 3. diagnose again with one more target (the first 100 HH-RLHF eval pairs): only it is captured.
gzip -dc probes/hh-rlhf/eval.jsonl.gz | sed -n "1,100p" > "$out/data/hh.jsonl"
t0=$(date +%s.%N)
$bin diagnose --base "$base" --student "naive=$naive" --student "anchor=$anchor" \
  --source "$out/data/source.jsonl" --target "chat=$out/data/chat.jsonl" \
  --target "forum=$out/data/forum.jsonl" --target "hh=$out/data/hh.jsonl" --max-tokens $tok \
  --permutations $perm --out "$out/diagnose" --resume > "$out/diagnose2.stdout" 2> "$out/diagnose2.stderr"
t1=$(date +%s.%N)
echo "diagnose --resume with one more target: $(python3 -c "print(f'{$t1 - $t0:.1f}')") s"
tail -n 1 "$out/diagnose2.stdout"
