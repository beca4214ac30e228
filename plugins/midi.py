"""MIDI from a music21 score, written directly as a Standard MIDI File (format 1).

Why not music21's MIDI writer: it plays chord symbols as block chords inside the melody track, fails on a
TimeSignature shared by two measures, and needs ``expandRepeats``, which raises on badly formed repeats and
expands a tune with ten ``:|`` and no ``|:`` from 80 to 16,368 measures (minutes of work). Here the play order
is computed from the bar lines the way ABC players do it (each ``:|`` goes back once, to the last ``|:`` or the
end of the previous repeat), which is linear in the tune's length; chord symbols become a separate
accompaniment track. The file is written by hand (a few dozen lines of SMF) so MIDI needs no extra dependency.
"""

from __future__ import annotations

import bisect
import struct
import warnings
from dataclasses import dataclass, field
from fractions import Fraction

from abcflax import AbcflaxWarning

TICKS_PER_QUARTER = 480
MAX_EXPANSION = 4  # a play order longer than 4x the written measures means odd repeats: play as written
ACCOMPANIMENTS = ("none", "block", "vamp")
SECTION_BARS = ("double", "final", "heavy-light", "light-light", "light-heavy")  # music21's names for || |] [|
ACCOMPANIMENT_PROGRAM = 0  # acoustic grand piano: the ceilidh-band vamp
MELODY_VELOCITY, BASS_VELOCITY, CHORD_VELOCITY = 84, 72, 60
BASS_LOW, CHORD_LOW = 36, 55  # bass in C2..B2, chord tones in G3..F#4: clear of a fiddle melody


@dataclass(frozen=True)
class Bar:
    """One measure as played: where it starts, how long it is, and its meter."""

    start: Fraction  # quarter notes from the beginning of the performance
    length: Fraction  # as written (a pickup bar is short)
    bar_length: Fraction  # what the time signature asks for
    beat: Fraction
    beat_count: int
    pickup: bool


@dataclass
class Performance:
    """Everything the MIDI tracks need, in quarter notes."""

    melodies: list[list[tuple[Fraction, Fraction, int]]] = field(default_factory=list)  # per part
    chords: list[tuple[Fraction, object]] = field(default_factory=list)  # (time, ChordSymbol)
    bars: list[Bar] = field(default_factory=list)
    end: Fraction = Fraction(0)


def q(value) -> Fraction:
    """A music21 quarterLength as an exact fraction."""
    return Fraction(value).limit_denominator(960)


def _repeat_marks(measures, spanners):
    """Per measure: starts a repeat, ends a repeat, ending numbers (empty set outside ``[1``/``[2``), ends with
    a double bar (``||``, ``|]``, ``[|``)."""
    from music21 import bar

    index = {id(m): i for i, m in enumerate(measures)}
    endings: list[set[int]] = [set() for _ in measures]
    for bracket in spanners:
        numbers = set(bracket.numberRange or [1])
        for measure in bracket.getSpannedElements():
            if id(measure) in index:
                endings[index[id(measure)]] |= numbers
    lefts = [getattr(m, "leftBarline", None) for m in measures]  # a Part standing in for a bar has none
    rights = [getattr(m, "rightBarline", None) for m in measures]
    starts = [isinstance(b, bar.Repeat) and b.direction == "start" for b in lefts]
    ends = [isinstance(b, bar.Repeat) and b.direction == "end" for b in rights]
    doubles = [not isinstance(b, bar.Repeat) and getattr(b, "type", None) in SECTION_BARS for b in rights]
    return starts, ends, endings, doubles


def _last_ending(endings: list[set[int]], i: int) -> int:
    """The highest ending number in the run of ending bars around bar ``i``."""
    low = high = i
    while low > 0 and endings[low - 1]:
        low -= 1
    while high + 1 < len(endings) and endings[high + 1]:
        high += 1
    return max(max(endings[j]) for j in range(low, high + 1))


def play_order(starts: list[bool], ends: list[bool], endings: list[set[int]],
               doubles: list[bool] | None = None) -> list[int]:
    """Measure indices in playing order; the written order (with a warning) if the repeats make no sense.

    A ``:|`` goes back to the last ``|:``; without one, to the end of the previous repeat, or, as abc2midi
    plays it, to a double bar (``||``, ``|]``, ``[|``) after that repeat (a double bar before any repeat
    starts nothing: ``A|B||C|D:|`` plays A to D twice). A double bar inside a section opened by ``|:`` (or
    ``::``) does not move its start: ``A::B||C:|`` plays B and C twice."""
    count = len(starts)
    doubles = doubles or [False] * count
    repeated = False  # a :| has been played
    opened = False  # the section started at a |: that no :| has closed yet
    limit = MAX_EXPANSION * count + 16
    order: list[int] = []
    i, section, pass_number, furthest = 0, 0, 1, -1
    while i < count:
        if len(order) > limit:
            warnings.warn(f"repeats would play more than {limit} bars; exported as written, without repeats",
                          AbcflaxWarning, stacklevel=3)
            return list(range(count))
        if i > furthest and not endings[i] and pass_number > 1:
            section, pass_number = i, 1  # left the repeated section and its endings
            opened = False
        if starts[i] and pass_number == 1:
            section, opened = i, True
        if endings[i] and pass_number not in endings[i]:
            i += 1
            continue
        order.append(i)
        more_endings = bool(endings[i]) and _last_ending(endings, i) > pass_number
        if ends[i] and (pass_number == 1 or more_endings):
            furthest = max(furthest, i)
            pass_number += 1
            i, repeated = section, True
            continue
        if ends[i]:
            section, pass_number = i + 1, 1
            repeated, opened = True, False
        elif doubles[i] and repeated and pass_number == 1 and not endings[i] and not opened:
            section = i + 1
        i += 1
    return order


def _bar(measure, start: Fraction, first: bool) -> Bar:
    from music21 import meter

    # a measure's context search skips the measure's own contents, so look there first
    ts = (measure.getElementsByClass(meter.TimeSignature).first()
          or measure.getContextByClass(meter.TimeSignature) or meter.TimeSignature("4/4"))
    length = q(measure.duration.quarterLength)
    bar_length = q(ts.barDuration.quarterLength)
    return Bar(start=start, length=length, bar_length=bar_length, beat=q(ts.beatDuration.quarterLength),
               beat_count=ts.beatCount, pickup=first and length < bar_length)


def _play_part(measures, order, performance: Performance, with_bars: bool) -> None:
    from music21 import harmony

    notes: list[list] = []
    tied: dict[int, list] = {}  # MIDI pitch -> the note a tie continues
    time = Fraction(0)
    for position, index in enumerate(order):
        measure = measures[index]
        if with_bars:
            performance.bars.append(_bar(measure, time, position == 0))
        for element in measure.flatten().notes:
            start = time + q(element.offset)
            if isinstance(element, harmony.ChordSymbol):
                if with_bars:
                    performance.chords.append((start, element))
                continue
            length = q(element.duration.quarterLength)
            if length <= 0:
                continue  # grace notes: not played
            tie = element.tie.type if element.tie is not None else None
            for pitch in element.pitches:
                previous = tied.get(pitch.midi)
                if tie in ("stop", "continue") and previous is not None and previous[1] == start:
                    previous[1] = start + length
                else:
                    previous = [start, start + length, pitch.midi]
                    notes.append(previous)
                if tie in ("start", "continue"):
                    tied[pitch.midi] = previous
                else:
                    tied.pop(pitch.midi, None)
        time += q(measure.duration.quarterLength)
    performance.melodies.append([tuple(note) for note in notes])
    performance.end = max(performance.end, time)


def perform(score) -> Performance:
    """The score as played: repeats expanded (bounded), ties joined, chord symbols collected apart."""
    from music21 import spanner

    performance = Performance()
    first_order = None
    for number, part in enumerate(score.parts):
        # music21 sometimes leaves an ABC part without measures: then the part is one long bar
        measures = list(part.getElementsByClass("Measure")) or [part]
        marks = _repeat_marks(measures, part.spannerBundle.getByClass(spanner.RepeatBracket))
        order = play_order(*marks)
        if first_order is None:
            first_order = order
        elif max(first_order) < len(measures):
            order = first_order  # keep voices together when their bar lines disagree
        _play_part(measures, order, performance, with_bars=number == 0)
    performance.chords.sort(key=lambda item: item[0])
    return performance


def _chord_notes(symbol) -> tuple[int | None, list[int]]:
    """(bass MIDI pitch, chord-tone MIDI pitches) for a chord symbol, voiced below the melody."""
    pitches = list(symbol.pitches)
    if not pitches:
        return None, []  # "N.C." and friends
    bass = symbol.bass() or pitches[0]
    tones = sorted({CHORD_LOW + (p.pitchClass - CHORD_LOW) % 12 for p in pitches})
    return BASS_LOW + bass.pitchClass % 12, tones


def _chord_at(performance: Performance, time: Fraction):
    times = [t for t, _ in performance.chords]
    index = bisect.bisect_right(times, time) - 1
    return performance.chords[index][1] if index >= 0 else None


def _hit(events: list, start: Fraction, end: Fraction, pitches: list[int], velocity: int) -> None:
    for pitch in pitches:
        events.append((start, end, pitch, velocity))


def _block(performance: Performance) -> list:
    """Each chord held from its symbol (or the next bar line) to the next chord change or bar line."""
    strikes = sorted({t for t, _ in performance.chords} | {b.start for b in performance.bars})
    events: list = []
    for start, end in zip(strikes, strikes[1:] + [performance.end]):
        symbol = _chord_at(performance, start)
        if symbol is None or end <= start:
            continue
        bass, tones = _chord_notes(symbol)
        if bass is not None:
            _hit(events, start, end, [bass], BASS_VELOCITY)
            _hit(events, start, end, tones, CHORD_VELOCITY)
    return events


def _vamp_pattern(beat_index: int, beat_count: int) -> str:
    """'bass' or 'chord' for a beat: 3 beats = bass-chord-chord, else bass and chord take turns."""
    if beat_count == 3 or beat_count % 2:
        return "bass" if beat_index == 0 else "chord"
    return "bass" if beat_index % 2 == 0 else "chord"


def _vamp(performance: Performance) -> list:
    """Bass on the strong beats, chord on the others (6/8: bass on 1, chord on 4; 4/4: B-C-B-C)."""
    events: list = []
    for bar in performance.bars:
        shift = bar.bar_length - bar.length if bar.pickup else Fraction(0)  # a pickup is the end of a bar
        for beat_index in range(bar.beat_count):
            offset = beat_index * bar.beat - shift
            if not 0 <= offset < bar.length:
                continue
            start = bar.start + offset
            symbol = _chord_at(performance, start)
            if symbol is None:
                continue
            bass, tones = _chord_notes(symbol)
            if bass is None:
                continue
            end = start + min(bar.beat, bar.length - offset) * Fraction(9, 10)  # detached, like a vamp
            if _vamp_pattern(beat_index, bar.beat_count) == "bass":
                _hit(events, start, end, [bass], BASS_VELOCITY)
            else:
                _hit(events, start, end, tones, CHORD_VELOCITY)
    return events


def _varlen(value: int) -> bytes:
    out = [value & 0x7F]
    value >>= 7
    while value:
        out.append(0x80 | (value & 0x7F))
        value >>= 7
    return bytes(reversed(out))


def _ticks(time: Fraction) -> int:
    return round(time * TICKS_PER_QUARTER)


def _meta(kind: int, data: bytes) -> bytes:
    return bytes([0xFF, kind]) + _varlen(len(data)) + data


def _track(name: str, events: list[tuple[int, int, bytes]]) -> bytes:
    """A track chunk from (tick, order, message) events; at one tick, note-offs (order 0) go before note-ons."""
    data = bytearray(_varlen(0) + _meta(0x03, name.encode("utf-8", "replace")[:120]))
    now = 0
    for tick, _order, message in sorted(events, key=lambda e: (e[0], e[1])):
        data += _varlen(tick - now) + message
        now = tick
    data += _varlen(0) + _meta(0x2F, b"")
    return b"MTrk" + struct.pack(">I", len(data)) + bytes(data)


def _note_track(name: str, channel: int, program: int, notes: list) -> bytes:
    events = [(0, -1, bytes([0xC0 | channel, program & 0x7F]))]
    for start, end, pitch, velocity in notes:
        on, off = _ticks(start), max(_ticks(end), _ticks(start) + 1)
        events.append((on, 1, bytes([0x90 | channel, pitch, velocity])))
        events.append((off, 0, bytes([0x80 | channel, pitch, 0])))
    return _track(name, events)


def _conductor(score, title: str) -> bytes:
    from music21 import meter, tempo

    mark = score.recurse().getElementsByClass(tempo.MetronomeMark).first()
    bpm = mark.getQuarterBPM() if mark is not None and mark.getQuarterBPM() else 120.0
    events = [(0, -1, _meta(0x51, round(60_000_000 / bpm).to_bytes(3, "big")))]
    ts = score.recurse().getElementsByClass(meter.TimeSignature).first()
    if ts is not None and ts.denominator in (1, 2, 4, 8, 16, 32):
        events.append((0, -1, _meta(0x58, bytes([ts.numerator, ts.denominator.bit_length() - 1, 24, 8]))))
    return _track(title, events)


def score_to_midi(score, accompaniment: str = "vamp") -> bytes:
    """Standard MIDI File bytes: conductor track, one melody track per part, and (if the tune has chord
    symbols and ``accompaniment`` is not ``none``) an accompaniment track on its own channel."""
    from music21 import instrument

    if accompaniment not in ACCOMPANIMENTS:
        from abcflax.errors import UsageError

        raise UsageError(f"unknown accompaniment {accompaniment!r} (choose {', '.join(ACCOMPANIMENTS)})")
    performance = perform(score)
    title = (score.metadata.title if score.metadata else None) or "abcflax"
    tracks = [_conductor(score, title)]
    parts = list(score.parts)
    channels = [c for c in range(16) if c != 9]  # channel 10 is drums
    for number, (part, notes) in enumerate(zip(parts, performance.melodies)):
        found = part.recurse().getElementsByClass(instrument.Instrument).first()
        program = found.midiProgram if found is not None and found.midiProgram is not None else 40
        melody = [(start, end, pitch, MELODY_VELOCITY) for start, end, pitch in notes]
        tracks.append(_note_track(part.partName or f"melody {number + 1}", channels[number % 15], program, melody))
    if accompaniment != "none" and performance.chords:
        events = _vamp(performance) if accompaniment == "vamp" else _block(performance)
        tracks.append(_note_track(f"accompaniment ({accompaniment})", channels[len(parts) % 15],
                                  ACCOMPANIMENT_PROGRAM, events))
    header = b"MThd" + struct.pack(">IHHH", 6, 1, len(tracks), TICKS_PER_QUARTER)
    return header + b"".join(tracks)
