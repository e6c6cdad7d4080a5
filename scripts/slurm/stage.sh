#!/usr/bin/env bash
# One stage of `repdrift diagnose` as a Slurm job (submitted by scripts/slurm/submit.sh):
#   sbatch [--array=...] scripts/slurm/stage.sh STAGE DIAGNOSE_DIR
# STAGE: capture (array: task SLURM_ARRAY_TASK_ID = model index × data sets + data-set index,
# models base first, data sets source first) | diagnose. Settings come from
# DIAGNOSE_DIR/pipeline.env (written by submit.sh). A requeued or resubmitted task resumes:
# capture tasks continue an unfinished store, diagnose runs with --resume. On success the task
# writes DIAGNOSE_DIR/status/STAGE[-TASK].ok; a failing command fails the job (its exit code is
# the job's), and Slurm does not start the diagnose job.
set -euo pipefail
stage="$1"
dir="$2"
# shellcheck source=/dev/null
source "$dir/pipeline.env"
task="${SLURM_ARRAY_TASK_ID:-0}"
rd() { echo "+ repdrift $*" >&2; "$REPDRIFT" "$@"; }
ok() { mkdir -p "$dir/status"; touch "$dir/status/$1.ok"; }
echo "repdrift diagnose on Slurm: stage $stage, task $task, job ${SLURM_JOB_ID:-local} on $(hostname)" >&2

case "$stage" in
capture)
  rd diagnose "${DIAGNOSE_ARGS[@]}" --device "$DEVICE" --capture-task "$task"
  ok "capture-$task"
  ;;
diagnose)
  rd diagnose "${DIAGNOSE_ARGS[@]}" --resume
  ok diagnose
  ;;
*)
  echo "unknown stage $stage" >&2
  exit 2
  ;;
esac
