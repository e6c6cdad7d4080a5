"""PyTorch + transformers reference for benches/capture.rs: SmolLM2-135M backbone (GGUF,
dequantized to float32), batch 8 x 128 tokens, output_hidden_states=True, 2 threads.

    /tmp/refenv/bin/python benches/reference/capture_torch.py
Prints the median tokens/s over 10 timed runs (after 2 warm-up runs).
"""
import os
import statistics
import time

import torch
from transformers import AutoModelForCausalLM

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
torch.set_num_threads(2)
torch.set_grad_enabled(False)
model = AutoModelForCausalLM.from_pretrained(os.path.join(ROOT, "models", "smollm2"),
                                             gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf",
                                             dtype=torch.float32).eval()
g = torch.Generator().manual_seed(0)
ids = torch.randint(100, 49100, (8, 128), generator=g)
mask = torch.ones_like(ids)
for _ in range(2):
    out = model.model(input_ids=ids, attention_mask=mask, output_hidden_states=True)
times = []
for _ in range(10):
    t0 = time.perf_counter()
    out = model.model(input_ids=ids, attention_mask=mask, output_hidden_states=True)
    assert len(out.hidden_states) == 31
    times.append(time.perf_counter() - t0)
med = statistics.median(times)
print(f"torch {torch.__version__}: median {med*1000:.0f} ms per batch, {8*128/med:.0f} tokens/s "
      f"(min {8*128/max(times):.0f}, max {8*128/min(times):.0f})")
