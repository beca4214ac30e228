"""What stopping a tune's extra draws early saves: sampling time with and without it, same draws kept.

For every single-tune example in data/examples and every seed, ``sample.generate`` writes the default's 8 draws
with ``stop_early`` on and off, alternately (which goes first alternates too), warm; the kept draws
(``endings.keep_best_draws``) must be the same. Reports the summed times, their ratio, and the share of
draws stopped (or never begun).

    python benchmarks/early_stop.py [--seeds 6] [--draws 8] [--append]
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np

from results import publish

ROOT = Path(__file__).resolve().parents[1]


def single_tunes() -> list[tuple[str, str]]:
    tunes = []
    for path in sorted((ROOT / "data" / "examples").glob("*.abc")):
        text = path.read_text()
        if text.count("\nX:") + text.startswith("X:") == 1 and "%" not in text:
            tunes.append((path.name, text))
    return tunes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=6)
    parser.add_argument("--draws", type=int, default=8)
    parser.add_argument("--append", action="store_true")
    args = parser.parse_args()

    import abcflax
    from abcflax import endings, sample
    from abcflax.sample import Request

    load = os.getloadavg()
    model = abcflax.load_model(None)
    seconds = {True: 0.0, False: 0.0}
    stopped = draws = same = cases = 0
    tunes = single_tunes()
    for name, prompt in tunes:
        for seed in range(args.seeds):
            requests = [Request(prompt, seed, 0, draw=d) for d in range(args.draws)]
            kept = {}
            for early in (True, False):
                sample.generate(model, requests, stop_early=early)  # compiled and warm
            for early in ((True, False) if cases % 2 else (False, True)):
                start = time.perf_counter()
                pending = sample.dispatch(model, requests, stop_early=early)
                results = pending.results()
                seconds[early] += time.perf_counter() - start
                kept[early] = endings.keep_best_draws(results, args.draws)[0].text
                if early and len(pending.arrays) > 4:
                    stopped += int(np.asarray(pending.arrays[4]).sum())
            draws += args.draws
            same += kept[True] == kept[False]
            cases += 1
    lines = [f"command: python benchmarks/early_stop.py --seeds {args.seeds} --draws {args.draws}",
             f"prompts: {', '.join(name for name, _ in tunes)}; seeds 0-{args.seeds - 1}; {cases} cases",
             f"sampling without stopping: {seconds[False]:.2f} s; with: {seconds[True]:.2f} s; "
             f"ratio {seconds[True] / seconds[False]:.3f}",
             f"draws stopped or skipped: {stopped} of {draws} ({stopped / draws:.1%})",
             f"same draw kept: {same} of {cases}",
             f"load average: {load} (before) {os.getloadavg()} (after)"]
    publish("Stopping extra draws early (benchmarks/early_stop.py)", lines, args.append, fenced=True)


if __name__ == "__main__":
    main()
