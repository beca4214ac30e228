"""How often is a continuation a valid tune? Constrained decoding against raw sampling.

Prompts: held-out Nottingham tunes (never trained on: ``split_holdout(texts, 0.1)``), header + first 2 bars.
One continuation each at temperature 1.0 with the given model, constrained and ``--no-constrain``.
Verdicts per tune:
  (a) abc2midi: no ``Error`` line and no bar-length warning except on the first or last bar;
  (b) music21 parses it (``%abc-2.1`` prepended) and writes MusicXML;
  (c) abcflax's checker reports nothing;
  (d) all three.
Also: the share that ends with a closing bar line, the share whose last note is the key's tonic (or a note of its
tonic chord, ``abcflax.endings``), and the speed (characters of the kept continuations per second, after a
warm-up; with ``--candidates`` N each constrained tune is the best-ending of N draws, raw sampling draws once).

    python benchmarks/validity.py --limit 120 [--candidates 8] [--model DIR] [--append]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import abcflax
from abcflax.training import split_holdout

ROOT = Path(__file__).resolve().parents[1]
NOTTINGHAM = ROOT.parent / "shared" / "data" / "nottingham"
BAR_LINE = re.compile(r"::|:?\|[\]|]?:?")
ABC2MIDI_BAR = re.compile(r"Bar (\d+) has \S+ time units while the time signature has \S+( in repeat)?")


def prompt_of(tune: str, bars: int = 2) -> str:
    """Header + the first ``bars`` bars (cut after that many bar lines, chord symbols skipped)."""
    header, _, body = tune.partition("\nK:")
    key_line, _, body = body.partition("\n")
    masked = re.sub(r'"[^"\n]*"', lambda m: " " * len(m.group(0)), body)
    found = [m for m in BAR_LINE.finditer(masked) if m.start() > 0 or masked.strip()[:1] != "|"]
    if len(found) < bars:
        return ""
    return f"{header}\nK:{key_line}\n{body[: found[bars - 1].end()]}"


def abc2midi_ok(text: str, folder: Path) -> bool:
    path = folder / "tune.abc"
    path.write_text(text)
    out = subprocess.run(["abc2midi", str(path), "-c"], capture_output=True, text=True, timeout=60, cwd=folder).stdout
    if re.search(r"^Error", out, re.M):
        return False
    bars = abcflax.analyze_tune(text).bars
    last = len(bars)
    for number, in_repeat in ABC2MIDI_BAR.findall(out):
        if not in_repeat and int(number) not in (0, 1, last - 1, last):
            return False
    return True


def music21_ok(text: str, folder: Path) -> bool:
    import music21

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            score = music21.converter.parse("%abc-2.1\n" + text, format="abc")
            score.write("musicxml", fp=str(folder / "tune.musicxml"))
        return True
    except Exception:  # noqa: BLE001 - any music21 failure is a "no" for this tune
        return False


def judge(texts: list[str]) -> dict:
    from abcflax.endings import TONIC, TONIC_CHORD, ending_rank

    counts = dict(abc2midi=0, music21=0, checker=0, all=0, ends=0, tonic=0, tonic_chord=0)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for text in texts:
            a, b, c = abc2midi_ok(text, folder), music21_ok(text, folder), not abcflax.check_tune(text)
            counts["abc2midi"] += a
            counts["music21"] += b
            counts["checker"] += c
            counts["all"] += a and b and c
            counts["ends"] += text.rstrip().endswith(("|]", "||", ":|"))
            rank = ending_rank(text)
            counts["tonic"] += rank == TONIC
            counts["tonic_chord"] += rank in (TONIC, TONIC_CHORD)
    return {k: v / max(1, len(texts)) for k, v in counts.items()}


def generate(prompts, model, constrain: bool, max_chars: int, batch: int,
             candidates: int) -> tuple[list[str], float]:
    options = dict(model=model, max_chars=max_chars, constrain=constrain, candidates=candidates)
    abcflax.complete_many(prompts[:batch], seed=99, **options)  # warm-up
    outputs, start = [], time.perf_counter()
    for first in range(0, len(prompts), batch):
        chunk = prompts[first:first + batch]
        outputs += abcflax.complete_many(chunk, seed=0, rows=list(range(first, first + len(chunk))), **options)
    seconds = time.perf_counter() - start
    added = sum(len(o) - len(p) for o, p in zip(outputs, prompts))
    return outputs, added / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default=None)
    parser.add_argument("--limit", type=int, default=120)
    parser.add_argument("--max-chars", type=int, default=1200)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--candidates", type=int, default=8, help="draws per constrained tune (abcflax's default)")
    parser.add_argument("--append", action="store_true", help="append the figures to benchmarks/RESULTS.md")
    args = parser.parse_args()
    if not NOTTINGHAM.is_dir() or shutil.which("abc2midi") is None:
        sys.exit(f"needs {NOTTINGHAM} and abc2midi on PATH")
    texts, _ = abcflax.load_corpus([str(NOTTINGHAM)])
    held_out = split_holdout(texts, 0.1)[1]
    prompts = [p for p in (prompt_of(t) for t in held_out) if p][: args.limit]
    model = abcflax.load_model(args.model)
    load = os.getloadavg()
    lines = [f"command: python benchmarks/validity.py --limit {args.limit} --max-chars {args.max_chars} "
             f"--candidates {args.candidates}"
             + (f" --model {args.model}" if args.model else ""),
             f"model: {model.path}", f"prompts: {len(prompts)} held-out Nottingham tunes, header + 2 bars"]
    for constrain in (True, False):
        outputs, speed = generate(prompts, model, constrain, args.max_chars, args.batch, args.candidates)
        shares = judge(outputs)
        lines.append(f"{'constrained' if constrain else '--no-constrain'}: abc2midi {shares['abc2midi']:.1%}, "
                     f"music21 {shares['music21']:.1%}, checker {shares['checker']:.1%}, all three {shares['all']:.1%}, "
                     f"ends with a closing bar line {shares['ends']:.1%}, last note on the tonic {shares['tonic']:.1%} "
                     f"(on its tonic chord {shares['tonic_chord']:.1%}); {speed:,.0f} kept chars/s "
                     f"(batches of {args.batch})")
        if constrain:
            sample = outputs[0]
    lines.append(f"load average: {load} (before) {os.getloadavg()} (after)")
    report = "\n".join(lines)
    print(report)
    print("\nfirst constrained continuation:\n" + sample)
    if args.append:
        with open(ROOT / "benchmarks" / "RESULTS.md", "a") as handle:
            handle.write(f"\n## Validity of continuations (benchmarks/validity.py)\n\n```\n{report}\n```\n")


if __name__ == "__main__":
    main()
