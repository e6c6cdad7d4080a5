#!/usr/bin/env bash
# One stage of the repdrift pipeline as a Slurm job (submitted by scripts/slurm/submit.sh):
#   sbatch [--array=...] scripts/slurm/stage.sh STAGE PIPELINE_DIR
# STAGE: capture | merge | compare | compare-merge | probe | report. Array stages take their
# task from SLURM_ARRAY_TASK_ID. Settings come from PIPELINE_DIR/pipeline.env (written by
# submit.sh). Every repdrift command runs with --resume where it has one, so a requeued or
# re-submitted task continues instead of starting over. On success the task writes
# PIPELINE_DIR/status/STAGE[-TASK].ok; a failing command fails the job (its exit code is the
# job's), and Slurm does not start the stages that depend on it.
set -euo pipefail
stage="$1"
dir="$2"
# shellcheck source=/dev/null
source "$dir/pipeline.env"
task="${SLURM_ARRAY_TASK_ID:-0}"
rd() { echo "+ repdrift $*" >&2; "$REPDRIFT" "$@"; }
ok() { mkdir -p "$dir/status"; touch "$dir/status/$1.ok"; }
echo "repdrift pipeline: stage $stage, task $task, job ${SLURM_JOB_ID:-local} on $(hostname)" >&2

case "$stage" in
capture)
  # Task t → model m, data set d, shard i (t = (m·D + d)·N + i).
  n_data=${#DATA_NAMES[@]}
  i=$((task % SHARDS))
  d=$(((task / SHARDS) % n_data))
  m=$((task / SHARDS / n_data))
  name="${MODEL_NAMES[$m]}-${DATA_NAMES[$d]}"
  rd capture --model "${MODEL_PATHS[$m]}" --data "${DATA_PATHS[$d]}" \
    --out "$dir/shards/$name/shard_$i" --shard "$i/$SHARDS" --device "$DEVICE" \
    "${CAPTURE_ARGS[@]}" --resume
  ok "capture-$task"
  ;;
merge)
  for m in "${!MODEL_NAMES[@]}"; do
    for d in "${!DATA_NAMES[@]}"; do
      name="${MODEL_NAMES[$m]}-${DATA_NAMES[$d]}"
      rd store merge "$dir/shards/$name"/shard_* --out "$dir/stores/$name" --force
    done
  done
  ok merge
  ;;
compare)
  students=()
  for m in "${!MODEL_NAMES[@]}"; do
    [ "$m" -eq 0 ] && continue
    students+=(--student "${MODEL_NAMES[$m]}=$dir/stores/${MODEL_NAMES[$m]}-${DATA_NAMES[0]}")
  done
  rd compare --base "$dir/stores/${MODEL_NAMES[0]}-${DATA_NAMES[0]}" "${students[@]}" \
    --shard "$task/$SHARDS" --out "$dir/compare/shard_$task"
  ok "compare-$task"
  ;;
compare-merge)
  merge=()
  for i in $(seq 0 $((SHARDS - 1))); do merge+=(--merge "$dir/compare/shard_$i"); done
  rd compare "${merge[@]}" --out "$dir/metrics"
  ok compare-merge
  ;;
probe)
  # Task m: the probes of model m, trained on the source, evaluated on every target.
  name="${MODEL_NAMES[$task]}"
  evals=()
  for d in "${!DATA_NAMES[@]}"; do
    [ "$d" -eq 0 ] && continue
    evals+=(--eval "${DATA_NAMES[$d]}=$dir/stores/$name-${DATA_NAMES[$d]}")
  done
  rd probe --train "${DATA_NAMES[0]}=$dir/stores/$name-${DATA_NAMES[0]}" "${evals[@]}" \
    --model "$name" --out "$dir/probe/$name" "${PROBE_ARGS[@]}"
  ok "probe-$task"
  ;;
report)
  probes=()
  for name in "${MODEL_NAMES[@]}"; do probes+=(--probe "$dir/probe/$name"); done
  rd report --metrics "$dir/metrics" "${probes[@]}" --base-model "${MODEL_NAMES[0]}" \
    --title "$TITLE" --out "$dir/report"
  ok report
  ;;
*)
  echo "unknown stage $stage" >&2
  exit 2
  ;;
esac
