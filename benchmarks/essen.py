"""Does music21's essenFolksong corpus help or hurt on held-out folk tunes?

Trains the same model twice, same seed, steps and batch, on the bundled model's mix (nottingham@4, irish,
ryansMammoth, oneills1850, airdsAirs) and on that mix plus ``music21:essenFolksong`` (7,669 tunes, more
characters than the rest together), each with ``--holdout 0.1``, then scores the held-out Nottingham and
Irish tunes (never trained on by either) in bits per character. Runs resume from their checkpoints.

    python benchmarks/essen.py [--preset small] [--steps 2000] [--out runs/essen] [--append]
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

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
    parser.add_argument("--preset", default="small")
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--out", default=str(ROOT / "runs" / "essen"))
    parser.add_argument("--append", action="store_true")
    args = parser.parse_args()
    import abcflax
    from abcflax.checkpoint import load

    tests = {"Nottingham": held_out(str(SHARED / "nottingham")), "Irish": held_out(str(SHARED / "irish"))}
    rows = []
    for name, specs in MIXES.items():
        texts, weights, _ = abcflax.load_training_texts(specs, 0.1)
        out = Path(args.out) / name.replace(" ", "-")
        train_config = abcflax.TrainConfig(steps=args.steps, eval_every=max(1, args.steps // 4))
        resume = (out / "model.msgpack").exists()
        start = time.perf_counter()
        path = abcflax.train(texts, out, abcflax.preset(args.preset), train_config, resume=resume, weights=weights,
                             sources=specs)
        seconds = time.perf_counter() - start
        model = abcflax.load_model(str(path))
        scores = {test: abcflax.bits_per_char(model.module, model.vocab, tunes)[0] for test, tunes in tests.items()}
        rows.append((name, len(texts), sum(map(len, texts)), scores, seconds, load(path).step))
        print(rows[-1], flush=True)
    lines = [f"command: python benchmarks/essen.py --preset {args.preset} --steps {args.steps}", "",
             "| training mix | tunes | chars | held-out Nottingham bpc | held-out Irish bpc | steps |",
             "|---|---|---|---|---|---|"]
    for name, tunes, chars, scores, seconds, step in rows:
        lines.append(f"| {name} | {tunes:,} | {chars:,} | {scores['Nottingham']:.3f} | {scores['Irish']:.3f} | {step} |")
    lines.append("")
    lines.append(f"held-out tunes: Nottingham {len(tests['Nottingham'])}, Irish {len(tests['Irish'])}; "
                 f"load average {os.getloadavg()}")
    report = "\n".join(lines)
    print(report)
    if args.append:
        with open(ROOT / "benchmarks" / "RESULTS.md", "a") as handle:
            handle.write(f"\n## Does essenFolksong help? (benchmarks/essen.py) — "
                         f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}\n\n{report}\n")


if __name__ == "__main__":
    main()
