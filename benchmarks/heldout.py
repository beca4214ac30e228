"""Held-out bits per character: whole Nottingham tunes the bundled model never trained on.

The bundled model trains with ``--holdout 0.1``: every source loses the tunes with
``split_holdout(texts, 0.1)[1]`` (chosen by a hash of the normalized text). This writes those Nottingham
tunes to a tunebook and scores it exactly as ``abcflax evaluate`` does.

    python benchmarks/heldout.py [--model DIR] [--write held_out.abc]
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import abcflax
from abcflax.training import split_holdout

ROOT = Path(__file__).resolve().parents[1]
NOTTINGHAM = ROOT.parent / "shared" / "data" / "nottingham"


def held_out_tunes(split: str = "heldout") -> list[str]:
    """The held-out tunes, or (``split="valid"``) the Nottingham tunes of the training run's validation split
    (trained-on data excluded too; for choosing among checkpoints without looking at the held-out tunes)."""
    texts, _ = abcflax.load_corpus([str(NOTTINGHAM)])
    kept, held = split_holdout(texts, 0.1)
    if split == "valid":
        return split_holdout(kept, abcflax.TrainConfig().valid_share, salt="valid")[1]
    return held


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default=None)
    parser.add_argument("--write", help="also write the held-out tunes to this file")
    parser.add_argument("--split", choices=("heldout", "valid"), default="heldout",
                        help="valid: Nottingham's validation-split tunes instead, for model selection")
    args = parser.parse_args()
    tunes = held_out_tunes(args.split)
    if args.write:
        Path(args.write).write_text("\n".join(tunes))
    model = abcflax.load_model(args.model)
    bpc, chars = abcflax.bits_per_char(model.module, model.vocab, tunes)
    print(f"command: python benchmarks/heldout.py" + (f" --model {args.model}" if args.model else "")
          + (" --split valid" if args.split == "valid" else ""))
    print(f"model: {model.path}")
    print(f"{'held-out' if args.split == 'heldout' else 'validation-split'} Nottingham: bpc={bpc:.4f} chars={chars} tunes={len(tunes)}  load average {os.getloadavg()}")


if __name__ == "__main__":
    main()
