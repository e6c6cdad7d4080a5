#!/usr/bin/env bash
# Check a demo report directory: index.html, report.md, report.json, demo.json and the plots
# exist; every number in report.json and demo.json is finite; accuracies lie in [0, 1]; linear
# CKA is defined at all but at most two layers per student (undefined ones carry a reason); the
# cue and value section covers the base and the three students; diagnose.json has a verdict for
# every student and target, pairs.csv a row per (set, pair, model) and README.md (the run of
# record) a verdict row per student and target.
set -euo pipefail
dir="${1:?usage: scripts/check-demo.sh REPORT_DIR}"
for f in index.html report.md report.json demo.json diagnose.json pairs.csv README.md plots/cka.png plots/probe.svg plots/trust_drift.svg; do
  [ -s "$dir/$f" ] || { echo "check-demo: $dir/$f missing or empty" >&2; exit 1; }
done
python3 - "$dir" <<'PY'
import json, math, sys
d = sys.argv[1]
demo = json.load(open(f"{d}/demo.json"))
rep = json.load(open(f"{d}/report.json"))
bad = []
def walk(x, path):
    if isinstance(x, float) and not math.isfinite(x):
        bad.append(path)
    elif isinstance(x, dict):
        for k, v in x.items(): walk(v, f"{path}.{k}")
    elif isinstance(x, list):
        for i, v in enumerate(x): walk(v, f"{path}[{i}]")
walk(demo, "demo"); walk(rep, "report")
for model, accs in demo["accuracy"].items():
    for ds, a in accs.items():
        if not isinstance(a, (int, float)) or not 0.0 <= a <= 1.0:
            bad.append(f"accuracy {model}/{ds} = {a}")
for s in rep["students"]:
    # null = undefined with a stated reason in metrics.json (e.g. Δh = 0 at the embeddings);
    # most layers must have a value.
    vals = [v for v in s["linear_cka"] if v is not None]
    if len(vals) < len(s["linear_cka"]) - 2:
        bad.append(f"linear CKA of {s['student']} undefined at {len(s['linear_cka']) - len(vals)} layers")
for m in ("weak", "gold", "naive", "anchor"):
    if m not in demo["accuracy"]:
        bad.append(f"no accuracies for {m}")
# The cue and value section: base and the three students, four cues each.
bias = rep.get("bias")
if not bias or [r["model"] for r in bias["rows"]] != ["base", "gold", "naive", "anchor"]:
    bad.append("no cue and value section for base, gold, naive and anchor")
elif any(len(r["cues"]) != 4 for r in bias["rows"]):
    bad.append("a model of the cue section lacks a cue")
# The diagnosis: a verdict per student × target; pairs.csv complete.
diag = json.load(open(f"{d}/diagnose.json"))
walk(diag, "diagnose")
verdicts = {"kept", "lost_through_drift", "lost_through_head", "lost_through_both",
            "lost_cause_unresolved", "inconclusive"}
targets = [s["name"] for s in diag["sets"] if s["name"] != diag["sets"][0]["name"]]
for student in ("naive", "anchor"):
    for t in targets:
        cell = [c for c in diag["cells"] if c["student"] == student and c["set"] == t]
        if len(cell) != 1 or cell[0]["tests"]["verdict"] not in verdicts:
            bad.append(f"no verdict for {student} on {t}")
# The run of record beside the report: a verdict row per student × target.
record = open(f"{d}/README.md").read()
for student in ("naive", "anchor"):
    for t in targets:
        if f"| {student} | {t} |" not in record:
            bad.append(f"README.md has no verdict row for {student} on {t}")
import csv
rows = list(csv.DictReader(open(f"{d}/pairs.csv")))
models = 1 + len(diag["students"])
want = sum(s["pairs"] for s in diag["sets"]) * models
if len(rows) != want:
    bad.append(f"pairs.csv has {len(rows)} rows, expected {want} (pairs × {models} models)")
if bad:
    sys.exit("check-demo: " + "; ".join(bad[:20]))
print(f"check-demo: {d}: report complete, all numbers finite ({len(rep['students'])} students, "
      f"{len(diag['cells'])} verdict cells, {len(rows)} pair rows)")
PY
