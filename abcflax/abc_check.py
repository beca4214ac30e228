"""A pure-Python ABC 2.1 checker: bar durations, balance of brackets and quotes, malformed notes.

Why a hand-written checker: generated tunes must be checked fast and without music21 or JAX, and the
checker must never raise or hang on the garbage a sampler can produce. One left-to-right pass over the
text (linear time, no recursion) turns the body into :class:`Event` objects, closes :class:`BarInfo`
records at bar lines and reports :class:`CheckProblem` objects with 1-based line and column.

Rules that decide which bars may be short (the usual folk-tune shapes, so real tunes pass):
  * the first bar of a voice (a pickup), the last bar of a voice;
  * a bar closed by anything but a plain ``|`` (``:|`` ``||`` ``|]`` ``::`` ``|:``) or followed by an
    ending (``[1`` ``|2``) or a ``P:``/``K:``/``M:`` change;
  * a bar that starts right after such a boundary (the pickup of the next part) or holds a field change;
  * two short bars on both sides of a line break that add up to one full bar (a split bar).
An overfull bar is always a problem. ``M:none`` (or no ``M:``) turns duration checks off.

Voices (``V:``) are checked separately: each voice has its own bars, meter, unit, key and time.
Bars are numbered from 1 in messages (``BarInfo.index`` is 0-based). Repeats are not expanded.
Not handled: a file header's defaults (fields before the first ``X:``) and ``U:`` redefinitions of
decoration letters; accidentals do not carry over a tie into the next bar.
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass, field, replace
from fractions import Fraction

from .tunebook import is_no_chord

KINDS = ("syntax", "duration", "structure", "header")
_CHORD_START = set("ABCDEFGabcdefg(")  # what abc2midi lets a chord symbol start with ("(G)": an optional chord)
MAX_PROBLEMS = 200  # per tune; a megabyte of garbage must not produce a megabyte of messages
MAX_DIGITS = 5  # longer digit strings are absurd values (and int() of huge strings is slow)
MAX_LENGTH = 256  # largest note length multiplier or divisor accepted
MAX_TUPLET = 32
# most notes in one grace group {...}: real ones hold a few; music21's MusicXML writer takes time cubic in a
# group's size (200 notes 2 s, 500 notes 24 s, 1,000 notes 3 min)
MAX_GRACE_NOTES = 32
MAX_MULTIREST = 10_000

_FIELD_LINE = re.compile(r"([A-Za-z+]):")
_NOTE = re.compile(r"(\^\^|\^|__|_|=)?([A-Ga-g])([',]*)(\d*)((?:/\d*)*)")
_LENGTH = re.compile(r"(\d*)((?:/\d*)*)")
_REST = re.compile(r"([zx])(\d*)((?:/\d*)*)")
_MULTIREST = re.compile(r"([ZX])(\d*)")
_TUPLET = re.compile(r"\((\d+)(?::(\d*))?(?::(\d*))?")
_ENDING = re.compile(r"[\d,\-]*")
_DIGITS = re.compile(r"\d+")
_DECORATION_NAME = re.compile(r"[^\s!+\"|\[\]{}]*")
_METER = re.compile(r"\(?(\d+(?:\+\d+)*)\)?/(\d+)")
_UNIT = re.compile(r"(\d+)(?:/(\d+))?")
_ONE = Fraction(1)
_LINE_REST_EMPTY = re.compile(r"[ \t]*(?:[%\\]|$)")  # only blanks, a comment or a continuation
_ASCII_DIGITS = frozenset("0123456789")
_KEY = re.compile(r"(none|HP|Hp|[A-G][#b]?)\s*([A-Za-z]*)(.*)", re.S)

_LETTER_SEMITONE = {"C": 0, "D": 2, "E": 4, "F": 5, "G": 7, "A": 9, "B": 11}
_LETTER_FIFTHS = {"F": -1, "C": 0, "G": 1, "D": 2, "A": 3, "E": 4, "B": 5}
_SHARP_ORDER = "FCGDAEB"
_MODES = {"": 0, "m": -3, "maj": 0, "ion": 0, "min": -3, "aeo": -3, "dor": -2, "phr": -4, "lyd": 1,
          "mix": -1, "loc": -5}
_KEY_WORDS = ("clef", "middle", "transpose", "octave", "stafflines", "staffscale", "exp", "treble",
              "bass", "alto", "tenor", "perc", "none")
_ACCIDENTALS = {"^^": 2, "^": 1, "=": 0, "_": -1, "__": -2}
_BROKEN = {1: (Fraction(3, 2), Fraction(1, 2)), 2: (Fraction(7, 4), Fraction(1, 4)),
           3: (Fraction(15, 8), Fraction(1, 8))}
TUPLET_Q = {2: 3, 3: 2, 4: 3, 6: 2, 8: 3}  # others: 3 in compound meters, else 2 (ABC 2.1, 4.13)
_DECORATION_CHARS = set(".~HIJKLMNOPQRSTUVWhijklmnopqrstuvw")  # H-W, h-w: ABC 2.1 user symbols
_DECORATED = set("ABCDEFGabcdefg^_=zx[") | _DECORATION_CHARS  # what may follow a one-character decoration
_BOUNDARY_FIELDS = ("P", "K", "M")  # a part, key or meter change starts a new section


@dataclass(frozen=True)
class CheckProblem:
    """One problem in a tune: where (1-based line and column in the text given) and what."""

    line: int
    column: int
    message: str
    kind: str  # "syntax" | "duration" | "structure" | "header"

    def __str__(self) -> str:
        return f"{self.line}:{self.column}: {self.message}"


@dataclass(frozen=True)
class Event:
    """One musical token of the body, with its place in the text and in time (whole notes)."""

    start: int  # character offset in the tune text (inclusive)
    end: int  # character offset (exclusive)
    kind: str  # note rest chord grace barline ending chord_symbol annotation decoration field
    # tuplet slur tie broken spacer overlay multirest
    onset: Fraction  # from the start of the voice, repeats not expanded
    duration: Fraction
    bar: int  # 0-based index of the bar (per voice) the token belongs to
    pitches: tuple[int, ...] = ()  # MIDI numbers with key signature and bar accidentals applied
    text: str = ""
    voice: str = ""  # "" when the tune has no V: field


@dataclass(frozen=True)
class BarInfo:
    """One bar of one voice: where it starts, how long it is, how long the meter says it should be."""

    index: int  # 0-based, per voice; empty bars (no notes or rests) are not counted
    line: int  # where the bar's first token is
    column: int
    duration: Fraction
    expected: Fraction | None  # the meter's bar length (None for M:none)
    closing: str  # the bar line that ends it ("" at the end of the tune)
    voice: str = ""
    allowed_short: bool = False  # pickup, last bar or next to a section boundary
    bars_spanned: int = 1  # a multi-bar rest Z4 counts as 4 bars
    close_line: int = 0  # where the closing bar line is (0 at the end of the tune)
    close_column: int = 0


@dataclass(frozen=True)
class TuneAnalysis:
    """Everything the checker learned about one tune."""

    meter: Fraction | None  # bar length at the start of the body (None for M:none)
    meter_text: str
    unit: Fraction  # L: at the start of the body
    key: str  # K: as written
    bars: list[BarInfo]
    events: list[Event]
    problems: list[CheckProblem]
    pickup: Fraction  # length of the first bar when it is a pickup, else 0


# ---------------------------------------------------------------------------------------------------
# Field values


def _small_int(digits: str) -> int | None:
    """The value of a digit string, or None when it is empty or absurdly long."""
    if not digits or len(digits) > MAX_DIGITS:
        return None
    return int(digits)


@dataclass(frozen=True)
class Meter:
    """A parsed M: value; ``length`` is None for M:none."""

    length: Fraction | None
    numerator: int = 0
    text: str = ""

    @property
    def compound(self) -> bool:
        return self.numerator > 3 and self.numerator % 3 == 0

    def format(self, duration: Fraction) -> str:
        """``duration`` in the meter's own units when it divides evenly (7/8 in 6/8), else whole notes."""
        if self.length is None or not self.numerator:
            return str(duration)
        denominator = (self.length / self.numerator).denominator
        count = duration * denominator
        return f"{count.numerator}/{denominator}" if count.denominator == 1 else str(duration)


_BEFORE_BROKEN = " \t-)"  # what may stand between a note and its > or <, on the same line
_LINE_BREAK_TO_BROKEN = re.compile(r"\\?[ \t]*\r?\n[ \t]*(?=[<>])")  # then a line that starts with > or <


def _after_broken_gap(text: str, i: int, line_end: int) -> int:
    """Where a ``>``/``<`` belonging to the note that ends at ``i`` would stand: past ties, blanks and slur
    ends on its line, and past the line break when the next line starts with the mark."""
    while i < line_end and text[i] in _BEFORE_BROKEN:
        i += 1
    if i >= line_end:
        match = _LINE_BREAK_TO_BROKEN.match(text, line_end)
        return match.end() if match else len(text)
    return i


def parse_meter(value: str) -> tuple[Meter, str | None]:
    """(meter, error message or None) for an M: value; a bad value gives M:none and an error."""
    text = value.split("%", 1)[0].strip()
    compact = text.replace(" ", "")
    if compact.lower() in ("none", ""):
        return Meter(None, 0, text), None
    if compact == "C":
        return Meter(Fraction(1), 4, text), None
    if compact == "C|":
        return Meter(Fraction(1), 2, text), None
    match = _METER.fullmatch(compact)
    if not match:
        return Meter(None, 0, text), f"meter M:{text} is not understood"
    parts = [_small_int(p) for p in match.group(1).split("+")]
    denominator = _small_int(match.group(2))
    if any(p is None or p == 0 for p in parts) or not denominator or denominator > MAX_LENGTH:
        return Meter(None, 0, text), f"meter M:{text} has an absurd value"
    numerator = sum(parts)  # type: ignore[arg-type]
    return Meter(Fraction(numerator, denominator), numerator, text), None


def parse_unit(value: str) -> tuple[Fraction | None, str | None]:
    """(unit note length or None, error) for an L: value."""
    text = value.split("%", 1)[0].strip().replace(" ", "")
    match = _UNIT.fullmatch(text)
    if not match:
        return None, f"unit length L:{text} is not understood"
    numerator = _small_int(match.group(1))
    denominator = _small_int(match.group(2)) if match.group(2) is not None else 1
    if not numerator or not denominator or numerator > MAX_LENGTH or denominator > MAX_LENGTH:
        return None, f"unit length L:{text} has an absurd value"
    if numerator != 1:  # abc2midi: "Default length must be 1/X"; the grammar's note values assume it too
        return None, f"unit length L:{text} is not 1/n (ABC 2.1: L:1/4, L:1/8, L:1/16, or L:1 for a whole note)"
    return Fraction(numerator, denominator), None


# ABC 2.1's Q: (3.1.8): quoted text before or after the beats, "n/d [n/d...]=bpm", or the old forms "C=bpm" and a
# bare "bpm"; music21 reads only those (Q:fast!! stopped export with a ValueError)
_TEMPO_BEATS = re.compile(r"(?:(?:\d+/\d+|C\d*)(?:[ \t]+\d+/\d+)*[ \t]*=[ \t]*)?\d+(?:\.\d+)?")


def tempo_problem(value: str) -> str | None:
    """The error message for a ``Q:`` value that is not tempo as ABC 2.1 writes it, or None."""
    text = value.split("%", 1)[0].strip()
    if text.count('"') % 2:
        return f'tempo Q:{text} has an unclosed "'
    beats = re.sub(r'"[^"]*"', " ", text).strip()
    if beats and not (_TEMPO_BEATS.fullmatch(beats) and all(int(d) for d in re.findall(r"/(\d+)", beats))):
        return f'tempo Q:{text} is not understood (ABC 2.1: Q:1/4=120, Q:"Allegro" 1/4=120, Q:"Allegro")'
    return None


def default_unit(meter: Meter) -> Fraction:
    """ABC 2.1 default L: 1/16 when the meter is shorter than 3/4, else (and for M:none) 1/8."""
    if meter.length is not None and meter.length < Fraction(3, 4):
        return Fraction(1, 16)
    return Fraction(1, 8)


def parse_key(value: str) -> tuple[dict[str, int] | None, str | None]:
    """(letter -> semitone alteration, error) for a K: value; None means "keep the current key"."""
    text = value.split("%", 1)[0].strip()
    match = _KEY.match(text)
    if not match:
        first = text.split("=", 1)[0].split(" ", 1)[0].lower()
        if not text or first in _KEY_WORDS or text.startswith(("^", "_", "=")):
            return _explicit_accidentals(text, {}) if text.startswith(("^", "_", "=")) else None, None
        return None, f"key K:{text} is not understood"
    tonic, mode, rest = match.groups()
    if tonic in ("none", "HP"):
        return {}, None
    if tonic == "Hp":
        return {"F": 1, "C": 1}, None
    mode_key = mode.lower()[:3] if mode.lower() not in ("m",) else "m"
    if mode and mode_key not in _MODES:
        if mode.lower() in _KEY_WORDS or mode.lower().startswith(_KEY_WORDS):
            rest, mode_key = mode + rest, ""
        else:
            return None, f"key K:{text} has an unknown mode {mode!r}"
    fifths = _LETTER_FIFTHS[tonic[0]] + (7 if tonic.endswith("#") else -7 if tonic.endswith("b") else 0)
    fifths += _MODES[mode_key]
    if not -7 <= fifths <= 7:
        return None, f"key K:{text} needs more than 7 sharps or flats"
    return _explicit_accidentals(rest, _signature(fifths)), None


def _signature(fifths: int) -> dict[str, int]:
    """Key signature for a number of sharps (positive) or flats (negative)."""
    if fifths >= 0:
        return {letter: 1 for letter in _SHARP_ORDER[:fifths]}
    return {letter: -1 for letter in _SHARP_ORDER[::-1][:-fifths]}


def _explicit_accidentals(rest: str, key: dict[str, int]) -> dict[str, int]:
    """Apply ``^c _B =f`` after the mode (``exp`` drops the signature first)."""
    words = rest.split()
    if "exp" in words:
        key = {}
    key = dict(key)
    for word in words:
        match = re.fullmatch(r"(\^\^|\^|__|_|=)([A-Ga-g])", word)
        if match:
            key[match.group(2).upper()] = _ACCIDENTALS[match.group(1)]
    return key


# ---------------------------------------------------------------------------------------------------
# Scanner state


@dataclass
class _Bar:
    """A bar being built (mutable); frozen into a BarInfo at the end."""

    start: int
    duration: Fraction = Fraction(0)
    expected: Fraction | None = None
    meter: Meter | None = None
    closing: str = ""
    close_at: int = -1
    first: bool = False
    allowed: bool = False
    spanned: int = 1


@dataclass
class _Voice:
    """Per-voice state: each voice has its own meter, unit, key, time and bars."""

    name: str
    meter: Meter
    unit: Fraction
    key: dict[str, int]
    time: Fraction = Fraction(0)
    bar_time: Fraction = Fraction(0)  # time at the start of the current bar (voice overlay resets to it)
    overlay_max: Fraction = Fraction(0)
    bar_accidentals: dict = field(default_factory=dict)
    bar: _Bar | None = None
    bars: list = field(default_factory=list)
    last_closed: _Bar | None = None  # the bar closed most recently, while no music followed it
    after_boundary: bool = False
    content: bool = False  # the current bar holds a note or rest
    tuplets: list = field(default_factory=list)  # [remaining notes, ratio, offset, text]
    broken: tuple | None = None  # (factor for the next note, offset, text)
    broken_at: int = -1  # offset of the > or < that the last note looked ahead to
    open_repeat: int = -1  # offset of an open |:

    @property
    def index(self) -> int:
        return len(self.bars)


class _Scanner:
    """One pass over one tune's text."""

    def __init__(self, text: str):
        self.text = text
        self.line_starts = [0] + [m.end() for m in re.finditer("\n", text)]
        self.problems: list[CheckProblem] = []
        self.dropped = 0
        self.events: list[Event] = []
        self.voices: dict[str, _Voice] = {}
        self.header_meter = Meter(None, 0, "")
        self.header_unit: Fraction | None = None
        self.header_key: dict[str, int] = {}
        self.key_text = ""
        self.voice: _Voice | None = None
        self.slurs: list[int] = []
        self.lengths: dict[tuple[str, str], Fraction] = {}
        self.durations: dict[tuple[Fraction, str, str], Fraction] = {}
        self.line_end = 0
        self.handlers = {"(": self.paren, ")": self.close_slur, "{": self.grace, "!": self.decoration,
                         "+": self.decoration, ">": self.broken, "<": self.broken, "-": self.tie,
                         "\\": self.backslash, "%": lambda i, end: end, "&": self.overlay,
                         "y": self.spacer, "Z": self.multirest, "X": self.multirest}

    # --- positions and problems ------------------------------------------------------------------

    def where(self, offset: int) -> tuple[int, int]:
        """1-based (line, column) of a character offset."""
        line = bisect.bisect_right(self.line_starts, offset)
        return line, offset - self.line_starts[line - 1] + 1

    def problem(self, offset: int, message: str, kind: str = "syntax") -> None:
        if len(self.problems) >= MAX_PROBLEMS:
            self.dropped += 1
            return
        line, column = self.where(offset)
        self.problems.append(CheckProblem(line, column, message, kind))

    # --- header ----------------------------------------------------------------------------------

    def run(self) -> None:
        lines = self.text.split("\n")
        body_line = self.read_header(lines)
        unit = self.header_unit or default_unit(self.header_meter)
        self.header_unit = unit
        self.voice = self.get_voice("")
        for number in range(body_line, len(lines)):
            if not lines[number].strip():
                self.after_blank(lines, number)
                break
            self.body_line(self.line_starts[number], len(lines[number]))
        self.current_voice = self.voice  # where a continuation would go on (``finish`` visits every voice)
        self.finish()

    def read_header(self, lines: list[str]) -> int:
        """Read header fields up to K:; returns the index of the first body line."""
        k_line = next((n for n, line in enumerate(lines) if line.startswith("K:")), None)
        if k_line is None:
            k_line = -1
            while k_line + 1 < len(lines) and (_FIELD_LINE.match(lines[k_line + 1])
                                               or lines[k_line + 1].startswith("%")):
                k_line += 1
            self.problem(0, "the tune has no K: (key) field", "header")
        for number in range(k_line + 1):
            line = lines[number]
            offset = self.line_starts[number]
            match = _FIELD_LINE.match(line)
            if match:
                self.header_field(match.group(1), line[2:], offset)
            elif line.strip() and not line.startswith("%"):
                self.problem(offset, "header line is not a field (expected e.g. T:, M:, L:, K:)", "header")
        return k_line + 1

    def header_field(self, name: str, value: str, offset: int) -> None:
        if name == "M":
            self.header_meter, error = parse_meter(value)
        elif name == "L":
            self.header_unit, error = parse_unit(value)
        elif name == "Q":
            error = tempo_problem(value)
        elif name == "K":
            self.key_text = value.split("%", 1)[0].strip()
            key, error = parse_key(value)
            self.header_key = key if key is not None else self.header_key
            if not self.key_text:  # abc2midi: "No valid K: field found at start of tune", and no MIDI
                error = "K: names no key: write one (K:G, K:Ador) or K:none for no key signature"
        else:
            return
        if error:
            self.problem(offset, error, "header")

    def get_voice(self, name: str) -> _Voice:
        if name not in self.voices:
            self.voices[name] = _Voice(name, self.header_meter, self.header_unit or Fraction(1, 8),
                                       dict(self.header_key))
        return self.voices[name]

    def after_blank(self, lines: list[str], number: int) -> None:
        for later in range(number + 1, len(lines)):
            if lines[later].strip() and not lines[later].startswith("%"):
                self.problem(self.line_starts[later],
                             "text after a blank line (a blank line ends the tune)", "structure")
                return

    # --- body lines ------------------------------------------------------------------------------

    def body_line(self, start: int, length: int) -> None:
        text = self.text
        if text.startswith("%", start):
            return
        match = _FIELD_LINE.match(text, start, start + length)
        if match:
            name = match.group(1)
            self.add(start, start + length, "field", text=text[start:start + length])
            self.field(name, text[start + 2:start + length], start)
            return
        self.music(start, start + length)

    def field(self, name: str, value: str, offset: int) -> None:
        """A field in the body (its own line or ``[X:...]``): meter, unit, key, part, voice."""
        voice = self.voice
        if name == "V":
            words = value.split("%", 1)[0].split()
            self.voice = self.get_voice(words[0] if words else "")
            return
        if name == "X":
            self.problem(offset, "X: inside a tune (a blank line must separate tunes)", "structure")
            return
        if name in _BOUNDARY_FIELDS:
            self.mark_boundary(voice)
        if name == "M":
            meter, error = parse_meter(value)
            voice.meter = meter
        elif name == "L":
            unit, error = parse_unit(value)
            voice.unit = unit if unit is not None else voice.unit
        elif name == "K":
            key, error = parse_key(value)
            voice.key = key if key is not None else voice.key
        elif name == "Q":
            error = tempo_problem(value)
        else:
            return
        if error:
            self.problem(offset, error)

    def mark_boundary(self, voice: _Voice) -> None:
        """A part/key/meter change: the bars on both sides of it may be short."""
        if voice.content and voice.bar is not None:
            voice.bar.allowed = True
        elif voice.last_closed is not None:
            voice.last_closed.allowed = True
        voice.after_boundary = True

    # --- music -----------------------------------------------------------------------------------

    def music(self, i: int, end: int) -> None:
        text = self.text
        self.line_end = end
        while i < end:
            c = text[i]
            if c in "ABCDEFGabcdefg^_=":
                i = self.note(i, end)
            elif c in " \t`$":
                i += 1
            elif c in "|:":
                i = self.barline(i, end)
            elif c == '"':
                i = self.quoted(i, end)
            elif c == "[":
                i = self.bracket(i, end)
            elif c in "zx":
                i = self.rest(i, end)
            elif c in _DECORATION_CHARS:
                self.add(i, i + 1, "decoration", text=c)
                self.decorated_note_follows(c, i)
                i += 1
            else:
                i = self.other(c, i, end)

    def decorated_note_follows(self, c: str, i: int) -> None:
        """A one-character decoration stands just before its note, rest or chord (or another decoration):
        abc2midi refuses ``~ d``, ``.{g}d``, ``~(d``, ``~"G"d`` ("Malformed note"), and rolls and trills
        on a chord."""
        after = self.text[i + 1:i + 2]
        if after not in _DECORATED:  # "structure": music21 reads it, and abc2midi plays the notes
            self.problem(i, f"decoration {c} must stand just before its note", "structure")
        elif after == "[" and c in "~T":
            self.problem(i, f"a roll or trill ({c}) cannot decorate a chord (abc2midi does not play it)",
                         "structure")

    def other(self, c: str, i: int, end: int) -> int:
        """The less common tokens."""
        handler = self.handlers.get(c)
        if handler is not None:
            return handler(i, end)
        if c in _ASCII_DIGITS or c == "/":
            j = _LENGTH.match(self.text, i, end).end()
            self.problem(i, f"length {self.text[i:j]} is not attached to a note")
            return max(j, i + 1)
        names = {"]": "] without [", "}": "} without {", "'": "octave mark ' without a note",
                 ",": "octave mark , without a note"}
        self.problem(i, names.get(c, f"unexpected character {c!r}"))
        return i + 1

    def add(self, start: int, end: int, kind: str, duration: Fraction = Fraction(0),
            pitches: tuple[int, ...] = (), text: str = "") -> Event:
        voice = self.voice
        event = Event(start, end, kind, voice.time, duration, voice.index, pitches, text, voice.name)
        self.events.append(event)
        return event

    # --- notes, rests, chords --------------------------------------------------------------------

    def duration(self, digits: str, slashes: str, offset: int) -> Fraction:
        """``unit * length``, cached: Fraction arithmetic dominates the time on long inputs."""
        unit = self.voice.unit
        if not digits and not slashes:
            return unit
        key = (unit, digits, slashes)
        cached = self.durations.get(key)
        if cached is None:
            cached = unit * self.length(digits, slashes, offset)
            if len(self.durations) < 1024 and (digits, slashes) in self.lengths:
                self.durations[key] = cached
        return cached

    def length(self, digits: str, slashes: str, offset: int) -> Fraction:
        """Multiplier of L: for ``3/2``, ``/``, ``//``, ``3/``; absurd values are reported as 1."""
        if not digits and not slashes:
            return _ONE
        cached = self.lengths.get((digits, slashes))
        if cached is not None:
            return cached
        value = self.parse_length(digits, slashes, offset)
        if value is not None and len(self.lengths) < 256:
            self.lengths[(digits, slashes)] = value
        return value or _ONE

    def parse_length(self, digits: str, slashes: str, offset: int) -> Fraction | None:
        """The multiplier, or None (reported) for absurd lengths; only short, valid ones are cached."""
        numerator = 1
        if digits:
            value = _small_int(digits)
            if value is None or value == 0 or value > MAX_LENGTH:
                self.problem(offset, f"note length {digits} is absurd")
                return None
            numerator = value
        denominator = 1
        for part in slashes.split("/")[1:]:
            value = _small_int(part) if part else 2
            if value is None or value == 0:
                self.problem(offset, f"note length {digits}{slashes} divides by {part or 0}")
                return None
            denominator *= value
            if denominator > MAX_LENGTH:
                self.problem(offset, f"note length {digits}{slashes} is absurdly short")
                return None
        return Fraction(numerator, denominator)

    def pitch(self, accidental: str | None, letter: str, octaves: str, offset: int) -> int:
        """MIDI number; an accidental carries to the end of the bar for that pitch and octave."""
        voice = self.voice
        octave = (5 if letter.islower() else 4) + octaves.count("'") - octaves.count(",")
        upper = letter.upper()
        if accidental is not None:
            alter = _ACCIDENTALS[accidental]
            voice.bar_accidentals[(upper, octave)] = alter
        else:
            alter = voice.bar_accidentals.get((upper, octave), voice.key.get(upper, 0))
        midi = 12 * (octave + 1) + _LETTER_SEMITONE[upper] + alter
        if not 0 <= midi <= 127:
            self.problem(offset, f"note {letter}{octaves} is outside the MIDI range")
        return midi

    def note(self, i: int, end: int) -> int:
        match = _NOTE.match(self.text, i, end)
        if not match:
            j = i
            while j < end and self.text[j] in "^_=":
                j += 1
            self.problem(i, f"accidental {self.text[i:j]} is not followed by a note (A-G, a-g)")
            return j
        accidental, letter, octaves, digits, slashes = match.groups()
        midi = self.pitch(accidental, letter, octaves, i)
        duration = self.duration(digits, slashes, i)
        self.timed(i, match.end(), "note", duration, (midi,))
        return match.end()

    def rest(self, i: int, end: int) -> int:
        match = _REST.match(self.text, i, end)
        self.timed(i, match.end(), "rest", self.duration(match.group(2), match.group(3), i))
        return match.end()

    def multirest(self, i: int, end: int) -> int:
        """``Z4``: four whole bars of rest (in the current meter)."""
        match = _MULTIREST.match(self.text, i, end)
        count = _small_int(match.group(2)) if match.group(2) else 1
        if count is None or count == 0 or count > MAX_MULTIREST:
            self.problem(i, f"multi-bar rest {match.group(0)} has an absurd count")
            count = 1
        voice = self.voice
        duration = voice.meter.length * count if voice.meter.length is not None else Fraction(0)
        self.timed(i, match.end(), "multirest", duration)
        if voice.bar is not None:
            voice.bar.spanned += count - 1
        return match.end()

    def timed(self, start: int, end: int, kind: str, duration: Fraction,
              pitches: tuple[int, ...] = ()) -> None:
        """Add a note, rest or chord: apply tuplets and a pending broken rhythm, advance time."""
        voice = self.voice
        if not voice.content:
            self.open_bar(start)
        if voice.tuplets:
            for tuplet in voice.tuplets:
                duration *= tuplet[1]
                tuplet[0] -= 1
            voice.tuplets = [t for t in voice.tuplets if t[0] > 0]
        if voice.broken is not None:
            duration *= voice.broken[0]
            voice.broken = None
        if end < len(self.text) and self.text[end] in _BEFORE_BROKEN + "<>\r\n\\":
            factor = self.broken_ahead(end)
            duration = duration if factor is _ONE else duration * factor
        self.add(start, end, kind, duration, pitches, self.text[start:end])
        voice.time += duration

    def broken_ahead(self, end: int) -> Fraction:
        """``A>B``: a ``>`` right after this note makes it longer and the next note shorter; looking ahead
        keeps the pass single and events immutable. Ties, blanks and slur ends may come between (``(ABc)>d``,
        as abc2midi reads it), and so may a line break: old tunebooks start a line with the ``>``."""
        text, j = self.text, _after_broken_gap(self.text, end, self.line_end)
        if j >= len(text) or text[j] not in "<>":
            return _ONE
        k = j
        while k < len(text) and text[k] == text[j]:
            k += 1
        if k - j > 3:
            return _ONE  # reported when the token itself is read
        longer, shorter = _BROKEN[k - j]
        first, second = (longer, shorter) if text[j] == ">" else (shorter, longer)
        self.voice.broken = (second, j, text[j:k])
        self.voice.broken_at = j
        return first

    def open_bar(self, start: int) -> None:
        """The first note or rest of a bar fixes the bar's expected length."""
        voice = self.voice
        if voice.bar is None:
            voice.bar = _Bar(start)
        voice.content = True
        voice.bar.start = start
        voice.bar.meter = voice.meter
        voice.bar.expected = voice.meter.length
        voice.bar.first = not voice.bars
        voice.bar.allowed = voice.bar.allowed or voice.after_boundary
        voice.last_closed = None

    def bracket(self, i: int, end: int) -> int:
        """``[`` starts an inline field, an ending, a ``[|`` bar line or a chord."""
        text = self.text
        nxt = text[i + 1] if i + 1 < end else ""
        if nxt.isalpha() and i + 2 < end and text[i + 2] == ":":
            return self.inline_field(i, end)
        if nxt in _ASCII_DIGITS:
            return self.ending(i, i + 1, end)
        if nxt == "|":
            return self.barline(i, end)
        return self.chord(i, end)

    def inline_field(self, i: int, end: int) -> int:
        close = self.text.find("]", i, end)
        if close < 0:
            self.problem(i, f"inline field {self.text[i:i + 3]} is not closed with ]")
            return end
        self.add(i, close + 1, "field", text=self.text[i:close + 1])
        self.field(self.text[i + 1], self.text[i + 3:close], i)
        return close + 1

    def chord(self, i: int, end: int) -> int:
        """``[CEG]2``: the chord lasts as long as its first note times the length after ``]``."""
        text = self.text
        j, notes = i + 1, []
        while j < end and text[j] != "]":
            c = text[j]
            match = _NOTE.match(text, j, end) if c in "ABCDEFGabcdefg^_=" else None
            if match and match.group(2):
                notes.append(match)
                j = match.end()
            elif c in " -.~()" or c in _DECORATION_CHARS:
                j += 1
            elif c in "!+" and text.find(c, j + 1, end) > j:
                j = text.find(c, j + 1, end) + 1
            else:
                break
        if j >= end or text[j] != "]":
            self.problem(i, "[ chord is not closed with ]")
            return i + 1
        if not notes:
            self.problem(i, "empty chord []")
            return j + 1
        pitches = tuple(self.pitch(m.group(1), m.group(2), m.group(3), m.start()) for m in notes)
        first = self.length(notes[0].group(4), notes[0].group(5), notes[0].start())
        suffix = _LENGTH.match(text, j + 1, end)
        duration = self.voice.unit * first * self.length(suffix.group(1), suffix.group(2), j + 1)
        self.timed(i, suffix.end(), "chord", duration, pitches)
        return suffix.end()

    def grace(self, i: int, end: int) -> int:
        """``{gab}``: grace notes take no time."""
        text = self.text
        if self._tie_pending():  # "structure": music21 reads the notes, abc2midi reports it and plays them
            self.problem(i, "a tie '-' cannot reach over grace notes { } to the next note "
                            "(abc2midi: \"Could not find note to be tied\")", "structure")
        j, pitches = i + 1, []
        while j < end and text[j] != "}":
            match = _NOTE.match(text, j, end) if text[j] in "ABCDEFGabcdefg^_=" else None
            if match:
                pitches.append(self.pitch(match.group(1), match.group(2), match.group(3), j))
                j = match.end()
            elif text[j] in " /-[]":
                j += 1
            else:
                break
        if j >= end or text[j] != "}":
            self.problem(i, "{ grace notes are not closed with }")
            return i + 1
        if not pitches:
            self.problem(i, "empty grace notes {}")
        elif len(pitches) > MAX_GRACE_NOTES:
            self.problem(i, f"grace notes {{...}} hold {len(pitches)} notes (at most {MAX_GRACE_NOTES} in one group)")
        self.add(i, j + 1, "grace", pitches=tuple(pitches), text=text[i:j + 1])
        return j + 1

    # --- bar lines and endings -------------------------------------------------------------------

    def barline(self, i: int, end: int) -> int:
        text = self.text
        j = i + 1 if text[i] == "[" else i
        while j < end and text[j] in "|:":
            j += 1
        token = text[i:j]
        if j < end and text[j] == "]" and "|" in token:
            j += 1
            token = text[i:j]
        if "|" not in token and token != "::":
            if token == ":" * len(token) and len(token) > 2:
                token = "::"
            else:
                self.problem(i, f"stray {token!r} (not a bar line)")
                return j
        self.add(i, j, "barline", text=token)
        self.close_bar(token, i)
        if j < end and text[j] in _ASCII_DIGITS:
            return self.ending(j, j, end)
        return j

    def ending(self, start: int, digits_at: int, end: int) -> int:
        """``[1``, ``|2``, ``[1,2``: an ending starts a section, so the bars around it may be short."""
        j = _ENDING.match(self.text, digits_at, end).end()
        self.add(start, j, "ending", text=self.text[start:j])
        self.mark_boundary(self.voice)
        return j

    def close_bar(self, token: str, offset: int) -> None:
        voice = self.voice
        self.end_of_bar_checks(offset)
        boundary = token not in ("|", "[|]")
        if voice.content:
            bar = voice.bar
            bar.duration = max(voice.overlay_max, voice.time - voice.bar_time)
            bar.closing, bar.close_at = token, offset
            bar.allowed = bar.allowed or boundary
            voice.bars.append(bar)
            voice.last_closed = bar
        elif boundary and voice.last_closed is not None:
            voice.last_closed.allowed = True
        self.repeat_structure(token, offset)
        voice.after_boundary = boundary or (voice.after_boundary and not voice.content)
        voice.bar = _Bar(offset + len(token))
        voice.content = False
        voice.bar_time = voice.time
        voice.overlay_max = Fraction(0)
        voice.bar_accidentals = {}

    def repeat_structure(self, token: str, offset: int) -> None:
        """A second ``|:`` while one is still open has no matching ``:|``."""
        voice = self.voice
        core = token.strip("[]")
        closes = core.startswith(":") or "::" in core
        opens = core.endswith(":") and core != ":"
        if closes:
            voice.open_repeat = -1
        if opens:
            if voice.open_repeat >= 0 and not closes:
                line, column = self.where(voice.open_repeat)
                self.problem(offset, f"{token} starts a repeat while the |: at {line}:{column} is still open",
                             "structure")
            voice.open_repeat = offset

    def end_of_bar_checks(self, offset: int, at_end: bool = False) -> None:
        """Tuplets and broken rhythms must get their notes within the bar (``at_end``: the text ends first)."""
        voice = self.voice
        where = UNFINISHED_AT_END if at_end else "before the bar line"
        for remaining, _ratio, start, token in voice.tuplets:
            self.problem(start, f"tuplet {token} is missing {remaining} note(s) {where}")
        voice.tuplets = []
        if voice.broken is not None:
            self.problem(voice.broken[1], f"broken rhythm {voice.broken[2]} has no note after it"
                         + (f" {where}" if at_end else ""))
            voice.broken = None

    # --- everything else -------------------------------------------------------------------------

    def quoted(self, i: int, end: int) -> int:
        """A chord symbol (``"G"``, or ``"N.C."``: no chord, as tunebooks write it) or an annotation."""
        close = self.text.find('"', i + 1, end)
        if close < 0:
            self.problem(i, 'unclosed " (chord symbol or annotation)')
            return end
        body = self.text[i + 1:close]
        kind = "annotation" if body[:1] in ("^", "_", "<", ">", "@") else "chord_symbol"
        if kind == "chord_symbol" and body and body[0] not in _CHORD_START and not is_no_chord(body):
            # abc2midi reports an error for it ("Guitar chord does not start with A-G"); not blocking: it is
            # text, and the notes around it are read the same
            self.problem(i, f'"{body}" is neither a chord symbol (it would start with A-G) nor an annotation '
                            "(^ _ < > @ first)", "structure")
        self.add(i, close + 1, kind, text=self.text[i:close + 1])
        return close + 1

    def decoration(self, i: int, end: int) -> int:
        """``!trill!`` or ``+trill+``; a lone ``!`` at the end of a line is the old line break."""
        text, mark = self.text, self.text[i]
        close = text.find(mark, i + 1, end)
        name_end = _DECORATION_NAME.match(text, i + 1, end).end()
        if close >= 0 and name_end == close:
            self.add(i, close + 1, "decoration", text=text[i:close + 1])
            return close + 1
        at_line_end = _LINE_REST_EMPTY.match(text, i + 1, end) is not None
        if mark == "!" and (at_line_end or close >= 0):
            return i + 1  # ABC 1.x/2.0 line break marker
        self.problem(i, f"unclosed {mark} decoration")
        return i + 1

    def paren(self, i: int, end: int) -> int:
        """``(`` starts a slur, or a tuplet when a number follows."""
        match = _TUPLET.match(self.text, i, end)
        if not match:
            self.slurs.append(i)
            self.add(i, i + 1, "slur", text="(")
            return i + 1
        self.tuplet(match, i)
        return match.end()

    def tuplet(self, match: re.Match, i: int) -> None:
        """``(p:q:r``: the next r notes take q/p of their written time."""
        voice, token = self.voice, match.group(0)
        p = _small_int(match.group(1))
        if p is None or not 1 < p <= MAX_TUPLET:
            self.problem(i, f"tuplet {token} is absurd")
            return
        default_q = TUPLET_Q.get(p, 3 if voice.meter.compound else 2)
        q = _small_int(match.group(2)) if match.group(2) else default_q
        r = _small_int(match.group(3)) if match.group(3) else p
        if not q or not r or q > MAX_TUPLET or r > MAX_TUPLET:
            self.problem(i, f"tuplet {token} is absurd")
            return
        voice.tuplets.append([r, Fraction(q, p), i, token])
        self.add(i, match.end(), "tuplet", text=token)

    def close_slur(self, i: int, end: int) -> int:
        if self.slurs:
            self.slurs.pop()
        else:
            self.problem(i, ") without (")
        self.add(i, i + 1, "slur", text=")")
        return i + 1

    def broken(self, i: int, end: int) -> int:
        """``A>B``: the first note gets longer, the next one shorter by the same amount."""
        text, voice = self.text, self.voice
        j = i
        while j < end and text[j] == text[i]:
            j += 1
        token = text[i:j]
        self.add(i, j, "broken", text=token)
        if len(token) > 3:
            self.problem(i, f"broken rhythm {token} is too long")
        elif voice.broken_at != i:
            self.problem(i, f"broken rhythm {token} has no note before it")
        voice.broken_at = -1
        return j

    _PASSED_BY_A_TIE = frozenset({"slur", "tuplet", "decoration", "chord_symbol", "annotation", "field"})

    def _tie_pending(self) -> bool:
        """Whether this voice's last note-like token is a tie still waiting for its note."""
        name = self.voice.name
        for event in reversed(self.events):
            if event.voice == name and event.kind not in self._PASSED_BY_A_TIE:
                return event.kind == "tie"
        return False

    def tie(self, i: int, end: int) -> int:
        self.add(i, i + 1, "tie", text="-")
        return i + 1

    def spacer(self, i: int, end: int) -> int:
        j = _LENGTH.match(self.text, i + 1, end).end()
        self.add(i, j, "spacer", text=self.text[i:j])
        return j

    def overlay(self, i: int, end: int) -> int:
        """``&``: another voice in the same bar; time goes back to the start of the bar."""
        voice = self.voice
        voice.overlay_max = max(voice.overlay_max, voice.time - voice.bar_time)
        voice.time = voice.bar_time
        self.add(i, i + 1, "overlay", text="&")
        return i + 1

    def backslash(self, i: int, end: int) -> int:
        if _LINE_REST_EMPTY.match(self.text, i + 1, end) is None:
            self.problem(i, "\\ in the middle of a line (only allowed at the end, to continue it)")
        return i + 1

    # --- the end ---------------------------------------------------------------------------------

    def finish(self) -> None:
        end = len(self.text)
        for voice in self.voices.values():
            self.voice = voice
            self.end_of_bar_checks(end, at_end=True)
            if voice.content:
                voice.bar.duration = max(voice.overlay_max, voice.time - voice.bar_time)
                voice.bars.append(voice.bar)
            if voice.bars:
                voice.bars[-1].allowed = True
        for offset in self.slurs:
            self.problem(offset, "( slur is never closed with )")

    def report_dropped(self) -> None:
        if self.dropped:
            dropped, self.dropped = self.dropped, 0
            line, column = self.where(len(self.text))
            self.problems.append(CheckProblem(line, column, f"... and {dropped} more problems", "syntax"))


def _allow_split_bars(text: str, bars: list[_Bar]) -> None:
    """Two short bars on both sides of a line break that add up to one full bar are one bar written in
    two halves (``A3|`` ending a line, then ``e|`` as the next part's pickup): allow both. On one line
    (``gece|gece|``) they are a misplaced bar line and stay problems."""
    for left, right in zip(bars, bars[1:]):
        if (left.expected is not None and left.expected == right.expected
                and text.find("\n", left.close_at, right.start) >= 0
                and left.duration < left.expected and right.duration < right.expected
                and left.duration + right.duration == left.expected):
            left.allowed = right.allowed = True


def _bar_infos(scanner: _Scanner) -> list[BarInfo]:
    infos = []
    for voice in scanner.voices.values():
        for index, bar in enumerate(voice.bars):
            line, column = scanner.where(bar.start)
            close_line, close_column = scanner.where(bar.close_at) if bar.close_at >= 0 else (0, 0)
            infos.append(BarInfo(index, line, column, bar.duration, bar.expected, bar.closing, voice.name,
                                 bar.first or bar.allowed, bar.spanned, close_line, close_column))
    return infos


def _duration_problems(scanner: _Scanner) -> None:
    """Overfull bars always; short bars only away from pickups and section boundaries."""
    for voice in scanner.voices.values():
        for index, bar in enumerate(voice.bars):
            if bar.expected is None:
                continue
            target = bar.expected * bar.spanned
            short_ok = bar.first or bar.allowed
            if bar.duration > target or (bar.duration < target and not short_ok):
                label = f"bar {index + 1}" + (f" of voice {voice.name}" if voice.name else "")
                meter = {"C": "C (4/4)", "C|": "C| (2/2)"}.get(bar.meter.text, bar.meter.text)
                scanner.problem(bar.start, f"{label} has {bar.meter.format(bar.duration)} but the meter is "
                                f"{meter}", "duration")


def analyze_tune(text: str) -> TuneAnalysis:
    """Analyze one tune (header + body; X: optional). Never raises: problems go in ``problems``."""
    text = str(text).replace("\r\n", "\n").replace("\r", "\n")
    scanner = _Scanner(text)
    try:
        scanner.run()
        for voice in scanner.voices.values():
            _allow_split_bars(scanner.text, voice.bars)
        _duration_problems(scanner)
        scanner.report_dropped()
        bars = _bar_infos(scanner)
    except Exception as exc:  # noqa: BLE001 - a checker must report, not crash; tests assert this is never hit
        scanner.problems.append(CheckProblem(1, 1, f"internal checker error: {type(exc).__name__}: {exc}",
                                             "syntax"))
        bars = []
    scanner.problems.sort(key=lambda p: (p.line, p.column))
    first = next((voice for voice in scanner.voices.values() if voice.bars), None)
    pickup = Fraction(0)
    if first and first.bars and first.bars[0].expected and first.bars[0].duration < first.bars[0].expected:
        pickup = first.bars[0].duration
    return TuneAnalysis(scanner.header_meter.length, scanner.header_meter.text,
                        scanner.header_unit or Fraction(1, 8), scanner.key_text, bars, scanner.events,
                        scanner.problems, pickup)


def pitch_state_at_end(text: str) -> tuple[str, list[Event], dict[str, int], dict[tuple[str, int], int]]:
    """What decides the pitch of a note written after ``text``: (K: as written in the header, the events,
    the current voice's key signature (letter -> alteration), the accidentals in force in its open bar
    ((letter, octave) -> alteration)). Never raises: a tune it cannot read gives what it read."""
    scanner = _Scanner(str(text).replace("\r\n", "\n").replace("\r", "\n"))
    try:
        scanner.run()
    except Exception:  # noqa: BLE001 - as analyze_tune: what was read so far stands
        pass
    voice = getattr(scanner, "current_voice", None) or scanner.voice
    if voice is None:
        return scanner.key_text, scanner.events, dict(scanner.header_key), {}
    return scanner.key_text, scanner.events, dict(voice.key), dict(voice.bar_accidentals)


def check_tune(text: str) -> list[CheckProblem]:
    """Problems in one tune (line and column in ``text``); an empty list means it looks valid."""
    return analyze_tune(text).problems


def check_text(text: str, source: str = "<text>") -> list[str]:
    """Problems in every tune of a tunebook, as ``source:line:col: message`` with file line numbers."""
    from .tunebook import read_tunebook

    tunes, problems = read_tunebook(str(text), source)
    found = [(p.line, 1, p.message) for p in problems]
    for tune in tunes:
        for problem in check_tune(tune.full_text):  # with the file header's M: and L:, which it inherits
            found.append((tune.file_line(problem.line), problem.column, problem.message))
    found.sort(key=lambda item: (item[0], item[1]))
    return [f"{source}:{line}:{column}: {message}" for line, column, message in found]


UNFINISHED_AT_END = "at the end of the tune"  # a tuplet or broken rhythm still owed notes when the text ends
_OPEN_AT_END = ("is not closed with", "unclosed ", "never closed with")  # what a partial tune may leave open
_GRACE_OPEN = "{ grace notes are not closed with }"  # at a partial tune's very end, with a note: closed for it
OPEN_GRACE = r"\{[\^_=A-Ga-g,'/0-9 \-]*[A-Ga-g][\^_=A-Ga-g,'/0-9 \-]*"  # ``{g``, ``{=fg`` (no "}" yet)
EMPTY_GRACE = r"\{(?:\^{1,2}|_{1,2}|=)?"  # ``{``, ``{^``, ``{__``: grace notes begun, their first
# note not yet written (one accidental at most: ``{^_`` or ``{^^^`` is no note's beginning)


_OWES_ITS_NOTE = r"""(?<![A-Za-z"])[.~H-Wh-w]+"""  # one-character decorations ending a music line


def ends_open(text: str) -> bool:
    """Whether ``text`` stops inside grace notes (``{``, ``{^``, ``{g``) or after a decoration (``~``, ``T``):
    a line break after them is a file's last newline, not music (grace notes do not go on across lines, and a
    decoration stands just before its note), and is left out."""
    last = text.rstrip("\n").rsplit("\n", 1)[-1]
    if _FIELD_LINE.match(last) or last.startswith("%"):
        return False
    return re.search(f"(?:{OPEN_GRACE}|{EMPTY_GRACE}|{_OWES_ITS_NOTE})\\Z", last) is not None


def blocking_problem(text: str, *, partial: bool = False) -> CheckProblem | None:
    """The first problem that makes ``text`` unsafe to continue, harmonize, export or train on, or None.

    Syntax and header problems block (music21 would guess, e.g. "assuming C", and the sampler's grammar
    would disagree with the prompt); bar lengths do not. A ``partial`` tune (a prompt to continue) may
    leave a slur open anywhere, a chord, quote or decoration open on its last line, and grace notes open
    at its very end. A decoration away from its note (``~ d``, ``~{g}d``) or a tie over grace notes blocks
    nothing: music21 reads them, abc2midi reports them and plays the notes, and in a prompt they are its own.
    """
    last_line = text.rstrip("\n").count("\n") + 1
    for problem in check_tune(text):
        if problem.kind not in ("syntax", "header"):
            continue
        open_at_end = problem.line == last_line and not text.endswith("\n")
        if partial and any(mark in problem.message for mark in _OPEN_AT_END) and (
                open_at_end or "slur" in problem.message):
            continue
        if partial and problem.message == _GRACE_OPEN and _at_end(text, problem, OPEN_GRACE):
            continue  # the continuation writes its "}" (``PromptView.forced``)
        if partial and problem.message == _GRACE_OPEN and _at_end(text, problem, EMPTY_GRACE):
            continue  # and a note before it, the model's choice (``continuation.with_grace_note``)
        if partial and problem.message.endswith(UNFINISHED_AT_END):
            continue  # a prompt may stop inside a triplet or after a '>': the continuation finishes it
        if partial and "is not followed by a note" in problem.message and _at_end(text, problem, r"[\^_=]+"):
            continue  # a prompt may stop after the accidental of its last note: the continuation writes the note
        if partial and problem.message.startswith("stray ':'") and _at_end(text, problem, ":"):
            continue  # or after the ':' of a ':|' or '::': the continuation writes the rest of the bar line
        return problem
    return None


def _at_end(text: str, problem: CheckProblem, pattern: str) -> bool:
    """Whether ``problem`` is at the run of ``pattern`` that ends ``text``."""
    run = re.search(pattern + r"\Z", text)
    return run is not None and (problem.line, problem.column) == (
        text.count("\n", 0, run.start()) + 1, run.start() - text.rfind("\n", 0, run.start()))


_FINAL_BAR = re.compile(r"\s*(?:\|\]|\|\||:\||\|)?\s*$")


def close_open_slurs(tune: str) -> str:
    """``tune`` with the slurs the prompt left open closed on its last note (the grammar writes no slurs, and a
    slur never closed is malformed ABC)."""
    open_slurs = sum(1 for problem in check_tune(tune) if "slur is never closed" in problem.message)
    if not open_slurs:
        return tune
    end = _FINAL_BAR.search(tune).start()
    return tune[:end] + ")" * open_slurs + tune[end:]


REPAIR_SHARE = 20  # at most one removed character per 20 of the tune (and at least 40 removals may be made):
# a tune with more debris than that is too broken to guess at (the worst corpus tune needs 48 in 1,024)


def _offset(text: str, line: int, column: int) -> int:
    lines = text.split("\n")
    return sum(len(l) + 1 for l in lines[:line - 1]) + column - 1


def repair_tune(text: str) -> tuple[str, list[tuple[CheckProblem, str]]]:
    """``text`` with the character behind each syntax problem removed (a stray ``:``, an ``=`` before no
    note, an unclosed ``{`` or ``[``...), one at a time until ``blocking_problem`` finds none; and the
    (problem, removed character) pairs. Raises InputError when a problem is not one character's fault
    (a header problem, or one at the end of a line) or more removals than REPAIR_SHARE allows would be needed.
    """
    from .errors import InputError

    removed: list[tuple[CheckProblem, str]] = []
    limit = max(40, len(text) // REPAIR_SHARE)
    while (problem := blocking_problem(text)) is not None:
        offset = _offset(text, problem.line, problem.column)
        if (problem.kind != "syntax" or len(removed) >= limit or not 0 <= offset < len(text)
                or text[offset] == "\n"):
            raise InputError(f"{problem}")
        removed.append((problem, text[offset]))
        text = text[:offset] + text[offset + 1:]
    return text, removed


def repair_tunebook(abc: str, source: str = "<text>") -> tuple[str, list[str]]:
    """Every tune of ``abc`` through ``repair_tune``; and one ``source:line:col: removed 'c' (why)`` note
    per removed character, with the file's line numbers (lines are never removed, so they stay valid). A tune
    that cannot be repaired (or read) is left as written, for the command's own check to report (the tunebook
    policy: the other tunes are still repaired)."""
    from .errors import InputError
    from .tunebook import map_tunes

    notes: list[str] = []

    def one(text: str, first_line: int) -> str:
        try:
            fixed, removed = repair_tune(text)
        except InputError as exc:
            line, _, rest = str(exc).partition(":")
            raise InputError(f"{source}:{first_line + int(line) - 1}:{rest}") from None
        notes.extend(f"{source}:{first_line + p.line - 1}:{p.column}: removed {char!r} ({p.message})"
                     for p, char in removed)
        return fixed

    return map_tunes(abc, one, source, problems=[], keep_bad=True), notes
