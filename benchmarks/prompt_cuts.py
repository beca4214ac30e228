"""Which corpus prompts, cut at random characters, the constrained continuation refuses.

Every tune of the Nottingham tunebooks (../shared/data, when present) and of music21's O'Neill's and Ryan's
is cut at ``--cuts`` random places after its K: line, and each cut is checked and placed as ``complete``
checks and places a prompt (no sampling: a few minutes for about 12,000 cuts). Writes {cut: "ok" or the
error} as JSON; ``--compare OLD.json`` prints the cuts whose verdict changed, to set two versions of the code
side by side:

    PYTHONPATH=/path/to/old/checkout python benchmarks/prompt_cuts.py old.json
    python benchmarks/prompt_cuts.py new.json --compare old.json
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path

import abcflax
from abcflax import constrain, sample
from abcflax.continuation import _check_prompt
from abcflax.tunebook import read_tunebook

NOTTINGHAM = Path(__file__).resolve().parents[2] / "shared" / "data" / "nottingham"


def tunebooks() -> list[str]:
    import music21.corpus

    books = [str(p) for p in music21.corpus.getPaths(fileExtensions=("abc",))
             if "oneills" in str(p) or "ryans" in str(p)]
    return sorted([str(p) for p in NOTTINGHAM.glob("*.abc")] + books)


def verdict(prompt: str, model, tables) -> str:
    try:
        _, view = _check_prompt(prompt, "prompt", model.vocab)
        constrain.place_prompt(view.text + view.forced, tables, model.vocab.chars, view.sealed)
        return "ok"
    except abcflax.InputError as error:
        return f"refused: {error}"


def cut_verdicts(cuts: int, seed: int) -> dict[str, str]:
    model = abcflax.load_model(None)
    tables = sample.grammar_tables(model.vocab.chars)
    rng = random.Random(seed)
    found = {}
    for book in tunebooks():
        for tune in read_tunebook(Path(book).read_text(errors="replace"), book)[0]:
            text = tune.full_text
            body = text.find("\n", text.find("\nK:") + 1) + 1
            if body <= 0 or body >= len(text):
                continue
            for end in rng.sample(range(body, len(text)), min(cuts, len(text) - body)):
                found[f"{Path(book).name}|{tune.line}|{end}"] = verdict(text[:end + 1], model, tables)
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("out", help="JSON file for the verdicts")
    parser.add_argument("--cuts", type=int, default=3, help="cuts a tune")
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument("--compare", help="verdicts of another version (JSON) to print the changes against")
    args = parser.parse_args()
    print("command: python benchmarks/prompt_cuts.py " + " ".join(sys.argv[1:]))
    found = cut_verdicts(args.cuts, args.seed)
    Path(args.out).write_text(json.dumps(found, indent=0))
    print(f"{len(found)} cuts, {sum(v == 'ok' for v in found.values())} continued")
    if args.compare:
        other = json.loads(Path(args.compare).read_text())
        changed = [key for key in found if key in other and (found[key] == "ok") != (other[key] == "ok")]
        print(f"{len(changed)} changed (the other: {args.compare})")
        for key in changed:
            print(f"- {key}: {other[key][:90]} -> {found[key][:90]}")


if __name__ == "__main__":
    main()
