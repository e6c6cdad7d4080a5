"""Reference rewards of a tiny HF LlamaForSequenceClassification (one label), for
tests/integration/rm_head.rs.

    /tmp/refenv/bin/python tests/reference/make_rm_reference.py

Writes tests/reference/hf_rm_tiny/{config.json, model.safetensors, tokenizer.json} (random
weights, seed 0, written by transformers' save_pretrained) and rm_reference.json: token-id
sequences and the rewards HF computes for them in one right-padded batch (the score head at the
last non-pad token). Checked with transformers 5.23, torch 2.15.
"""
import json
import os

import torch
import transformers
from transformers import LlamaConfig, LlamaForSequenceClassification

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "hf_rm_tiny")
torch.manual_seed(0)
cfg = LlamaConfig(
    vocab_size=32,
    hidden_size=64,
    intermediate_size=96,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    rms_norm_eps=1e-5,
    rope_theta=5000.0,
    max_position_embeddings=64,
    pad_token_id=0,
    num_labels=1,
    tie_word_embeddings=False,
    initializer_range=0.2,
)
model = LlamaForSequenceClassification(cfg).eval()
with torch.no_grad():
    for name, p in model.named_parameters():
        if name.endswith("norm.weight"):
            p.copy_(1.0 + 0.1 * torch.randn_like(p))
model.save_pretrained(OUT, safe_serialization=True)
vocab = {f"w{i}": i for i in range(32)}
tok = {
    "version": "1.0", "truncation": None, "padding": None, "added_tokens": [],
    "normalizer": None, "pre_tokenizer": {"type": "Whitespace"}, "post_processor": None,
    "decoder": None, "model": {"type": "WordLevel", "vocab": vocab, "unk_token": "w0"},
}
with open(os.path.join(OUT, "tokenizer.json"), "w") as f:
    json.dump(tok, f)

seqs = [[3, 7, 9, 4, 12], [5, 6], [8, 1, 2, 30, 31, 17, 9], [11]]
n = max(len(s) for s in seqs)
ids = torch.tensor([s + [0] * (n - len(s)) for s in seqs])
mask = (ids != 0).long()
with torch.no_grad():
    rewards = model(input_ids=ids, attention_mask=mask).logits[:, 0].double().tolist()
with open(os.path.join(HERE, "rm_reference.json"), "w") as f:
    json.dump({"source": f"transformers {transformers.__version__}, torch {torch.__version__}",
               "ids": seqs, "rewards": rewards}, f, indent=1)
print(rewards)
