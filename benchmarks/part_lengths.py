"""Part lengths of continuations: held-out Nottingham tunes cut after their second bar, continued with the
phrase rule (default) or without it (``--free``), against the originals' own parts.

A part is what ends at ||, |], |:, :| or :: (a first ending counted in, a second ending not), its length the
sum of its bars' durations in bars of the meter (a pickup and a short last bar make one bar). Only parts that
begin and end inside the continuation are counted. Also: bars added, characters, last note on the tonic.

    python benchmarks/part_lengths.py --limit 50 --seed 0 [--free] [--append]
"""

from __future__ import annotations

import argparse
import collections
import os
import re
import statistics
import sys
from fractions import Fraction
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harmonize import held_out  # noqa: E402  (the held-out split, shared with the harmonize benchmark)

CLOSING = re.compile(r"(:\||\|\||\|\]|\[\||::)")


def parts(text: str, start_bar: int = 0) -> list[float]:
    """Lengths in bars of the parts ``text`` ends that begin at bar ``start_bar`` or later."""
    from abcflax.abc_check import analyze_tune

    analysis = analyze_tune(text)
    endings = {e.bar: e.text for e in analysis.events if e.kind == "ending"}
    found, total, in_first, in_second, first_bar = [], Fraction(0), False, False, None
    for bar in analysis.bars:
        digits = re.findall(r"\d", endings.get(bar.index, ""))
        if digits:
            in_second, in_first = (True, in_first) if digits[0] != "1" else (in_second, True)
        first_bar = bar.index if first_bar is None else first_bar
        if not in_second:
            total += bar.duration
        closing = bar.closing
        if not (CLOSING.search(closing) or closing.endswith("|:") or closing == ""):
            continue
        if closing.startswith(":") and in_first and not in_second:
            in_first, in_second = False, True  # what follows :| in a first ending is the second ending
            continue
        if total and analysis.meter and first_bar >= start_bar:
            found.append(round(total / analysis.meter * 2) / 2)
        total, in_first, in_second, first_bar = Fraction(0), False, False, None
    return found


def prompts_of(tunes: list[str]) -> list[str]:
    """Each tune's header and its body up to its third bar line."""
    prompts = []
    for tune in tunes:
        lines = tune.split("\n")
        key_line = next(i for i, line in enumerate(lines) if line.startswith("K:"))
        body = "\n".join(lines[key_line + 1:])
        cuts = [m.end() for m in re.finditer(r"\|", body)]
        if len(cuts) >= 3:
            prompts.append("\n".join(lines[:key_line + 1]) + "\n" + body[:cuts[2]])
    return prompts


def shares(counts: collections.Counter) -> str:
    total = sum(counts.values()) or 1
    fours = sum(v for k, v in counts.items() if k and k % 4 == 0)
    listed = ", ".join(f"{k:g}: {v}" for k, v in sorted(counts.items()))
    return f"{sum(counts.values())} parts ({listed}); 8 bars {counts[8] / total:.0%}, a multiple of 4 {fours / total:.0%}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--limit", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--free", action="store_true", help="part lengths left to the model (part_bars=0)")
    parser.add_argument("--append", action="store_true", help="append the report to benchmarks/RESULTS.md")
    args = parser.parse_args()
    import abcflax
    from abcflax.abc_check import analyze_tune
    from abcflax.endings import ending_rank

    before = os.getloadavg()
    tunes = held_out("test")[:args.limit]
    prompts = prompts_of(tunes)
    outs = abcflax.complete_many(prompts, seed=args.seed, part_bars=0 if args.free else None)
    original, written, added, chars, ranks = collections.Counter(), collections.Counter(), [], [], collections.Counter()
    for tune in tunes:
        original.update(parts(tune))
    for prompt, out in zip(prompts, outs):
        prompt_bars = len(analyze_tune(prompt).bars)
        written.update(parts(out, start_bar=prompt_bars))
        added.append(len(analyze_tune(out).bars) - prompt_bars)
        chars.append(len(out) - len(prompt))
        ranks[ending_rank(out)] += 1
    command = "python benchmarks/part_lengths.py " + " ".join(sys.argv[1:])
    report = "\n".join([
        f"command: {command}",
        f"originals ({len(tunes)} tunes): {shares(original)}",
        f"continuations of {len(prompts)} prompts ({'parts free' if args.free else 'phrase rule'}, seed {args.seed}): "
        f"{shares(written)}",
        f"bars added: median {statistics.median(added)}, mean {statistics.mean(added):.1f}; characters: median "
        f"{statistics.median(chars)}; last note on the tonic {ranks[0]}/{len(prompts)}, on its tonic chord "
        f"{ranks[0] + ranks[1]}/{len(prompts)}",
        f"load average: {before} (before) {os.getloadavg()} (after)",
    ])
    print(report)
    if args.append:
        with open(Path(__file__).resolve().parent / "RESULTS.md", "a", encoding="utf-8") as results:
            results.write("\n" + report + "\n")


if __name__ == "__main__":
    main()
