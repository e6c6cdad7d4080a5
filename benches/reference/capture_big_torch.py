"""PyTorch + transformers reference for the `capture-model` workload of scripts/bench.sh: a
reward model checkpoint in HF layout (the random-weight bf16 shapes of scripts/big-model.sh)
loaded with `LlamaForSequenceClassification.from_pretrained` in float32 or bfloat16, then the
very batches `repdrift capture` runs (token ids written by `side_by_side capture-model
--ids-out`), right-padded with an attention mask, `output_hidden_states=True`: every hidden
state's last real token kept and the score head applied to the last one, as a capture does.

    python benches/reference/capture_big_torch.py --model DIR --ids IDS.json --dtype bf16 [--threads 2]
Prints one JSON line: the load, a warm-up pass (the first batch's first sequence: PyTorch's
first forward pays one-time set-up that a long capture would spread over many batches) and the
capture seconds, timed apart; the capture runs each batch once, as repdrift's does.
"""
import argparse
import json
import sys
import time

import torch
import transformers
from transformers import AutoModelForSequenceClassification

ap = argparse.ArgumentParser()
ap.add_argument("--model", required=True)
ap.add_argument("--ids", required=True)
ap.add_argument("--dtype", choices=["f32", "bf16"], required=True)
ap.add_argument("--threads", type=int, default=2)
a = ap.parse_args()
torch.set_num_threads(a.threads)
torch.set_grad_enabled(False)
dtype = {"f32": torch.float32, "bf16": torch.bfloat16}[a.dtype]

t0 = time.perf_counter()
model = AutoModelForSequenceClassification.from_pretrained(a.model, dtype=dtype).eval()
load_s = time.perf_counter() - t0
batches = json.load(open(a.ids))


def run(batch):
    width = max(len(s) for s in batch)
    ids = torch.zeros((len(batch), width), dtype=torch.long)
    mask = torch.zeros_like(ids)
    for i, s in enumerate(batch):
        ids[i, :len(s)] = torch.tensor(s)
        mask[i, :len(s)] = 1
    out = model.model(input_ids=ids, attention_mask=mask, output_hidden_states=True)
    last = torch.tensor([len(s) - 1 for s in batch])
    rows = torch.arange(len(batch))
    pooled = torch.stack([h[rows, last, :] for h in out.hidden_states], 1).float().clone()
    reward = model.score(out.hidden_states[-1][rows, last, :]).float()
    return pooled, reward


t0 = time.perf_counter()
run(batches[0][:1])
warmup_s = time.perf_counter() - t0
t0 = time.perf_counter()
tokens = 0
for b in batches:
    run(b)
    tokens += sum(len(s) for s in b)
secs = time.perf_counter() - t0
print(f"torch {torch.__version__} {a.dtype}: load {load_s:.1f} s, capture {secs:.1f} s, "
      f"{tokens / secs:.1f} tokens/s (warm-up {warmup_s:.1f} s)", file=sys.stderr)
print(json.dumps({"seconds": secs, "load_seconds": load_s, "warmup_seconds": warmup_s, "tokens": tokens,
                  "tokens_per_second": tokens / secs, "dtype": a.dtype, "threads": a.threads,
                  "versions": {"torch": torch.__version__,
                               "transformers": transformers.__version__}}))
