"""Transpose ABC text by a number of fifths: notes, key signatures and chord symbols.

Used to augment training data (``TrainConfig.transpose``): a repeated copy of a tune is played in a
neighbouring key instead of verbatim, so the model sees the same melodic and harmonic shapes in more keys
without seeing the same characters again.

A shift of ``f`` fifths moves every pitch by ``7f`` semitones brought into -6..+5 (one fifth up is written
as a fourth down, which keeps the tune in its range) and every letter by the matching number of steps.
The key signature moves by ``f`` sharps, so a note written without an accidental keeps its scale degree
and needs none in the new key either; a written accidental is rewritten for the new letter (``=f`` in G
becomes ``=c`` in D, ``=B`` becomes ``^F``...). Bar-accidental carrying stays right because equal
(letter, octave) pairs map to equal pairs. Decorations (``!trill!``), comments, annotations and field
lines other than ``K:`` are copied unchanged.
"""

from __future__ import annotations

import re

from .errors import InputError
from .tunebook import is_chord_symbol, normalize_key

LETTERS = "CDEFGAB"
NATURAL = (0, 2, 4, 5, 7, 9, 11)  # semitones of C D E F G A B above C
LETTER_FIFTHS = {"F": -1, "C": 0, "G": 1, "D": 2, "A": 3, "E": 4, "B": 5}
MODE_FIFTHS = {"": 0, "m": -3, "Dor": -2, "Mix": -1, "Phr": -4, "Lyd": 1, "Loc": -5}  # signature vs major
MAX_SIGNATURE = 6  # sharps or flats: keys beyond F# / Gb major are refused
ACCIDENTAL_TEXT = {-2: "__", -1: "_", 0: "=", 1: "^", 2: "^^"}
ACCIDENTAL_VALUE = {"__": -2, "_": -1, "=": 0, "^": 1, "^^": 2}
SIGN_VALUE = {"": 0, "#": 1, "+": 1, "b": -1}  # key and chord roots; "+" is Nottingham's sharp bass (D/f+)
NOTE = re.compile(r"(\^\^|__|\^|_|=)?([A-Ga-g])([,']*)")
KEY_TONIC = re.compile(r"^\s*([A-G])([#b]?)(m|Dor|Mix|Phr|Lyd|Loc)?(?![A-Za-z])(.*)$", re.S)
CHORD = re.compile(r"^(\(?)([A-G])([#b]?)([^/)]*)(?:/([A-Ga-g])([#b+]?))?(\)?)$")


def interval(fifths: int) -> tuple[int, int]:
    """(letter steps, semitones) of a shift by ``fifths`` fifths, semitones in -6..+5."""
    steps, semitones = 4 * fifths, 7 * fifths
    octaves = (semitones + 6) // 12
    return steps - 7 * octaves, semitones - 12 * octaves


def _spell(letter: str, accidental: int, steps: int, semitones: int) -> tuple[int, int]:
    """(new letter index, new accidental) of ``letter`` + ``accidental`` moved by the interval."""
    index = LETTERS.index(letter.upper())
    new_index = index + steps
    natural_move = (NATURAL[new_index % 7] + 12 * (new_index // 7)) - NATURAL[index]
    return new_index, accidental + semitones - natural_move


def transpose_key(value: str, fifths: int) -> str:
    """A ``K:`` value moved by ``fifths``; keys without a tonic (``none``, clef only) are kept."""
    match = KEY_TONIC.match(normalize_key(value))
    if not match:
        if re.match(r"^\s*(HP|Hp)\b", value):
            raise InputError(f"cannot transpose the bagpipe key K:{value.strip()}")
        return value
    letter, sign, mode, rest = match.groups()
    if _explicit_accidentals(rest):
        raise InputError(f"cannot transpose a key with explicit accidentals: K:{value.strip()}")
    signature = LETTER_FIFTHS[letter] + 7 * SIGN_VALUE[sign] + MODE_FIFTHS[mode or ""] + fifths
    if abs(signature) > MAX_SIGNATURE:
        raise InputError(f"K:{value.strip()} moved by {fifths} fifths needs {abs(signature)} sharps or flats")
    steps, semitones = interval(fifths)
    index, accidental = _spell(letter, SIGN_VALUE[sign], steps, semitones)
    return LETTERS[index % 7] + {0: "", 1: "#", -1: "b"}[accidental] + (mode or "") + rest


def _explicit_accidentals(key_rest: str) -> bool:
    """Whether what follows a K: value's tonic and mode sets accidentals of its own (``exp``, ``^f _b``)."""
    return re.search(r"(^|\s)(exp\s|[=^_][A-Ga-g])", key_rest) is not None


def _note(match: re.Match, steps: int, semitones: int) -> str:
    accidental_text, letter, marks = match.groups()
    octave = (4 if letter.isupper() else 5) + marks.count("'") - marks.count(",")
    accidental = ACCIDENTAL_VALUE[accidental_text] if accidental_text else 0
    index, new_accidental = _spell(letter, accidental, steps, semitones)
    octave += (LETTERS.index(letter.upper()) + steps) // 7
    if accidental_text and abs(new_accidental) > 2:
        raise InputError(f"cannot spell {match.group(0)} moved by {semitones} semitones")
    name = LETTERS[index % 7]
    text = name.lower() + "'" * (octave - 5) if octave >= 5 else name + "," * (4 - octave)
    return (ACCIDENTAL_TEXT[new_accidental] if accidental_text else "") + text


def transpose_chord(symbol: str, fifths: int) -> str:
    """A chord symbol (``G``, ``F#m7``, ``D/f+``, ``(A7)``) moved by ``fifths``; other text is kept."""
    match = CHORD.match(symbol)
    if not match or not is_chord_symbol(symbol):  # "Fine", "D.C.", "Coda" are text, not chords
        return symbol
    open_, root, sign, quality, bass, bass_sign, close = match.groups()
    steps, semitones = interval(fifths)

    def name(letter: str, sign_text: str, sharp: str) -> str:
        index, accidental = _spell(letter, SIGN_VALUE[sign_text], steps, semitones)
        if abs(accidental) > 1:
            raise InputError(f"chord {symbol!r} moved by {fifths} fifths needs a double accidental")
        new = LETTERS[index % 7]
        return (new.lower() if letter.islower() else new) + {0: "", 1: sharp, -1: "b"}[accidental]

    text = open_ + name(root, sign, "#") + quality
    if bass:
        text += "/" + name(bass, bass_sign, "+" if bass_sign == "+" else "#")
    return text + close


def _body_line(line: str, fifths: int, steps: int, semitones: int) -> str:
    return _rewrite_notes(line, lambda match: _note(match, steps, semitones),
                          chord=lambda symbol: transpose_chord(symbol, fifths),
                          key=lambda value: transpose_key(value, fifths))


def _rewrite_notes(line: str, note, chord=lambda symbol: symbol, key=lambda value: value) -> str:
    """A body line with each note rewritten by ``note(match)`` (``NOTE``), each chord symbol by ``chord``
    and each inline ``[K:]`` value by ``key``; annotations, decorations, other inline fields and a comment
    are kept as written."""
    out, i = [], 0
    while i < len(line):
        ch = line[i]
        if ch == "%":
            out.append(line[i:])
            break
        if ch in '"!+':
            end = line.find(ch, i + 1)
            end = len(line) - 1 if end < 0 else end
            inner = line[i + 1:end]
            out.append(ch + (chord(inner) if ch == '"' else inner) + line[end:end + 1])
            i = end + 1
            continue
        if ch == "[" and re.match(r"\[[A-Za-z]:", line[i:i + 3]):
            end = line.find("]", i)
            end = len(line) if end < 0 else end
            field = line[i + 1:end]
            out.append("[" + ("K:" + key(field[2:]) if field[0] == "K" else field) + line[end:end + 1])
            i = end + 1
            continue
        match = NOTE.match(line, i)
        if match:
            out.append(note(match))
            i = match.end()
            continue
        out.append(ch)
        i += 1
    return "".join(out)


def transpose(abc: str, fifths: int, body_only: bool = False) -> str:
    """One tune's ABC text moved by ``fifths`` fifths (+1: G major -> D major, -1: G -> C); ``body_only``:
    ``abc`` is a piece of a tune body (no header).

    Raises InputError when the result cannot be written plainly: a key beyond six sharps or flats, a
    bagpipe or explicit-accidental key, a note or chord that would need a triple or double accidental.
    """
    if fifths == 0:
        return abc
    steps, semitones = interval(fifths)
    return _rewrite_tune(abc, lambda line: _body_line(line, fifths, steps, semitones),
                         key=lambda value: transpose_key(value, fifths), in_body=body_only)


def _rewrite_tune(abc: str, body_line, key=lambda value: value, in_body: bool = False) -> str:
    """``abc`` with every body line (after the ``K:`` line, or all of them from the start with ``in_body``)
    rewritten by ``body_line`` and every ``K:`` value by ``key``; the header and other field lines as
    written."""
    lines = []
    for line in abc.split("\n"):
        field = re.match(r"^([A-Za-z]):(.*)$", line)
        if field and re.match(r"^[A-Za-z]:[|:]", line):
            field = None  # a note or rest before a repeat sign (G:|, z::), not a field line
        if field and field.group(1) == "K":
            value, percent, comment = field.group(2).partition("%")
            lines.append("K:" + key(value) + percent + comment)
            in_body = True
        elif field or not in_body:
            lines.append(line)
        else:
            lines.append(body_line(line))
    return "\n".join(lines)


# ---------------------------------------------------------------- home key

# tonics (fifths above C) the bundled model ends tunes on best: from a bare header it ended on the tonic in
# 89-95% of tunes on G and D (major, minor, dorian, mixolydian), 47-80% on A, E and B, 58-71% on C, F, Bb,
# Eb (256 prompts per key; benchmarks/RESULTS.md, session 22)
HOME_TONICS = (1, 2)


def home_key_shift(abc: str) -> int:
    """Fifths that move one tune's tonic to the nearest of ``HOME_TONICS`` (G before D), keeping its mode;
    0 when it is there, or when the key is not one plain ``K:`` with a tonic letter (none, bagpipes,
    explicit accidentals, a key change in the body)."""
    keys = [line[2:] for line in abc.split("\n") if line.startswith("K:")]
    if len(keys) != 1 or re.search(r"\[K:", abc):
        return 0
    match = KEY_TONIC.match(normalize_key(keys[0].split("%", 1)[0]))
    if not match or _explicit_accidentals(match.group(4)):
        return 0
    tonic = LETTER_FIFTHS[match.group(1)] + 7 * SIGN_VALUE[match.group(2)]
    return min((home - tonic for home in HOME_TONICS), key=abs)


def moved_back(added: str, fifths: int) -> str:
    """What the model wrote in the home key (a piece of a tune body) moved back into the prompt's key: an
    InputError for a note or chord that would need more than a double accidental there."""
    try:
        return transpose(added, -fifths, body_only=True)
    except InputError as exc:
        raise InputError(f"the continuation cannot be written back in the prompt's key: {exc}") from None


# ---------------------------------------------------------------- register (octaves)

# the mean pitch (MIDI) of a training tune's notes: Nottingham's tunes average 72.6 (C5), 62-78 between them
TRAINING_REGISTER = 72


def register_shift(abc: str) -> int:
    """Octaves to move a prompt by so that the model reads it in the register it was trained in: 0 unless
    the prompt's notes average an octave or more away (a bass-clef tune around B,, was continued two octaves
    up, in the middle of a bar). Decided on at least 4 notes."""
    from .abc_check import analyze_tune

    pitches = [max(event.pitches) for event in analyze_tune(abc).events
               if event.kind in ("note", "chord") and event.pitches]
    if len(pitches) < 4:
        return 0
    distance = TRAINING_REGISTER - sum(pitches) / len(pitches)
    return round(distance / 12) if abs(distance) >= 12 else 0


def shift_octaves(abc: str, octaves: int, body_only: bool = False) -> str:
    """``abc`` with every note moved by ``octaves`` octaves: letters, accidentals and key unchanged, octave
    case and marks rewritten (``B,,`` up 2 is ``B``). Field lines, inline fields, chord symbols, annotations,
    decorations and comments are kept as written; ``body_only``: ``abc`` is a piece of a tune body (no header)."""
    if octaves == 0:
        return abc
    moved = lambda match: _note(match, 7 * octaves, 12 * octaves)  # noqa: E731 - an octave keeps every letter
    return _rewrite_tune(abc, lambda line: _rewrite_notes(line, moved), in_body=body_only)
