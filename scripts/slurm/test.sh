#!/usr/bin/env bash
# End-to-end test of the Slurm pipeline on a real one-node Slurm cluster on localhost:
# installs Debian's slurm-wlm and munge when missing, starts munged, slurmctld and slurmd with
# a minimal slurm.conf written to a temp dir, submits scripts/slurm/submit.sh on MiniLM (base)
# and a damaged copy of it (the student: 64 KiB of block 3's MLP output weights zeroed), 120
# source pairs and one 60-pair target, 3 shards; waits; then checks against single-process runs
# of the same commands: merged stores byte-identical, probe results identical, merged metrics
# equal to 1e-12 (relative to max(1, |value|)), the report written. Stops the daemons it
# started, also on failure. ≈ 1 min on 2 cores once built.
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

# Data and models.
head -n 120 probes/w2s/source.jsonl > "$work/source.jsonl"
head -n 60 probes/w2s/target_chat.jsonl > "$work/target.jsonl"
student="$work/student"
mkdir -p "$student"
cp models/all-minilm-l6-v2/{config.json,tokenizer.json} "$student/"
cp models/all-minilm-l6-v2/model.safetensors "$student/"
# Zero the first 64 KiB of block 3's MLP output projection (its offset from the safetensors
# header): layers 0–3 stay the base's, layers 4–6 drift.
offset=$(python3 - "$student/model.safetensors" <<'PY'
import json, struct, sys
f = open(sys.argv[1], "rb")
n = struct.unpack("<Q", f.read(8))[0]
print(8 + n + json.loads(f.read(n))["encoder.layer.3.output.dense.weight"]["data_offsets"][0])
PY
)
dd if=/dev/zero of="$student/model.safetensors" bs=1 count=65536 seek="$offset" conv=notrunc status=none

# The pipeline on Slurm.
out="$work/pipeline"
bash scripts/slurm/submit.sh --out "$out" --repdrift "$bin" --base models/all-minilm-l6-v2 \
  --student "damaged=$student" --source "$work/source.jsonl" --target "chat=$work/target.jsonl" \
  --shards 3 --capture-args "--part-size 16" --probe-args "--folds 3"
deadline=$((SECONDS + 240))
while [ -n "$(squeue -h -u "$(id -un)" 2>/dev/null)" ]; do
  [ $SECONDS -lt $deadline ] || { echo "slurm test: jobs still queued after 240 s:" >&2; squeue >&2; exit 1; }
  sleep 2
done
fail=0
for s in capture-0 capture-11 merge compare-0 compare-2 compare-merge probe-0 probe-1 report; do
  [ -f "$out/status/$s.ok" ] || { echo "slurm test: stage $s did not finish" >&2; fail=1; }
done
if [ $fail -ne 0 ]; then
  for f in "$out"/logs/*.log; do echo "== $f" >&2; tail -n 20 "$f" >&2; done
  exit 1
fi
grep -h "repdrift: capture shard" "$out"/logs/capture-*.log | head -n 2 >&2

# The same commands in one process.
ref="$work/single"
for m in base damaged; do
  model=models/all-minilm-l6-v2
  [ $m = damaged ] && model="$student"
  for d in source chat; do
    data="$work/$d.jsonl"
    [ $d = chat ] && data="$work/target.jsonl"
    "$bin" capture --model "$(cd "$(dirname "$model")" && pwd)/$(basename "$model")" --data "$data" \
      --out "$ref/stores/$m-$d" --part-size 16 2>/dev/null
  done
done
"$bin" compare --base "$ref/stores/base-source" --student "damaged=$ref/stores/damaged-source" \
  --out "$ref/metrics" 2>/dev/null
for m in base damaged; do
  "$bin" probe --train "source=$ref/stores/$m-source" --eval "chat=$ref/stores/$m-chat" \
    --model $m --out "$ref/probe/$m" --folds 3 2>/dev/null
done
for s in base-source base-chat damaged-source damaged-chat; do
  diff -r "$out/stores/$s" "$ref/stores/$s" >/dev/null \
    || { echo "slurm test: merged store $s differs from a single-process capture" >&2; exit 1; }
done
# Numbers of two JSON outputs: equal to TOL relative to max(1, |value|) (paths, which name where each run's stores
# were, are skipped; kNN needs every row at once, so a sharded compare leaves it out).
cat > "$work/same.py" <<'PY'
import json, sys
a, b = (json.load(open(p)) for p in sys.argv[1:3])
tol, label = float(sys.argv[3]), sys.argv[4]
worst, count, sharded_out = 0.0, 0, set()
SKIP, NOT_SHARDED = {"path", "merged_shards"}, {"knn_overlap", "knn_k"}
def walk(x, y, path, key=""):
    global worst, count
    if isinstance(y, dict):
        for k in y:
            if k not in SKIP:
                walk(x.get(k), y[k], path + "." + k, k)
    elif isinstance(y, list):
        assert isinstance(x, list) and len(x) == len(y), path
        for i, (u, v) in enumerate(zip(x, y)):
            walk(u, v, f"{path}[{i}]", key)
    elif key in NOT_SHARDED and x != y and (x in (None, 0) or "merged shards" in str(x)):
        sharded_out.add(key)
    elif isinstance(y, float) and isinstance(x, (int, float)):
        # Relative to the value, or to 1 for values below 1 (the measures are O(1): a
        # distance of 4e-16 against 0 is equal to 1e-12).
        r = abs(x - y) / max(abs(x), abs(y), 1.0)
        count += 1
        worst = max(worst, r)
        assert r <= tol, f"{label}{path}: {x} vs {y} (relative {r:.2e})"
    else:
        assert x == y, f"{label}{path}: {x} vs {y}"
walk(a, b, "")
extra = ""
drift = [1 - r["linear_cka"] for r in b.get("rows", []) if r.get("linear_cka") is not None]
if drift:
    extra = f"; largest 1 - CKA {max(drift):.3g}"
print(f"slurm test: {label} equal the single-process run: {count} numbers, worst relative "
      f"difference {worst:.1e} (not computed per shard: {', '.join(sorted(sharded_out)) or 'none'}){extra}",
      file=sys.stderr)
PY
for m in base damaged; do
  python3 "$work/same.py" "$out/probe/$m/probe.json" "$ref/probe/$m/probe.json" 0 "probe results of $m"
done
python3 "$work/same.py" "$out/metrics/metrics.json" "$ref/metrics/metrics.json" 1e-12 "merged metrics"
[ -s "$out/report/index.html" ] || { echo "slurm test: no report" >&2; exit 1; }
echo "slurm test: passed in $(( $(date +%s) - t_start )) s (pipeline dir $out)" >&2
