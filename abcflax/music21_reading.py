"""ABC that music21 reads as written: a rewrite before music21 parses a tune, and a check after.

music21's ABC reader (10.5) misreads valid ABC without a word, and export used to write what it read. Measured
(``tests/test_export_fidelity.py``), each against abc2midi:

* an upper-case note before ``:`` starts a header field to the end of the line (``B::dedB dedB:|`` loses
  everything after ``B``); ``:|:`` becomes a dotted bar line and the part loses its measures;
* inline fields (``[K:D]``, ``[M:3/4]``, ``[L:1/16]``, ``[V:2]``...) are read as chords of nothing: ignored;
  a field line in the middle of a bar splits the bar in two measures;
* ``Z4`` multi-bar rests, ``x`` invisible rests and ``y`` spacers are dropped;
* additive meters (``M:2+3/8``) become ``23/8``; ``exp`` keys, keys with explicit accidentals (``K:D ^g``),
  ``HP``, locrian and lydian keys and ``K:C middle=d`` (read as C minor) get the wrong signature;
* accidentals in chords neither carry through the bar nor see those before them, and a note tied over a bar
  line loses its accidental (abc2midi, and ABC 2.1, keep it);
* a broken rhythm (``>``) next to a slur, tie, grace note or decoration (``(AB)>c``, ``A>.B``) is ignored;
* a ``+name+`` decoration spells notes (``+fermata+`` plays an F).

:func:`prepare` rewrites each into an equivalent form music21 reads right (a field moved to a line of its own,
at the bar line when it stood inside a bar; ``Z4`` as four bars of ``z``; the key music21 gets plus explicit
accidentals wherever its reading of a note would differ; broken rhythms as note lengths) and refuses, with
:class:`~abcflax.errors.InputError`, what it cannot (voice overlay ``&``, ``transpose=``). Accidentals follow
abc2midi: they carry through the bar to the same letter in every octave. :meth:`Reading.check` then compares
music21's notes (pitches and lengths, in order, ties joined) and repeat signs with the tune's, as
``abcflax.abc_check`` reads it, and refuses a score that still differs. Only export uses this; the ABC text
abcflax writes is never rewritten.
"""

from __future__ import annotations

import re
from contextlib import contextmanager
from dataclasses import dataclass, field
from fractions import Fraction
from functools import lru_cache
from typing import Callable

from .abc_check import TUPLET_Q, Event, Meter, analyze_tune, default_unit, parse_key, parse_meter, parse_unit
from .errors import InputError

ACCIDENTAL_ALTERS = {"^^": 2, "^": 1, "=": 0, "_": -1, "__": -2}
ALTER_SIGNS = {alter: sign for sign, alter in ACCIDENTAL_ALTERS.items()}
SEMITONES = {"C": 0, "D": 2, "E": 4, "F": 5, "G": 7, "A": 9, "B": 11}
SHARP_ORDER = "FCGDAEB"
MAJOR_KEYS = {-7: "Cb", -6: "Gb", -5: "Db", -4: "Ab", -3: "Eb", -2: "Bb", -1: "F", 0: "C", 1: "G", 2: "D", 3: "A",
              4: "E", 5: "B", 6: "F#", 7: "C#"}
BROKEN = {">": (Fraction(3, 2), Fraction(1, 2)), ">>": (Fraction(7, 4), Fraction(1, 4)),
          ">>>": (Fraction(15, 8), Fraction(1, 8))}
BROKEN.update({"<" * len(k): (short, long) for k, (long, short) in BROKEN.items()})
MOVABLE_FIELDS = "KMLPQ"  # fields that take effect at a bar line when written inside a bar
KEPT_INLINE_FIELDS = MOVABLE_FIELDS + "V"  # the others inline ([r:...], [I:...]) change no note: dropped
FILLER_FIELD = "N:"
MUSIC21_DECORATIONS = set(".~uvTLMOPSKk")  # single-letter decorations music21 reads as decorations
MAX_DECORATION = 19  # music21 looks 20 characters ahead for the closing ! of a decoration
MODE_CODES = ("maj", "min", "ion", "aeo", "dor", "phr", "lyd", "mix", "loc")  # ABC reads 3 letters of a mode
ACCIDENTAL_SIGNS = "^=_"
PROPAGATION = re.compile(r"^%%propagate-accidentals\s+(not|octave|pitch)\b", re.M)
NOTE = re.compile(r"(\^\^|\^|__|_|=)?([A-Ga-g])([',]*)(\d*)((?:/\d*)*)")
TUPLET = re.compile(r"\((\d+)(?::(\d*))?(?::(\d*))?")
SUFFIX = re.compile(r"(\d*)((?:/\d*)*)$")


def _where(text: str, offset: int) -> int:
    """1-based line of a character offset."""
    return text.count("\n", 0, offset) + 1


# ---- field values: what the ABC means, and what music21 makes of it


def signature(fifths: int) -> dict[str, int]:
    """Letter -> alteration for a key signature of ``fifths`` sharps (negative: flats)."""
    if fifths >= 0:
        return {letter: 1 for letter in SHARP_ORDER[:fifths]}
    return {letter: -1 for letter in SHARP_ORDER[::-1][:-fifths]}


def true_key(value: str) -> dict[str, int] | None:
    """The key signature a ``K:`` value means (as abc2midi plays it), None for "keep the key" (a clef alone)."""
    if value.split("%", 1)[0].strip().startswith("HP"):
        return {"F": 1, "C": 1}  # highland pipes: F# and C#, though no signature is drawn
    key, _ = parse_key(value)
    return None if key is None else {letter: alter for letter, alter in key.items() if alter}


@lru_cache(maxsize=256)
def music21_key(value: str) -> tuple[tuple[str, int], ...] | None:
    """The signature music21 reads from a ``K:`` value (sorted items), None if it fails."""
    from music21.abcFormat import ABCMetadata

    token = ABCMetadata("K:" + value)
    try:
        token.preParse()
        return tuple(sorted(signature(token.getKeySignatureParameters()[0]).items()))
    except Exception:  # noqa: BLE001 - music21 raises many types on odd values
        return None


def _nearest_key(wanted: dict[str, int]) -> int:
    """Sharps (or -flats) of the standard signature closest to ``wanted``: fewest letters differ, then fewest
    accidentals."""
    def cost(fifths: int) -> tuple[int, int]:
        have = signature(fifths)
        return sum(have.get(letter, 0) != wanted.get(letter, 0) for letter in SEMITONES), abs(fifths)

    return min(range(-7, 8), key=cost)


def _is_mode(word: str) -> bool:
    return word.lower() == "m" or word.lower()[:3] in MODE_CODES


def tonic_and_mode(value: str) -> str | None:
    """The words of a ``K:`` value that name the key (``G``, ``Ador``, ``F# minor``, ``none``): without a clef
    (music21 transposes the notes of ``clef=bass`` two octaves down), ``middle=`` (read as C minor) or
    explicit accidentals; None when they name none (a clef alone, ``HP``)."""
    words = value.split("%", 1)[0].split()
    if words[:1] == ["none"]:
        return "none"
    match = re.fullmatch(r"([A-G][#b]?)([A-Za-z]*)", words[0]) if words else None
    if match is None or (match.group(2) and not _is_mode(match.group(2))):
        return None
    if not match.group(2) and len(words) > 1 and _is_mode(words[1]):
        return f"{words[0]} {words[1]}"
    return words[0]


def key_for_music21(value: str, key: dict[str, int]) -> tuple[str, dict[str, int]]:
    """(``K:`` value music21 reads right, the signature it gives) for a key change to ``key``: the value's
    tonic and mode when music21 reads them as ``key``, else the nearest standard key (locrian and lydian
    modes, ``exp`` and explicit accidentals, ``HP``). Notes whose pitch that signature does not give get
    explicit accidentals (see ``_Walker.pitch``)."""
    named = tonic_and_mode(value)
    for candidate in ([named] if named else []) + [MAJOR_KEYS[_nearest_key(key)]]:
        read = music21_key(candidate)
        if read is not None and dict(read) == key:
            return candidate, key
    text = MAJOR_KEYS[_nearest_key(key)]
    return text, dict(music21_key(text) or ())


@lru_cache(maxsize=256)
def music21_meter(value: str) -> tuple[int, int] | None | str:
    """(numerator, denominator) music21 reads from an ``M:`` value, None for no meter, "?" if it fails."""
    from music21.abcFormat import ABCMetadata

    token = ABCMetadata("M:" + value)
    try:
        token.preParse()
        found = token.getTimeSignatureParameters()
    except Exception:  # noqa: BLE001
        return "?"
    return None if found is None else (found[0], found[1])


def meter_for_music21(value: str, meter: Meter) -> str:
    """An ``M:`` value music21 reads as ``meter`` (``2+3/8`` -> ``5/8``)."""
    if meter.length is None:
        wanted = None
    else:
        wanted = (meter.numerator, (meter.numerator / meter.length).numerator)
    if music21_meter(value) == wanted:
        return value
    return "none" if wanted is None else f"{wanted[0]}/{wanted[1]}"


@lru_cache(maxsize=256)
def music21_unit(value: str) -> Fraction | None:
    from music21.abcFormat import ABCMetadata

    token = ABCMetadata("L:" + value)
    try:
        token.preParse()
        return Fraction(token.getDefaultQuarterLength()).limit_denominator(1024) / 4
    except Exception:  # noqa: BLE001
        return None


def unit_for_music21(value: str, unit: Fraction) -> str:
    return value if music21_unit(value) == unit else f"{unit.numerator}/{unit.denominator}"


def length_text(multiplier: Fraction) -> str:
    """ABC length suffix: ``""``, ``2``, ``3/2``, ``/2``."""
    if multiplier == 1:
        return ""
    if multiplier.denominator == 1:
        return str(multiplier.numerator)
    return f"{multiplier.numerator if multiplier.numerator != 1 else ''}/{multiplier.denominator}"


def parse_length(digits: str, slashes: str) -> Fraction:
    numerator = int(digits) if digits else 1
    denominator = 1
    for part in slashes.split("/")[1:]:
        denominator *= int(part) if part else 2
    return Fraction(numerator, denominator)


# ---- the walk over the tune


@dataclass
class _Voice:
    """What decides pitches and lengths in one voice: as the ABC means them, and as music21 will read them."""

    meter: Meter
    unit: Fraction
    key: dict[str, int]
    octave: int = 0  # K: octave=
    bar: dict = field(default_factory=dict)  # accidentals of the bar, per letter (abc2midi; see carried())
    content: bool = False  # the bar has a note or rest
    multirest: bool = False  # ... and it is a Z rest
    tie: tuple | None = None  # (letter, octave, alteration) of a note tied to the next one
    last_note: tuple | None = None
    deferred: list = field(default_factory=list)  # field lines that wait for the next bar line
    pending: list = field(default_factory=list)  # their changes to music21's state, made at that bar line
    broken: Fraction | None = None  # the length factor a broken rhythm gives the next note
    broken_from: tuple | None = None  # (the > or < event, the unbroken length of the note before it)
    tuplet: list | None = None  # the open (p:q:r, see _Walker.tuplet
    last: "_Timed | None" = None


@dataclass
class _Music21:
    """What music21 will apply to the next note. Unlike ABC's, its state is one for all voices: a key change
    in one voice changes the notes of the others after it, in the text's order."""

    unit: Fraction
    key: dict[str, int]
    bar: dict = field(default_factory=dict)  # accidentals carried in the bar (not from chords)

    def set(self, unit: Fraction, key: dict[str, int]) -> None:
        self.unit, self.key = unit, key


@dataclass
class _Timed:
    """A note, chord or rest: where its length is written and by what it changes for music21, and the pitches
    and length (quarter notes, from the analyzer) music21's score must hold."""

    suffix_start: int
    suffix_end: int
    multiplier: Fraction
    factor: Fraction = Fraction(1)
    pitches: tuple[int, ...] = ()
    duration: Fraction = Fraction(0)  # quarter notes
    tied: bool = False
    offset: int = 0  # in the tune's text, for the line of an error


BAR_STYLES = ("|", "[|", "||", "|]")  # weakest first


@dataclass
class _Bar:
    event: Event
    ends: bool
    starts: bool
    style: str
    empty: bool = True  # nothing but blanks (or decorations) since: joined with the next bar line

    @property
    def text(self) -> str:
        if self.ends or self.starts:
            return ":||:" if self.ends and self.starts else ":|" if self.ends else "|:"
        return self.style


@dataclass
class Reading:
    """The text music21 is given, and what its score must hold (per voice, notes in order)."""

    text: str
    expected: dict[str, list[_Timed]]
    original: str
    marks: dict[str, dict[str, int]] = field(default_factory=dict)

    def tie_chords(self, score) -> None:
        """Tie the chords the ABC ties (``[DF]-[DF]``): music21 reads no tie after a chord, so MIDI would strike
        a held chord again."""
        from music21 import tie

        voices = [name for name, notes in self.expected.items() if notes]
        for name, part in zip(voices, list(getattr(score, "parts", [])) or [score]):
            elements = _music21_elements(part)
            if len(elements) != len(self.expected[name]):
                continue  # a misreading: check() refuses it
            for timed, element, after in zip(self.expected[name], elements, elements[1:]):
                if timed.tied and element.isChord and after.isChord and _same_pitches(element, after):
                    element.tie = tie.Tie("continue" if element.tie is not None else "start")
                    after.tie = tie.Tie("stop")

    def check(self, score, source: str, file_line: Callable[[int], int]) -> None:
        """InputError at the first note where music21's score differs from the ABC (a misreading left)."""
        parts = list(getattr(score, "parts", [])) or [score]
        voices = [name for name, notes in self.expected.items() if notes]
        if len(parts) != len(voices):
            raise InputError(f"{source}: the voices cannot be exported: music21 reads {len(parts)} parts from "
                             f"{len(voices)} voices")
        for name, part in zip(voices, parts):
            _compare(_merged_expected(self.expected[name]), _music21_notes(part), self.original, source, file_line)
            wanted = {k: v for k, v in self.marks.get(name, {}).items() if k in ("starts", "ends")}
            found = _repeat_marks(part)
            if wanted and found != wanted:
                raise InputError(f"{source}: the repeats cannot be exported: music21 reads {_marks_text(found)} "
                                 f"where the ABC has {_marks_text(wanted)}")


class _Walker:
    """One pass over the analyzer's events: edits to the text, and the notes the tune holds."""

    def __init__(self, text: str, source: str, file_line: Callable[[int], int]):
        self.text, self.source, self.file_line = text, source, file_line
        self.edits: list[tuple[int, int, str]] = []
        self.expected: dict[str, list[_Timed]] = {}
        self.voices: dict[str, _Voice] = {}
        self.marks: dict[str, dict[str, int]] = {}  # per voice: plain bar lines, repeat ends and starts
        self.bars: dict[str, list[_Bar]] = {}
        self.header = _Voice(Meter(None), Fraction(1, 8), {})
        directives = PROPAGATION.findall(text)  # the last one counts, for music21 and abc2midi
        self.propagation = directives[-1] if directives else "pitch"
        self.m21 = _Music21(Fraction(1, 8), {})

    def refuse(self, offset: int, construct: str, why: str) -> None:
        """InputError: ``source:line: <construct> cannot be exported: <why>``."""
        line = self.file_line(_where(self.text, offset))
        raise InputError(f"{self.source}:{line}: {construct} cannot be exported: {why}")

    def voice(self, name: str) -> _Voice:
        if name not in self.voices:
            h = self.header
            self.voices[name] = _Voice(h.meter, h.unit, dict(h.key), h.octave)
            self.expected[name] = []
            self.marks[name] = {"regular": 0, "ends": 0, "starts": 0}
        return self.voices[name]

    # -- header

    def read_header(self) -> None:
        """Rewrite the header's M:, L: and K: values into ones music21 reads right."""
        offset, unit_value = 0, None
        for line in self.text.split("\n"):
            end = offset + len(line)
            name, value = line[:1], line[2:]
            if line[1:2] == ":" and name in "MLK":
                new = self.field_value(name, value, self.header, offset)
                if new != value:
                    self.edits.append((offset + 2, end, new))
                unit_value = value if name == "L" else unit_value
            offset = end + 1
            if name == "K" and line[1:2] == ":":
                break
        if unit_value is None:  # ABC 2.1: L: by meter when the header has none (as with_explicit_defaults writes)
            self.header.unit = default_unit(self.header.meter)
        self.m21.unit = self.header.unit

    def field_value(self, name: str, value: str, state: _Voice, offset: int) -> str:
        """The value music21 should get for a field, after updating ``state`` to what the ABC means."""
        if name == "M":
            state.meter, _ = parse_meter(value)
            return meter_for_music21(value, state.meter)
        if name == "L":
            unit, _ = parse_unit(value)
            state.unit = unit or state.unit
            return unit_for_music21(value, state.unit)
        return self.key_value(value, state, offset)

    def key_value(self, value: str, state: _Voice, offset: int) -> str:
        words = value.split("%", 1)[0].split()
        if any(w.startswith("transpose=") for w in words):
            self.refuse(offset, "K: transpose=", "a playback transposition, which MusicXML and music21 "
                        "cannot carry (transpose the notes instead)")
        octave = next((w[7:] for w in words if w.startswith("octave=")), None)
        if octave is not None:
            if not re.fullmatch(r"[+-]?\d", octave):
                self.refuse(offset, f"K: octave={octave}", "not a whole number of octaves")
            state.octave = int(octave)
        key = true_key(value)
        if key is None:  # a clef alone keeps the key; music21 would read "bass" as B major
            key = state.key
        state.key = key
        text, self.m21.key = key_for_music21(value, key)
        return text

    # -- body

    def walk(self, events: list[Event]) -> None:
        handlers = {"note": self.note, "chord": self.chord, "rest": self.rest, "multirest": self.multirest,
                    "grace": self.grace, "barline": self.barline, "field": self.field, "tie": self.tie,
                    "broken": self.broken_rhythm, "tuplet": self.tuplet, "decoration": self.decoration,
                    "spacer": self.drop, "overlay": self.overlay, "ending": self.ending}
        self.events = events
        for index, event in enumerate(events):
            self.index = index
            if event.kind not in ("barline", "decoration", "slur", "tie", "broken", "tuplet", "spacer",
                                  "annotation", "chord_symbol"):
                self.something(event)
            handler = handlers.get(event.kind)
            if handler is not None:
                handler(event, self.voice(event.voice))

    def ending(self, event: Event, voice: _Voice) -> None:
        if event.text.lstrip("[") not in ("1", "2"):
            self.refuse(event.start, f"ending {event.text}", "music21 reads only the endings [1 and [2")
        self.marks[event.voice]["regular"] += 1  # music21 counts [1 and [2 as plain bar lines

    def drop(self, event: Event, voice: _Voice) -> None:
        self.edits.append((event.start, event.end, ""))

    def overlay(self, event: Event, voice: _Voice) -> None:
        self.refuse(event.start, "voice overlay &", "music21 reads the overlaid notes as more notes of the bar "
                    "(write the second voice with V:)")

    def decoration(self, event: Event, voice: _Voice) -> None:
        text = event.text
        if text.startswith("+") and len(text) > 1:  # music21 reads the letters of +name+ as notes
            text = "!" + text[1:-1] + "!"
        if text == "H":
            text = "!fermata!"  # music21 drops the note a H is written on (HA2)
        elif len(text) > MAX_DECORATION or (len(text) == 1 and text not in MUSIC21_DECORATIONS):
            text = ""  # music21 would read the name's letters (or this user symbol) as notes
        elif len(text) == 1 and self.text[event.end:event.end + 1] in ACCIDENTAL_SIGNS:
            text += " "  # music21 reads T=c as C4 (and ~^f without its sharp): a space keeps the note whole
        if text != event.text:
            self.edits.append((event.start, event.end, text))

    def tuplet(self, event: Event, voice: _Voice) -> None:
        """Remember ``(p:q:r``: music21 counts grace notes among its r notes, so r grows by the grace notes
        inside (``(3{c}BAB`` -> ``(3:2:4{c}BAB``)."""
        match = TUPLET.match(event.text)
        p = int(match.group(1))
        q = int(match.group(2)) if match.group(2) else TUPLET_Q.get(p, 3 if voice.meter.compound else 2)
        r = int(match.group(3)) if match.group(3) else p
        voice.tuplet = [event, p, q, r, r, 0]  # ..., notes still to come, grace notes among them

    def count_tuplet(self, voice: _Voice, graces: int = 0) -> None:
        if voice.tuplet is None:
            return
        event, p, q, r, remaining, found = voice.tuplet
        if graces:
            voice.tuplet[5] += graces
            return
        voice.tuplet[4] -= 1
        if voice.tuplet[4] > 0:
            return
        if found:
            self.edits.append((event.start, event.end, f"({p}:{q}:{r + found}"))
        voice.tuplet = None

    def tie(self, event: Event, voice: _Voice) -> None:
        if voice.last is not None:
            voice.last.tied = True
            voice.tie = voice.last_note if len(voice.last.pitches) == 1 else None

    def barline(self, event: Event, voice: _Voice) -> None:
        """A bar line as music21 reads it: ``:|``, ``|:`` or ``:||:`` for a repeat (music21 reads ``B::`` as a
        field and ``:|:`` as a dotted bar line), and a bar line right after another (an empty bar, ``| :|``,
        ``|: || |:``) joined with it: music21 keeps only one of the two."""
        token = event.text
        bar = _Bar(event, token.lstrip("[").startswith(":"), token.rstrip("]").endswith(":"),
                   token if token in BAR_STYLES else "|")
        bars = self.bars.setdefault(event.voice, [])
        if bars and bars[-1].empty:
            previous = bars.pop()
            bar.ends |= previous.ends
            bar.starts |= previous.starts
            bar.style = max(bar.style, previous.style, key=BAR_STYLES.index)
            self.edits.append((previous.event.start, previous.event.end, ""))
        bars.append(bar)
        voice.bar, voice.content, voice.multirest = {}, False, False
        self.m21.bar = {}  # music21 forgets accidentals at every bar line, of any voice
        self.flush(event, voice)

    def bar_lines(self) -> None:
        """The bar lines' edits and counts, once empty bars are joined. A ``|:`` while the one before it is
        still open (no ``:|`` between) is refused: ABC does not say where the first repeat ends (abc2midi
        guesses a ``::`` at the second one, abcflax's MIDI played the first part once; found: Molly Bawn's)."""
        for name, bars in self.bars.items():
            marks = self.marks[name]
            opened = None
            for bar in bars:
                if bar.ends:
                    opened = None
                if bar.starts and not (bar is bars[-1] and bar.empty):
                    if opened is not None and not bar.ends:
                        self.refuse(bar.event.start, "repeat start |:", "the |: before it is never closed "
                                    "with :| (ABC does not say where that repeat ends)")
                    opened = bar.event.start
                canonical = bar.text
                if canonical != bar.event.text:
                    self.edits.append((bar.event.start, bar.event.end, canonical))
                marks["regular"] += canonical == "|"
                marks["ends"] += bar.ends
                marks["starts"] += bar.starts and not (bar is bars[-1] and bar.empty)  # |: before nothing

    def something(self, event: Event) -> None:
        """Music, a field or an ending since the last bar line: the next bar line is not joined with it."""
        bars = self.bars.get(event.voice)
        if bars:
            bars[-1].empty = False

    def flush(self, event: Event, voice: _Voice) -> None:
        """Write the fields that stood inside the bar just closed as lines of their own after its bar line."""
        if not voice.deferred:
            return
        at, prefix = event.end, ""
        following = self.events[self.index + 1] if self.index + 1 < len(self.events) else None
        if following is not None and following.kind == "ending" and following.start == event.end:
            prefix = "" if following.text.startswith("[") else "["  # |2 -> |\nK:D\n[2
        self.edits.append((at, at, "\n" + _field_lines(voice.deferred) + "\n" + prefix))
        self.something(event)
        voice.deferred = []
        for change in voice.pending:
            change()
        voice.pending = []

    def field(self, event: Event, voice: _Voice) -> None:
        inline = event.text.startswith("[")
        body = event.text[1:-1] if inline else event.text
        name, value = body[0], body[2:]
        if name in "wW" and not inline:
            return  # lyrics: music21 reads them where they are
        if name == "V":  # a voice has its own bars: its field goes where it stands (music21 reads V: lines)
            if inline:
                self.edits.append((event.start, event.end, "\n" + body + "\n"))
            return
        if inline and name not in KEPT_INLINE_FIELDS:
            self.edits.append((event.start, event.end, ""))  # a remark or instruction: no note changes
            return
        change = None
        if name in "MLK":
            before = (self.m21.unit, self.m21.key)
            body = f"{name}:{self.field_value(name, value, voice, event.start)}"
            after = (voice.unit if name == "L" else before[0], self.m21.key)
            self.m21.unit, self.m21.key = before  # music21's state changes where the field line ends up
            change = lambda: self.m21.set(*after)  # noqa: E731
        self.place(event, voice, body, inline, change)

    def place(self, event: Event, voice: _Voice, line: str, inline: bool, change) -> None:
        """A field as a line of its own: here at a bar's start; inside a bar (where music21 would split the
        bar in two measures), after the bar line that closes the bar."""
        if voice.content:
            newline = not inline and self.text[event.end:event.end + 1] == "\n"
            self.edits.append((event.start, event.end + newline, ""))
            voice.deferred.append(line)
            if change is not None:
                voice.pending.append(change)
            return
        if inline:
            self.edits.append((event.start, event.end, "\n" + _field_lines([line]) + "\n"))
        elif _field_lines([line]) != event.text:
            self.edits.append((event.start, event.end, _field_lines([line])))
        if change is not None:
            change()

    # -- notes, rests, chords

    def opened(self, event: Event, voice: _Voice) -> None:
        if voice.multirest:
            self.refuse(event.start, "a bar with a multi-bar rest and notes", "a Z rest fills whole bars")
        voice.content = True

    def timed(self, event: Event, voice: _Voice, suffix_start: int, pitches: tuple[int, ...]) -> _Timed:
        """Record a note, chord or rest; a broken rhythm's factor comes from the analyzer's length, and a
        changed L: (moved to the bar line for music21) rescales the written length."""
        match = SUFFIX.search(self.text, suffix_start, event.end)
        multiplier = parse_length(match.group(1), match.group(2)) if match.group(0) else Fraction(1)
        timed = _Timed(match.start(), event.end, multiplier, voice.unit / self.m21.unit, pitches,
                       4 * event.duration, offset=event.start)
        if voice.broken is not None:
            self.unequal_broken(voice, timed.duration / voice.broken)
            timed.factor *= voice.broken
            voice.broken = None
        self.expected[event.voice].append(timed)
        voice.last = timed
        self.count_tuplet(voice)
        return timed

    def broken_rhythm(self, event: Event, voice: _Voice) -> None:
        first, second = BROKEN[event.text]
        if voice.last is not None:
            voice.last.factor *= first
        voice.broken = second
        voice.broken_from = (event, voice.last.duration / first if voice.last is not None else None)

    def unequal_broken(self, voice: _Voice, after: Fraction) -> None:
        """Refuse ``e>g/`` or ``e<a3``: a broken rhythm between notes of unequal lengths. ABC 2.1 leaves its
        meaning undefined; the analyzer (and so music21's score) dots the first note and halves the second,
        abc2midi ignores the mark ("Cannot apply broken rhythm. Notes not equal durations")."""
        event, before = voice.broken_from
        voice.broken_from = None
        if before is not None and before != after:
            self.refuse(event.start, f"broken rhythm {event.text} between notes of unequal lengths",
                        "ABC 2.1 leaves its meaning undefined and abc2midi ignores it (write the two lengths out)")
        self.edits.append((event.start, event.end, ""))  # written into the lengths instead

    def rest(self, event: Event, voice: _Voice) -> None:
        self.opened(event, voice)
        if event.text.startswith("x"):  # music21 drops invisible rests
            self.edits.append((event.start, event.start + 1, "z"))
        self.timed(event, voice, event.start + 1, ())

    def multirest(self, event: Event, voice: _Voice) -> None:
        """``Z4``: four bars of ``z`` in the current meter (music21 drops the Z)."""
        if voice.content:
            self.refuse(event.start, f"multi-bar rest {event.text} after notes in its bar",
                        "a Z rest fills whole bars")
        if voice.meter.length is None:
            self.refuse(event.start, f"multi-bar rest {event.text} under M:none", "a bar has no length without "
                        "a meter")
        count = int(event.text[1:] or 1)
        bar = "z" + length_text(voice.meter.length / self.m21.unit)
        self.edits.append((event.start, event.end, "|".join([bar] * count)))
        voice.content, voice.multirest = True, True
        for _ in range(count):
            self.expected[event.voice].append(_Timed(event.end, event.end, Fraction(1),
                                                     duration=4 * voice.meter.length, offset=event.start))
        voice.last = None

    def note(self, event: Event, voice: _Voice) -> None:
        self.opened(event, voice)
        match = NOTE.match(self.text, event.start, event.end)
        midi = self.pitch(match, voice, in_chord=False)
        self.timed(event, voice, match.start(4), (midi,))
        voice.last_note = (match.group(2).upper(), self.octave(match, voice), midi - self.natural(match, voice))

    def chord(self, event: Event, voice: _Voice) -> None:
        self.opened(event, voice)
        close = self.text.rfind("]", event.start, event.end)
        pitches, ties = [], 0
        position = event.start + 1
        while position < close:
            match = NOTE.match(self.text, position, close)
            if match and match.group(2):
                pitches.append(self.pitch(match, voice, in_chord=True))
                position = match.end()
                ties += self.text.startswith("-", position)
            else:
                position += 1
        timed = self.timed(event, voice, close + 1, tuple(pitches))
        if pitches and ties == len(pitches):  # [c-a-][ca]: every note tied inside, the chord is held
            timed.tied = True

    def grace(self, event: Event, voice: _Voice) -> None:
        position, count = event.start + 1, 0
        while position < event.end - 1:
            match = NOTE.match(self.text, position, event.end - 1)
            if match and match.group(2):
                self.pitch(match, voice, in_chord=False, grace=True)
                position = match.end()
                count += 1
            else:
                position += 1
        self.count_tuplet(voice, graces=count)

    def natural(self, match: re.Match, voice: _Voice) -> int:
        return 12 * (self.octave(match, voice) + 1) + SEMITONES[match.group(2).upper()]

    def octave(self, match: re.Match, voice: _Voice) -> int:
        marks = match.group(3)
        return (5 if match.group(2).islower() else 4) + marks.count("'") - marks.count(",") + voice.octave

    def pitch(self, match: re.Match, voice: _Voice, *, in_chord: bool, grace: bool = False) -> int:
        """MIDI pitch of a note as abc2midi plays it; an explicit accidental (or octave marks, for
        ``K: octave=``) written in when music21 would read another pitch."""
        sign, letter = match.group(1), match.group(2)
        step, octave = letter.upper(), self.octave(match, voice)
        alter = self.alteration(sign, step, octave, voice, in_chord or grace)
        m21, carried = self.m21, self.carried(step, octave)
        m21_alter = (ACCIDENTAL_ALTERS[sign] if sign is not None
                     else m21.key.get(step, 0) if in_chord or carried is None
                     else m21.bar.get(carried, m21.key.get(step, 0)))
        new_sign = sign if m21_alter == alter else ALTER_SIGNS[alter]
        if not in_chord and new_sign is not None and carried is not None:  # music21 carries ^^ and __ as ^ and _
            m21.bar[carried] = max(-1, min(1, alter)) if len(new_sign) == 2 else alter
        new_octave = match.group(3)
        if voice.octave:
            shifted = octave - (5 if letter.islower() else 4)
            new_octave = "'" * max(shifted, 0) + "," * max(-shifted, 0)
        if new_sign != sign or new_octave != match.group(3):
            self.edits.append((match.start(), match.end(3), (new_sign or "") + letter + new_octave))
        return 12 * (octave + 1) + SEMITONES[step] + alter

    def carried(self, step: str, octave: int):
        """What an accidental carries to in the bar, for abc2midi and music21 alike: the letter in every octave,
        or with ``%%propagate-accidentals octave`` only in its octave (``not``: nothing, ``None``)."""
        return {"pitch": step, "octave": (step, octave)}.get(self.propagation)

    def alteration(self, sign: str | None, step: str, octave: int, voice: _Voice, quiet: bool) -> int:
        """abc2midi's rule: an accidental carries to the same letter (see ``carried``) until the bar line; a
        note tied over the bar line keeps its accidental."""
        carried = self.carried(step, octave)
        if sign is not None:
            if carried is not None:
                voice.bar[carried] = ACCIDENTAL_ALTERS[sign]
            voice.tie = None
            return ACCIDENTAL_ALTERS[sign]
        tie, voice.tie = voice.tie, None
        if tie is not None and tie[:2] == (step, octave) and not quiet:
            return tie[2]
        return voice.bar.get(carried, voice.key.get(step, 0)) if carried is not None else voice.key.get(step, 0)

    # -- output

    def pad_bar_lines(self) -> None:
        """music21 makes measures (and keeps repeats) only in a tune with two plain bar lines or more
        (``|:GABc dedB::dedB dedB:|`` has none): one more at each end of such a tune, where it changes
        nothing."""
        music = [e for e in self.events if e.kind not in ("field",)]
        marks = self.marks.get("", {})
        if len(self.voices) != 1 or not music or not any(marks.values()) or marks["regular"] >= 2:
            return
        self.edits.append((music[0].start, music[0].start, "| "))
        self.edits.append((music[-1].end, music[-1].end, " |"))
        marks["regular"] += 2

    def finish(self) -> None:
        self.bar_lines()
        self.pad_bar_lines()
        for timeds in self.expected.values():
            for timed in timeds:
                written = timed.multiplier * timed.factor
                if written != timed.multiplier:
                    self.edits.append((timed.suffix_start, timed.suffix_end, length_text(written)))


NOTE_NAMES = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")


def _merged(items: list[tuple]) -> list[list]:
    """(pitches, quarter notes, tied, offset) with tied notes of one pitch as one note and rests in a row as
    one rest: music21 splits an overfull bar's note in two tied ones, and that is no misreading."""
    out: list[list] = []
    for pitches, duration, tied, offset in items:
        if out and ((out[-1][2] and out[-1][0] == pitches and pitches) or (not pitches and not out[-1][0])):
            out[-1][1] += duration
            out[-1][2] = tied
        else:
            out.append([pitches, duration, tied, offset])
    return out


def _merged_expected(timeds: list[_Timed]) -> list[list]:
    return _merged([(tuple(sorted(set(t.pitches))), t.duration, t.tied, t.offset) for t in timeds])


def _same_pitches(chord, other) -> bool:
    """The same pitches in any order (``[d3-d'3-][d'd]`` ties D5 and D6 both)."""
    return sorted(p.midi for p in chord.pitches) == sorted(p.midi for p in other.pitches)


def _music21_elements(part) -> list:
    """The notes, chords and rests of a part in order (no grace notes or chord symbols)."""
    from music21 import harmony

    return [element for element in part.recurse().notesAndRests
            if not isinstance(element, harmony.ChordSymbol) and not element.duration.isGrace]


def _music21_notes(part) -> list[list]:
    items = []
    for element in _music21_elements(part):
        pitches = () if element.isRest else tuple(sorted({p.midi for p in element.pitches}))
        tied = element.tie is not None and element.tie.type in ("start", "continue")
        items.append((pitches, Fraction(element.quarterLength).limit_denominator(100_000), tied, 0))
    return _merged(items)


def _describe(item: list | None) -> str:
    if item is None:
        return "nothing"
    pitches, duration = item[0], item[1]
    names = "+".join(f"{NOTE_NAMES[p % 12]}{p // 12 - 1}" for p in pitches) or "a rest"
    return f"{names} of {duration} quarter notes"


def _compare(expected: list[list], found: list[list], text: str, source: str,
             file_line: Callable[[int], int]) -> None:
    for index in range(max(len(expected), len(found))):
        want = expected[index] if index < len(expected) else None
        have = found[index] if index < len(found) else None
        if want is not None and have is not None and want[:2] == have[:2]:
            continue
        offset = (want or expected[-1])[3] if expected else 0
        raise InputError(f"{source}:{file_line(_where(text, offset))}: this note cannot be exported: music21 reads "
                         f"{_describe(have)} where the ABC has {_describe(want)}")


def _field_lines(lines: list[str]) -> str:
    """Field lines for a bar's start. Between a bar line and a note music21 keeps a lone field line in no
    measure: notes keep its key, but the key signature, time signature or tempo mark is lost, and so is the
    bar line before it when it is a ``|:``. With two field lines it keeps both: an empty ``N:`` joins a lone
    one."""
    return "\n".join(lines + [FILLER_FIELD] if len(lines) == 1 else lines)


def _marks_text(marks: dict[str, int]) -> str:
    return f"{marks['starts']} |: and {marks['ends']} :|"


def _repeat_marks(part) -> dict[str, int]:
    from music21 import bar, stream

    measures = list(part.getElementsByClass(stream.Measure))
    return {"ends": sum(isinstance(m.rightBarline, bar.Repeat) and m.rightBarline.direction == "end"
                        for m in measures),
            "starts": sum(isinstance(m.leftBarline, bar.Repeat) and m.leftBarline.direction == "start"
                          for m in measures),
}




@contextmanager
def no_rebarring():
    """music21 "re-bars" a bar longer than its meter: it splits it, adds time signatures the ABC does not have
    (a 1/8 bar, then the meter again) and moves the bar's repeat sign to the wrong side, so the repeat is lost.
    The bar stays as the ABC writes it (MusicXML and MIDI hold a long bar; abc2midi plays it so too)."""
    from music21.abcFormat import translate

    original = translate.reBar
    translate.reBar = lambda part, inPlace=False: None if inPlace else part
    try:
        yield
    finally:
        translate.reBar = original


def complete_endings(score) -> None:
    """An ending runs to the next bar line other than ``|`` (``:|``, ``||``, ``|]``, ``|:``) or the next
    ending; music21's repeat brackets hold only an ending's first and last bar (and a second ending only
    its first), so the bars between would be played on every pass."""
    from music21 import spanner, stream

    for part in getattr(score, "parts", [score]):
        measures = list(part.getElementsByClass(stream.Measure))
        index = {id(m): i for i, m in enumerate(measures)}
        brackets = list(part.spannerBundle.getByClass(spanner.RepeatBracket))
        starts = {index[id(b.getFirst())] for b in brackets if b.getFirst() is not None and id(b.getFirst()) in index}
        for bracket in brackets:
            first = bracket.getFirst()
            if first is None or id(first) not in index:
                continue
            i = index[id(first)]
            spanned = [first]
            while (measures[i].rightBarline is None and i + 1 < len(measures) and i + 1 not in starts
                   and measures[i + 1].leftBarline is None):
                i += 1
                spanned.append(measures[i])
            if len(spanned) > len(bracket.getSpannedElements()):  # a new bracket: the bars in order
                part.replace(bracket, spanner.RepeatBracket(spanned, number=bracket.number))


def apply_edits(text: str, edits: list[tuple[int, int, str]]) -> str:
    """``text`` with each (start, end, replacement); blank lines (which would end the tune) removed."""
    out, position = [], 0
    for start, end, replacement in sorted(edits, key=lambda e: (e[0], e[1])):
        if start < position:
            continue  # never overlaps by construction; keep the first
        out += [text[position:start], replacement]
        position = end
    out.append(text[position:])
    return "\n".join(line for line in "".join(out).split("\n") if line.strip())


def prepare(text: str, source: str = "<text>", file_line: Callable[[int], int] = lambda line: line) -> Reading:
    """The tune (header and body) rewritten for music21, and the notes its score must hold."""
    walker = _Walker(text, source, file_line)
    walker.read_header()
    walker.voice("")
    walker.walk(analyze_tune(text).events)
    walker.finish()
    return Reading(apply_edits(text, walker.edits), walker.expected, text, walker.marks)
