"""Reference chat renderings and token ids for tests/integration/chat.rs.

    /tmp/refenv/bin/python tests/reference/make_chat_reference.py

Renders the message lists of tests/fixtures/data/{conversations,trl_pairs}.jsonl with
SmolLM2-135M-Instruct's own chat template as transformers' `apply_chat_template(messages,
tokenize=False)` does (the tokenizer loaded from the GGUF file the repo fetches), and tokenizes
the result with `add_special_tokens=False` (as the rendered template already carries them).
Writes tests/reference/chat_reference.json. transformers 5.23.
"""
import json
import os

import transformers
from transformers import AutoTokenizer

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
tok = AutoTokenizer.from_pretrained(os.path.join(ROOT, "models/smollm2"),
                                    gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf")
out = {"source": f"transformers {transformers.__version__}", "texts": [], "ids": []}
for name in ["conversations", "trl_pairs"]:
    for line in open(os.path.join(ROOT, f"tests/fixtures/data/{name}.jsonl")):
        row = json.loads(line)
        convs = [row["messages"]] if "messages" in row else [
            row.get("prompt", []) + row[k] for k in ("chosen", "rejected")]
        for msgs in convs:
            text = tok.apply_chat_template(msgs, tokenize=False)
            out["texts"].append(text)
            out["ids"].append(tok(text, add_special_tokens=False)["input_ids"])
json.dump(out, open(os.path.join(HERE, "chat_reference.json"), "w"), indent=1, ensure_ascii=False)
print(out["texts"][0])
