"""Reference rewards and hidden states of PEFT LoRA reward-model adapters, for
tests/integration/lora.rs.

    /tmp/refenv/bin/python tests/reference/make_lora_reference.py

Writes tests/reference/lora/:
  base/      a tiny random LlamaForCausalLM (seed 0; 2 blocks, hidden 64, GQA 4/2 heads) saved by
             transformers' save_pretrained, with the word-level tokenizer of hf_rm_tiny;
  r4/        LoRA r = 4, lora_alpha = 8 on all seven projections (q, k, v, o, gate, up, down);
  rslora/    the same with use_rslora (scale α/√r);
  pattern/   r = 4, lora_alpha = 8 with rank_pattern {q_proj: 2, model.layers.1.mlp.down_proj: 8}
             and alpha_pattern {v_proj: 16};
each adapter saved by PEFT's save_pretrained as TRL's RewardTrainer does with a peft_config
(task_type SEQ_CLS: the score head saved through modules_to_save), with
init_lora_weights=False so that B is not zero and the merge matters; base_model_name_or_path
rewritten to "../base". lora_reference.json holds token-id sequences and, per adapter, the
rewards and the last-real-token hidden states at every layer that PEFT computes for them in one
right-padded batch (hidden_states indexing: 0 = embeddings, 2 = after the final norm).
"""
import json
import os
import shutil

import peft
import torch
import transformers
from peft import LoraConfig, get_peft_model
from transformers import AutoModelForSequenceClassification, LlamaConfig, LlamaForCausalLM

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "lora")
BASE = os.path.join(OUT, "base")
shutil.rmtree(OUT, ignore_errors=True)
os.makedirs(BASE)

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
    tie_word_embeddings=False,
    initializer_range=0.2,
)
base = LlamaForCausalLM(cfg).eval()
with torch.no_grad():
    for name, p in base.named_parameters():
        if name.endswith("norm.weight"):
            p.copy_(1.0 + 0.1 * torch.randn_like(p))
base.save_pretrained(BASE, safe_serialization=True)
shutil.copy(os.path.join(HERE, "hf_rm_tiny", "tokenizer.json"), BASE)

PROJ = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
ADAPTERS = {
    "r4": dict(r=4, lora_alpha=8),
    "rslora": dict(r=4, lora_alpha=8, use_rslora=True),
    "pattern": dict(
        r=4,
        lora_alpha=8,
        rank_pattern={"q_proj": 2, "model.layers.1.mlp.down_proj": 8},
        alpha_pattern={"v_proj": 16},
    ),
}
seqs = [[3, 7, 9, 4, 12], [5, 6], [8, 1, 2, 30, 31, 17, 9], [11]]
n = max(len(s) for s in seqs)
ids = torch.tensor([s + [0] * (n - len(s)) for s in seqs])
mask = (ids != 0).long()
last = mask.sum(1) - 1

reference = {
    "source": f"peft {peft.__version__}, transformers {transformers.__version__}, torch {torch.__version__}",
    "ids": seqs,
    "adapters": {},
}
for k, (name, kw) in enumerate(ADAPTERS.items()):
    torch.manual_seed(1 + k)
    model = AutoModelForSequenceClassification.from_pretrained(BASE, num_labels=1, dtype=torch.float32)
    model.config.pad_token_id = 0
    with torch.no_grad():
        model.score.weight.normal_(0.0, 0.3)
    pc = LoraConfig(task_type="SEQ_CLS", target_modules=PROJ, lora_dropout=0.0, init_lora_weights=False, **kw)
    pm = get_peft_model(model, pc).eval()
    with torch.no_grad():
        # Larger B so the merged weights move visibly (PEFT's non-default init is small).
        for pname, p in pm.named_parameters():
            if "lora_B" in pname:
                p.copy_(0.2 * torch.randn_like(p))
        out = pm(input_ids=ids, attention_mask=mask, output_hidden_states=True)
    rewards = out.logits[:, 0].double().tolist()
    states = [
        [h[b, last[b]].double().tolist() for b in range(len(seqs))] for h in out.hidden_states
    ]
    d = os.path.join(OUT, name)
    pm.save_pretrained(d)
    os.remove(os.path.join(d, "README.md"))  # PEFT's model card: not needed
    with open(os.path.join(d, "adapter_config.json")) as f:
        ac = json.load(f)
    ac["base_model_name_or_path"] = "../base"
    with open(os.path.join(d, "adapter_config.json"), "w") as f:
        json.dump(ac, f, indent=2)
    reference["adapters"][name] = {"rewards": rewards, "hidden_states": states}
    print(name, rewards)

with open(os.path.join(HERE, "lora_reference.json"), "w") as f:
    json.dump(reference, f, indent=1)
