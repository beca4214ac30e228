"""Export ABC to notation software: MusicXML, compressed MusicXML, MIDI and ABC.

The formats themselves are plugins (``abcflax_plugins.exporters``; see ``abcflax.plugins``); this module turns one
ABC tune into a music21 score with music21's traps handled, and writes files:

* the tune is rewritten into ABC music21 reads as written, and music21's score checked note by note against the
  ABC afterwards (``abcflax.music21_reading``: music21 silently misreads ``::``, inline fields, ``Z4``, ``x``,
  ``M:2+3/8``, ``exp`` keys...); what cannot be rewritten is refused with the construct and its line;
* ``%abc-2.1`` is prepended before parsing, or music21 applies ABC 1.6 rules (accidentals not carried in a bar);
* time signatures shared by two measures (after music21 re-bars an overlong bar) are deep-copied, or music21's
  MIDI writer fails with "already found in this Stream";
* title and composer come from ``T:``/``C:`` (music21 otherwise writes composer "Music21"), the part gets an
  instrument (MuseScore warns without one; MIDI players fall back to piano) and a tempo (``Q:``, else by ``R:``
  and meter).

Repeats are expanded only for MIDI, by ``abcflax_plugins.midi`` (music21's ``expandRepeats`` raises on bad
repeats and expands a tune with ten ``:|`` from 80 to 16,368 measures).
"""

from __future__ import annotations

import copy
import re
import sys
from dataclasses import replace
from pathlib import Path

from .errors import InputError, UsageError
from .music21_reading import complete_endings, no_rebarring, prepare
from .tunebook import QUOTED, Tune, read_tunebook, with_explicit_defaults

ABC_VERSION_LINE = "%abc-2.1\n"
INSTRUMENT_ALIASES = {"fiddle": "violin"}
# default tempo when the tune has no Q: — (R: keyword, beats per minute, beat in quarter notes)
RHYTHM_TEMPI = (
    ("slip jig", 112, 1.5), ("jig", 112, 1.5), ("slide", 132, 1.5), ("reel", 120, 1.0),
    ("hornpipe", 96, 1.0), ("polka", 132, 1.0), ("waltz", 132, 1.0), ("mazurka", 120, 1.0),
    ("strathspey", 92, 1.0), ("march", 112, 1.0),
)
DEFAULT_TEMPO = (120, 1.0)
COMPOUND_TEMPO = (112, 1.5)  # 6/8, 9/8, 12/8 without R:


def split_tunes(abc: str, source: str = "<text>") -> list[Tune]:
    """The tunes in ``abc``; InputError naming the first problem if there are none."""
    tunes, problems = read_tunebook(abc, source)
    if not tunes:
        raise InputError(str(problems[0]) if problems else f"{source}: no tune found")
    return tunes


def check_exportable(abc: str, source: str = "<text>") -> list[Tune]:
    """The tunes of ``abc``; InputError (``source:line:col: why``) for the first one with malformed ABC, which
    notation software would misread or refuse."""
    tunes = split_tunes(abc, source)
    for tune in tunes:
        _refuse_malformed(tune)
    return tunes


def _refuse_malformed(tune: Tune) -> None:
    """InputError naming the file's line:column of the tune's first blocking problem, if it has one."""
    from .abc_check import blocking_problem

    problem = blocking_problem(tune.full_text)
    if problem is not None:
        raise InputError(f"{tune.source}:{tune.file_line(problem.line)}:{problem.column}: {problem.message}")


MAX_METER_BEATS = 64  # music21 builds a time signature in time quadratic in its beats: 64/4 0.09 s, 1000/4 23 s
_METER_FIELD = re.compile(r"(?:^|\[)M:([^\]\n%]*)", re.M)


def _refuse_huge_meter(tune: Tune) -> None:
    """InputError for a meter music21 would take minutes to lay out (M:9999/1); real tunes stay below 16 beats."""
    from .abc_check import parse_meter

    for match in _METER_FIELD.finditer(tune.full_text):
        meter, _ = parse_meter(match.group(1))
        if meter.numerator > MAX_METER_BEATS:
            line = tune.full_text.count("\n", 0, match.start()) + 1
            raise InputError(f"{tune.source}:{tune.file_line(line)}: meter M:{meter.text} has {meter.numerator} "
                             f"beats; export handles at most {MAX_METER_BEATS}")


MAX_BARS = 500  # per voice; music21 beams a part in time quadratic in its bars: 500 bars 6 s, 2,000 bars 76 s


def _refuse_too_many_bars(tune: Tune) -> None:
    """InputError, at the first bar past the limit, for a voice of more bars than music21 lays out in
    reasonable time (10,000 bars fit in MAX_TUNE_CHARS and took half an hour); real tunes have a few hundred."""
    from collections import Counter

    from .abc_check import analyze_tune

    bars = analyze_tune(tune.full_text).bars
    counts = Counter(bar.voice for bar in bars)
    seen = Counter()
    for bar in bars:
        seen[bar.voice] += 1
        if seen[bar.voice] > MAX_BARS:
            where = f" in voice {bar.voice}" if bar.voice else ""
            raise InputError(f"{tune.source}:{tune.file_line(bar.line)}: tune has {counts[bar.voice]} bars{where}; "
                             f"export handles at most {MAX_BARS}")


def _one_tune(abc: str) -> Tune:
    tunes = split_tunes(abc)
    if len(tunes) > 1:
        raise UsageError(f"the ABC holds {len(tunes)} tunes; export one at a time (or use write_output)")
    return tunes[0]


ANNOTATION_PLACES = "^_<>@"  # ABC 2.1 annotation placements
_FIELD_WITH_MUSIC = re.compile(r"^([ML]):[ \t]*(\d+/\d+|C\|?)[ \t]+([^%\s].*)$")
_FIELD_IN_MUSIC = re.compile(r"(?<=[ \t|])([ML]):(\d+/\d+|C\|?)(?=[ \t])")  # a second one later on the line


def _map_body_lines(text: str, repair) -> str:
    """``text`` with ``repair(line)`` applied to every line after the header's ``K:`` line."""
    lines = text.split("\n")
    body = False
    for index, line in enumerate(lines):
        if body:
            lines[index] = repair(line)
        else:
            body = line.startswith("K:")
    return "\n".join(lines)


def inline_fields_with_music(text: str) -> str:
    """Body lines such as ``M:9/8 EDC DA,B, CDE|`` (a field and music on one line, as some tunebooks write a
    meter change) become ``[M:9/8] EDC DA,B, CDE|``, as their authors meant; ABC 2.1 and music21 would read
    the whole line as a meter they do not understand."""

    def repair(line: str) -> str:
        match = _FIELD_WITH_MUSIC.match(line)
        if not match or not re.search(r"[A-Ga-gz|]", match.group(3)):
            return line
        music = _FIELD_IN_MUSIC.sub(lambda m: f"[{m.group(1)}:{m.group(2)}]", match.group(3))
        return f"[{match.group(1)}:{match.group(2)}] {music}"

    return _map_body_lines(text, repair)



def _annotation_for_music21(match: re.Match) -> str:
    inside = match.group(1)
    if not inside.strip() or (inside[:1] in ANNOTATION_PLACES and not inside[1:].strip()):
        return ""  # a quoted nothing, or a placement with no text: nothing to show
    if inside.startswith(">"):  # music21 drops the note after an annotation placed right of it: place it above
        return f'"^{inside[1:]}"'
    return match.group(0)


def drop_empty_annotations(text: str) -> str:
    """Music lines as music21 reads them right: without ``" "`` (a quoted nothing, seen before chord symbols
    in Nottingham tunes: music21 keeps one chord symbol per note, so the empty one would push out the real
    chord after it) or an annotation with no text (``">"``), and with ``">text"`` placed above (``"^text"``):
    music21 drops the note after an annotation that starts with ``>``."""

    def repair(line: str) -> str:
        if line.startswith("%") or re.match(r"[A-Za-z]:", line):
            return line
        music, percent, comment = line.partition("%")
        return QUOTED.sub(_annotation_for_music21, music) + percent + comment

    return _map_body_lines(text, repair)


def _parse(tune: Tune):
    from music21 import converter, stream

    tune = replace(tune, text=drop_empty_annotations(inline_fields_with_music(tune.text)))
    _refuse_malformed(tune)  # else music21 guesses ("assuming C") or divides by zero
    _refuse_huge_meter(tune)
    _refuse_too_many_bars(tune)
    # rewritten into ABC music21 reads as written (or refused), and its reading checked against the ABC
    reading = prepare(tune.full_text, tune.source, tune.file_line)
    try:  # defaults written out: music21 reads no note of a tune without L: and M: ("no active default note length")
        with no_rebarring():
            score = converter.parse(ABC_VERSION_LINE + with_explicit_defaults(reading.text) + "\n", format="abc")
    except Exception as exc:  # noqa: BLE001 - music21 raises many types on bad ABC
        raise InputError(f"{tune.source}:{tune.line}: music21 cannot read this tune: "
                         f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}") from None
    if isinstance(score, stream.Opus):  # X: numbers can make an Opus even for one tune
        score = score.scores[0] if score.scores else stream.Score()
    if not any(True for _ in score.recurse().notes):
        raise InputError(f"{tune.source}:{tune.line}: tune has no notes music21 can read")
    complete_endings(score)
    reading.tie_chords(score)
    reading.check(score, tune.source, tune.file_line)
    return score


def _placed(score, kind):
    """(container, element) for every ``kind`` element anywhere in ``score``. Found through its containers,
    not ``element.activeSite``: music21 shares some objects between measures, leaving that one of their
    sites, or None."""
    return [(container, element) for container in [score, *score.recurse(streamsOnly=True)]
            for element in container.getElementsByClass(kind)]


def _drop_empty_chord_symbols(score) -> None:
    """Remove chord symbols that name no chord: music21 reads an empty annotation (``" "``, seen in Nottingham
    tunes) or a name it cannot realize as a ChordSymbol without pitches, and its MusicXML writer then raises."""
    from music21 import harmony

    for container, symbol in _placed(score, harmony.ChordSymbol):
        if not isinstance(symbol, harmony.NoChord) and (not (symbol.figure or "").strip() or not symbol.pitches):
            container.remove(symbol)


def _dedupe_time_signatures(score) -> None:
    """Give every measure its own TimeSignature object (music21's re-barring shares one between two)."""
    from music21 import meter

    seen: set[int] = set()
    for container, ts in _placed(score, meter.TimeSignature):
        if id(ts) in seen:
            container.replace(ts, copy.deepcopy(ts))
        seen.add(id(ts))


def _set_metadata(score, tune: Tune) -> None:
    from music21 import metadata

    if score.metadata is None:
        score.insert(0, metadata.Metadata())
    score.metadata.title = tune.title
    score.metadata.movementName = tune.title
    # None makes music21 write composer "Music21"; an empty string writes an empty <creator>
    score.metadata.composer = tune.fields.get("C", "").strip()


def make_instrument(name: str):
    """A music21 instrument for a name (``violin``, ``fiddle``, ``flute``, ``piano``...); UsageError if unknown."""
    from music21 import instrument
    from music21.exceptions21 import InstrumentException

    key = INSTRUMENT_ALIASES.get(name.strip().lower(), name.strip())
    try:
        found = instrument.fromString(key)
    except InstrumentException:
        raise UsageError(f"unknown instrument {name!r} (try violin, flute, piano, accordion, guitar)") from None
    return type(found)()  # fromString names the part as typed ("violin"); a fresh one says "Violin"


def _set_instrument(score, name: str) -> None:
    from music21 import instrument

    for part in score.parts:
        for old in list(part.recurse().getElementsByClass(instrument.Instrument)):
            old.activeSite.remove(old)
        part.insert(0, make_instrument(name))


def default_tempo(tune: Tune) -> tuple[int, float]:
    """(beats per minute, beat length in quarter notes) for a tune without ``Q:``: by ``R:``, else by meter."""
    rhythm = tune.fields.get("R", "").lower()
    for keyword, bpm, beat in RHYTHM_TEMPI:
        if keyword in rhythm:
            return bpm, beat
    meter = re.match(r"\s*(\d+)\s*/\s*(\d+)", tune.fields.get("M", ""))
    if meter and int(meter.group(2)) == 8 and int(meter.group(1)) % 3 == 0:
        return COMPOUND_TEMPO
    return DEFAULT_TEMPO


def tempo_from_q(text: str) -> tuple[int, float] | None:
    """(beats per minute, beat length in quarter notes) from a ``Q:`` value such as ``1/4=120``, ``3/8 = 100``
    or ``"Allegro" 1/4=132``; None when it has no ``n/d=bpm`` part."""
    match = re.search(r"(\d+)\s*/\s*(\d+)\s*=\s*(\d+)", text)
    if not match or int(match.group(2)) == 0 or not 10 <= int(match.group(3)) <= 400:
        return None
    return int(match.group(3)), 4 * int(match.group(1)) / int(match.group(2))


def _set_tempo(score, tune: Tune, bpm: float | None) -> None:
    """Keep the tempo music21 read from ``Q:`` when MusicXML can write it; else (an override, no ``Q:``, or a
    mark whose beat unit MusicXML cannot name, as music21 makes of ``Q:1/4 =50``) one mark in quarter notes."""
    from music21 import duration, tempo

    marks = _placed(score, tempo.MetronomeMark)
    writable = all(mark.referent is not None and mark.referent.type not in ("complex", "inexpressible")
                   for _, mark in marks)
    if marks and bpm is None and writable:
        return
    for container, mark in marks:
        container.remove(mark)
    number, beat = (bpm, 1.0) if bpm is not None else (tempo_from_q(tune.fields.get("Q", "")) or default_tempo(tune))
    first_measure = score.parts[0].getElementsByClass("Measure").first() if score.parts else None
    target = first_measure if first_measure is not None else score.parts[0]
    target.insert(0, tempo.MetronomeMark(number=number, referent=duration.Duration(beat)))


def abc_to_score(abc: str, *, instrument: str = "violin", tempo: float | None = None):
    """One ABC tune as a music21 ``Score``, ready for MusicXML (chord symbols stay as ``ChordSymbol``).

    ``tempo`` (quarter notes per minute) overrides ``Q:``. Note: music21's own MIDI writer would play the chord
    symbols inside the melody; abcflax's MIDI exporter writes them to their own track.
    """
    if tempo is not None and not 10 <= tempo <= 400:
        raise UsageError(f"tempo {tempo} is outside 10..400 quarter notes per minute")
    tune = _one_tune(abc)
    score = _parse(tune)
    _drop_empty_chord_symbols(score)
    _dedupe_time_signatures(score)
    _set_metadata(score, tune)
    _set_instrument(score, instrument)
    _set_tempo(score, tune, tempo)
    return score


def export_bytes(abc: str, fmt: str, **options) -> bytes:
    """The file contents of ``abc`` in format ``fmt`` (musicxml, mxl, mid, abc or a plugin's format).

    Options: ``instrument`` (default violin), ``tempo`` (quarter BPM, overrides Q:), ``accompaniment``
    (MIDI: ``none``, ``block`` or ``vamp``). Formats other than ABC take one tune.
    """
    from .plugins import find_exporter

    exporter = find_exporter(fmt)
    if exporter.tunebook:
        return _render(exporter, abc, options, "<text>:1")
    tune = _one_tune(abc)
    return _render(exporter, tune.full_text, options, f"<text>:{tune.line}", tune)


def _render(exporter, abc: str, options: dict, where: str, tune: Tune | None = None) -> bytes:
    """``exporter.write`` with any non-abcflax exception (music21 raises many kinds) as one InputError. ``abc``
    is ``tune.full_text`` when a tune is given: its lines are named by ``tune.file_line``, the file's (the
    file header's fields written into the tune's header shift the lines below them)."""
    from .errors import AbcflaxError

    try:
        return exporter.write(abc, options)
    except AbcflaxError as exc:
        # the exporter sees the tune alone; name the tune's place in the user's file instead
        raise type(exc)(re.sub(r"^<text>:\d+(?::\d+)?:", lambda m: _shift(m.group(0), where, tune),
                               str(exc))) from None
    except Exception as exc:  # noqa: BLE001 - a plugin or music21 failing on odd input is still bad input
        detail = str(exc).splitlines()[0] if str(exc) else ""
        raise InputError(f"{where}: {exporter.name} export failed: {type(exc).__name__}: {detail}") from None


def _shift(prefix: str, where: str, tune: Tune | None = None) -> str:
    """``<text>:L:C:`` from a lone tune, as ``source:line:C:`` in the file where the tune starts at ``where``
    (with ``tune``, line L of its ``full_text`` is ``tune.file_line(L)``)."""
    source, _, first = where.rpartition(":")
    parts = prefix.rstrip(":").split(":")[1:]
    line = tune.file_line(int(parts[0])) if tune is not None else int(first) + int(parts[0]) - 1
    return ":".join([source, str(line), *parts[1:]]) + ":"


def _tune_paths(target: Path, tunes: list[Tune]) -> list[Path]:
    """``<stem>-<X>.<ext>`` per tune, or ``<stem>-<index>`` when X: numbers are missing or repeated."""
    numbers = [re.sub(r"[^0-9A-Za-z_]", "", tune.number) for tune in tunes]
    if not all(numbers) or len(set(numbers)) != len(numbers):
        numbers = [str(index) for index in range(1, len(tunes) + 1)]
    return [target.with_name(f"{target.stem}-{number}{target.suffix}") for number in numbers]


def _write_stdout(data: bytes) -> None:
    """Write to stdout; a full disk or closed stdout is an InputError. A BrokenPipeError (the reader, such as
    ``head``, has gone) is let through: it is no error of the user's, and the CLI ends quietly on it."""
    if sys.stdout is None:
        raise InputError("cannot write to stdout: it is closed")
    try:
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
    except BrokenPipeError:
        raise
    except OSError as exc:
        raise InputError(f"cannot write to stdout: {exc.strerror or exc}") from None


def check_output(out: str, *, fmt: str | None = None, force: bool = False):
    """Refuse now, before any sampling or rendering, an output ``write_output`` would refuse later: ``-``
    (stdout) without a text format or with a binary one, an unknown format or extension, and, for a format
    that holds a whole tunebook (or a device), a path that cannot take a file or an existing file without
    ``force`` (the per-tune files of other formats are checked by ``write_output`` before it renders).
    Returns the exporter."""
    from .atomic import check_output_path, is_device_or_fifo
    from .plugins import find_exporter

    to_stdout = str(out) == "-"
    if to_stdout and not fmt:
        raise UsageError("writing to stdout needs a format (--format abc or musicxml)")
    if not to_stdout and Path(out).is_dir():
        check_output_path(out)  # "not a file to write", rather than a word on its (missing) extension
    exporter = find_exporter(fmt, str(out))
    if to_stdout and exporter.binary:
        raise UsageError(f"{exporter.name} is binary and is not written to stdout; use -o FILE")
    if not to_stdout and (exporter.tunebook or is_device_or_fifo(out)):
        check_output_path(out, force=force)
    return exporter


def write_output(abc: str, out: str, *, fmt: str | None = None, force: bool = False, source: str = "<text>",
                 **options) -> list[str]:
    """Export ``abc`` to ``out`` (``-`` = stdout, text formats only); returns the paths written.

    The format comes from ``fmt`` or ``out``'s extension. A tunebook goes to one ABC file, but to one file per
    tune (``<stem>-<X>.<ext>``) in other formats. Every file is rendered before any is written, and each is
    written atomically, so an error leaves no partial output; existing files are kept unless ``force``. A device
    or FIFO (``/dev/null``, a named pipe) is written into, a symlink's target replaced (see ``abcflax.atomic``).
    ``source`` names the input in error messages (with the file's line numbers).
    """
    from .atomic import check_output_path, is_device_or_fifo, write_bytes

    to_stdout = str(out) == "-"
    exporter = check_output(out, fmt=fmt, force=force)
    tunes = split_tunes(abc, source)
    if exporter.tunebook or len(tunes) == 1:
        texts, paths = [abc if exporter.tunebook else tunes[0].full_text], [Path(out)]
    elif to_stdout or is_device_or_fifo(out):  # a device or FIFO has no folder for <stem>-<X> files
        raise UsageError(f"{len(tunes)} tunes make {len(tunes)} {exporter.name} files; use -o FILE, "
                         f"not {'stdout' if to_stdout else out}")
    else:
        texts, paths = [tune.full_text for tune in tunes], _tune_paths(Path(out), tunes)
    if not to_stdout:
        for path in paths:  # refused now, before the rendering
            check_output_path(path, force=force)
    starts = [f"{source}:1"] if exporter.tunebook else [f"{source}:{tune.line}" for tune in tunes]
    placed = [None] if exporter.tunebook else tunes
    # all rendered before anything is written
    blobs = [_render(exporter, text, options, where, tune) for text, where, tune in zip(texts, starts, placed)]
    if to_stdout:
        _write_stdout(blobs[0])
        return ["-"]
    written: list[Path] = []
    existed = {path for path in paths if path.exists()}
    try:
        for path, data in zip(paths, blobs):
            write_bytes(path, data, force=force)
            written.append(path)
    except BaseException:
        for path in written:  # new files of a failed set are removed, not left half done
            if path not in existed:
                path.unlink(missing_ok=True)
        raise
    return [str(path) for path in written]

