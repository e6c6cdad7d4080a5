#!/usr/bin/env bash
# What stops `compare --precision mixed` short of 5x NumPy: profile the benchmark's compare
# workload (2 students x 31 layers x n = 4,096 x d = 576, read from disk) and group the
# samples into the work this design cannot drop — the f32 products and their packing, the
# eigensolver of Procrustes' nuclear norm, the sha256 check of every part read, the kernel's
# copies out of the page cache — and the rest; then print the ceiling that the first group
# alone sets against the NumPy time of the run of record (reports/bench/bench.json).
#
#   bash scripts/compare-bound.sh        # ≈ 1 min; needs `perf` (Debian: linux-perf)
#
# The wall time is the median of three unprofiled runs; the shares come from one `perf record`
# run (perf's own overhead changes the wall time, not the shares). Writes target/compare-bound/.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
command -v perf >/dev/null || { echo "compare-bound: needs perf (apt-get install linux-perf)" >&2; exit 2; }
sxs="$(cargo bench --bench side_by_side --no-run --message-format=json 2>/dev/null \
  | python3 -c 'import json,sys
for l in sys.stdin:
    m = json.loads(l)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "side_by_side" and m.get("executable"):
        print(m["executable"])')"
[ -x "$sxs" ] || { echo "compare-bound: could not build benches/side_by_side.rs" >&2; exit 1; }
out=target/compare-bound
mkdir -p "$out"
"$sxs" stores --n 4096 --students 2 >/dev/null
args=(compare --n 4096 --students 2 --precision mixed)
"$sxs" "${args[@]}" >/dev/null   # warm the page cache
for i in 1 2 3; do "$sxs" "${args[@]}"; done > "$out/runs.jsonl"
perf record -q -o "$out/perf.data" "$sxs" "${args[@]}" >/dev/null 2>&1
perf report -i "$out/perf.data" --no-children --sort dso,symbol --stdio 2>/dev/null > "$out/report.txt"
python3 scripts/compare_bound.py "$out/report.txt" "$out/runs.jsonl" reports/bench/bench.json
