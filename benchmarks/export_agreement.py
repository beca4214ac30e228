"""Does ``abcflax export -o x.mid`` play the notes abc2midi plays? Per tune of real tunebooks.

For every tune: abcflax's MIDI (``export_bytes(tune, "mid", accompaniment="none")``, through music21's ABC
reader) and abc2midi's MIDI of the same text (``-NGRA -NGUI -NFER``: no grace notes, chord symbols or fermata
lengthening, which abcflax's MIDI does not play either; ornaments such as ``~`` and ``T``, which abc2midi
plays as several notes, and ``R:``, by which it swings a hornpipe, are removed from its copy). Both are read
back as the sorted list of (onset in quarter notes, MIDI pitch) of every note-on, repeats expanded by each
program: the same when every pitch is and every onset is within a 64th note (abc2midi starts some notes a
few ticks late). A tune is

* ``same``: the same notes; ``count``: as many notes, some onset or pitch differs;
  ``differ``: another number of notes (``count`` and ``differ`` are silent misreadings: exit 0, wrong music);
* ``refused``: abcflax raised one of its own errors (InputError...), as it must for what it cannot export;
* ``crash``: any other exception; ``skip``: abc2midi wrote no MIDI (not counted);
* ``excluded``: the two differ where abc2midi is known to be wrong (not counted; each is listed with its reason,
  see ``abc2midi_wrong``): a repeat without ``|:`` after a second ending, which abc2midi plays once or from the
  tune's start (ABC 2.1: from the previous double bar or repeat), and ``(5``, ``(7``, ``(9`` in 3/4, 3/8 or 3/2,
  which abc2midi puts in the time of 3 notes (ABC 2.1: of 2, these meters being simple); and a meter or unit
  field with notes after it on its line (``M:9/8 EDC DA,B, CDE|``), whose notes abc2midi drops as part of the
  field while abcflax plays them, as the tunebook means (``abcflax.export.inline_fields_with_music``).

    python benchmarks/export_agreement.py [--limit N] [--every K] [--jobs J] [--show N]

Sources: music21's ryansMammoth and oneills1850, ../shared/data/nottingham/*.abc and
../shared/data/irish/irish.abc (those that exist). ``--every K`` takes every K-th tune of each source.
"""

from __future__ import annotations

import argparse
import collections
import io
import re
import os
import shlex
import signal
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[1]
DATA = PROJECT.parent / "shared" / "data"
ABC2MIDI_FLAGS = ("-NGRA", "-NGUI", "-NFER", "-quiet")
CHORD_SPREAD = 0.07  # quarter notes: abc2midi starts the notes of a chord 1 tick (of 480) apart, a fourth and
# later note 30 ticks (1/16 quarter) late: [g2B2D2G,2] ...
TOLERANCE = 1 / 16  # ... and some notes a few ticks late: onsets this close (a 64th note) are the same
TIMEOUT = 120  # seconds per tune


def sources() -> list[tuple[str, Path]]:
    from abcflax.tunebook import music21_corpus_files

    found = [(name, path) for name in ("ryansMammoth", "oneills1850") for path in music21_corpus_files(name)]
    found += [("nottingham", p) for p in sorted((DATA / "nottingham").glob("*.abc"))]
    found += [("irish", p) for p in [DATA / "irish" / "irish.abc"] if p.is_file()]
    return found


def tunes(limit: int, every: int) -> list[tuple[str, str]]:
    """(source name, tune text) for every K-th tune of each source, at most ``limit`` per source."""
    from abcflax.tunebook import read_file_text, read_tunebook

    by_source: dict[str, list[str]] = collections.defaultdict(list)
    for name, path in sources():
        found, _ = read_tunebook(read_file_text(path), str(path))
        by_source[name] += [tune.full_text for tune in found]
    picked = []
    for name, texts in by_source.items():
        chosen = texts[::every]
        picked += [(name, text) for text in (chosen[:limit] if limit else chosen)]
    return picked


def note_ons(data: bytes, skip_first_track: bool) -> list[tuple[float, int]]:
    """(onset in quarter notes, MIDI pitch) of every note-on, by onset and pitch; onsets less than
    ``CHORD_SPREAD`` apart count as one (abc2midi starts the notes of a chord a few ticks apart)."""
    import mido

    song = mido.MidiFile(file=io.BytesIO(data))
    found = []
    for number, track in enumerate(song.tracks):
        if skip_first_track and number == 0:
            continue
        time = 0
        for message in track:
            time += message.time
            if message.type == "note_on" and message.velocity > 0:
                found.append((time / song.ticks_per_beat, message.note))
    found.sort()
    clustered, start = [], None
    for onset, pitch in found:
        if start is None or onset - start > CHORD_SPREAD:
            start = onset
        clustered.append((start, pitch))
    return sorted(clustered)


def agree(ours: list[tuple[float, int]], theirs: list[tuple[float, int]]) -> bool:
    return len(ours) == len(theirs) and all(
        a[1] == b[1] and abs(a[0] - b[0]) <= TOLERANCE for a, b in zip(ours, theirs))


def as_written(text: str) -> str:
    """The tune without what abc2midi performs beyond the notes: decorations (it plays ``~G2`` as a roll of
    several notes; abcflax as G2) and ``R:`` (it swings the eighth notes of an ``R:hornpipe``)."""
    from abcflax.abc_check import analyze_tune

    spans = [(e.start, e.end) for e in analyze_tune(text).events if e.kind == "decoration"]
    for start, end in reversed(spans):
        text = text[:start] + text[end:]
    return "\n".join(line for line in text.split("\n") if not line.startswith("R:"))


def abc2midi_notes(text: str) -> list[tuple[int, int]] | None:
    from abcflax.tunebook import with_explicit_defaults

    with tempfile.TemporaryDirectory() as folder:
        source, target = Path(folder, "t.abc"), Path(folder, "t.mid")
        source.write_text(with_explicit_defaults(as_written(text)) + "\n", encoding="utf-8")
        subprocess.run(["abc2midi", str(source), "-o", str(target), *ABC2MIDI_FLAGS], capture_output=True,
                       timeout=TIMEOUT)
        if not target.is_file() or target.stat().st_size == 0:
            return None
        return note_ons(target.read_bytes(), skip_first_track=False)


def abc2midi_wrong(text: str) -> str | None:
    """Why abc2midi's MIDI of this tune is not the ABC's music, or None when it should be. Only a tune whose notes
    differ is asked, so a tune with such a construct that abc2midi still plays right is counted as usual.

    * a ``:|`` with no ``|:`` in its section, after a second ending: abc2midi plays the section once, or goes
      back to the tune's start, or skips its first ending (``A|1 B:|2 C|]D|1 E:|2 F|]`` plays D, F); with a
      ``|:`` at D it plays D E D F. ABC 2.1: a repeat without ``|:`` starts at the previous double bar or
      repeat, as abc2midi itself plays it when no second ending came before. The same fault is reported by
      others (the dottes tunebook adds "explicit |: for those sections ... after a [1..[2 |] repeat");
    * ``:|:`` after a second ending: abc2midi plays the section after it once (``|:E|[1A:|[2B|`` then
      ``|:cd:|:ef:|`` plays e f once; with ``::`` or ``:| |:`` in its place, or with no second ending
      before, it plays e f e f);
    * ``||:`` after the tune's first notes, as its first repeat sign: abc2midi does not start the repeat there but plays from the
      tune's start again (``A||:dcBA:|`` plays A dcBA A dcBA; ``A|:dcBA:|`` plays A dcBA dcBA);
    * a grace note's accidental (``{^g}``) before a note of its letter in the bar: with ``-NGRA`` (grace
      notes not played, as here) abc2midi also drops the accidental, which it carries through the bar
      without the flag, as abcflax does (``z2{^g}a2 G2`` plays G sharp without ``-NGRA``, G with it);
    * ``(5``, ``(7`` or ``(9`` without its q in 3/4, 3/8 or 3/2: abc2midi plays them in the time of 3 notes,
      ABC 2.1 (4.13) in the time of 2 unless "the time signature is compound (6/8, 9/8, 12/8)".
    """
    from abcflax.abc_check import analyze_tune, parse_meter
    from abcflax.export import inline_fields_with_music

    numerator = 0
    for line in text.split("\n"):
        if line.startswith("M:"):
            numerator = parse_meter(line[2:])[0].numerator
        if line.startswith("K:"):
            break
    opened, second_ending, reasons, notes_before, grace_accidentals = True, False, [], False, set()
    repeat_before = False  # a repeat sign or an ending earlier in the tune
    for event in analyze_tune(text).events:
        if event.kind == "field" and event.text.lstrip("[").startswith("M:"):
            numerator = parse_meter(event.text.strip("[]")[2:])[0].numerator
        elif event.kind == "tuplet" and ":" not in event.text and event.text[1:] in ("5", "7", "9") \
                and numerator == 3:
            reasons.append(f"abc2midi plays {event.text} in 3/4, 3/8 or 3/2 in the time of 3 notes, ABC 2.1 "
                           "of 2")
        elif event.kind == "ending":
            repeat_before = True
            second_ending = second_ending or any(int(n) >= 2 for n in re.findall(r"\d+", event.text))
        elif event.kind == "grace":
            grace_accidentals |= {m.group(2).lower() for m in re.finditer(r"([_^=]+)([A-Ga-g])", event.text)}
        elif event.kind == "note":
            notes_before = True
            letter = re.search(r"([_^=]*)([A-Ga-g])", event.text)
            if letter and not letter.group(1) and letter.group(2).lower() in grace_accidentals:
                reasons.append("abc2midi -NGRA drops a grace note's accidental, which carries through the bar")
        elif event.kind == "barline":
            token = event.text.strip("[]")
            grace_accidentals = set()
            if token == ":|:" and second_ending:
                reasons.append("abc2midi plays the section after a :|: once when a second ending came before")
            if token.startswith("||") and token.endswith(":") and notes_before and not repeat_before:
                reasons.append("abc2midi repeats from the tune's start, not from a ||: after its first notes")
            repeat_before = repeat_before or ":" in token
            if token.startswith(":") and not opened and second_ending:
                reasons.append("abc2midi plays a repeat without |: after a second ending once, or from the "
                               "tune's start")
            if token.startswith(":"):
                opened = False
            if token.endswith(":"):
                opened = True
    if inline_fields_with_music(text) != text:
        reasons.append("abc2midi drops the notes after a field on its line (M:9/8 EDC...), abcflax plays them")
    return "; ".join(dict.fromkeys(reasons)) or None


def with_repeat_starts(text: str) -> str:
    """``text`` with the ``|:`` that ABC 2.1 implies written out before every ``:|`` that has none: the
    section's previous ``||`` or ``|]`` becomes ``|:``, a previous ``:|`` becomes ``::`` (the tune's first
    section repeats from its start, as abc2midi plays it). abc2midi plays such a tune as written (``abc2midi_wrong``'s first reason), so
    with them written out it must play what abcflax plays from the original; ``compare`` checks it."""
    from abcflax.abc_check import analyze_tune

    edits, opened, boundary = [], True, None  # boundary: (start, end, token) of the section's last bar line
    for event in analyze_tune(text).events:
        if event.kind != "barline":
            continue
        token = event.text.strip("[]")
        if token.startswith(":") and not opened:
            edits.append(boundary)
        if token.startswith(":"):
            opened = False
        if token.endswith(":"):
            opened = True
        if event.text in ("||", "|]", "[|") or (token.startswith(":") and not token.endswith(":")):
            boundary = (event.start, event.end, token)
    for start, end, token in sorted({e for e in edits if e is not None}, reverse=True):
        text = text[:start] + ("::" if token.startswith(":") else "|:") + text[end:]
    return text


def _timeout(*_):
    raise TimeoutError(f"more than {TIMEOUT} s")


def compare(item: tuple[str, str]) -> tuple[str, str, str, str]:
    """(source, verdict, title, detail) for one tune."""
    import abcflax
    from abcflax.errors import AbcflaxError

    name, text = item
    title = next((line[2:].strip() for line in text.split("\n") if line.startswith("T:")), "?")
    title += " (X:" + next((line[2:].strip() for line in text.split("\n") if line.startswith("X:")), "?") + ")"
    theirs = abc2midi_notes(text)
    if theirs is None:
        return name, "skip", title, ""
    signal.signal(signal.SIGALRM, _timeout)
    signal.alarm(TIMEOUT)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ours = note_ons(abcflax.export_bytes(text, "mid", accompaniment="none"), skip_first_track=True)
    except AbcflaxError as exc:
        return name, "refused", title, str(exc).splitlines()[0][:160]
    except Exception as exc:  # noqa: BLE001 - a benchmark counts failures
        return name, "crash", title, f"{type(exc).__name__}: {str(exc)[:120]}"
    finally:
        signal.alarm(0)
    if agree(ours, theirs):
        return name, "same", title, ""
    verdict = "count" if len(ours) == len(theirs) else "differ"
    wrong = abc2midi_wrong(text)
    if wrong is not None and "once, or from the tune's start" in wrong and wrong.count(";") == 0:
        # checked, not assumed: with the implied |: written out abc2midi must play what abcflax plays
        rewritten = abc2midi_notes(with_repeat_starts(text))
        if rewritten is None or not agree(ours, rewritten):
            wrong = None
        else:
            wrong += " (abc2midi agrees with the |: written out)"
    if wrong is not None:
        return name, "excluded", title, wrong
    first = next((i for i, (a, b) in enumerate(zip(ours, theirs)) if not agree([a], [b])),
                 min(len(ours), len(theirs)))
    detail = (f"{len(ours)} vs {len(theirs)} notes; first difference at note {first}: "
              f"{ours[first] if first < len(ours) else '-'} vs {theirs[first] if first < len(theirs) else '-'}")
    return name, verdict, title, detail


VERDICTS = ("same", "count", "differ", "refused", "crash")


def _reason(detail: str) -> str:
    """A refusal's message without its place and numbers, up to "cannot be exported" when it says so."""
    reason = re.sub(r"\d+", "N", re.sub(r"^<text>:[\d:]*\s*", "", detail))
    return reason.split(" cannot be exported")[0] + " cannot be exported" if "cannot be exported" in reason \
        else reason[:70]


def report(results: list[tuple[str, str, str, str]], show: int) -> None:
    by_source: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    for name, verdict, _, _ in results:
        by_source[name][verdict] += 1
        by_source["all"][verdict] += 1
    print(f"{'source':<14}{'tunes':>7}" + "".join(f"{v:>9}" for v in VERDICTS) + f"{'agree':>9}{'silent':>9}")
    for name, counts in by_source.items():
        total = sum(counts[v] for v in VERDICTS)
        agree = 100 * counts["same"] / total if total else 0.0
        silent = 100 * (counts["count"] + counts["differ"]) / total if total else 0.0
        print(f"{name:<14}{total:>7}" + "".join(f"{counts[v]:>9}" for v in VERDICTS)
              + f"{agree:>8.1f}%{silent:>8.1f}%")
    print(f"(skip: abc2midi wrote no MIDI for {by_source['all']['skip']} tunes, not counted)")
    print(f"(excluded: the notes differ where abc2midi is wrong for {by_source['all']['excluded']} tunes, "
          "not counted; listed below)")
    reasons = collections.Counter(_reason(detail) for _, verdict, _, detail in results if verdict == "refused")
    for reason, count in reasons.most_common(15):
        print(f"  refused {count:>4}: {reason}")
    for verdict in ("differ", "count", "crash", "excluded", "refused"):
        listed = [r for r in results if r[1] == verdict][:show]
        for name, _, title, detail in listed:
            print(f"  {verdict}: {name}: {title}: {detail}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=0, help="At most N tunes per source (0 = all).")
    parser.add_argument("--every", type=int, default=1, help="Every K-th tune of each source.")
    parser.add_argument("--jobs", type=int, default=2, help="Worker processes.")
    parser.add_argument("--show", type=int, default=15, help="Tunes listed per kind of disagreement.")
    args = parser.parse_args()
    import multiprocessing

    items = tunes(args.limit, args.every)
    with multiprocessing.get_context("fork").Pool(args.jobs) as pool:
        results = pool.map(compare, items, chunksize=4)
    print("command:", shlex.join([sys.executable, *sys.argv]))
    print(f"load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    report(results, args.show)


if __name__ == "__main__":
    main()
