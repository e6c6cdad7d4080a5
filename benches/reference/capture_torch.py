"""PyTorch + transformers reference for the `capture` workload of scripts/bench.sh (and
benches/capture.rs): SmolLM2-135M backbone (GGUF, dequantized to float32), batch 8 x 128
tokens, output_hidden_states=True (all 31 hidden states), last-token rows kept, 2 threads.

    python benches/reference/capture_torch.py [--reps 5]
Prints one JSON line: the median seconds per batch over --reps timed runs (after one warm-up).
"""
import argparse
import json
import os
import statistics
import sys
import time

import torch
import transformers
from transformers import AutoModelForCausalLM

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ap = argparse.ArgumentParser()
ap.add_argument("--reps", type=int, default=5)
ap.add_argument("--threads", type=int, default=2)
a = ap.parse_args()
torch.set_num_threads(a.threads)
torch.set_grad_enabled(False)
model = AutoModelForCausalLM.from_pretrained(os.path.join(ROOT, "models", "smollm2"),
                                             gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf",
                                             dtype=torch.float32).eval()
g = torch.Generator().manual_seed(0)
ids = torch.randint(100, 49100, (8, 128), generator=g)
mask = torch.ones_like(ids)


def run():
    out = model.model(input_ids=ids, attention_mask=mask, output_hidden_states=True)
    assert len(out.hidden_states) == 31
    # The rows a store keeps: each sequence's last token at every layer.
    return torch.stack([h[:, -1, :] for h in out.hidden_states], 1).clone()


run()
times = []
for _ in range(a.reps):
    t0 = time.perf_counter()
    run()
    times.append(time.perf_counter() - t0)
med = statistics.median(times)
print(f"torch {torch.__version__}: median {med*1000:.0f} ms per batch, {8*128/med:.0f} tokens/s",
      file=sys.stderr)
print(json.dumps({"seconds": med, "tokens": 8 * 128, "tokens_per_second": 8 * 128 / med,
                  "reps": a.reps, "threads": a.threads,
                  "versions": {"torch": torch.__version__, "transformers": transformers.__version__}}))
