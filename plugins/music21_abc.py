"""music21 <-> ABC for abcflax: an ABC *writer* for music21, and MusicXML/MIDI importers.

music21 reads ABC but cannot write it (``stream.write('abc')`` silently writes the stream's repr). Importing this
module registers ``ConverterAbcflaxABC`` with music21: a subclass of music21's ``ConverterABC`` (so ABC reading
is unchanged) that adds output. It writes single-part melodies with chord symbols: header X T C M L Q K, notes
with lengths, accidentals, ties, triplets, grace notes, chords in brackets, bar lines, repeats and endings,
inline meter and key changes. What it cannot represent (several parts, several voices, tuplets other than
triplets, microtones) raises ``AbcWriteError`` naming the problem, instead of writing something wrong.
"""

from __future__ import annotations

import copy
import re
import warnings
from fractions import Fraction

from music21 import bar, chord, converter, harmony, key, meter, note, spanner, stream, tempo
from music21.converter.subConverters import ConverterABC

from abcflax import AbcflaxWarning
from abcflax.errors import InputError
from abcflax.plugins import hookimpl

UNIT = Fraction(1, 2)  # L:1/8 is half a quarter note
BARS_PER_LINE = 4
MODES = {"major": "", "ionian": "", "minor": "m", "aeolian": "m", "dorian": "Dor", "mixolydian": "Mix",
         "phrygian": "Phr", "lydian": "Lyd", "locrian": "Loc"}
ACCIDENTALS = {2: "^^", 1: "^", 0: "=", -1: "_", -2: "__"}
MIDI_GRID = (4,)  # quantize MIDI input to sixteenth notes: folk melodies rarely need finer


class AbcWriteError(InputError):
    """Music that ABC (as abcflax writes it) cannot represent."""


def q(value) -> Fraction:
    return Fraction(value).limit_denominator(960)


def in_force(measure, cls):
    """The ``cls`` object (TimeSignature, KeySignature) in force at ``measure``: its own, else the context."""
    return measure.getElementsByClass(cls).first() or measure.getContextByClass(cls)


def _length(quarters: Fraction, where: str) -> str:
    """An ABC length suffix for L:1/8 (``""``, ``2``, ``3/2``, ``/2``)."""
    units = quarters / UNIT
    if units.denominator & (units.denominator - 1):
        raise AbcWriteError(f"cannot write ABC: {where}: duration {quarters} quarter notes needs a tuplet "
                            "other than a triplet")
    if units == 1:
        return ""
    if units.denominator == 1:
        return str(units.numerator)
    return f"{units.numerator if units.numerator != 1 else ''}/{units.denominator}"


def _name(spelled: str) -> str:
    """music21 spelling to ABC chord/key spelling: ``B-`` -> ``Bb``."""
    return re.sub(r"(?<=[A-Ga-g])-", "b", spelled)


def key_field(signature) -> str:
    """``K:`` value for a music21 Key or KeySignature."""
    if signature is None:
        return "C"
    found = signature if isinstance(signature, key.Key) else signature.asKey("major")
    return _name(found.tonic.name) + MODES.get(found.mode, "")


def _key_alters(signature) -> dict[str, int]:
    if signature is None:
        return {}
    return {p.step: int(p.alter) for p in signature.alteredPitches}


class _Accidentals:
    """Which accidental a reader will assume for a note, so one is written only when needed.

    ABC 2.1 carries an accidental to the end of the bar; readers disagree on whether it applies to the same
    pitch in other octaves, so a sign is written unless both readings already give the right pitch.
    """

    def __init__(self, signature) -> None:
        self.key = _key_alters(signature)
        self.new_bar()

    def new_bar(self) -> None:
        self.by_step: dict[str, int] = {}
        self.by_octave: dict[tuple[str, int], int] = {}

    def sign(self, pitch, where: str) -> str:
        alter = pitch.alter
        if alter != int(alter) or int(alter) not in ACCIDENTALS:
            raise AbcWriteError(f"cannot write ABC: {where}: microtone {pitch.nameWithOctave}")
        alter, step = int(alter), pitch.step
        default = self.key.get(step, 0)
        expected = (self.by_step.get(step, default), self.by_octave.get((step, pitch.octave), default))
        self.by_step[step] = alter
        self.by_octave[(step, pitch.octave)] = alter
        return "" if expected == (alter, alter) else ACCIDENTALS[alter]


def _pitch(pitch, accidentals: _Accidentals, where: str) -> str:
    sign = accidentals.sign(pitch, where)
    octave = pitch.octave if pitch.octave is not None else 4
    if octave >= 5:
        return sign + pitch.step.lower() + "'" * (octave - 5)
    return sign + pitch.step + "," * (4 - octave)


def _tuplet_prefix(elements: list, index: int, where: str) -> tuple[str, Fraction]:
    """``(3`` (or ``(3:2:n``) for the triplet starting at ``elements[index]``, and its total length."""
    tuplet = elements[index].duration.tuplets[0]
    total = q(tuplet.totalTupletLength())
    count, covered = 0, Fraction(0)
    for element in elements[index:]:
        if covered >= total or not element.duration.tuplets:
            break
        covered += q(element.duration.quarterLength)
        count += 1
    if covered != total:
        raise AbcWriteError(f"cannot write ABC: {where}: incomplete triplet")
    return ("(3" if count == 3 else f"(3:2:{count}"), total


def _check_tuplets(element, where: str) -> None:
    for tuplet in element.duration.tuplets:
        if (tuplet.numberNotesActual, tuplet.numberNotesNormal) != (3, 2) or len(element.duration.tuplets) > 1:
            raise AbcWriteError(f"cannot write ABC: {where}: {tuplet.numberNotesActual}:"
                                f"{tuplet.numberNotesNormal} tuplets (only triplets are written)")


def _chord_symbol(symbol) -> str:
    figure = (symbol.figure or "").replace('"', "").strip()
    if not figure or figure.lower() in ("n.c.", "nc"):
        return ""
    root, slash, bass = figure.partition("/")
    return '"' + _name(root) + (slash + _name(bass) if slash else "") + '"'


def _measure_elements(measure, number) -> list:
    """The measure's notes, rests and chord symbols in time order (one voice only)."""
    voices = [v for v in measure.voices if v.notesAndRests]
    if len(voices) > 1:
        raise AbcWriteError(f"cannot write ABC: bar {number} has {len(voices)} voices (write one part, one voice)")
    source = voices[0] if voices else measure
    chords = list(measure.recurse().getElementsByClass(harmony.ChordSymbol))
    notes = [e for e in source.notesAndRests if not isinstance(e, harmony.ChordSymbol)]
    items = [(q(e.getOffsetInHierarchy(measure)), 0, i, e) for i, e in enumerate(chords)]
    items += [(q(e.getOffsetInHierarchy(measure)), 1, i, e) for i, e in enumerate(notes)]
    return [(offset, element) for offset, _, _, element in sorted(items, key=lambda t: t[:3])]


def _note_text(element, accidentals: _Accidentals, written: Fraction, where: str) -> str:
    length = _length(written, where)
    tie = "-" if element.tie is not None and element.tie.type in ("start", "continue") else ""
    if isinstance(element, note.Rest):
        return "z" + length
    if isinstance(element, chord.Chord):
        inner = "".join(_pitch(p, accidentals, where) for p in element.pitches)
        return f"[{inner}]{length}{tie}"
    return _pitch(element.pitch, accidentals, where) + length + tie


def _measure_body(measure, number, accidentals: _Accidentals, ts) -> str:
    """Notes of one measure, beamed by beat (ABC beams notes written without a space between them); ``ts`` is
    the time signature in force (looked up by the caller as it walks the measures: music21's context search
    from each measure took time quadratic in the measures, 2,000 bars 35 s)."""
    beat = q(ts.beatDuration.quarterLength) if ts is not None else Fraction(1)
    words: list[str] = []
    previous_long = True
    for offset, length, text in _measure_tokens(measure, number, accidentals):
        long = length >= 1 or length == 0
        if words and not (long or previous_long or offset % beat == 0):
            words[-1] += text
        else:
            words.append(text)
        previous_long = long
    return " ".join(words)


def _measure_tokens(measure, number, accidentals: _Accidentals) -> list[tuple[Fraction, Fraction, str]]:
    """(offset, length, text) per note, rest or gap (``x``) of a measure; overlaps are refused.

    Chord symbols, grace notes and triplet marks are prefixes of the note they belong to.
    """
    where = f"bar {number}"
    accidentals.new_bar()
    elements = _measure_elements(measure, number)
    notes_only = [e for _, e in elements if not isinstance(e, harmony.ChordSymbol)]
    out: list[tuple[Fraction, Fraction, str]] = []
    position, prefix, graces, tuplet_left = Fraction(0), "", "", Fraction(0)
    for offset, element in elements:
        if isinstance(element, harmony.ChordSymbol):
            prefix += _chord_symbol(element)
            continue
        if element.duration.isGrace:
            graces += _pitch(element.pitch, accidentals, where) if isinstance(element, note.Note) else ""
            continue
        if offset > position:
            out.append((position, offset - position, "x" + _length(offset - position, where)))
        elif offset < position:
            raise AbcWriteError(f"cannot write ABC: {where}: overlapping notes (several voices?)")
        if graces:
            prefix, graces = prefix + "{" + graces + "}", ""
        length = q(element.duration.quarterLength)
        written = length
        if element.duration.tuplets:
            _check_tuplets(element, where)
            if tuplet_left <= 0:
                mark, tuplet_left = _tuplet_prefix(notes_only, notes_only.index(element), where)
                prefix += mark
            tuplet_left -= length
            written = length * Fraction(3, 2)
        out.append((offset, length, prefix + _note_text(element, accidentals, written, where)))
        position, prefix = offset + length, ""
    if prefix:  # ABC puts a chord symbol before a note; after the bar's last note there is none
        warnings.warn(f"{where}: chord symbol {prefix} after the last note dropped", AbcflaxWarning,
                      stacklevel=2)
    return out


def _bar_line(left, right) -> str:
    """The bar line between a measure's right barline and the next one's left barline."""
    ends = isinstance(left, bar.Repeat) and left.direction == "end"
    starts = isinstance(right, bar.Repeat) and right.direction == "start"
    if ends and starts:
        return ":||:"
    if ends:
        return ":|"
    if starts:
        return "|:"
    kind = getattr(left, "type", None)
    return {"final": "|]", "light-light": "||", "double": "||", "heavy-light": "[|"}.get(kind, "|")


def _endings(part) -> dict[int, str]:
    """id(measure) -> ``[1`` / ``[1,2`` for the first measure of each ending bracket."""
    found: dict[int, str] = {}
    for bracket in part.spannerBundle.getByClass(spanner.RepeatBracket):
        measures = bracket.getSpannedElements()
        if measures:
            numbers = bracket.numberRange or [1]
            found[id(measures[0])] = "[" + ",".join(str(n) for n in numbers)
    return found


def _field_changes(measure, state: dict, accidentals: _Accidentals) -> list[str]:
    """``M:``/``K:`` lines for meter and key changes after the first bar.

    Written as field lines of their own: music21 ignores an inline ``[K:..]`` after a bar line.
    """
    out = []
    for ts in measure.getElementsByClass(meter.TimeSignature):
        if ts.ratioString != state.get("M"):
            state["M"] = ts.ratioString
            out.append(f"M:{ts.ratioString}")
    for signature in measure.getElementsByClass(key.KeySignature):
        text = key_field(signature)
        if text != state.get("K"):
            state["K"] = text
            accidentals.key = _key_alters(signature)
            out.append(f"K:{text}")
    return out


def _single_part(obj):
    """The one part to write, with measures; AbcWriteError for what ABC output here cannot hold."""
    if isinstance(obj, stream.Opus):
        raise AbcWriteError("cannot write ABC: an Opus holds several scores; write them one by one")
    if isinstance(obj, stream.Score):
        parts = [p for p in obj.parts if p.recurse().notesAndRests]
        if len(parts) != 1:
            raise AbcWriteError(f"cannot write ABC: the score has {len(parts)} parts with notes "
                                "(abcflax writes single-part melodies)")
        part = parts[0]
    elif isinstance(obj, stream.Stream):
        part = obj
    else:
        part = stream.Part([obj])
    if not part.getElementsByClass(stream.Measure):
        part = part.makeNotation()
    return part


def _header(obj, part, first, md=None) -> list[str]:
    if md is None:
        md = obj.metadata if isinstance(obj, stream.Stream) and obj.metadata is not None else part.metadata
    title = (md.title or md.movementName) if md is not None else None
    lines = ["X:1", f"T:{title or 'Untitled'}"]
    composer = md.composer if md is not None else None
    if composer and composer != "Music21":
        lines.append(f"C:{composer}")
    ts = part.recurse().getElementsByClass(meter.TimeSignature).first()
    lines += [f"M:{ts.ratioString}" if ts is not None else "M:none", "L:1/8"]
    mark = part.recurse().getElementsByClass(tempo.MetronomeMark).first()
    if mark is not None and mark.number:
        beat = q(mark.referent.quarterLength) / 4
        lines.append(f"Q:{beat.numerator}/{beat.denominator}={round(mark.number)}")
    signature = in_force(first, key.KeySignature)
    lines.append(f"K:{key_field(signature)}")
    return lines


def _bar_lines(measures) -> list[str]:
    """Bar line before each measure, then the closing one: ``len(measures) + 1`` strings."""
    lines = ["|:" if isinstance(measures[0].leftBarline, bar.Repeat) else ""]
    lines += [_bar_line(a.rightBarline, b.leftBarline) for a, b in zip(measures, measures[1:])]
    return lines + [_bar_line(measures[-1].rightBarline, None)]


def stream_to_abc(obj, *, metadata=None) -> str:
    """ABC text for a single-part music21 stream (Score with one part, Part, or flat Stream).

    ``metadata`` (title, composer) overrides the stream's own, e.g. a part's score's.
    """
    part = _single_part(obj)
    measures = list(part.getElementsByClass(stream.Measure))
    if not measures:
        raise AbcWriteError("cannot write ABC: the stream has no notes")
    first = measures[0]
    lines = _header(obj, part, first, metadata)
    signature = in_force(first, key.KeySignature)
    ts = in_force(first, meter.TimeSignature)
    state = {"K": key_field(signature), "M": ts.ratioString if ts is not None else None}
    accidentals = _Accidentals(signature)
    endings = _endings(part)
    bar_lines = _bar_lines(measures)
    line, in_line = bar_lines[0], 0
    for index, measure in enumerate(measures):
        number = measure.number if measure.number is not None else index + 1
        changes = _field_changes(measure, state, accidentals) if index else []
        if changes:
            if line.strip():
                lines.append(line.strip())
            lines += changes
            line, in_line = "", 0
        ts = measure.getElementsByClass(meter.TimeSignature).first() or ts
        text = endings.get(id(measure), "") + _measure_body(measure, number, accidentals, ts)
        line = f"{line} {text} {bar_lines[index + 1]}".strip()
        in_line += 1
        if in_line == BARS_PER_LINE or index + 1 == len(measures):
            lines.append(line)  # a line ends with a bar line, so the next starts with notes
            line, in_line = "", 0
    return "\n".join(lines) + "\n"


class ConverterAbcflaxABC(ConverterABC):
    """music21's ABC reader plus an ABC writer (``stream.write('abc')``)."""

    registerFormats = ("abc",)
    registerInputExtensions = ("abc",)
    registerOutputExtensions = ("abc",)

    def write(self, obj, fmt, fp=None, subformats=(), **keywords):
        return self.writeDataStream(fp, stream_to_abc(obj))


def register_with_music21() -> None:
    """Put the ABC writer ahead of music21's input-only ABC converter (once per process)."""
    if ConverterAbcflaxABC not in converter.Converter().subConvertersList():
        converter.registerSubConverter(ConverterAbcflaxABC)


def _melody(score, source: str):
    """The first part with notes, as one voice: several voices become their top notes (chords are kept,
    ABC writes them as ``[ceg]``)."""
    parts = [p for p in score.parts if p.recurse().notes] if isinstance(score, stream.Score) else [score]
    if not parts or not parts[0].recurse().notes:
        raise InputError(f"{source}: no notes found")
    if len(parts) > 1:
        warnings.warn(f"{source}: {len(parts)} parts; using the first as the melody", AbcflaxWarning,
                      stacklevel=3)
    part = parts[0]
    if not any(len(m.voices) > 1 for m in part.getElementsByClass(stream.Measure)):
        return part
    melody = part.chordify()  # drops chord symbols: put them back below
    for element in list(melody.recurse().getElementsByClass(chord.Chord)):
        top = note.Note(element.pitches[-1])
        top.duration, top.tie = element.duration, element.tie
        element.activeSite.replace(element, top)
    for symbol in part.recurse().getElementsByClass(harmony.ChordSymbol):
        offset = symbol.getOffsetInHierarchy(part)
        measure = melody.getElementAtOrBefore(offset, [stream.Measure])
        if measure is not None:
            measure.insert(offset - measure.offset, copy.deepcopy(symbol))
    return melody


def _import(path: str, **keywords) -> str:
    try:
        score = converter.parse(path, **keywords)
    except Exception as exc:  # noqa: BLE001 - music21 raises many types on bad files
        message = str(exc).splitlines()[0] if str(exc) else ""
        raise InputError(f"{path}: music21 cannot read it: {type(exc).__name__}: {message}") from None
    return stream_to_abc(_melody(score, path), metadata=score.metadata)


def read_musicxml(path: str) -> str:
    """ABC for the melody of a MusicXML (.musicxml, .xml, .mxl) file."""
    _require_small_unpacked(path)
    return _import(path)


def _require_small_unpacked(path: str) -> None:
    """Refuse a compressed MusicXML file (.mxl, a zip) that unpacks to more than abcflax reads as text: a
    300 kB file of 300 MB of spaces took music21 2 GB of memory, a few MB more would take all of it. The
    zip's own sizes count (Python's zipfile reads no more than they say)."""
    import zipfile

    from abcflax.tunebook import MAX_INPUT_BYTES

    try:
        with zipfile.ZipFile(path) as archive:
            unpacked = sum(info.file_size for info in archive.infolist())
    except (zipfile.BadZipFile, OSError):
        return  # not a zip: plain MusicXML (or a broken file, which music21 reports)
    if unpacked > MAX_INPUT_BYTES:
        raise InputError(f"{path}: compressed MusicXML too large unpacked ({unpacked} bytes; limit {MAX_INPUT_BYTES})")


def read_midi(path: str) -> str:
    """ABC for the melody of a MIDI file, quantized to sixteenth notes."""
    _require_whole_midi(path)
    return _import(path, format="midi", quantizePost=True, quarterLengthDivisors=MIDI_GRID)


def _require_whole_midi(path: str) -> None:
    """Refuse a cut-off MIDI file: music21 reads what is there and says nothing, so a truncated download
    would become a silently shorter tune. Every chunk the header counts must be whole, and every track
    must end with its end-of-track event."""
    with open(path, "rb") as handle:
        data = handle.read()
    if len(data) < 14 or data[:4] != b"MThd":
        raise InputError(f"{path}: not a MIDI file (no MThd header)")
    tracks = int.from_bytes(data[10:12], "big")
    offset = 8 + int.from_bytes(data[4:8], "big")
    for number in range(1, tracks + 1):
        if offset + 8 > len(data):
            raise InputError(f"{path}: MIDI file is cut off: the header counts {tracks} tracks, "
                             f"it holds {number - 1}")
        length = int.from_bytes(data[offset + 4:offset + 8], "big")
        end = offset + 8 + length
        if end > len(data):
            raise InputError(f"{path}: MIDI file is cut off in track {number} "
                             f"({len(data) - offset - 8} of {length} bytes)")
        if data[offset:offset + 4] == b"MTrk" and data[end - 3:end] != b"\xff\x2f\x00":
            raise InputError(f"{path}: MIDI track {number} has no end-of-track event (the file is damaged)")
        offset = end


@hookimpl
def register_importers(register):
    register("musicxml", (".musicxml", ".xml", ".mxl"), read_musicxml,
             description="MusicXML melody (first part) to ABC")
    register("midi", (".mid", ".midi"), read_midi, description="MIDI melody (first track), quantized, to ABC")


register_with_music21()
