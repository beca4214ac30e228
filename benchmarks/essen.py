"""Does music21's essenFolksong corpus help or hurt on held-out folk tunes?

Continues training the bundled model twice (``init_from``: its weights, a fresh optimizer), same seed,
steps, batch and learning rate: on its own mix (nottingham@4, irish, ryansMammoth, oneills1850, airdsAirs)
and on that mix plus ``music21:essenFolksong`` (7,669 tunes, more characters than the rest together; the
939 whose titles use characters the model does not know are left out), each with ``--holdout 0.1``.
Then it scores the held-out Nottingham and Irish tunes (never trained on by either) in bits per character,
next to the bundled model's own figure. Runs resume from their checkpoints.

(A from-scratch comparison at a budget this machine allows, ~2,000 steps of a small model, measures early
learning speed more than what the data teaches; starting both runs from the trained model asks the
question that matters for the bundled model: does adding essen to its training help it?)

    python benchmarks/essen.py [--steps 600] [--lr 5e-4] [--out runs/essen] [--append]
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

from results import publish

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
BASE = [f"{SHARED / 'nottingham'}@4", str(SHARED / "irish"), "music21:ryansMammoth", "music21:oneills1850",
        "music21:airdsAirs"]
MIXES = {"without essen": BASE, "with essen": BASE + ["music21:essenFolksong"]}


def held_out(source: str) -> list[str]:
    import abcflax
    from abcflax.training import split_holdout

    texts, _ = abcflax.load_corpus([source])
    return split_holdout(texts, 0.1)[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--lr", type=float, default=5e-4)
    parser.add_argument("--out", default=str(ROOT / "runs" / "essen"))
    parser.add_argument("--append", action="store_true")
    args = parser.parse_args()
    import abcflax
    from abcflax.checkpoint import load

    tests = {"Nottingham": held_out(str(SHARED / "nottingham")), "Irish": held_out(str(SHARED / "irish"))}
    bundled = abcflax.load_model(None)
    known = set(bundled.vocab.chars)

    def scores_of(model) -> dict[str, float]:
        return {test: abcflax.bits_per_char(model.module, model.vocab, tunes)[0] for test, tunes in tests.items()}

    rows = [("bundled model, as released", 0, 0, scores_of(bundled), 0.0, load(bundled.path).step)]
    for name, specs in MIXES.items():
        texts, weights, _ = abcflax.load_training_texts(specs, 0.1)
        usable = [i for i, text in enumerate(texts) if set(text) <= known]
        texts, weights = [texts[i] for i in usable], [weights[i] for i in usable]
        out = Path(args.out) / name.replace(" ", "-")
        train_config = abcflax.TrainConfig(steps=args.steps, learning_rate=args.lr, warmup_steps=50,
                                           eval_every=max(1, args.steps // 3), seed=1)
        resume = (out / "model.msgpack").exists()
        start = time.perf_counter()
        path = abcflax.train(texts, out, bundled.config, train_config, resume=resume, weights=weights,
                             sources=specs, init_from=bundled.path)
        seconds = time.perf_counter() - start
        model = abcflax.load_model(str(path))
        rows.append((f"+{args.steps} steps {name}", len(texts), sum(map(len, texts)), scores_of(model), seconds,
                     load(path).step))
        print(rows[-1], flush=True)
    lines = [f"command: python benchmarks/essen.py --steps {args.steps} --lr {args.lr}", "",
             "| model | training tunes | chars | held-out Nottingham bpc | held-out Irish bpc | steps |",
             "|---|---|---|---|---|---|"]
    for name, tunes, chars, scores, seconds, step in rows:
        lines.append(f"| {name} | {tunes or '—'} | {chars or '—'} | {scores['Nottingham']:.3f} | {scores['Irish']:.3f} "
                     f"| {step} |")
    lines.append("")
    lines.append(f"held-out tunes: Nottingham {len(tests['Nottingham'])}, Irish {len(tests['Irish'])}; "
                 f"load average {os.getloadavg()}")
    publish("Does essenFolksong help? (benchmarks/essen.py)", lines, args.append)


if __name__ == "__main__":
    main()
