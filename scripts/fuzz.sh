#!/usr/bin/env bash
# Fuzz every parser repdrift reads other tools' files with (cargo-fuzz, libFuzzer + ASan).
#   bash scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET ...]
# Default: 600 s per target, every target. Needs a nightly toolchain; installs cargo-fuzz when
# missing. Corpora grow in fuzz/corpus/TARGET (the seeds under fuzz/seeds/TARGET are
# committed); a crash leaves fuzz/artifacts/TARGET/crash-* and makes this script exit 1.
# Writes fuzz/last-run.tsv: target, seconds, runs, corpus size, crashes.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
secs="${1:-600}"
shift || true
targets=("$@")
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
  cargo +nightly install cargo-fuzz --locked
fi
if [ ${#targets[@]} -eq 0 ]; then
  mapfile -t targets < <(cargo +nightly fuzz list --fuzz-dir fuzz)
fi
cargo +nightly fuzz build --fuzz-dir fuzz -O
# Run the built binaries directly: editing src/ during a long campaign does not rebuild mid-run.
bin="fuzz/target/$(rustc -vV | sed -n 's/^host: //p')/release"
out=fuzz/last-run.tsv
printf 'target\tseconds\truns\tcorpus\tcrashes\n' > "$out"
failed=0
for t in "${targets[@]}"; do
  mkdir -p "fuzz/corpus/$t" "fuzz/artifacts/$t"
  seeds=()
  [ -d "fuzz/seeds/$t" ] && seeds=("fuzz/seeds/$t")
  log="fuzz/artifacts/$t/last.log"
  set +e
  "$bin/$t" -artifact_prefix="fuzz/artifacts/$t/" "fuzz/corpus/$t" "${seeds[@]}" \
    -max_total_time="$secs" -rss_limit_mb=2048 -timeout=20 -max_len=65536 \
    -print_final_stats=1 > "$log" 2>&1
  rc=$?
  set -e
  runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo 0)
  crashes=$(find "fuzz/artifacts/$t" -name 'crash-*' -o -name 'oom-*' -o -name 'timeout-*' | wc -l)
  corpus=$(find "fuzz/corpus/$t" -type f | wc -l)
  printf '%s\t%s\t%s\t%s\t%s\n' "$t" "$secs" "${runs:-0}" "$corpus" "$crashes" >> "$out"
  echo "fuzz: $t: ${secs} s, ${runs:-0} runs, corpus $corpus, crashes $crashes (exit $rc)"
  if [ "$rc" -ne 0 ] || [ "$crashes" -ne 0 ]; then failed=1; fi
done
exit "$failed"
