#!/usr/bin/env python3
"""Stress `capture --resume` against SIGKILL early in a run, where the seeded kill test
(tests/integration/kill.rs) seldom lands: TRIALS kills drawn uniformly over the first FRACTION
of an uninterrupted run's wall time, each followed by a resume that must succeed.

    python3 scripts/kill-stress.py [TRIALS=150] [FRACTION=0.3]

Uses the release binary (or $BIN), MiniLM from scripts/fetch-models.sh and 48 generated pairs
in a temporary folder. Prints each failed resume with what the kill left, then a summary line;
exits 1 if any resume failed.
"""
import json, os, random, shutil, subprocess, sys, tempfile, time

trials = int(sys.argv[1]) if len(sys.argv) > 1 else 150
fraction = float(sys.argv[2]) if len(sys.argv) > 2 else 0.3
root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
binary = os.environ.get("BIN", os.path.join(root, "target/release/repdrift"))
work = tempfile.mkdtemp(prefix="repdrift-kill-stress-")
data, out = os.path.join(work, "pairs.jsonl"), os.path.join(work, "store")
with open(data, "w") as f:
    for i in range(48):
        f.write(json.dumps({"prompt": f"Question {i}: what should I do about case {i}?",
                            "chosen": f"A careful, helpful answer about case {i}.",
                            "rejected": f"Whatever, case {i} is not my problem."}) + "\n")
cmd = [binary, "capture", "--model", os.path.join(root, "models/all-minilm-l6-v2"),
       "--data", data, "--out", out, "--part-size", "4", "--batch-size", "4", "--resume"]
t0 = time.time()
subprocess.run(cmd, check=True, capture_output=True)
clean = time.time() - t0
random.seed(1)
killed = fails = 0
for _ in range(trials):
    shutil.rmtree(out, ignore_errors=True)
    at = random.uniform(0, fraction * clean)
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(at)
    if p.poll() is None:
        p.kill()
        killed += 1
    p.wait()
    left = sorted(os.listdir(out)) if os.path.exists(out) else None
    r = subprocess.run(cmd, capture_output=True)
    if r.returncode != 0:
        fails += 1
        print(f"failed resume after a kill at {at:.3f} s; left {left}: {r.stderr.decode()[-300:]}")
shutil.rmtree(work)
print(f"clean run {clean:.2f} s; {trials} trials, {killed} killed mid-run, {fails} failed resumes")
sys.exit(1 if fails else 0)
