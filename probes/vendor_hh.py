"""Vendors the 1,200 Anthropic HH-RLHF harmless-base pairs (MIT, see probes/hh-rlhf/LICENSE) from the
reference copy beside the repository into probes/hh-rlhf/, split (seeded) into a training and an
evaluation part. Run once from the repository root; the output is committed, so nothing reads
../shared at run or test time.

    python3 probes/vendor_hh.py [PATH_TO harmless-base-test-part1.jsonl.gz]

Provenance: Anthropic's `hh-rlhf` repository, `harmless-base/test.jsonl.gz`, its first 1,200
lines, unchanged (each line `{"chosen": "\\n\\nHuman: …\\n\\nAssistant: …", "rejected": …}`).
Split: a seeded shuffle (random.Random(20261129)) of the 1,200 line numbers; the first 800 are
`train.jsonl.gz`, the other 400 `eval.jsonl.gz`, each kept in original order. Every record
gains `"source_line"` (its 1-based line in the original file) so the split can be checked.

A second split of the same shuffle for the learnable HH arm (issue 33, item 4: ≥ 600 held-out
pairs): the first 600 shuffled lines are `split600/train.jsonl.gz`, the other 600
`split600/eval.jsonl.gz` (which therefore contains all 400 pairs of `eval.jsonl.gz`).
"""
import gzip
import json
import os
import random
import shutil
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "..", "..", "shared", "data", "hh-rlhf", "harmless-base-test-part1.jsonl.gz")


def main():
    with gzip.open(SRC, "rt", encoding="utf-8") as f:
        rows = [json.loads(l) for l in f if l.strip()]
    assert len(rows) == 1200, len(rows)
    idx = list(range(len(rows)))
    random.Random(20261129).shuffle(idx)
    out = os.path.join(HERE, "hh-rlhf")
    parts = {
        os.path.join(out, "train"): sorted(idx[:800]),
        os.path.join(out, "eval"): sorted(idx[800:]),
        os.path.join(out, "split600", "train"): sorted(idx[:600]),
        os.path.join(out, "split600", "eval"): sorted(idx[600:]),
    }
    os.makedirs(os.path.join(out, "split600"), exist_ok=True)
    for name, ids in parts.items():
        # mtime=0: the same input gives the same bytes.
        with open(f"{name}.jsonl.gz", "wb") as raw:
            with gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as g:
                for i in ids:
                    r = {"chosen": rows[i]["chosen"], "rejected": rows[i]["rejected"], "source_line": i + 1}
                    g.write((json.dumps(r, ensure_ascii=False) + "\n").encode("utf-8"))
    lic = os.path.join(os.path.dirname(SRC), "LICENSE")
    shutil.copyfile(lic, os.path.join(out, "LICENSE"))


if __name__ == "__main__":
    main()
