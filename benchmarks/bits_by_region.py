"""Where the bits go: held-out Nottingham bits per character split by what each character is.

Regions: header fields by letter (hdr-T is the title), chord symbols (inside quotes), notes and rests,
durations (digits and /), bar lines and repeats, newlines, spaces, the end-of-tune marker, other (accidentals,
ornaments, ties, slurs, broken rhythm). Teacher forcing over whole tunes, as ``abcflax evaluate``.

    python benchmarks/bits_by_region.py [--model DIR] [--split heldout|valid]
"""

from __future__ import annotations

import argparse
import math
import re

import numpy as np

from heldout import held_out_tunes


def region(text: str, i: int) -> str:
    if i >= len(text):
        return "eos"
    line_start = text.rfind("\n", 0, i) + 1
    end = text.find("\n", i)
    line = text[line_start:end if end >= 0 else len(text)]
    if re.match(r"[A-Za-z]:", line):
        return "hdr-" + line[0]
    if text[line_start:i].count('"') % 2 == 1 or text[i] == '"':
        return "chord"
    ch = text[i]
    for name, chars in (("note", "ABCDEFGabcdefgz"), ("dur", "0123456789/"), ("bar", "|:[]"), ("newline", "\n"),
                        ("space", " ")):
        if ch in chars:
            return name
    return "other"


def main() -> None:
    import jax
    import jax.numpy as jnp

    import abcflax

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default=None)
    parser.add_argument("--split", choices=("heldout", "valid"), default="heldout")
    args = parser.parse_args()
    model = abcflax.load_model(args.model)
    module, vocab = model.module, model.vocab
    totals: dict[str, list[float]] = {}
    for tune in held_out_tunes(args.split):
        ids = np.concatenate([[vocab.bos_id], vocab.encode(tune, "tune"), [vocab.eos_id]])
        logits, _ = module(jnp.asarray(ids[None, :-1]), module.init_carry(1))
        logp = jax.nn.log_softmax(logits[0])
        bits = -np.asarray(jnp.take_along_axis(logp, jnp.asarray(ids[1:, None]), axis=-1)[:, 0]) / math.log(2)
        for i, b in enumerate(bits):
            entry = totals.setdefault(region(tune, i), [0.0, 0])
            entry[0] += float(b)
            entry[1] += 1
    all_bits = sum(v[0] for v in totals.values())
    all_chars = sum(v[1] for v in totals.values())
    print(f"command: python benchmarks/bits_by_region.py" + (f" --model {args.model}" if args.model else "")
          + (f" --split {args.split}" if args.split != "heldout" else ""))
    print(f"model: {model.path}; {args.split}: {all_bits / all_chars:.4f} bits/char over {all_chars} chars")
    print("| region | chars | share of chars | bits | share of bits | bits/char |\n|---|---|---|---|---|---|")
    for name, (bits, chars) in sorted(totals.items(), key=lambda kv: -kv[1][0]):
        print(f"| {name} | {chars} | {chars / all_chars:.1%} | {bits:.0f} | {bits / all_bits:.1%} | {bits / chars:.3f} |")


if __name__ == "__main__":
    main()
