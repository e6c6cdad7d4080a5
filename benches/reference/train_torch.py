"""PyTorch reference for the `train` workloads of scripts/bench.sh: the step `repdrift train`
runs, as a plain PyTorch script. SmolLM2-135M (GGUF, dequantized to float32) as a reward
model: the top K decoder blocks, the final norm and a scalar head N(0, 0.02^2) train (`all`:
every block, the norm, the head and the embeddings); batch 8 pairs = 16 sequences x 128 tokens
(no padding: repdrift's side trains on texts longer than --max-tokens 128, so every sequence
is cut to exactly 128 tokens); the reward is the head on the final normed state of the last
token; Bradley-Terry loss -log sigmoid(r_chosen - r_rejected) (gold labels); global gradient
norm clipped at 1; AdamW (lr 2e-5, weight decay 0); float32; 2 threads.

As in repdrift, the frozen bottom blocks run once per distinct batch, without gradient, and
their output states are cached (`inputs_embeds` of the truncated stack); `--batches` distinct
batches are cycled, as repdrift cycles over its training half.

    python benches/reference/train_torch.py --trainable top:4 --steps 12
Prints one JSON line: steps per second over all --steps steps (the step loop only, as
repdrift's train_summary.json `steps_per_second`).
"""
import argparse
import json
import os
import sys
import time

import torch
import torch.nn.functional as F
import transformers
from transformers import AutoModelForCausalLM

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ap = argparse.ArgumentParser()
ap.add_argument("--trainable", default="top:4")
ap.add_argument("--steps", type=int, default=12)
ap.add_argument("--batches", type=int, default=2)
ap.add_argument("--pairs", type=int, default=8)
ap.add_argument("--tokens", type=int, default=128)
ap.add_argument("--threads", type=int, default=2)
a = ap.parse_args()
torch.set_num_threads(a.threads)
torch.manual_seed(0)
model = AutoModelForCausalLM.from_pretrained(os.path.join(ROOT, "models", "smollm2"),
                                             gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf",
                                             dtype=torch.float32)
bb = model.model
bb.config.use_cache = False
n_layers = len(bb.layers)
train_all = a.trainable == "all"
k = n_layers if train_all else min(int(a.trainable.split(":")[1]), n_layers)
first = n_layers - k
for p in model.parameters():
    p.requires_grad_(False)
g = torch.Generator().manual_seed(0)
batches = [torch.randint(100, 49100, (2 * a.pairs, a.tokens), generator=g) for _ in range(a.batches)]
if train_all:
    inputs = batches
    bb.embed_tokens.weight.requires_grad_(True)
else:
    with torch.no_grad():
        inputs = [bb(input_ids=ids, output_hidden_states=True).hidden_states[first] for ids in batches]
    bb.layers = torch.nn.ModuleList(list(bb.layers)[first:])
for p in list(bb.layers.parameters()) + list(bb.norm.parameters()):
    p.requires_grad_(True)
score = torch.nn.Linear(bb.config.hidden_size, 1, bias=False)
torch.nn.init.normal_(score.weight, std=0.02)
params = [p for p in bb.parameters() if p.requires_grad] + list(score.parameters())
n_params = sum(p.numel() for p in params)
opt = torch.optim.AdamW(params, lr=2e-5, weight_decay=0.0)
model.train()
losses = []
t0 = time.perf_counter()
for step in range(a.steps):
    x = inputs[step % len(inputs)]
    if train_all:
        h = bb(input_ids=x).last_hidden_state
    else:
        h = bb(inputs_embeds=x).last_hidden_state
    r = score(h[:, -1, :]).squeeze(-1)
    loss = -F.logsigmoid(r[0::2] - r[1::2]).mean()
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(params, 1.0)
    opt.step()
    losses.append(loss.item())
t = time.perf_counter() - t0
print(f"torch {torch.__version__} train {a.trainable}: {a.steps} steps in {t:.1f} s, "
      f"{a.steps / t:.3f} steps/s, {n_params} trainable parameters", file=sys.stderr)
print(json.dumps({"seconds_per_step": t / a.steps, "steps_per_second": a.steps / t,
                  "steps": a.steps, "trainable_parameters": n_params, "losses": losses,
                  "threads": a.threads,
                  "versions": {"torch": torch.__version__, "transformers": transformers.__version__}}))
