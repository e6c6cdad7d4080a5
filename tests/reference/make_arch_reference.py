"""Reference hidden states of tiny random HF checkpoints for each decoder architecture repdrift
reads besides Llama/SmolLM2 (tests/integration/archs.rs).

    /tmp/refenv/bin/python tests/reference/make_arch_reference.py

For each architecture writes tests/reference/tiny/{arch}/ (config.json, model.safetensors in the
listed dtype — sharded into two files with model.safetensors.index.json for qwen2 — and a
word-level tokenizer.json over w0..w31) and tests/reference/tiny/{arch}.json: token-id
sequences and HF's `output_hidden_states` (all layers) at every real token, from one
right-padded batch with an attention mask, in float64 lists. Seed 0; transformers 5.23,
torch 2.15. The architectures exercise: qwen2 (QKV bias, bf16 shards), qwen3 (q/k norm,
head_dim != hidden/heads), mistral (sliding window shorter than the sequences, f16), gemma2
(soft-capping, (1 + w) norms, embedding scaling, pre/post norms, alternating sliding window,
query_pre_attn_scalar), llama (Llama-3 RoPE scaling).
"""
import json
import os

import torch
import transformers
from transformers import (AutoModelForCausalLM, Gemma2Config, LlamaConfig, MistralConfig,
                          Qwen2Config, Qwen3Config)

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "tiny")
COMMON = dict(vocab_size=32, hidden_size=64, intermediate_size=96, num_hidden_layers=3,
              num_attention_heads=4, num_key_value_heads=2, rms_norm_eps=1e-5,
              max_position_embeddings=64, tie_word_embeddings=False, pad_token_id=0,
              initializer_range=0.2)
CASES = {
    "qwen2": (Qwen2Config(rope_theta=10000.0, **COMMON), torch.bfloat16, "100KB"),
    "qwen3": (Qwen3Config(rope_theta=10000.0, head_dim=24, **COMMON), torch.float32, None),
    "mistral": (MistralConfig(rope_theta=10000.0, sliding_window=4, **COMMON), torch.float16, None),
    "gemma2": (Gemma2Config(rope_theta=10000.0, head_dim=16, query_pre_attn_scalar=24,
                            attn_logit_softcapping=2.0, final_logit_softcapping=30.0,
                            sliding_window=3, hidden_activation="gelu_pytorch_tanh",
                            **{**COMMON, "tie_word_embeddings": True}), torch.float32, None),
    "llama": (LlamaConfig(rope_parameters={"rope_type": "llama3", "rope_theta": 10000.0, "factor": 8.0,
                                           "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                                           "original_max_position_embeddings": 16},
                          **COMMON), torch.float32, None),
}
SEQS = [[3, 7, 9, 4, 12, 5, 6, 8], [5, 6, 1], [8, 1, 2, 30, 31, 17, 9, 11, 13, 2], [11]]
vocab = {f"w{i}": i for i in range(32)}
tok = {"version": "1.0", "truncation": None, "padding": None, "added_tokens": [],
       "normalizer": None, "pre_tokenizer": {"type": "Whitespace"}, "post_processor": None,
       "decoder": None, "model": {"type": "WordLevel", "vocab": vocab, "unk_token": "w0"}}

for arch, (cfg, dtype, shard) in CASES.items():
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(cfg)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):
                p.copy_(1.0 + 0.1 * torch.randn_like(p))
            elif name.endswith(".bias"):
                p.copy_(0.2 * torch.randn_like(p))
    model = model.to(dtype).eval()
    d = os.path.join(OUT, arch)
    kw = {"max_shard_size": shard} if shard else {}
    model.save_pretrained(d, safe_serialization=True, **kw)
    with open(os.path.join(d, "tokenizer.json"), "w") as f:
        json.dump(tok, f)
    # Reference in float32 from the stored (rounded) weights, as repdrift computes on CPU.
    m32 = AutoModelForCausalLM.from_pretrained(d, dtype=torch.float32).eval()
    n = max(len(s) for s in SEQS)
    ids = torch.tensor([s + [0] * (n - len(s)) for s in SEQS])
    mask = (torch.arange(n)[None, :] < torch.tensor([len(s) for s in SEQS])[:, None]).long()
    with torch.no_grad():
        hs = m32(input_ids=ids, attention_mask=mask, output_hidden_states=True).hidden_states
    out = {"source": f"transformers {transformers.__version__}, torch {torch.__version__}",
           "arch": arch, "ids": SEQS,
           "hidden_states": [[h[b, :len(s)].double().tolist() for b, s in enumerate(SEQS)] for h in hs]}
    with open(os.path.join(OUT, f"{arch}.json"), "w") as f:
        json.dump(out, f)
    print(arch, [os.path.getsize(os.path.join(d, x)) for x in sorted(os.listdir(d))])
