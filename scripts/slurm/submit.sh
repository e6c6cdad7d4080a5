#!/usr/bin/env bash
# Submit the repdrift pipeline to Slurm: capture shards (every model × data set, as one array
# job) → merge → compare shards (array) and probes (array, one task per model) → compare
# merge → report, chained with --dependency=afterok, so a failed stage stops what depends on
# it. Prints the job ids; writes PIPELINE_DIR/pipeline.env (the settings every stage reads),
# PIPELINE_DIR/jobs.tsv and logs to PIPELINE_DIR/logs/STAGE-JOBID[_TASK].log.
#
#   bash scripts/slurm/submit.sh --out DIR --base MODEL --student NAME=MODEL [--student ...] \
#        --source DATA --target NAME=DATA [--target ...] [--shards N] [--repdrift BIN] \
#        [--gpu] [--capture-args "..."] [--probe-args "..."] [--title T] [-- SBATCH_ARGS...]
#
# --gpu: one GPU per capture task (--gres=gpu:1); Slurm sets CUDA_VISIBLE_DEVICES for the
# task, so each task runs on its own GPU as cuda:0 (build repdrift with --features cuda).
# Everything after `--` goes to every sbatch call (partition, account, time limit, …).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
out="" base="" source_data="" shards=4 gpu=0 title="repdrift report"
repdrift="$(command -v repdrift || echo "$here/../../target/release/repdrift")"
capture_args="" probe_args=""
students=() targets=() sbatch_args=()
while [ $# -gt 0 ]; do
  case "$1" in
  --out) out="$2"; shift 2 ;;
  --base) base="$2"; shift 2 ;;
  --student) students+=("$2"); shift 2 ;;
  --source) source_data="$2"; shift 2 ;;
  --target) targets+=("$2"); shift 2 ;;
  --shards) shards="$2"; shift 2 ;;
  --repdrift) repdrift="$2"; shift 2 ;;
  --gpu) gpu=1; shift ;;
  --capture-args) capture_args="$2"; shift 2 ;;
  --probe-args) probe_args="$2"; shift 2 ;;
  --title) title="$2"; shift 2 ;;
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
[[ "$shards" =~ ^[1-9][0-9]*$ ]] || die "--shards must be a positive integer"
[ -x "$repdrift" ] || die "repdrift binary $repdrift not found (build it: cargo build --release)"
abs() { (cd "$(dirname "$1")" && echo "$(pwd)/$(basename "$1")"); }
mkdir -p "$out/logs"
out="$(cd "$out" && pwd)"
model_names=(base) model_paths=("$(abs "$base")")
for s in "${students[@]}"; do
  [[ "$s" == *=* ]] || die "--student $s is not NAME=MODEL"
  model_names+=("${s%%=*}"); model_paths+=("$(abs "${s#*=}")")
done
data_names=(source) data_paths=("$(abs "$source_data")")
for t in "${targets[@]}"; do
  [[ "$t" == *=* ]] || die "--target $t is not NAME=DATA"
  data_names+=("${t%%=*}"); data_paths+=("$(abs "${t#*=}")")
done
device=cpu
gres=()
if [ "$gpu" -eq 1 ]; then device=cuda:0; gres=(--gres=gpu:1); fi
read -r -a capture_arr <<< "$capture_args"
read -r -a probe_arr <<< "$probe_args"
REPDRIFT="$(abs "$repdrift")" SHARDS="$shards" DEVICE="$device" TITLE="$title"
MODEL_NAMES=("${model_names[@]}") MODEL_PATHS=("${model_paths[@]}")
DATA_NAMES=("${data_names[@]}") DATA_PATHS=("${data_paths[@]}")
CAPTURE_ARGS=("${capture_arr[@]}") PROBE_ARGS=("${probe_arr[@]}")
declare -p REPDRIFT SHARDS DEVICE TITLE MODEL_NAMES MODEL_PATHS DATA_NAMES DATA_PATHS \
  CAPTURE_ARGS PROBE_ARGS > "$out/pipeline.env"

n_models=${#model_names[@]}
n_data=${#data_names[@]}
submit() { # NAME DEPENDENCY ARRAY_OR_EMPTY EXTRA... → job id
  local name="$1" dep="$2" array="$3"
  shift 3
  local args=(--parsable --job-name "repdrift-$name")
  [ -n "$dep" ] && args+=(--dependency "afterok:$dep")
  if [ -n "$array" ]; then
    args+=(--array "$array" --output "$out/logs/$name-%A_%a.log")
  else
    args+=(--output "$out/logs/$name-%j.log")
  fi
  sbatch "${args[@]}" "${sbatch_args[@]}" "$@" "$here/stage.sh" "$name" "$out" | cut -d';' -f1
}
cap=$(submit capture "" "0-$((n_models * n_data * shards - 1))" "${gres[@]}")
mrg=$(submit merge "$cap" "")
cmp=$(submit compare "$mrg" "0-$((shards - 1))")
prb=$(submit probe "$mrg" "0-$((n_models - 1))")
cmm=$(submit compare-merge "$cmp" "")
rep=$(submit report "$cmm:$prb" "")
printf 'stage\tjob\ncapture\t%s\nmerge\t%s\ncompare\t%s\nprobe\t%s\ncompare-merge\t%s\nreport\t%s\n' \
  "$cap" "$mrg" "$cmp" "$prb" "$cmm" "$rep" | tee "$out/jobs.tsv"
echo "submit.sh: $((n_models * n_data * shards)) capture tasks ($n_models models × $n_data data sets × $shards shards); the report will be $out/report/index.html" >&2
