"""By-hand check (not run by CI): a reward model written by `repdrift train` loads in HF
transformers as LlamaForSequenceClassification and gives the rewards `repdrift capture` stored.

    /tmp/refenv/bin/python tests/reference/check_rm_in_hf.py RM_DIR DATA.jsonl STORE_DIR

Tokenizes each pair's texts (HH transcripts or prompt+reply) with RM_DIR/tokenizer.json, runs
the model one sequence at a time and prints the worst relative difference to the store's
reward_chosen / reward_rejected.
"""
import json
import sys

import torch
from safetensors.numpy import load_file
from tokenizers import Tokenizer
from transformers import LlamaForSequenceClassification

rm_dir, data, store = sys.argv[1:4]
model = LlamaForSequenceClassification.from_pretrained(rm_dir, dtype=torch.float32).eval()
tok = Tokenizer.from_file(f"{rm_dir}/tokenizer.json")
manifest = json.load(open(f"{store}/manifest.json"))
rows = [json.loads(l) for l in open(data) if l.strip()]
worst = 0.0
for part in manifest["parts"]:
    ex = load_file(f"{store}/examples/part_{part['index']:05d}.safetensors")
    for r in range(part["rows"]):
        row = rows[part["start"] + r]
        for field in ("chosen", "rejected"):
            text = row.get("prompt", "") + row[field]
            ids = torch.tensor([tok.encode(text).ids])
            with torch.no_grad():
                hf = model(input_ids=ids).logits[0, 0].item()
            ours = float(ex[f"reward_{field}"][r])
            worst = max(worst, abs(hf - ours) / (1 + abs(hf)))
print(f"{sum(p['rows'] for p in manifest['parts'])} pairs, worst |HF - repdrift| / (1 + |HF|) = {worst:.2e}")
