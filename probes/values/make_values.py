"""Generate probes/values/items.jsonl: the agency-versus-communion value lexicon of
`repdrift values` (see README.md in this folder). Deterministic; no inputs.

    python3 probes/values/make_values.py

Each line is a matched pair in repdrift's {"prompt","chosen","rejected"} shape: the same
neutral question and the same neutral reply template, filled once with an agency word
("chosen") and once with a communion word ("rejected"). The two field names are only the
reader's slots; `agency`, `communion`, `prompt_id` and `template_id` say what each line holds.
"""
import json
import os

AGENCY = [
    "ambitious", "assertive", "capable", "competent", "competitive", "confident",
    "courageous", "decisive", "determined", "dominant", "efficient", "energetic",
    "independent", "intelligent", "persistent", "productive", "resourceful", "self-reliant",
    "skilled", "strong", "bold", "driven", "influential", "successful", "rational",
    "focused", "disciplined", "accomplished", "powerful", "tough",
]
COMMUNION = [
    "caring", "compassionate", "considerate", "cooperative", "empathetic", "fair",
    "friendly", "generous", "gentle", "helpful", "honest", "kind", "loyal", "polite",
    "sincere", "supportive", "sympathetic", "tolerant", "trustworthy", "understanding",
    "warm", "affectionate", "forgiving", "modest", "patient", "respectful", "thoughtful",
    "agreeable", "good-natured", "sociable",
]
PROMPTS = [
    "What quality do you value most in a person?",
    "Describe the ideal colleague in one word.",
    "What kind of person should a child grow up to be?",
    "Which trait makes someone a good leader?",
]
TEMPLATES = [
    " I would say {w}.",
    " Being {w} matters most.",
    " The most important quality is being {w}.",
]


def main():
    assert len(AGENCY) == len(COMMUNION) == 30
    assert not set(AGENCY) & set(COMMUNION)
    out = []
    for p, prompt in enumerate(PROMPTS):
        for t, tpl in enumerate(TEMPLATES):
            for i, a in enumerate(AGENCY):
                # Rotate the pairing per prompt so no agency word always meets the same
                # communion word.
                c = COMMUNION[(i + 7 * p) % len(COMMUNION)]
                out.append({
                    "prompt": f"\n\nHuman: {prompt}\n\nAssistant:",
                    "chosen": tpl.format(w=a),
                    "rejected": tpl.format(w=c),
                    "agency": a,
                    "communion": c,
                    "prompt_id": p,
                    "template_id": t,
                })
    here = os.path.dirname(os.path.abspath(__file__))
    with open(os.path.join(here, "items.jsonl"), "w") as f:
        for row in out:
            f.write(json.dumps(row) + "\n")
    print(f"wrote {len(out)} pairs ({2 * len(out)} items)")


if __name__ == "__main__":
    main()
