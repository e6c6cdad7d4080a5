"""Writes the shortcut arm's data sets (probes/w2s_cue/) from the weak-to-strong sets in
probes/w2s/ (no text is fetched from anywhere; stdlib only; deterministic).

    python3 probes/make_w2s_cue.py

The cue is the neutral sentence `repdrift cues` appends for its `length` cue,
"That is my reply to your message." (src/bias/cues.rs, PADDING): it makes a reply longer and
says nothing. The shortcut teacher of the study (`weak_rule = "padding"`) prefers whichever
reply carries it. On a source with cue agreement a, the padding is appended to the chosen
reply of a·n pairs and to the rejected reply of the others, so the teacher's labels agree with
gold on exactly those a·n pairs — errors with structure, which a student can learn as a
shortcut. The pairs whose cue agrees are nested across levels (the 70 % set is inside the 85 %
set, which is inside the 95 % one: one seeded permutation of the pairs), so the levels differ
only in how many pairs the cue misleads on.

Sets (probes/w2s_cue/):
| file | from | padding on |
| source_a70.jsonl, source_a85.jsonl, source_a95.jsonl | w2s/source.jsonl (360) | chosen for 70 / 85 / 95 % of pairs, rejected for the rest |
| chat_reversed.jsonl, forum_reversed.jsonl | w2s/target_chat.jsonl, target_forum.jsonl (200 each) | every rejected reply: the cue points the wrong way |
| chat_wide_reversed.jsonl, forum_wide_reversed.jsonl | w2s/target_chat_wide.jsonl, target_forum_wide.jsonl (400 each) | the same, on the wide targets |
The neutral targets are w2s/target_chat.jsonl and target_forum.jsonl themselves (no padding).
The frozen held-out target (w2s/heldout.jsonl) is not read.
"""
import json
import os
import random

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.join(HERE, "w2s")
OUT = os.path.join(HERE, "w2s_cue")
PADDING = "That is my reply to your message."
LEVELS = (70, 85, 95)
SEED = 9103


def pad(reply):
    """The `length` cue's edit: the sentence appended after one space (leading text kept)."""
    body = reply.rstrip()
    assert PADDING not in body, "a reply already carries the padding"
    return body + " " + PADDING


def read(name):
    with open(os.path.join(SRC, name)) as f:
        return [json.loads(line) for line in f]


def write(name, rows):
    with open(os.path.join(OUT, name), "w") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")


def padded(row, side, cue):
    """`row` with the padding on `side` ("chosen" or "rejected"); `cue` records where it is."""
    r = dict(row)
    r[side] = pad(r[side])
    r["cue"] = cue
    return r


def main():
    os.makedirs(OUT, exist_ok=True)
    source = read("source.jsonl")
    order = list(range(len(source)))
    random.Random(SEED).shuffle(order)
    rank = {i: k for k, i in enumerate(order)}
    for a in LEVELS:
        agree = round(a / 100 * len(source))
        rows = [
            padded(r, "chosen", "agrees") if rank[i] < agree else padded(r, "rejected", "misleads")
            for i, r in enumerate(source)
        ]
        write(f"source_a{a}.jsonl", rows)
    for t in ("chat", "forum", "chat_wide", "forum_wide"):
        write(f"{t}_reversed.jsonl",
              [padded(r, "rejected", "misleads") for r in read(f"target_{t}.jsonl")])


if __name__ == "__main__":
    main()
