#!/usr/bin/env bash
# End-to-end test of `repdrift diagnose` on a real one-node Slurm cluster on localhost:
# installs Debian's slurm-wlm and munge when missing, starts munged, slurmctld and slurmd with
# a minimal slurm.conf written to a temp dir, submits scripts/slurm/submit.sh on the tiny Llama
# reward model of tests/reference/lora/base with two PEFT LoRA adapters as students (r4,
# rslora), 120 source pairs and one 60-pair target (6 capture tasks, then the diagnose job);
# waits; then checks it against one `repdrift diagnose` process: every capture task captured
# its pair, the diagnose job captured nothing, and diagnose.json, pairs.csv, the drift and
# probe tables and report.md are the same bytes (the output directory's path aside). Stops
# the daemons it started, also on failure. ≈ 1 min on 2 cores once built.
#   bash scripts/slurm/test.sh            (as root, or with passwordless sudo for the install)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
root="$(pwd)"
t_start=$(date +%s)
sudo_=""
[ "$(id -u)" -eq 0 ] || sudo_="sudo"
if ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null; then
  echo "slurm test: installing slurm-wlm and munge (Debian packages)" >&2
  $sudo_ apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_ apt-get install -y -qq --no-install-recommends slurm-wlm munge >/dev/null
fi
[ -f models/all-minilm-l6-v2/model.safetensors ] || bash scripts/fetch-models.sh
cargo build --release --quiet
bin="$root/target/release/repdrift"

work="$(mktemp -d /tmp/repdrift-slurm.XXXXXX)"
chmod 755 "$work"
conf="$work/conf"
mkdir -p "$conf/state" "$conf/spool" "$conf/munge"
export SLURM_CONF="$conf/slurm.conf"
started=()
cleanup() {
  set +e
  if [ "${#started[@]}" -gt 0 ]; then
    scancel --user "$(id -un)" >/dev/null 2>&1
    scontrol shutdown >/dev/null 2>&1
    sleep 1
    for pidfile in "$conf/slurmd.pid" "$conf/slurmctld.pid" "$conf/munge/munged.pid"; do
      [ -f "$pidfile" ] && kill "$(cat "$pidfile")" 2>/dev/null
    done
  fi
  echo "slurm test: daemons stopped; work dir $work" >&2
}
trap cleanup EXIT

# munge: our own socket and key, so a system munged (if any) is left alone.
key="$conf/munge/munge.key"
dd if=/dev/urandom of="$key" bs=1 count=1024 status=none
chmod 400 "$key"
munge_user=root
if id munge >/dev/null 2>&1; then munge_user=munge; chown -R munge "$conf/munge"; fi
runuser_() { if [ "$munge_user" = root ]; then "$@"; else $sudo_ runuser -u munge -- "$@"; fi; }
runuser_ /usr/sbin/munged --socket="$conf/munge/munge.socket" --pid-file="$conf/munge/munged.pid" \
  --log-file="$conf/munge/munged.log" --seed-file="$conf/munge/seed" --key-file="$key" --force
started+=(munged)
host="$(hostname -s)"
cat > "$SLURM_CONF" <<CONF
ClusterName=repdrift-test
SlurmctldHost=$host(127.0.0.1)
SlurmUser=$(id -un)
SlurmdUser=root
SlurmctldPort=16817
SlurmdPort=16818
AuthType=auth/munge
AuthInfo=socket=$conf/munge/munge.socket
CredType=cred/munge
StateSaveLocation=$conf/state
SlurmdSpoolDir=$conf/spool
SlurmctldPidFile=$conf/slurmctld.pid
SlurmdPidFile=$conf/slurmd.pid
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
ReturnToService=2
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
DependencyParameters=kill_invalid_depend
MpiDefault=none
SlurmctldLogFile=$conf/slurmctld.log
SlurmdLogFile=$conf/slurmd.log
JobCompType=jobcomp/none
AccountingStorageType=accounting_storage/none
NodeName=$host NodeAddr=127.0.0.1 CPUs=$(nproc) RealMemory=2000 State=UNKNOWN
PartitionName=test Nodes=ALL Default=YES MaxTime=INFINITE State=UP
CONF
$sudo_ env SLURM_CONF="$SLURM_CONF" /usr/sbin/slurmctld
started+=(slurmctld)
$sudo_ env SLURM_CONF="$SLURM_CONF" /usr/sbin/slurmd
started+=(slurmd)
for _ in $(seq 1 30); do
  sinfo -h -o '%t' 2>/dev/null | grep -q idle && break
  sleep 1
done
sinfo -h -o '%t' | grep -q idle || { echo "slurm test: the node never came up" >&2; cat "$conf"/*.log >&2; exit 1; }
echo "slurm test: cluster up ($(sinfo -h -o '%D node, %c CPUs, partition %P'))" >&2

# Data and models: the tiny Llama reward model the LoRA tests use, two PEFT adapters over it.
head -n 120 probes/w2s/source.jsonl > "$work/source.jsonl"
head -n 60 probes/w2s/target_chat.jsonl > "$work/target.jsonl"
lora="$root/tests/reference/lora"
models=(--base "$lora/base" --student "r4=$lora/r4" --student "rslora=$lora/rslora")
data=(--source "$work/source.jsonl" --target "chat=$work/target.jsonl")
settings="--permutations 20 --max-tokens 128"

# The pipeline on Slurm.
out="$work/pipeline"
bash scripts/slurm/submit.sh --out "$out" --repdrift "$bin" "${models[@]}" "${data[@]}" \
  --diagnose-args "$settings"
deadline=$((SECONDS + 300))
while [ -n "$(squeue -h -u "$(id -un)" 2>/dev/null)" ]; do
  [ $SECONDS -lt $deadline ] || { echo "slurm test: jobs still queued after 300 s:" >&2; squeue >&2; exit 1; }
  sleep 2
done
fail=0
for s in capture-0 capture-1 capture-2 capture-3 capture-4 capture-5 diagnose; do
  [ -f "$out/status/$s.ok" ] || { echo "slurm test: stage $s did not finish" >&2; fail=1; }
done
if [ $fail -eq 0 ]; then
  for f in "$out"/logs/capture-*.log; do
    grep -q "captured 1, found 0 in the cache" "$f" \
      || { echo "slurm test: $f did not capture its (model, data set)" >&2; fail=1; }
  done
  grep -q "captured 0 (model, data set) pairs, reused 6 from the cache" "$out"/logs/diagnose-*.log \
    || { echo "slurm test: the diagnose job did not find every capture in the cache" >&2; fail=1; }
fi
if [ $fail -ne 0 ]; then
  for f in "$out"/logs/*.log; do echo "== $f" >&2; tail -n 20 "$f" >&2; done
  exit 1
fi

# The same diagnosis in one process.
ref="$work/single"
read -r -a extra <<< "$settings"
"$bin" diagnose "${models[@]}" "${data[@]}" --out "$ref" "${extra[@]}" >/dev/null 2>&1
n=0
for f in diagnose.json pairs.csv report.md drift/source/metrics.json drift/chat/metrics.json \
  probes/base/probe.json probes/r4/probe.json probes/rslora/probe.json; do
  [ -s "$ref/$f" ] || { echo "slurm test: the single-process run wrote no $f" >&2; exit 1; }
  cmp -s <(sed "s|$out|OUT|g" "$out/$f") <(sed "s|$ref|OUT|g" "$ref/$f") \
    || { echo "slurm test: $f differs from a single-process diagnose" >&2;
         diff <(sed "s|$out|OUT|g" "$out/$f") <(sed "s|$ref|OUT|g" "$ref/$f") | head -n 10 >&2; exit 1; }
  n=$((n + 1))
done
[ -s "$out/index.html" ] || { echo "slurm test: no report" >&2; exit 1; }
verdicts=$(python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print(', '.join(c['student']+' on '+c['set']+': '+c['tests']['verdict'] for c in d['cells'] if c['role']=='target'))" "$out/diagnose.json")
echo "slurm test: passed in $(( $(date +%s) - t_start )) s: 6 capture tasks and the diagnose job; $n outputs the same bytes as one process ($verdicts)" >&2
