"""Reference response log-probabilities from HF transformers for `repdrift implicit-reward`
(tests/integration/implicit.rs).

    bash scripts/fetch-models.sh
    /tmp/refenv/bin/python tests/reference/make_logprob_reference.py

Writes tests/reference/logprob_reference.json. For each model, each preference pair (a JSONL line
exactly as the test writes it) and each of chosen/rejected: the text is prompt + reply (the
`{"prompt","chosen","rejected"}` shape) or the HH transcript (`{"chosen","rejected"}`); HF's
tokenizer gives ids and character offsets; the response tokens are those whose span ends after
the response start (the prompt's length; for transcripts after the last "\\n\\nAssistant:" and
one space), never token 0; each is scored by `log_softmax(logits[t - 1])[ids[t]]` from
`AutoModelForCausalLM` in float32 (one sequence at a time, no padding), the log-softmax taken in
float64 of the float32 logits. Stored: the token count, the sum and the per-token values.
Models: the tiny random checkpoints of tests/reference/tiny/{llama,mistral,qwen2,qwen3,gemma2}
(gemma2 with final logit soft-capping 30, and once more with it overridden to 2; the test
runs a copy whose config.json says the same) and SmolLM2-135M-Instruct from its GGUF (dequantized
to float32 by transformers).
"""
import json
import os

import torch
import transformers
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedTokenizerFast

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
torch.set_grad_enabled(False)

TINY_PAIRS = [
    {"prompt": "w3 w7 w9 w4", "chosen": " w12 w5 w6", "rejected": " w8 w1"},
    {"prompt": "w5", "chosen": " w6 w1 w30 w31 w17 w9 w11", "rejected": " w13 w2"},
    {"prompt": "w8 w1 w2 w30 w31 w17", "chosen": " w9", "rejected": " w11 w13 w2 w4"},
]
ASSISTANT = "\n\nAssistant:"


def source_pairs(n):
    with open(os.path.join(ROOT, "probes", "data", "source.jsonl")) as f:
        rows = [json.loads(l) for l in f][:n]
    return [{"chosen": r["chosen"], "rejected": r["rejected"]} for r in rows]


def split(pair, field):
    if "prompt" in pair:
        return pair["prompt"] + pair[field], len(pair["prompt"])
    text = pair[field]
    start = text.rindex(ASSISTANT) + len(ASSISTANT)
    if text[start:].startswith(" "):
        start += 1
    return text, start


def score(model, tok, pairs):
    out = []
    for line, pair in enumerate(pairs, 1):
        for field in ("chosen", "rejected"):
            text, start = split(pair, field)
            enc = tok(text, return_offsets_mapping=True, return_tensors="pt")
            ids = enc["input_ids"][0]
            offs = enc["offset_mapping"][0].tolist()
            first = next(i for i, (a, b) in enumerate(offs) if b > start and b > a)
            first = max(first, 1)
            logits = model(input_ids=enc["input_ids"]).logits[0].double()
            lp = torch.log_softmax(logits, dim=-1)
            vals = [lp[t - 1, ids[t]].item() for t in range(first, len(ids))]
            out.append({"line": line, "field": field, "tokens": len(vals),
                        "logp_sum": sum(vals), "logp": vals})
    return out


def main():
    torch.set_num_threads(2)
    cases = []
    for arch in ["llama", "mistral", "qwen2", "qwen3", "gemma2"]:
        d = os.path.join(HERE, "tiny", arch)
        tok = PreTrainedTokenizerFast(tokenizer_file=os.path.join(d, "tokenizer.json"))
        model = AutoModelForCausalLM.from_pretrained(d, dtype=torch.float32).eval()
        cases.append({"model": f"tests/reference/tiny/{arch}", "pairs": TINY_PAIRS,
                      "sequences": score(model, tok, TINY_PAIRS)})
    # Soft-capping at 30 barely touches the tiny model's logits; at 2 it changes every one.
    d = os.path.join(HERE, "tiny", "gemma2")
    override = {"final_logit_softcapping": 2.0}
    model = AutoModelForCausalLM.from_pretrained(d, dtype=torch.float32, **override).eval()
    cases.append({"model": "tests/reference/tiny/gemma2", "config_override": override,
                  "pairs": TINY_PAIRS, "sequences": score(model, tok, TINY_PAIRS)})
    d = os.path.join(ROOT, "models", "smollm2")
    g = "SmolLM2-135M-Instruct.Q4_1.gguf"
    tok = AutoTokenizer.from_pretrained(d, gguf_file=g)
    model = AutoModelForCausalLM.from_pretrained(d, gguf_file=g, dtype=torch.float32).eval()
    pairs = source_pairs(3)
    cases.append({"model": "models/smollm2/" + g, "pairs": pairs,
                  "sequences": score(model, tok, pairs)})
    out = {"source": f"transformers {transformers.__version__}, torch {torch.__version__}",
           "script": "tests/reference/make_logprob_reference.py", "cases": cases}
    with open(os.path.join(HERE, "logprob_reference.json"), "w") as f:
        json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
