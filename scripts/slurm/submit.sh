#!/usr/bin/env bash
# Submit `repdrift diagnose` to Slurm as two stages chained with --dependency=afterok:
#   capture   an array job, one task per (model, data set): `diagnose … --capture-task T`
#             captures that pair into DIR/cache (tasks write different stores, so they run side
#             by side, one GPU each with --gpu);
#   diagnose  one job after every capture task succeeds: `diagnose … --resume`, which finds
#             every capture in the cache and runs drift, probes, the per-pair tests, the verdict,
#             the advice and the report — the same library functions as a one-process run.
# A failed capture task stops the diagnose job. Prints the job ids (also DIR/jobs.tsv); writes
# DIR/pipeline.env (the settings every stage reads) and logs to DIR/logs/STAGE-JOBID[_TASK].log.
#
#   bash scripts/slurm/submit.sh --out DIR --base MODEL --student NAME=MODEL [--student ...] \
#        --source DATA --target NAME=DATA [--target ...] [--repdrift BIN] [--gpu] \
#        [--diagnose-args "--permutations 200 --max-tokens 512"] [-- SBATCH_ARGS...]
#
# --gpu: one GPU per capture task (--gres=gpu:1); Slurm sets CUDA_VISIBLE_DEVICES for the
# task, so each task runs on its own GPU as cuda:0 (build repdrift with --features cuda).
# Everything after `--` goes to every sbatch call (partition, account, time limit, …).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
out="" base="" source_data="" gpu=0 diagnose_args=""
repdrift="$(command -v repdrift || echo "$here/../../target/release/repdrift")"
students=() targets=() sbatch_args=()
while [ $# -gt 0 ]; do
  case "$1" in
  --out) out="$2"; shift 2 ;;
  --base) base="$2"; shift 2 ;;
  --student) students+=("$2"); shift 2 ;;
  --source) source_data="$2"; shift 2 ;;
  --target) targets+=("$2"); shift 2 ;;
  --repdrift) repdrift="$2"; shift 2 ;;
  --gpu) gpu=1; shift ;;
  --diagnose-args) diagnose_args="$2"; shift 2 ;;
  --) shift; sbatch_args=("$@"); break ;;
  *) echo "submit.sh: unknown argument $1 (see the header of this script)" >&2; exit 2 ;;
  esac
done
die() { echo "submit.sh: $*" >&2; exit 2; }
[ -n "$out" ] || die "--out DIR is required"
[ -n "$base" ] || die "--base MODEL is required"
[ -n "$source_data" ] || die "--source DATA is required"
[ "${#students[@]}" -gt 0 ] || die "name at least one --student NAME=MODEL"
[ "${#targets[@]}" -gt 0 ] || die "name at least one --target NAME=DATA"
[ -x "$repdrift" ] || die "repdrift binary $repdrift not found (build it: cargo build --release)"
abs() { (cd "$(dirname "$1")" && echo "$(pwd)/$(basename "$1")"); }
mkdir -p "$out/logs"
out="$(cd "$out" && pwd)"
args=(--base "$(abs "$base")" --source "$(abs "$source_data")" --out "$out")
for s in "${students[@]}"; do
  [[ "$s" == *=* ]] || die "--student $s is not NAME=MODEL"
  args+=(--student "${s%%=*}=$(abs "${s#*=}")")
done
for t in "${targets[@]}"; do
  [[ "$t" == *=* ]] || die "--target $t is not NAME=DATA"
  args+=(--target "${t%%=*}=$(abs "${t#*=}")")
done
read -r -a extra <<< "$diagnose_args"
args+=("${extra[@]}")
device=cpu
gres=()
if [ "$gpu" -eq 1 ]; then device=cuda:0; gres=(--gres=gpu:1); fi
REPDRIFT="$(abs "$repdrift")" DEVICE="$device" DIAGNOSE_ARGS=("${args[@]}")
declare -p REPDRIFT DEVICE DIAGNOSE_ARGS > "$out/pipeline.env"

n_tasks=$(((1 + ${#students[@]}) * (1 + ${#targets[@]})))
submit() { # NAME DEPENDENCY ARRAY_OR_EMPTY EXTRA... → job id
  local name="$1" dep="$2" array="$3"
  shift 3
  local a=(--parsable --job-name "repdrift-$name")
  [ -n "$dep" ] && a+=(--dependency "afterok:$dep")
  if [ -n "$array" ]; then
    a+=(--array "$array" --output "$out/logs/$name-%A_%a.log")
  else
    a+=(--output "$out/logs/$name-%j.log")
  fi
  sbatch "${a[@]}" "${sbatch_args[@]}" "$@" "$here/stage.sh" "$name" "$out" | cut -d';' -f1
}
cap=$(submit capture "" "0-$((n_tasks - 1))" "${gres[@]}")
dia=$(submit diagnose "$cap" "")
printf 'stage\tjob\ncapture\t%s\ndiagnose\t%s\n' "$cap" "$dia" | tee "$out/jobs.tsv"
echo "submit.sh: $n_tasks capture tasks ((1 + ${#students[@]}) models × (1 + ${#targets[@]}) data sets), then diagnose; the report will be $out/index.html" >&2
