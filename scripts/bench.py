"""Side-by-side benchmark driver (run by scripts/bench.sh inside its reference venv).

Every workload runs as its own process, repdrift's side and then the reference's, one after
the other on the same idle machine; the driver takes each process's peak RSS from `wait4` and
each side's workload seconds from the JSON line the process prints (model loading and data
generation are outside the timed part on both sides). Writes reports/bench/bench.json and
reports/bench/bench.md, and replaces docs/benchmarks.md's table between the `bench:begin` and
`bench:end` markers with bench.md.

    python scripts/bench.py --sxs PATH_TO_side_by_side_BINARY --big-model PATH_TO_big_model_EXAMPLE
        [--quick] [--repeat K]
"""
import argparse
import datetime
import json
import os
import platform
import random
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GGUF = os.path.join(ROOT, "models", "smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf")
REPDRIFT = os.path.join(ROOT, "target", "release", "repdrift")
OUT = os.path.join(ROOT, "reports", "bench")
WORK = os.path.join(ROOT, "target", "bench-stores", "sxs")
PY = sys.executable

TARGETS = {"capture": 1.3, "compare": 5.0, "probe": 2.0, "train": 1.0}
BIG = os.path.join(ROOT, "reports", "tmp", "big-model")
SHAPES = ("135m", "0.5b", "1.1b", "3b", "8b")


def run(cmd, env=None):
    """Run `cmd`; return (last JSON line of stdout, wall seconds, peak RSS MiB)."""
    sys.stderr.write("bench: " + " ".join(os.path.relpath(c, ROOT) if c.startswith(ROOT) else c
                                          for c in cmd) + "\n")
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, cwd=ROOT, env=env, text=True)
    out = p.stdout.read()
    _, status, ru = os.wait4(p.pid, 0)
    wall = time.perf_counter() - t0
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        sys.exit(f"bench: {cmd[0]} failed with exit code {code}")
    lines = [l for l in out.splitlines() if l.startswith("{")]
    res = json.loads(lines[-1]) if lines else {}
    return res, wall, ru.ru_maxrss / 1024.0


def long_pairs(path, n):
    """`n` preference pairs whose texts are all longer than 128 SmolLM2 tokens, so that
    `--max-tokens 128` cuts every sequence to exactly 128 tokens (the shapes of the references'
    fixed batches). Words from a fixed list, seeded."""
    words = ("the a of to and in is it you that he was for on are with as his they be at one have "
             "this from or had by word but what some we can out other were all there when up use "
             "your how said an each she which do their time if will way about many then them write "
             "would like so these her long make thing see him two has look more day could go come "
             "did number sound no most people my over know water than call first who may down side "
             "been now find any new work part take get place made live where after back little only "
             "round man year came show every good me give our under name very through just form "
             "sentence great think say help low line differ turn cause much mean before move right "
             "boy old too same tell does set three want air well also play small end put home read "
             "hand port large spell add even land here must big high such follow act why ask men "
             "change went light kind off need house picture try us again animal point mother world "
             "near build self earth father head stand own page should country found answer school "
             "grow study still learn plant cover food sun four between state keep eye never last "
             "let thought city tree cross farm hard start might story saw far sea draw left late run "
             "while press close night real life few north").split()
    rng = random.Random(0)
    with open(path, "w") as f:
        for i in range(n):
            prompt = " ".join(rng.choice(words) for _ in range(150))
            reply = [" ".join(rng.choice(words) for _ in range(60)) for _ in range(2)]
            f.write(json.dumps({
                "chosen": f"\n\nHuman: {prompt}?\n\nAssistant: {reply[0]}.",
                "rejected": f"\n\nHuman: {prompt}?\n\nAssistant: {reply[1]}.",
                "id": f"bench-{i}"}) + "\n")


def machine():
    cpu = "unknown"
    flags = set()
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name") and cpu == "unknown":
                cpu = line.split(":", 1)[1].strip()
            if line.startswith("flags") and not flags:
                flags = set(line.split(":", 1)[1].split())
    except OSError:
        pass
    mem = 0
    try:
        for line in open("/proc/meminfo"):
            if line.startswith("MemTotal"):
                mem = int(line.split()[1]) // 1024
    except OSError:
        pass
    rustc = subprocess.run(["rustc", "--version"], capture_output=True, text=True).stdout.strip()
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True, cwd=ROOT).stdout.strip()
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_mib": mem,
        "avx512": all(f in flags for f in ("avx512f", "avx512bw", "avx512dq", "avx512vl")),
        "os": platform.platform(),
        "python": platform.python_version(),
        "rustc": rustc,
        "commit": commit,
    }


def row(workload, desc, ours, ref_name, ref, target, extra=None):
    ratio = ref["seconds"] / ours["seconds"]
    r = {
        "workload": workload,
        "description": desc,
        "ours_s": ours["seconds"],
        "reference": ref_name,
        "reference_s": ref["seconds"],
        "ratio": ratio,
        "target": target,
        "meets_target": ratio >= target,
        "ours_peak_rss_mib": ours["rss"],
        "reference_peak_rss_mib": ref["rss"],
        "ours_runs_s": ours.get("runs_s", [ours["seconds"]]),
        "reference_runs_s": ref.get("runs_s", [ref["seconds"]]),
    }
    r.update(extra or {})
    return r


def big_model(maker, shape):
    """The random-weight bf16 checkpoint of `shape` (written once by examples/big_model.rs,
    shared with scripts/big-model.sh), its stored bytes and parameter count; its files are read
    once so that every side loads from the page cache."""
    d = os.path.join(BIG, shape)
    if not os.path.exists(os.path.join(d, "model.safetensors.index.json")):
        run([maker, shape, d, os.path.join(ROOT, "models", "all-minilm-l6-v2", "tokenizer.json")])
    files = [os.path.join(d, f) for f in sorted(os.listdir(d)) if f.endswith(".safetensors")]
    for f in files:
        with open(f, "rb") as fh:
            while fh.read(1 << 24):
                pass
    stored = sum(os.path.getsize(f) for f in files)
    index = json.load(open(os.path.join(d, "model.safetensors.index.json")))
    return d, stored, index["metadata"]["total_size"] // 2


def big_pairs():
    """The 16 preference pairs scripts/big-model.sh captures."""
    path = os.path.join(BIG, "pairs16.jsonl")
    os.makedirs(BIG, exist_ok=True)
    with open(os.path.join(ROOT, "probes", "w2s", "source.jsonl")) as src, open(path, "w") as f:
        for _ in range(16):
            f.write(src.readline())
    return path


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sxs", required=True, help="the built side_by_side bench binary")
    ap.add_argument("--quick", action="store_true",
                    help="fewer repetitions and steps, no 16x; writes reports/tmp/bench-quick/")
    ap.add_argument("--big-model", required=True, help="the built big_model example binary")
    ap.add_argument("--repeat", type=int, default=1,
                    help="run each workload and its reference K times, alternating; report the "
                         "median run of each side (all runs are in bench.json)")
    a = ap.parse_args()
    if a.repeat < 1:
        sys.exit("bench: --repeat must be at least 1")
    out_dir = os.path.join(ROOT, "reports", "tmp", "bench-quick") if a.quick else OUT
    os.makedirs(WORK, exist_ok=True)
    os.makedirs(out_dir, exist_ok=True)
    env = dict(os.environ)
    mach = machine()
    # As the repdrift binary does for itself (src/main.rs): pin OpenBLAS's kernels on AVX-512
    # machines, here for every process (NumPy's OpenBLAS reads the same variable).
    if mach["avx512"] and "OPENBLAS_CORETYPE" not in env:
        env["OPENBLAS_CORETYPE"] = "SKYLAKEX"
    threads = 2 if (os.cpu_count() or 2) >= 2 else 1
    rows, scaling, versions = [], [], {}

    def proc(cmd):
        res, _, rss = run(cmd, env)
        res["rss"] = rss
        versions.update(res.get("versions", {}))
        return res

    def median_run(runs):
        """The run with the median seconds (the lower middle for an even count), with every
        run's seconds and the largest peak RSS."""
        best = dict(sorted(runs, key=lambda x: x["seconds"])[(len(runs) - 1) // 2])
        best["runs_s"] = [x["seconds"] for x in runs]
        best["rss"] = max(x["rss"] for x in runs)
        return best

    def pair(ours_fn, ref_fn):
        ours, refs = [], []
        for _ in range(a.repeat):
            ours.append(ours_fn())
            refs.append(ref_fn())
        return median_run(ours), median_run(refs)

    def both(ours_cmd, ref_cmd):
        return pair(lambda: proc(ours_cmd), lambda: proc(ref_cmd))

    reps = "3" if a.quick else "7"
    o, r = both([a.sxs, "capture", "--reps", reps],
                [PY, "benches/reference/capture_torch.py", "--reps", reps, "--threads", str(threads)])
    rows.append(row("capture", "SmolLM2-135M f32, 8 seqs x 128 tokens, all 31 hidden states "
                    f"(last-token rows kept), median of {reps} batches",
                    o, "PyTorch + transformers (output_hidden_states)", r, TARGETS["capture"],
                    {"ours_tokens_per_s": o["tokens_per_second"],
                     "reference_tokens_per_s": r["tokens_per_second"]}))

    # The 1.1B shape (TinyLlama's) in bf16, HF layout: repdrift against PyTorch + transformers
    # loading the same files in float32 and in bfloat16; the faster of the two is the reference.
    pairs16 = big_pairs()
    ids = os.path.join(WORK, "big-ids.json")
    d11, stored11, params11 = big_model(a.big_model, "1.1b")
    sxs_big = [a.sxs, "capture-model", "--model", d11, "--data", pairs16, "--ids-out", ids,
               "--dir", WORK]
    proc(sxs_big)  # writes the ids the references read
    ref_big = {}
    for dt in ("f32", "bf16"):
        ref_big[dt] = [PY, "benches/reference/capture_big_torch.py", "--model", d11, "--ids", ids,
                       "--dtype", dt, "--threads", str(threads)]
    o, r32, r16 = [], [], []
    for _ in range(a.repeat):
        o.append(proc(sxs_big))
        r32.append(proc(ref_big["f32"]))
        r16.append(proc(ref_big["bf16"]))
    o, r32, r16 = median_run(o), median_run(r32), median_run(r16)
    r, rdt = (r32, "float32") if r32["seconds"] <= r16["seconds"] else (r16, "bfloat16")
    rows.append(row("capture 1.1B bf16 checkpoint",
                    f"random-weight Llama reward model of TinyLlama-1.1B's shape ({params11 / 1e9:.2f} B "
                    f"parameters, {stored11 / 1e9:.2f} GB bf16 in HF layout), 16 pairs = "
                    f"{o['sequences']} sequences, {o['tokens']} tokens (--max-tokens 128, batch 8), all "
                    f"hidden states' last token and the reward; loading timed apart",
                    o, f"PyTorch + transformers, {rdt} (the faster of float32 and bfloat16)", r,
                    TARGETS["capture"],
                    {"ours_tokens_per_s": o["tokens_per_second"],
                     "reference_tokens_per_s": r["tokens_per_second"],
                     "ours_load_s": o["load_seconds"], "reference_load_s": r["load_seconds"],
                     "rss_ratio": r["rss"] / o["rss"],
                     "stored_bytes": stored11,
                     "reference_dtypes": {"float32": {"seconds": r32["seconds"],
                                                      "load_seconds": r32["load_seconds"],
                                                      "peak_rss_mib": r32["rss"]},
                                          "bfloat16": {"seconds": r16["seconds"],
                                                       "load_seconds": r16["load_seconds"],
                                                       "peak_rss_mib": r16["rss"]}}}))

    run([a.sxs, "stores", "--n", "4096", "--students", "2", "--dir", WORK], env)
    # repdrift float64 (the default), repdrift --precision mixed and NumPy, alternating; both
    # of ours are set against the same NumPy runs.
    cmp = [a.sxs, "compare", "--n", "4096", "--students", "2", "--dir", WORK]
    runs64, runs_mixed, refs = [], [], []
    for _ in range(a.repeat):
        runs64.append(proc(cmp))
        runs_mixed.append(proc(cmp + ["--precision", "mixed"]))
        refs.append(proc([PY, "benches/reference/compare_numpy.py", "feature", "--n", "4096",
                          "--students", "2"]))
    r = median_run(refs)
    what = ("2 students x 31 layers x n = 4,096 x d = 576: linear and debiased CKA, cosine "
            "distance, Procrustes, norm ratio (ours reads the stores from disk; NumPy has them "
            "in memory)")
    rows.append(row("compare", what, median_run(runs64), "NumPy float64, the same d x d algebra",
                    r, TARGETS["compare"]))
    rows.append(row("compare --precision mixed", what + "; f32 products per 256 rows summed in "
                    "float64 (within 1e-6 of float64)", median_run(runs_mixed),
                    "NumPy float64, the same d x d algebra", r, TARGETS["compare"]))

    o, r = both([a.sxs, "probe"], [PY, "benches/reference/probe_sklearn.py"])
    rows.append(row("probe", "31 layers x 2,000 pairs x d = 576 Bradley-Terry probes, 5-fold CV "
                    "over C in {0.001, 0.01, 0.1, 1} + final fit",
                    o, "scikit-learn LogisticRegression (lbfgs)", r, TARGETS["probe"],
                    {"ours_accuracy": o["accuracy"], "reference_accuracy": r["accuracy"],
                     "accuracy_gap_points": 100 * abs(o["accuracy"] - r["accuracy"])}))

    pairs_path = os.path.join(WORK, "long_pairs.jsonl")
    long_pairs(pairs_path, 128)
    # 36 pairs, test fraction 0.12: 4 test pairs, 16 + 16 halves -> 2 steps of 8 pairs per epoch.
    for trainable, epochs in (("top:4", 6), ("top:16", 3), ("all", 2)):
        if a.quick:
            epochs = 1
        steps = 2 * epochs
        out = os.path.join(WORK, "train-" + trainable.replace(":", ""))

        def ours_train():
            res = proc([REPDRIFT, "train", "--base", GGUF, "--data", pairs_path, "--out", out,
                        "--method", "gold", "--trainable", trainable, "--batch-size", "8",
                        "--max-tokens", "128", "--epochs", str(epochs), "--limit", "36",
                        "--test-fraction", "0.12", "--checkpoint-every", "0", "--force"])
            summ = json.load(open(os.path.join(out, "train_summary.json")))
            assert summ["steps"] == steps, summ["steps"]
            return {"seconds": 1.0 / summ["steps_per_second"], "rss": res["rss"],
                    "summary": summ}

        def ref_train():
            r = proc([PY, "benches/reference/train_torch.py", "--trainable", trainable,
                      "--steps", str(steps), "--threads", str(threads)])
            return {"seconds": r["seconds_per_step"], "rss": r["rss"],
                    "trainable_parameters": r["trainable_parameters"]}

        ours, ref = pair(ours_train, ref_train)
        summ = ours.pop("summary")
        assert ref["trainable_parameters"] == summ["trainable_parameters"], \
            (ref["trainable_parameters"], summ["trainable_parameters"])
        rows.append(row(f"train {trainable}", f"one step: 8 pairs = 16 seqs x 128 tokens, "
                        f"{summ['trainable_parameters']:,} trainable parameters, BT loss, "
                        f"clipping, AdamW; seconds per step over {steps} steps",
                        ours, "PyTorch, the same step as a plain script", ref, TARGETS["train"],
                        {"trainable_parameters": summ["trainable_parameters"], "steps": steps}))

    factors = (1, 4) if a.quick else (1, 4, 16)
    for f in factors:
        n = 8 * f
        store = os.path.join(WORK, f"scale-capture-{f}")
        _, wall, rss = run([REPDRIFT, "capture", "--model", GGUF, "--data", pairs_path, "--out",
                            store, "--max-tokens", "128", "--limit", str(n), "--force"], env)
        scaling.append({"workload": "capture (repdrift capture, end to end)", "factor": f,
                        "examples": n, "tokens": 2 * n * 128, "seconds": wall,
                        "peak_rss_mib": rss})
    for f in factors:
        n = 1024 * f
        run([a.sxs, "stores", "--n", str(n), "--students", "1", "--dir", WORK], env)
        o, wall, rss = run([a.sxs, "compare", "--n", str(n), "--students", "1", "--dir", WORK], env)
        scaling.append({"workload": "compare (1 student, 31 layers, from disk)", "factor": f,
                        "examples": n, "seconds": o["seconds"], "peak_rss_mib": rss})

    # Time per token and peak RSS against parameter count: the same capture on every shape
    # (the 1.1B run above is not reused: each shape's numbers come from one process alike).
    by_size = []
    for shape in (SHAPES[:2] if a.quick else SHAPES):
        d, stored, n_params = big_model(a.big_model, shape)
        o = proc([a.sxs, "capture-model", "--model", d, "--data", pairs16, "--ids-out", ids,
                  "--dir", WORK])
        by_size.append({"shape": shape, "parameters": n_params, "stored_bytes": stored,
                        "tokens": o["tokens"], "load_seconds": o["load_seconds"],
                        "seconds": o["seconds"], "ms_per_token": 1000 * o["seconds"] / o["tokens"],
                        "peak_rss_mib": o["rss"],
                        "rss_over_stored": o["rss"] * 1024 * 1024 / stored})

    report = {
        "format": "repdrift-bench",
        "version": 1,
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "command": "bash scripts/bench.sh" + (" --quick" if a.quick else "")
        + (f" --repeat {a.repeat}" if a.repeat > 1 else ""),
        "repeat": a.repeat,
        "machine": mach,
        "threads": threads,
        "openblas_coretype": env.get("OPENBLAS_CORETYPE"),
        "versions": versions,
        "ratio": "reference seconds / repdrift seconds (above 1: repdrift is faster)",
        "workloads": rows,
        "scaling": scaling,
        "model_size": by_size,
    }
    with open(os.path.join(out_dir, "bench.json"), "w") as f:
        json.dump(report, f, indent=2)
        f.write("\n")
    md = render(report)
    with open(os.path.join(out_dir, "bench.md"), "w") as f:
        f.write(md)
    readme = os.path.join(ROOT, "docs", "benchmarks.md")
    text = open(readme).read()
    b, e = "<!-- bench:begin -->", "<!-- bench:end -->"
    if b in text and e in text and not a.quick:
        text = text[:text.index(b) + len(b)] + "\n" + md + text[text.index(e):]
        with open(readme, "w") as f:
            f.write(text)
    sys.stdout.write(md)


def render(rep):
    m = rep["machine"]
    v = rep["versions"]
    out = [f"Measured by `{rep['command']}` on {rep['date'][:10]} (commit {m['commit']}): "
           f"{m['cpu']}, {m['cores']} cores, {m['memory_mib'] // 1024} GiB, {rep['threads']} "
           f"threads on both sides; " + ", ".join(f"{k} {v[k]}" for k in sorted(v)) + ". "
           "Ratio = reference seconds / repdrift seconds (above 1: repdrift is faster); "
           "every workload and its reference ran in the same run, one process each.", "",
           "| workload | repdrift s | reference | reference s | ratio | target | peak RSS MiB (repdrift / reference) |",
           "|---|---|---|---|---|---|---|"]
    for r in rep["workloads"]:
        ok = "met" if r["meets_target"] else "**not met**"
        out.append(f"| {r['workload']} | {r['ours_s']:.3f} | {r['reference']} | "
                   f"{r['reference_s']:.3f} | {r['ratio']:.2f}x | {r['target']}x ({ok}) | "
                   f"{r['ours_peak_rss_mib']:.0f} / {r['reference_peak_rss_mib']:.0f} |")
    out += ["", "What each workload is:", ""]
    for r in rep["workloads"]:
        extra = ""
        if "ours_accuracy" in r:
            extra = (f" Mean CV accuracy: repdrift {r['ours_accuracy']:.4f}, reference "
                     f"{r['reference_accuracy']:.4f} ({r['accuracy_gap_points']:.2f} points apart).")
        if "ours_tokens_per_s" in r:
            extra = (f" Tokens/s: repdrift {r['ours_tokens_per_s']:.0f}, reference "
                     f"{r['reference_tokens_per_s']:.0f}.")
        if "reference_dtypes" in r:
            f32, b16 = r["reference_dtypes"]["float32"], r["reference_dtypes"]["bfloat16"]
            extra += (f" Loading: repdrift {r['ours_load_s']:.1f} s, reference "
                      f"{r['reference_load_s']:.1f} s. PyTorch in float32: {f32['seconds']:.1f} s, "
                      f"{f32['peak_rss_mib']:.0f} MiB; in bfloat16: {b16['seconds']:.1f} s, "
                      f"{b16['peak_rss_mib']:.0f} MiB. Peak RSS ratio (reference / repdrift): "
                      f"{r['rss_ratio']:.2f}.")
        out.append(f"- **{r['workload']}**: {r['description']}.{extra}")
    out += ["", "Scaling (repdrift alone; time should grow linearly in the examples, memory stay flat):", "",
            "| workload | factor | examples | seconds | seconds per example | peak RSS MiB |",
            "|---|---|---|---|---|---|"]
    for s in rep["scaling"]:
        out.append(f"| {s['workload']} | {s['factor']}x | {s['examples']} | {s['seconds']:.2f} | "
                   f"{s['seconds'] / s['examples'] * 1000:.2f} ms | {s['peak_rss_mib']:.0f} |")
    if rep.get("model_size"):
        out += ["", "Model size (repdrift alone, random-weight bf16 Llama reward models in HF "
                "layout, the 16 pairs above; time per token should grow with the parameters, "
                "peak RSS stay within the stored size + 2 GiB):", "",
                "| shape | parameters | stored GB | load s | capture s | ms per token | peak RSS GB | RSS / stored |",
                "|---|---|---|---|---|---|---|---|"]
        for m in rep["model_size"]:
            out.append(f"| {m['shape']} | {m['parameters'] / 1e9:.2f} B | {m['stored_bytes'] / 1e9:.2f} | "
                       f"{m['load_seconds']:.1f} | {m['seconds']:.1f} | {m['ms_per_token']:.1f} | "
                       f"{m['peak_rss_mib'] * 1024 * 1024 / 1e9:.2f} | {m['rss_over_stored']:.2f} |")
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    main()
