"""Headless checkpoints (saved from the bare model class, as many embedding models ship:
weights named `embed_tokens.weight`, `layers.0.…`, `norm.weight`, no `model.` prefix, no head)
for tests/integration/archs.rs.

    /tmp/refenv/bin/python tests/reference/make_headless_fixtures.py

For each architecture of tests/reference/tiny/ (written by make_arch_reference.py) loads the
checkpoint with `AutoModel.from_pretrained` (the bare class, in the stored dtype) and writes it
with `save_pretrained` twice: tests/reference/tiny/headless/{arch}/ as one model.safetensors and
tests/reference/tiny/headless/{arch}-sharded/ in shards with model.safetensors.index.json. The
weights are the same tensors, so the hidden states to match are tests/reference/tiny/{arch}.json;
this script checks that the bare model reproduces them (float32, max |diff| printed) before
writing, and that no saved name starts with `model.`.
"""
import json
import os
import shutil

import torch
import transformers
from safetensors import safe_open
from transformers import AutoModel

HERE = os.path.dirname(os.path.abspath(__file__))
TINY = os.path.join(HERE, "tiny")
OUT = os.path.join(TINY, "headless")

for arch in ["llama", "mistral", "qwen2", "qwen3", "gemma2"]:
    src = os.path.join(TINY, arch)
    ref = json.load(open(os.path.join(TINY, f"{arch}.json")))
    bare = AutoModel.from_pretrained(src, dtype="auto").eval()
    assert type(bare).__name__.endswith("Model") and "ForCausalLM" not in type(bare).__name__
    # The bare model in float32 reproduces the stored reference.
    m32 = AutoModel.from_pretrained(src, dtype=torch.float32).eval()
    seqs = ref["ids"]
    n = max(len(s) for s in seqs)
    ids = torch.tensor([s + [0] * (n - len(s)) for s in seqs])
    mask = (torch.arange(n)[None, :] < torch.tensor([len(s) for s in seqs])[:, None]).long()
    with torch.no_grad():
        hs = m32(input_ids=ids, attention_mask=mask, output_hidden_states=True).hidden_states
    worst = max(abs(h[b, t, k].item() - ref["hidden_states"][l][b][t][k])
                for l, h in enumerate(hs) for b, s in enumerate(seqs)
                for t in range(len(s)) for k in range(h.shape[-1]))
    assert worst < 1e-4, (arch, worst)  # float32 rounding across torch versions
    sizes = {}
    for name, shard in [(arch, None), (f"{arch}-sharded", "150KB")]:
        d = os.path.join(OUT, name)
        shutil.rmtree(d, ignore_errors=True)
        kw = {"max_shard_size": shard} if shard else {}
        bare.save_pretrained(d, safe_serialization=True, **kw)
        shutil.copy(os.path.join(src, "tokenizer.json"), d)
        files = sorted(f for f in os.listdir(d) if f.endswith(".safetensors"))
        for f in files:
            with safe_open(os.path.join(d, f), "pt") as st:
                assert not any(k.startswith("model.") for k in st.keys()), (d, f)
        assert (len(files) > 1) == bool(shard), (d, files)
        sizes[name] = len(files)
    print(arch, f"bare model vs reference: max |diff| {worst:.2e};", "files:", sizes,
          f"(transformers {transformers.__version__}, torch {torch.__version__})")
