"""Export every tune of ../shared/data and music21's ryansMammoth to MusicXML and MIDI.

Prints the success rate per format and the max/mean time per tune (one music21 parse shared by both formats,
as ``abcflax.abc_to_score`` + the built-in exporters' writers), the worst tunes and the failure reasons.

    python benchmarks/export_all.py [--limit N] [--every K] [--repair]
"""

from __future__ import annotations

import argparse
import collections
import os
import shlex
import sys
import time
import warnings
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[1]
DATA = PROJECT.parent / "shared" / "data"


def sources() -> list[tuple[str, Path]]:
    from abcflax.tunebook import music21_corpus_files

    files = [("shared", p) for p in sorted(DATA.rglob("*.abc"))] if DATA.is_dir() else []
    return files + [("ryansMammoth", p) for p in music21_corpus_files("ryansMammoth")]


def export_tune(text: str, repair: bool = False) -> dict[str, float | str]:
    """Seconds per stage, or the error (one line) for the stage that failed; ``repair`` first removes the
    stray characters behind syntax errors, as ``abcflax export --repair`` does."""
    from abcflax.abc_check import repair_tune
    from abcflax.export import abc_to_score
    from abcflax_plugins.exporters import musicxml_bytes
    from abcflax_plugins.midi import score_to_midi

    result: dict[str, float | str] = {}
    start = time.perf_counter()
    try:
        if repair:
            text = repair_tune(text)[0]
        score = abc_to_score(text)
    except Exception as exc:  # noqa: BLE001 - a benchmark counts failures
        return {"parse": f"{type(exc).__name__}: {str(exc)[:100]}"}
    result["parse"] = time.perf_counter() - start
    for name, write in (("musicxml", musicxml_bytes), ("mid", score_to_midi)):
        start = time.perf_counter()
        try:
            assert write(score)
            result[name] = time.perf_counter() - start
        except Exception as exc:  # noqa: BLE001
            result[name] = f"{type(exc).__name__}: {str(exc)[:100]}"
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=0, help="Only the first N tunes (0 = all).")
    parser.add_argument("--every", type=int, default=1, help="Every K-th tune only (a sample of all corpora).")
    parser.add_argument("--repair", action="store_true", help="As `abcflax export --repair`.")
    args = parser.parse_args()
    from abcflax.tunebook import read_file_text, read_tunebook

    warnings.simplefilter("ignore")
    tunes = []
    for corpus, path in sources():
        found, _problems = read_tunebook(read_file_text(path), str(path))
        tunes += [(corpus, tune) for tune in found]
    tunes = tunes[::max(1, args.every)]
    if args.limit:
        tunes = tunes[:args.limit]
    times: dict[str, list[float]] = {"musicxml": [], "mid": []}
    failures = {"musicxml": collections.Counter(), "mid": collections.Counter()}
    examples: dict[str, list[str]] = collections.defaultdict(list)  # failure reason -> a few tunes
    slowest: list[tuple[float, str]] = []
    for number, (corpus, tune) in enumerate(tunes, 1):
        result = export_tune(tune.text, args.repair)
        for fmt in ("musicxml", "mid"):
            stage = result.get(fmt, result.get("parse"))
            if isinstance(stage, str) or isinstance(result.get("parse"), str):
                failures[fmt][str(stage)[:60]] += 1
                if len(examples[str(stage)[:60]]) < 3:
                    examples[str(stage)[:60]].append(f"{tune.source}:{tune.line} {tune.title}")
            else:
                times[fmt].append(result["parse"] + stage)
        total = sum(v for v in result.values() if isinstance(v, float))
        slowest.append((total, f"{tune.source}:{tune.line} {tune.title}"))
        if number % 250 == 0 or number == len(tunes):  # interim figures: a long run is useful even if cut
            report(number, len(tunes), times, failures, slowest, examples)


def report(done_count: int, total: int, times, failures, slowest, examples) -> None:
    print(f"command: {' '.join(shlex.quote(a) for a in ['python'] + sys.argv)} (cwd {os.getcwd()})")
    print(f"tunes: {done_count} of {total}")
    for fmt in ("musicxml", "mid"):
        done = times[fmt]
        mean = sum(done) / len(done) if done else 0
        print(f"{fmt}: {len(done)}/{done_count} ok ({len(done) / done_count:.1%}); per tune incl. parse: "
              f"mean {mean:.3f} s, max {max(done, default=0):.3f} s")
        for reason, count in failures[fmt].most_common():
            print(f"  {count} x {reason} (e.g. {'; '.join(examples[reason])})")
    print("slowest:", "; ".join(f"{t:.2f} s {name}" for t, name in sorted(slowest, reverse=True)[:3]),
          f"({sum(t > 5 for t, _ in slowest)} over 5 s)")
    print(f"load average: {os.getloadavg()}", flush=True)

if __name__ == "__main__":
    main()
