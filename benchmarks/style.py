"""Style of continuations against the tunes they continue: do they sound like the rest of the original?

Held-out Nottingham tunes (the harmonize benchmark's split, both subsets) are cut after their second bar
line and continued, once per temperature (``--temperatures``), with abcflax's defaults otherwise. Every
figure is taken over the notes after the cut, pooled over the tunes, and the same figures of the originals'
own rest are the reference:

  out of key   share of notes whose pitch class is not in the key signature's scale (accidentals)
  leap         mean absolute interval between consecutive notes, semitones
  big leaps    share of intervals of more than an octave
  lengths TVD  total variation distance between the note-length distributions (in units of the meter's
               bar), continuation against originals; 0 = the same mix of values
  tonic        share of tunes whose last note is the key's tonic
  notes/bar    notes per bar

    python benchmarks/style.py [--limit 100] [--temperatures 1.0,0.9,0.8] [--seed 0] [--header-only] [--append]

``--header-only``: the prompts are the tunes' X:, M:, L: and K: lines alone (what ``compose`` starts from),
and the reference is the originals' whole body.

Needs ../shared/data/nottingham (skips otherwise).
"""

from __future__ import annotations

import argparse
import collections
import os
import statistics
import sys
from fractions import Fraction
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harmonize import NOTTINGHAM, held_out  # noqa: E402
from part_lengths import prompts_of  # noqa: E402
from results import publish  # noqa: E402

_LETTER_PC = {"C": 0, "D": 2, "E": 4, "F": 5, "G": 7, "A": 9, "B": 11}


def key_of(tune: str) -> tuple[set[int], int | None]:
    """(pitch classes of the K: field's scale, its tonic's pitch class or None)."""
    from abcflax.abc_check import parse_key
    from abcflax.endings import tonic_triad

    value = next((line[2:] for line in tune.split("\n") if line.startswith("K:")), "C")
    signature, _ = parse_key(value)
    signature = signature or {}
    scale = {(_LETTER_PC[letter] + signature.get(letter, 0)) % 12 for letter in _LETTER_PC}
    triad = tonic_triad(value)
    return scale, (triad[0] % 12 if triad else None)


def notes_after(tune: str, first_bar: int) -> tuple[list, int]:
    """(the tune's notes from bar ``first_bar`` on as (duration in bars, top pitch), bars they span)."""
    from abcflax.abc_check import analyze_tune

    analysis = analyze_tune(tune)
    meter = analysis.meter or Fraction(1)
    notes = [(e.duration / meter, max(e.pitches)) for e in analysis.events
             if e.kind in ("note", "chord") and e.pitches and e.bar >= first_bar]
    bars = len([b for b in analysis.bars if b.index >= first_bar])
    return notes, bars


def figures(tunes: list[str], first_bars: list[int]) -> dict:
    out_of_key = leaps = big = intervals = total_notes = bars = tonic = counted = 0
    lengths = collections.Counter()
    for tune, first_bar in zip(tunes, first_bars):
        notes, tune_bars = notes_after(tune, first_bar)
        if not notes:
            continue
        scale, tonic_pc = key_of(tune)
        pitches = [pitch for _, pitch in notes]
        out_of_key += sum(1 for pitch in pitches if pitch % 12 not in scale)
        steps = [abs(b - a) for a, b in zip(pitches, pitches[1:])]
        leaps += sum(steps)
        big += sum(1 for step in steps if step > 12)
        intervals += len(steps)
        lengths.update(duration for duration, _ in notes)
        total_notes += len(notes)
        bars += tune_bars
        counted += 1
        tonic += tonic_pc is not None and pitches[-1] % 12 == tonic_pc
    return {"tunes": counted, "notes": total_notes, "out_of_key": out_of_key / max(total_notes, 1),
            "leap": leaps / max(intervals, 1), "big_leaps": big / max(intervals, 1),
            "lengths": lengths, "tonic": tonic / max(counted, 1), "notes_per_bar": total_notes / max(bars, 1)}


def tvd(a: collections.Counter, b: collections.Counter) -> float:
    total_a, total_b = sum(a.values()) or 1, sum(b.values()) or 1
    return 0.5 * sum(abs(a[k] / total_a - b[k] / total_b) for k in set(a) | set(b))


def header_of(tune: str) -> str:
    """The tune's X:, M:, L: and K: lines (no title, no music)."""
    lines = tune.split("\n")
    keep = [line for line in lines[:next(i for i, line in enumerate(lines) if line.startswith("K:")) + 1]
            if line[:2] in ("X:", "M:", "L:", "K:")]
    return "\n".join(keep) + "\n"


def prompt_bars(prompt: str) -> int:
    from abcflax.abc_check import analyze_tune

    return len(analyze_tune(prompt).bars)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--limit", type=int, default=100)
    parser.add_argument("--temperatures", default="1.0,0.9,0.8")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--header-only", action="store_true",
                        help="prompts are the tunes' headers alone (X: M: L: K:), as compose's seeds")
    parser.add_argument("--append", action="store_true", help="append the report to benchmarks/RESULTS.md")
    args = parser.parse_args()
    if not NOTTINGHAM.exists():
        print(f"skipped: {NOTTINGHAM} not found")
        return
    import abcflax

    tunes = (held_out("valid") + held_out("test"))
    pairs = [(prompt, tune) for tune in tunes for prompt in prompts_of([tune])][:args.limit]
    prompts, originals = [p for p, _ in pairs], [t for _, t in pairs]
    if args.header_only:  # what compose starts from: the tune's header alone, against the whole original
        prompts = [header_of(tune) for tune in originals]
    first_bars = [0 if args.header_only else prompt_bars(p) for p in prompts]
    load_before = os.getloadavg()
    reference = figures(originals, first_bars)
    rows = [("originals (rest of the tune)", reference)]
    for temperature in [float(t) for t in args.temperatures.split(",")]:
        outputs = abcflax.complete_many(prompts, temperature=temperature, seed=args.seed)
        rows.append((f"continuations, temperature {temperature:g}", figures(outputs, first_bars)))
    lines = [f"command: python benchmarks/style.py --limit {args.limit} --temperatures {args.temperatures} "
             f"--seed {args.seed}" + (" --header-only" if args.header_only else ""), "",
             "| | tunes | notes | out of key | leap (semitones) | leaps > octave | lengths TVD | last note tonic | notes/bar |",
             "|---|---|---|---|---|---|---|---|---|"]
    for name, row in rows:
        lines.append(f"| {name} | {row['tunes']} | {row['notes']} | {row['out_of_key']:.1%} | {row['leap']:.2f} | "
                     f"{row['big_leaps']:.2%} | {tvd(row['lengths'], reference['lengths']):.3f} | {row['tonic']:.0%} | "
                     f"{row['notes_per_bar']:.2f} |")
    lines += ["", f"load average: {load_before} (before) {os.getloadavg()} (after)"]
    publish("Style of continuations against the originals (benchmarks/style.py)", lines, args.append)


if __name__ == "__main__":
    main()
