"""Parquet fixtures for tests/integration/chat.rs (data loaders), written with pyarrow
(snappy compression, pyarrow's default, as HF datasets' Parquet files use).

    /tmp/refenv/bin/python tests/reference/make_parquet_fixtures.py

tests/fixtures/data/pairs.parquet: prompt/chosen/rejected strings + an integer `label`;
tests/fixtures/data/trl_pairs.parquet: the rows of trl_pairs.jsonl (message-list columns);
tests/fixtures/data/truncated.parquet: pairs.parquet cut to half its bytes.
"""
import json
import os

import pyarrow as pa
import pyarrow.parquet as pq

D = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures", "data"))
rows = [{"prompt": "User: how do I hurt someone?\nBot:", "chosen": " I won't help with that.",
         "rejected": " Here's how.", "label": 1},
        {"prompt": "User: recipe for pancakes?\nBot:", "chosen": " Mix flour, eggs and milk.",
         "rejected": " No.", "label": 0}]
pq.write_table(pa.Table.from_pylist(rows), os.path.join(D, "pairs.parquet"))
trl = [json.loads(l) for l in open(os.path.join(D, "trl_pairs.jsonl"))]
for r in trl:
    r.setdefault("prompt", [])
pq.write_table(pa.Table.from_pylist(trl), os.path.join(D, "trl_pairs.parquet"))
b = open(os.path.join(D, "pairs.parquet"), "rb").read()
open(os.path.join(D, "truncated.parquet"), "wb").write(b[: len(b) // 2])
print(sorted(os.listdir(D)))
