"""Constrained decoding: which characters keep a continuation a valid, well-ended tune.

Python side (once per prompt): read the prompt's meter and unit length, its repeat/ending situation and
the partly written last bar, and place the grammar automaton (``abcflax.grammar``) there.
JAX side (every character, inside the sampler's loop): ``allowed`` masks the characters whose
transition the syntax forbids or whose arithmetic would overfill the bar, run past the length limit or
leave something open; ``advance`` applies the chosen character. Both are pure functions of arrays.

Guarantee: every allowed character leaves at least one way to finish the tune within ``max_chars``
(bars can always be filled in multiples of 12 ticks; near the limit the automaton only accepts long
notes and closing bar lines), so the sampler never needs to retry.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from fractions import Fraction
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from . import grammar
from .abc_check import TUPLET_Q, parse_meter
from .errors import InputError
from .tunebook import FIELD_LINE, is_chord_symbol

FREE_BAR = 1 << 28  # bar length standing for "no meter" (M:none)
RESERVE_MIN = 64  # characters kept back to close a tune, at least
MIN_MAX_CHARS = 200  # below this there is no room to finish a long bar and a second ending


class Tables(NamedTuple):
    """``grammar.Tables`` as device arrays."""

    next_state: jnp.ndarray
    commit: jnp.ndarray
    starts_note: jnp.ndarray
    event: jnp.ndarray
    arg: jnp.ndarray
    charge_num: jnp.ndarray
    charge_den: jnp.ndarray
    probe_fill: jnp.ndarray
    endable: jnp.ndarray
    end_point: jnp.ndarray
    pitch_role: jnp.ndarray
    first_ending: jnp.ndarray  # FIRST_ENDING_* of each state, [S]
    part_end: jnp.ndarray  # the transition makes its bar line end a part, [S, V]
    second_ending: jnp.ndarray  # the state is inside a second ending, [S]
    values: jnp.ndarray  # written values in ticks, [K]
    chars: jnp.ndarray  # what each character is to a pitch, [2, V] (``last_note.char_table``)
    bracket: jnp.ndarray  # BRACKET_* bits per state, [S] (``bracket_exits``)
    part_exit: jnp.ndarray  # a '|' begun here may still become a part's end (||, |], |:), [S]


def device_tables(tables: grammar.Tables, chars: tuple[str, ...]) -> Tables:
    from .last_note import char_table

    # device_put, not jnp.asarray: asarray compiles a small program per array on first use
    part_exit = np.any(tables.part_end & (tables.event != grammar.EV_BAR), axis=1)
    return jax.device_put(Tables(*(getattr(tables, name) for name in Tables._fields[:-4]),
                                 np.array(grammar.VALUES, np.int32), char_table(chars), bracket_exits(tables),
                                 part_exit))


# a '[' at a bar start may open a note chord or an ending ([1, [2): what the state after it lets follow
BRACKET_AT_BAR_START, BRACKET_FIRST_ENDING, BRACKET_SECOND_ENDING = 1, 2, 4


def bracket_exits(tables: grammar.Tables) -> np.ndarray:
    """int32 [S]: for a state every way out of which opens a note chord or an ending (the one after a '[' at a
    bar start), ``BRACKET_AT_BAR_START`` and which endings may follow. Where note chords are not to be
    started (``Limits.features``) such a '[' is written only if an ending can follow it."""
    valid = tables.next_state >= 0
    event = np.where(valid, tables.event, -1)
    exits_only = lambda events: np.all(~valid | np.isin(event, events), axis=1) & valid.any(axis=1)  # noqa: E731
    at_bar_start = exits_only([grammar.EV_CHORD, grammar.EV_END1, grammar.EV_END2])
    first = np.any(event == grammar.EV_END1, axis=1)
    second = np.any(event == grammar.EV_END2, axis=1)
    return np.where(at_bar_start, BRACKET_AT_BAR_START | first * BRACKET_FIRST_ENDING
                    | second * BRACKET_SECOND_ENDING, 0).astype(np.int32)


class Limits(NamedTuple):
    """Per-row settings of one continuation (int32 arrays of shape [B] inside jit)."""

    bar_len: np.ndarray  # ticks in a full bar (FREE_BAR for no meter)
    reserve: np.ndarray  # characters kept back for closing the tune
    max_chars: np.ndarray  # characters the continuation may use
    target_bars: np.ndarray  # end after this many new bars (0: no target)
    min_bars: np.ndarray  # new bars before the tune may end on its own
    until_section: np.ndarray  # 1: end at the first closing bar line
    values: np.ndarray  # bit k set: a note may be written with grammar.VALUES[k] ticks (PromptPlace.values)
    features: np.ndarray  # FEATURE_* bits: what the continuation may start (PromptPlace.features)
    part_length: np.ndarray  # a part ends at a multiple of this many bars (0: anywhere; ``part_limits``)
    part_early: np.ndarray  # 1: a part may also end after SHORT_PART_BARS or PHRASE_BARS bars


class State(NamedTuple):
    """Per-row decoder state (int32 arrays of shape [B])."""

    syn: np.ndarray  # automaton state index
    ticks: np.ndarray  # ticks written in the current bar
    chars: np.ndarray  # characters generated so far
    bars: np.ndarray  # bar lines generated so far
    fill_note: np.ndarray  # the note being written was started while finishing: it must be long
    part_bars: np.ndarray  # full bars of the current part (prompt included), counted at each bar line
    part_closed: np.ndarray  # 1: the last bar line ended a part, so the next one is the new part's first


# what a continuation may start, as bits of ``Limits.features``: a chord symbol ("G"), a note chord ([GB])
FEATURE_CHORD_SYMBOL, FEATURE_NOTE_CHORD = 1, 2
ALL_FEATURES = FEATURE_CHORD_SYMBOL | FEATURE_NOTE_CHORD


@dataclass(frozen=True)
class PromptPlace:
    """Where a prompt leaves the automaton and its counters."""

    syn: int
    ticks: int
    bar_len: int
    text_suffix: str  # characters appended to the prompt so it can be continued (e.g. a newline after K:)
    values: int = (1 << len(grammar.VALUES)) - 1  # written note values the continuation may use (a bit mask)
    features: int = ALL_FEATURES  # FEATURE_* bits: chord symbols and note chords the continuation may start
    part_bars: int = 0  # full bars of the part the prompt ends in (State.part_bars)
    part_closed: int = 0  # the prompt's last bar line ended a part (State.part_closed)
    part_template: int = 0  # the length in bars of the prompt's last complete part (0: it has none)


# ---------------------------------------------------------------- prompt analysis (Python, once per prompt)

def _fraction(text: str) -> Fraction | None:
    match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text)
    if not match or int(match.group(2)) == 0 or int(match.group(1)) == 0:
        return None
    return Fraction(int(match.group(1)), int(match.group(2)))


def meter_length(text: str) -> Fraction | None:
    """Bar length in whole notes for an ``M:`` value; None for ``none``/free meter."""
    text = text.split("%", 1)[0].strip()
    if text in ("C", ""):
        return Fraction(1) if text == "C" else None
    if text == "C|":
        return Fraction(1)
    if text.lower() == "none":
        return None
    match = re.fullmatch(r"\(?([\d+]+)\)?\s*/\s*(\d+)", text)
    if not match or int(match.group(2)) == 0:
        raise InputError(f"M:{text}: not a meter abcflax understands")
    top = sum(int(part) for part in match.group(1).split("+") if part)
    if top == 0:
        raise InputError(f"M:{text}: not a meter abcflax understands")
    return Fraction(top, int(match.group(2)))


def _header_and_body(prompt: str) -> tuple[list[str], str]:
    lines = prompt.split("\n")
    for index, line in enumerate(lines):
        if line.startswith("K:"):
            return lines[: index + 1], "\n".join(lines[index + 1:])
    raise InputError("prompt has no K: (key) line, so there is no tune body to continue")


def effective_meter(prompt: str) -> tuple[Fraction | None, Fraction]:
    """(bar length, unit length) in force at the end of the prompt, in whole notes."""
    meter, unit = Fraction(1), None
    header, body = _header_and_body(prompt)
    fields = [(m.group(1), m.group(2)) for m in map(FIELD_LINE.match, header) if m]
    fields += [(m.group(1), m.group(2)) for m in map(FIELD_LINE.match, body.split("\n")) if m]
    fields += re.findall(r"\[([ML]):([^\]]*)\]", body)
    saw_meter = False
    for name, value in fields:
        if name == "M":
            meter, saw_meter = meter_length(value), True
        elif name == "L":
            unit = _unit(value)
    if not saw_meter:
        meter = None  # no M: field means free meter (ABC 2.1)
    if unit is None:
        unit = Fraction(1, 16) if meter is not None and meter < Fraction(3, 4) else Fraction(1, 8)
    return meter, unit


def bar_ticks(meter: Fraction | None, unit: Fraction) -> int:
    if meter is None:
        return FREE_BAR
    ticks = meter / unit * grammar.TICKS_PER_UNIT
    if ticks.denominator != 1 or ticks % 12 or ticks <= 0:
        raise InputError(f"meter {meter} with unit length {unit} cannot be filled by whole note values")
    if ticks > 16 * grammar.TICKS_PER_UNIT * 4:
        raise InputError(f"meter {meter} is {ticks // grammar.TICKS_PER_UNIT} units of {unit}: too long a bar")
    return int(ticks)


_BAR_TOKEN = re.compile(r"::|:?\|[\]|]?:?|\[[12](?:,[12])*|\[\|")


UNIT_MARK = "\x01"  # around an L: value in ``_clean_body``'s text (no ABC character)
LINE_MARK = "\x04"  # where ``_clean_body``'s text had a line break that no bar line ends (no ABC character)
_UNIT_CHANGE = re.compile(f"{UNIT_MARK}([^{UNIT_MARK}]*){UNIT_MARK}")


_TUPLET_NOTE = r"""(?:"[^"\n]*")?~?(?:[_^=]*[A-Ga-gz][,']*|\[[^\]\n]*\])(\d*/*\d*)"""
# a tuplet and all its notes ("(3d2c2B2", "(5:4:5abcde"), when no bar line, broken rhythm or field is inside
_TUPLET_GROUP = re.compile(rf"\((\d+)(?::(\d*))?(?::(\d*))?((?: ?{_TUPLET_NOTE}){{1,9}})")
_GRAMMAR_TUPLET = re.compile(rf"\(3(?:(?:\"[^\"\n]*\")?~?(?:[_^=]*[A-Ga-gz][,']*|\[[^\]\n]*\])){{3}}")
_REST_VALUES = sorted(((ticks, text) for text, ticks in grammar.LENGTHS.items() if text != "/"), reverse=True)


def _written_ticks(length: str) -> Fraction | None:
    """Ticks of a note written with length suffix ``length`` ("", "2", "/", "3/4", "//"); None if absurd."""
    match = re.fullmatch(r"(\d*)(/*)(\d*)", length)
    if match is None or (match.group(3) and len(match.group(2)) != 1):
        return None
    numerator = int(match.group(1)) if match.group(1) else 1
    denominator = int(match.group(3)) if match.group(3) else 2 ** len(match.group(2))
    return Fraction(grammar.TICKS_PER_UNIT * numerator, denominator) if numerator and denominator else None


def _rests(ticks: int) -> str:
    """Rests the grammar writes that last ``ticks`` (a multiple of 12), longest first."""
    rests = []
    for value, text in _REST_VALUES:
        while ticks >= value:
            rests.append("z" + text)
            ticks -= value
    return "".join(rests)


def _tuplet_as_rests(match: re.Match, compound: bool) -> str:
    """A whole tuplet group the grammar cannot write itself (it writes only ``(3`` and three unit notes)
    as rests of the same total length, then a blank: what the automaton needs from it is where the bar
    stands after it, and that its last note is finished. Left as written (for the automaton to refuse)
    when its notes are fewer than it takes, or its length is not a whole number of the grammar's values."""
    group = match.group(0)
    p = int(match.group(1))
    q = int(match.group(2)) if match.group(2) else TUPLET_Q.get(p, 3 if compound else 2)
    r = int(match.group(3)) if match.group(3) else p
    notes = re.findall(_TUPLET_NOTE, match.group(4))
    if _GRAMMAR_TUPLET.fullmatch(group) or not 1 < p <= 9 or not q or len(notes) < r:
        return group
    written = [_written_ticks(length) for length in notes[:r]]
    if None in written:
        return group
    ticks = sum(written) * q / p
    if ticks.denominator != 1 or ticks % 12:
        return group
    tail = match.group(4)
    for _ in range(r):  # notes after the r-th belong to the bar, not the tuplet
        tail = tail[re.match(rf" ?{_TUPLET_NOTE}", tail).end():]
    if not tail and match.end() == len(match.string) and _last_note_may_take_the_value(p, q, r, notes, written):
        return group  # the prompt stops on its last note: the grammar gives it the triplet's value
    return _rests(int(ticks)) + " " + tail.lstrip(" ")


def _last_note_may_take_the_value(p: int, q: int, r: int, lengths: list[str], written: list[Fraction]) -> bool:
    """Whether a triplet the prompt stops on (``(3d//e//f``) is one the grammar writes, three notes of one
    value, its last length suffix still short of that value's (``(3d/e/f/`` is whole): then its last note is
    left open (a blank would end ``f`` as a unit note, a triplet of unequal notes)."""
    value = written[0]
    spellings = [spelling for spelling, ticks in grammar.LENGTHS.items() if ticks == value]
    return (p, q, r) == (3, 2, 3) and written[1] == value and value in grammar.TRIPLET_VALUES and any(
        spelling.startswith(lengths[2]) for spelling in spellings) and lengths[2] not in spellings


# a note, chord or rest (with its chord symbol and one-character decoration) and the length written after it
_VALUED_NOTE = re.compile(r"""("[^"\n]*")?[~.]?(?:[_^=]*[A-Ga-gz][,']*|\[[^\]\n]*\])(\d*/*\d*)(?=[^\d/<>]|$)""")


def _long_value_as_rests(match: re.Match) -> str:
    """A note whose length the grammar cannot write (``c12``, ``B16``, ``A5/2`` in L:1/16 tunes) as rests of
    the same length, after its chord symbol: the automaton needs where the bar stands after it. At the
    prompt's end, a blank after them finishes it: the continuation may not lengthen a length it cannot write.
    Left as written (for the automaton to refuse) when that length is not a whole number of the grammar's
    values."""
    symbol, length = match.group(1) or "", match.group(2)
    ticks = _written_ticks(length)
    if length in grammar.LENGTHS or ticks is None or ticks.denominator != 1 or ticks % 12:
        return match.group(0)
    return symbol + _rests(int(ticks)) + (" " if match.end() == len(match.string) else "")


def _clean_body(body: str, compound: bool = False) -> str:
    """The prompt's body reduced to the generation grammar's vocabulary (only used to place the state).
    ``compound``: the meter is compound (6/8, 9/8...), for tuplets such as ``(5`` whose ratio depends on it."""
    lines = [f"[L:{line[2:]}]" if line.startswith("L:") else line for line in body.split("\n")]
    lines = [line for line in lines if not FIELD_LINE.match(line) and not line.startswith("%")]
    ends = [line.split("%", 1)[0].rstrip().rstrip("\\") for line in lines]
    if lines and "%" not in lines[-1] and not lines[-1].rstrip().endswith("\\"):
        ends[-1] = lines[-1]  # a blank that ends the prompt finishes its last note: kept, or '2' could lengthen it
    text = "\n".join(ends)
    # a unit length change stays as a marker: the notes before it in the same bar count in the old unit
    text = re.sub(r"\[L:([^\]\n]*)\]", lambda m: f"{UNIT_MARK}{m.group(1).strip()}{UNIT_MARK}", text)
    text = re.sub(r"\[[A-Za-z]:[^\]\n]*\]", "", text)  # inline fields
    text = "\n".join(_without_line_break_mark(line) for line in text.split("\n"))
    text = re.sub(r"![^!\n]*!|\+[^+\n]*\+|\{[^}\n]*\}", "", text)  # decorations, grace notes
    text = re.sub(r'"([^"\n]*)"', lambda m: m.group(0) if is_chord_symbol(m.group(1)) else "", text)
    # an invisible rest lasts as long as a rest (the grammar writes only z)
    text = re.sub(r'"[^"\n]*"|x', lambda m: "z" if m.group(0) == "x" else m.group(0), text)
    # a slur mark right after the prompt's last note ends that note: without it the note would still take
    # a length ("D(" continued "3/4E" writes D's length after the slur); a blank says the same in the grammar
    text = re.sub(r"(?<=[A-Ga-gz,'0-9/\]])[()](?=[ \t]*$)", " ", text)
    # a letter decoration ending the prompt is read as the '~' the grammar writes: its note must come next
    if text.rsplit("\n", 1)[-1].count('"') % 2 == 0:  # not a letter of a chord symbol still being written
        text = re.sub(r"(?<![A-Za-z\"])[uvHLMOPSTy]\Z", "~", text)
    text = re.sub(r"\((?!\d)|\)|-|[uvHLMOPSTy`]", "", text)  # slurs, ties, letter decorations, spacers, `
    # the grammar gives a note one decoration, and a staccato note no > or < (abc2midi's rule): a pair the
    # prompt already wrote loses its staccato here, so only the last note's '.' tells the automaton
    text = re.sub(r"[~.]{2,}", lambda m: "." if "." in m.group(0) else "~", text)
    text = re.sub(r"(?<=[<>])\.|\.(?=[_^=]*[A-Ga-g][,']*\d*/*\d*[<>])", "", text)
    text = text.replace("[|", "|").replace(":|:", "::").replace(":||:", "::")
    text = re.sub(r"\|([12])", r"|[\1", text)  # |1 endings are written [1 here
    text = re.sub(r"\[(\d)(?:,\d)+", r"[\1", text)
    # line breaks only stay after bar lines; elsewhere a mark, for a line that ends a bar without a bar line
    text = re.sub(r"(?<![|\]:])\n", f"{LINE_MARK} ", text)
    text = re.sub(r"\n[ \t\n]*", "\n", text)
    text = re.sub(r"[ \t]+", " ", text)
    text = re.sub(f"[ \\t]*({_UNIT_CHANGE.pattern})[ \\t]*", r"\1", text)  # a blank either side would be two
    # a unit change at the prompt's end finishes the note before it: a length written next is the new unit's
    text = re.sub(f"(?<=[A-Ga-gz,'0-9/\\]])({_UNIT_CHANGE.pattern})$", r" \1", text)
    text = re.sub(r"(\(\d+(?::\d*){0,2}) +", r"\1", text)  # a blank after a tuplet mark ends no note
    text = _TUPLET_GROUP.sub(lambda m: _tuplet_as_rests(m, compound), text)
    return re.sub("  +", " ", _VALUED_NOTE.sub(_long_value_as_rests, text))


def _without_line_break_mark(line: str) -> str:
    """``line`` without a lone '!' at its end: ABC 2.0's line break (O'Neill's "...FDB, |!"), not half of a
    ``!decoration!`` (which pairs its marks on one line)."""
    end = line.rstrip()
    if not end.endswith("!") or line.count("!") % 2 == 0:
        return line
    return end[:-1]


def _repeat_state(tokens: list[str]) -> tuple[bool, int, bool]:
    repeat_open, ending, closed_once = False, 0, False
    for token in tokens:
        if token.startswith("["):
            if token[1:2] == "1":
                ending = 1
                # a first ending after a :| with no |: of its own: abc2midi assumes the repeat starts there
                # (its "Assuming repeat"); so must the automaton, or the ending's :| could never be written
                # (place_prompt does the same for a [1 that opens the prompt's last bar)
                repeat_open = repeat_open or closed_once
            elif token[1:2] == "2":
                ending = 3
            continue
        if token.startswith(":"):
            repeat_open, closed_once = False, True
            ending = 2 if ending == 1 else (0 if ending == 3 else ending)
        elif token in ("||", "|]") and ending == 3:
            ending = 0
        if token.endswith(":"):
            repeat_open = True
            ending = 0 if ending == 3 else ending
    return repeat_open, ending, closed_once


def _compound_meter(prompt: str) -> bool:
    """Whether the last M: field of the prompt (header or body, inline too) is compound."""
    values = re.findall(r"(?:^|\n|\[)M:([^\]\n]*)", prompt)
    return bool(values) and parse_meter(values[-1])[0].compound


def place_prompt(prompt: str, tables: grammar.Tables, chars: tuple[str, ...], sealed: bool = False) -> PromptPlace:
    """Run the automaton over the prompt's last, partly written bar.

    ``sealed``: the prompt ends in a pitch that must stay as it is (the note an open tie reaches), so the
    automaton is left where no octave mark may follow it, as if the marks were all written already.
    """
    meter, unit = effective_meter(prompt)
    bar_len = bar_ticks(meter, unit)
    suffix = "" if prompt.endswith("\n") or not prompt.split("\n")[-1].startswith("K:") else "\n"
    _, body = _header_and_body(prompt + suffix)
    text = _clean_body(body, _compound_meter(prompt)) + (_octave_seal(prompt, chars) if sealed else "")
    tokens = list(_BAR_TOKEN.finditer(text))
    bar_lines = [t for t in tokens if not t.group(0).startswith("[") or t.group(0) == "[|"]
    if bar_lines:
        last = bar_lines[-1]
        before = [t.group(0) for t in tokens if t.start() < last.end()]
        tail, bar_start = text[last.end():], True
        repeat_open, ending, closed_once = _repeat_state(before)
        repeat_open = repeat_open or (closed_once and re.match(r"\s*\[1", tail) is not None)  # as below
    else:
        repeat_open, ending, closed_once, tail, bar_start = False, 0, False, text.lstrip("\n " + LINE_MARK), False
    start = grammar.Syn(bar_start=bar_start, repeat_open=repeat_open, ending=ending, closed_once=closed_once)
    changes = _UNIT_CHANGE.findall(text[:len(text) - len(tail)])
    unit_before = _unit(changes[-1]) if changes else effective_meter("\n".join(_header_and_body(prompt)[0]))[1]
    tail, start, unit_before = _line_end_as_bar_line(tables, chars, tail, start, unit_before, unit, bar_len)
    try:
        syn, ticks = _consume_last_bar(tables, chars, start, tail, unit_before, unit,
                                       slur_last=prompt.rstrip(" \t")[-1:] in ("(", ")"))
    except InputError as error:
        raise _in_the_prompts_words(error, prompt) from None
    if bar_len != FREE_BAR and ticks >= bar_len and not _bar_line_may_follow(tables, chars, syn, 0):
        raise InputError("cannot continue from the prompt's last bar: it is full, and what it ends with (a note "
                         "begun after that, a chord symbol, '>' or a tuplet) needs more time (end the prompt at "
                         "the bar line)")
    # an overfull prompt bar cannot be mended by what follows: close it at once
    return PromptPlace(syn, min(ticks, bar_len), bar_len, suffix, _continuation_values(text, bar_len, ticks),
                       _continuation_features(text), *prompt_parts(prompt + suffix))


def _consume_last_bar(tables: grammar.Tables, chars: tuple[str, ...], start: grammar.Syn, tail: str,
                      unit_before: Fraction, unit: Fraction, slur_last: bool) -> tuple[int, int]:
    """``_consume_in_units`` over the prompt's last bar. ``slur_last``: the prompt ends in a slur mark, which
    the cleaned text reads as a blank."""
    try:
        return _consume_in_units(tables, chars, tables.index_of(start), tail, unit_before, unit)
    except InputError:
        if not tail.endswith(" "):
            raise
        syn, ticks = _consume_in_units(tables, chars, tables.index_of(start), tail.rstrip(" "), unit_before, unit)
        letters = [chars.index(ch) for ch in "ABCDEFGabcdefg" if ch in chars]
        if slur_last or not _blank_ends_a_note(tail) or (tables.next_state[syn, letters] >= 0).any():
            # inside a tuplet no blank is allowed: the note before the slur mark is left open, as written, and
            # so is one of the tuplet's value ("(3d/ e/ "); a blank that finishes no note ("d> ", "[df ", '"G ')
            # is spacing the grammar does not write
            return syn, ticks
        raise  # a blank after a note short of its tuplet's value: refused (``(3d/e/f ``, ``f`` is no half)


def _blank_ends_a_note(tail: str) -> bool:
    """Whether the blank ``tail`` ends with follows a note (or rest) it finishes, not a chord symbol, a chord's
    inside or a broken rhythm mark it is mere spacing in."""
    body = tail.rstrip(" ")
    if body.count('"') % 2 or body.rfind("[") > body.rfind("]"):
        return False
    return re.search(r"[A-Ga-gz,'0-9/]\Z", body) is not None


def _unsupported(near: str, where: str = "at") -> InputError:
    """The automaton refused a character of the cleaned prompt; ``near``: the cleaned text up to it (kept on
    the error, so ``_in_the_prompts_words`` can tell a quote of the prompt from one of its rewrite)."""
    error = InputError(f"cannot continue from the prompt's last bar: unsupported ABC {where} {near!r} "
                       f"(finish the bar, or use --no-constrain)")
    error.near = near
    return error


def _in_the_prompts_words(error: InputError, prompt: str) -> InputError:
    """``error`` quoting the prompt's own text: the automaton reads a cleaned copy, in which a tuplet the
    grammar does not write is rests (``(3d/e/f/>`` reads "z >"); such a quote is replaced by the prompt's end."""
    near = getattr(error, "near", None)
    if near is None or near in prompt.replace("\n", " "):
        return error
    return _unsupported(prompt.rstrip("\n").split("\n")[-1][-16:], "near its end,")


# ---------------------------------------------------------------- phrase lengths

# A part (what ends at ||, |], |:, :| or ::, played once through) ends after PHRASE_BARS bars, or
# SHORT_PART_BARS, or after the length of the prompt's own last part (then also its multiples). Of 110 parts
# of held-out Nottingham tunes, 74 are 8 bars, 13 are 4, 16 are 16 and 4 are 32; left free, the model ended
# 2 of 19 parts at 8 bars and 8 of 19 at a multiple of 4 (3, 6, 9, 11, 17, 19, 25...). Only allowing the
# phrase lengths was not enough: a model that let bar 8 pass drifted on for 80 bars, so a part must end at
# its length (benchmarks/RESULTS.md, session 21)
PHRASE_BARS = 8
SHORT_PART_BARS = 4
MIN_TEMPLATE_BARS = 3  # a prompt's part of fewer bars (a two-bar repeated figure) sets no template
SECOND_ENDING_BARS = 2  # a second ending of up to this many bars closes whatever its length
_PART_BAR_LINES = ("||", "|]", "|:", ":|", "::", ":|:", ":||:", "[|")


def part_limits(place: PromptPlace, part_bars: int | None) -> tuple[int, int]:
    """(Limits.part_length, Limits.part_early) of a row: ``part_bars`` None follows the prompt (its own part
    length, else PHRASE_BARS, and a part may end early at SHORT_PART_BARS or PHRASE_BARS), 0 leaves parts
    free, N makes every part N bars; free meter has no bars to count."""
    if place.bar_len == FREE_BAR or part_bars == 0:
        return 0, 0
    if part_bars is not None:
        return part_bars, 0
    return place.part_template or PHRASE_BARS, 1


def prompt_parts(prompt: str) -> tuple[int, int, int]:
    """(part_bars, part_closed, part_template) of a prompt: the full bars of the part it ends in (a pickup's
    time and a short last bar counted together, as bars), whether its last bar line ended a part, and the
    length of its last complete part (its first time through: bars before a first ending and the ending's),
    0 without one. Approximate for text the checker cannot time; the rule it feeds has no dead ends."""
    from .abc_check import analyze_tune

    analysis = analyze_tune(prompt)
    bars = [bar for bar in analysis.bars if bar.closing]  # the last, open bar is the continuation's
    second = {event.bar for event in analysis.events if event.kind == "ending" and event.text.lstrip("[|")[:1] != "1"}
    length, closed, template, in_second = Fraction(0), 0, 0, False
    for bar in bars:
        in_second |= bar.index in second
        if bar.expected:
            length += bar.duration / bar.expected
        closed = int(bar.closing in _PART_BAR_LINES)
        if closed:
            if not in_second and round(length) >= MIN_TEMPLATE_BARS:
                template = round(length)
            length, in_second = Fraction(0), False
    return int(length), closed, template


_NOTE = re.compile(r"[A-Ga-g]")
_NOTE_CHORD = re.compile(r"\[[=^_]*[A-Ga-g]")


def _continuation_features(text: str) -> int:
    """What a continuation of the cleaned prompt ``text`` may start: chord symbols only where its tune has
    one, note chords only where it has one; both where it has no note yet (a header alone, as a compose
    seed). Left free, a model trained on tunebooks with chords (Nottingham) drifted into chord symbols and
    two-note chords in a plain melody that had none, a few lines on (benchmarks/RESULTS.md, session 20)."""
    melody = re.sub(r'"[^"\n]*(?:"|$)', "", text)  # a chord symbol the prompt stops inside too
    if not _NOTE.search(melody):
        return ALL_FEATURES
    return (FEATURE_CHORD_SYMBOL if '"' in text else 0) | (FEATURE_NOTE_CHORD if _NOTE_CHORD.search(melody) else 0)


# written values (ticks) a continuation uses whatever its prompt: 1/2, 1, 3/2, 2, 3, 4, 6 and 8 units. The
# others, 3/4, 1/4, 5 and 7 units, a char-RNN writes mostly as the forced end of a '3' or '/' it began while
# its bar had little room left (D3/4A/4 to fill a unit), so a continuation writes them only where its prompt does
COMMON_VALUES = frozenset({24, 48, 72, 96, 144, 192, 288, 384})
_WRITTEN_LENGTH = re.compile(r"(?:[A-Ga-gz][,']*|(?<!\|)\])(\d*/*\d*)")


def _continuation_values(text: str, bar_len: int, ticks: int) -> int:
    """The value mask for a continuation of the cleaned prompt ``text``: the common values and those its
    notes are written with; every value when the bar (or the prompt's place in it) needs finer steps than
    the common values' 24 ticks to fill."""
    if bar_len != FREE_BAR and (bar_len % 24 or ticks % 24):
        return grammar.value_mask(grammar.VALUES)
    written = {_written_ticks(length) for length in _WRITTEN_LENGTH.findall(re.sub(r'"[^"\n]*"', "", text))}
    if re.search(r"\(3(?:[_^=]*[A-Ga-gz][,']*/?)?\Z", text):  # a triplet the prompt stops at (or in its first
        # note, its length not yet a value: "(3d/" may be "(3d//") may need the shortest notes to fit its bar
        written |= set(grammar.TRIPLET_VALUES)
    return grammar.value_mask(COMMON_VALUES | written)


def _line_end_as_bar_line(tables: grammar.Tables, chars: tuple[str, ...], tail: str, start: grammar.Syn,
                          unit_before: Fraction, unit: Fraction, bar_len: int) -> tuple[str, grammar.Syn, Fraction]:
    """The last bar's text, start state and unit, taking a line break for a bar line where the bar before
    it is exactly full: Essen's tunebooks (7,669 tunes in music21's corpus) leave out the bar line at a line
    end, so a prompt cut on a later line read as one bar running over. A line that leaves its bar overfull
    ends it as well (Essen's "Laogongji" opens with a 20/16 line in 4/4, and every later line read on from it)."""
    lines = tail.split(LINE_MARK)
    if len(lines) == 1:
        return tail, start, unit_before
    if bar_len == FREE_BAR:  # free meter (M:none) has no bar to fill: a line break starts the next one
        changes = _UNIT_CHANGE.findall("".join(lines[:-1]))
        return lines[-1].lstrip(" "), _bar_start_after(start), _unit(changes[-1]) if changes else unit_before
    bar = lines[0]
    for index, line in enumerate(lines[1:], 1):
        if index == len(lines) - 1 and not line.strip():
            bar = bar.rstrip(" ") + " "  # the prompt ends at the line break, which ends its last note: the
            break  # continuation writes the bar line
        try:
            _, ticks = _consume_in_units(tables, chars, tables.index_of(start), bar.rstrip(" ") + " ", unit_before,
                                         unit)  # the blank finishes its last note
        except InputError:
            ticks = -1
        if ticks >= bar_len:  # a line past a whole bar ends it too: Essen's lines are its bars, a few overfull
            changes = _UNIT_CHANGE.findall(bar)
            unit_before = _unit(changes[-1]) if changes else unit_before
            start = _bar_start_after(start)
            bar = line.lstrip(" ")
        else:
            bar += line
    return bar, start, unit_before


def _bar_start_after(syn: grammar.Syn) -> grammar.Syn:
    """The state at the start of a bar that follows ``syn``'s bar without a bar line (at a line break)."""
    return grammar.Syn(bar_start=True, repeat_open=syn.repeat_open, ending=syn.ending, closed_once=syn.closed_once)


def _bar_line_may_follow(tables: grammar.Tables, chars: tuple[str, ...], syn: int, room: int) -> bool:
    """Whether the automaton lets a bar line come next, at once or after one blank, finishing no note longer
    than ``room`` ticks on the way (a note begun in a full bar cannot end there)."""
    states = [syn]
    blank = chars.index(" ") if " " in chars else None
    if blank is not None and tables.next_state[syn, blank] >= 0 and tables.commit[syn, blank] <= room:
        states.append(int(tables.next_state[syn, blank]))
    return any(tables.next_state[state, v] >= 0 and tables.commit[state, v] <= room
               for state in states for v in (chars.index(ch) for ch in "|:" if ch in chars))


def _octave_seal(prompt: str, chars: tuple[str, ...]) -> str:
    """The octave marks that use up what the grammar allows after the prompt's last pitch (syntax only)."""
    match = re.search(r"([A-Ga-g])([,']*)$", prompt)
    mark = "," if match and match.group(1).isupper() else "'"
    if match is None or mark not in chars:  # a model without the mark cannot write it anyway
        return ""
    return mark * max(0, grammar.MAX_OCTAVE_MARKS - match.group(2).count(mark))


def _unit(value: str) -> Fraction:
    unit = _fraction(value.split("%", 1)[0])
    if unit is None:
        raise InputError(f"L:{value.strip()}: not a unit note length")
    return unit


def _consume_in_units(tables: grammar.Tables, chars: tuple[str, ...], syn: int, text: str, unit: Fraction,
                      last_unit: Fraction) -> tuple[int, int]:
    """``_consume`` over a bar whose unit length may change inside it (``UNIT_MARK``s): each note counted in
    the unit in force where it starts, the total in ``last_unit``, the one the continuation writes in."""
    parts = _UNIT_CHANGE.split(text)
    plain, units = "", []
    for index in range(0, len(parts), 2):
        if index:
            unit = _unit(parts[index - 1])
        plain += parts[index]
        units += [unit / last_unit] * len(parts[index])
    syn, ticks = _consume(tables, chars, syn, plain, units)
    if ticks.denominator != 1:
        raise InputError("cannot continue from the prompt's last bar: its notes before and after the L: change "
                         "do not add up to whole ticks (finish the bar, or use --no-constrain)")
    return syn, int(ticks)


def _consume(tables: grammar.Tables, chars: tuple[str, ...], syn: int, text: str,
             scales: list[Fraction] | None = None) -> tuple[int, Fraction]:
    """Feed ``text`` through the automaton (syntax only; the prompt's bar arithmetic is not judged). A note's
    ticks are multiplied by ``scales`` at the character that starts it (its unit against the last one)."""
    index = {ch: i for i, ch in enumerate(chars)}
    ticks, scale = Fraction(0), Fraction(1)
    for pos, ch in enumerate(text):
        v = index.get(ch)
        nxt = tables.next_state[syn, v] if v is not None else -1
        if nxt < 0:
            raise _unsupported(text[max(0, pos - 12): pos + 1].replace("\n", " ").replace(LINE_MARK, " "))
        ticks += int(tables.commit[syn, v]) * scale  # the note this character finishes, in its own unit
        if scales is not None and tables.starts_note[syn, v]:
            scale = scales[pos]
        event = int(tables.event[syn, v])
        if event == grammar.EV_GT:
            ticks += int(tables.arg[syn, v]) // 2 * scale
        elif event == grammar.EV_LT:
            ticks -= int(tables.arg[syn, v]) // 2 * scale
        elif event == grammar.EV_BAR:
            ticks = Fraction(0)
        syn = int(nxt)
    return syn, ticks


def reserve_for(bar_len: int) -> int:
    """Characters to keep back so that an open bar, a second ending and the final bar line still fit."""
    longest_bar = min(bar_len, 16 * grammar.TICKS_PER_UNIT)
    notes_per_bar = -(-longest_bar // grammar.TICKS_PER_UNIT) + 3  # unit notes, plus the remainders
    return RESERVE_MIN + 2 * notes_per_bar * 6  # two bars (a second ending may be owed), <= 6 chars a note


def start_state(places: list[PromptPlace]) -> State:
    """The decoder state of rows that begin where ``places`` leave their prompts."""
    column = lambda name: np.array([getattr(place, name) for place in places], np.int32)  # noqa: E731
    zeros = np.zeros(len(places), np.int32)
    return State(column("syn"), column("ticks"), zeros, zeros, np.zeros(len(places), bool), column("part_bars"),
                 column("part_closed"))


# ---------------------------------------------------------------- the jitted part

def _min_fill(values, usable, remaining):
    """Shortest note started while finishing: one unit, or the longest ``usable`` value that fits what is left.

    Only notes *started* while finishing obey it (a note begun earlier may end as written), so the bar
    fills in at most about bar/unit notes.
    """
    limit = jnp.minimum(remaining, grammar.TICKS_PER_UNIT)[..., None]
    return jnp.max(jnp.where(usable & (values <= limit), values, 0), axis=-1)


def _shortest_triplet(values, usable):
    """int [B]: ticks of the shortest triplet each row may write, three notes of the least ``usable`` value in
    ``grammar.TRIPLET_VALUES`` (its first note's probe then finds room: ``grammar._probe_charge``)."""
    triplet = jnp.isin(values, jnp.array(grammar.TRIPLET_VALUES))
    least = jnp.min(jnp.where(usable[:, 0, :] & triplet, values, 10**6), axis=-1)
    return 2 * least


def _first_ending_fits(limits: Limits, chars, bars, column: bool = False):
    """Whether a first ending may open after ``chars`` characters and ``bars`` bars: not while finishing,
    and with room for its bar and the second ending's before the bars asked for."""
    per_row = (lambda a: a[:, None]) if column else (lambda a: a)  # noqa: E731
    finishing = chars >= per_row(limits.max_chars - limits.reserve)
    target = per_row(limits.target_bars)
    return ~finishing & ((target == 0) | (bars + 2 <= target))


def _part_bars_at(is_bar, part_bars, part_closed):
    """The current part's full bars once a character is written (a bar line counts the bar it closes; the
    first one after a part's end starts the next part at 1). Elementwise: [B] in ``advance``, [B, V] in
    ``allowed``."""
    return jnp.where(is_bar, jnp.where(part_closed == 1, 1, part_bars + 1), part_bars)


def _phrase_allows(tables: Tables, event, nxt_state, state: State, limits: Limits, ok, exempt):
    """bool [B, V]: the phrase rule (``part_limits``). A part may end after a multiple of its length L (and,
    where the row allows it early, after SHORT_PART_BARS or PHRASE_BARS), and must end at a multiple of L; a
    second ending may end after up to SECOND_ENDING_BARS and must at that. Exempt: free parts, a tune that
    must end, the last three bars asked for (a first ending and the second one it owes may need the bar
    lines there). A bar line is never refused where no part-ending one could take its place."""
    s = state.syn
    bars = _part_bars_at(event == grammar.EV_BAR, state.part_bars[:, None], state.part_closed[:, None])
    length = jnp.maximum(limits.part_length, 1)[:, None]
    early = (limits.part_early == 1)[:, None]
    second = tables.second_ending[s][:, None]
    on_length = bars % length == 0
    may = jnp.where(second, (bars <= SECOND_ENDING_BARS) | on_length,
                    (early & ((bars == SHORT_PART_BARS) | (bars == PHRASE_BARS))) | on_length)
    must = jnp.where(second, (bars == SECOND_ENDING_BARS) | on_length, on_length)
    ends = tables.part_end[s]
    colon_ends = ends & (event == grammar.EV_BAR) & may & ok  # ':' of :| or ::, allowed otherwise
    plain_bar = (event == grammar.EV_BAR) & ~ends
    # a '|' where the part must end: only if it can still become ||, |] or |:, or if no ':' can end it
    bar_ok = ~must | tables.part_exit[nxt_state] | ~jnp.any(colon_ends, axis=1, keepdims=True)
    # after that '|': what does not end the part (a note, a blank) is refused where the part must end
    after_bar = tables.part_exit[s][:, None] & ~ends
    near_target = ((limits.target_bars > 0) & (state.bars + 3 >= limits.target_bars))[:, None]
    free = exempt | near_target | (limits.part_length == 0)[:, None]
    return free | jnp.where(ends, may, jnp.where(plain_bar, bar_ok, ~(after_bar & must)))


def allowed(tables: Tables, state: State, limits: Limits):
    """bool [B, V]: characters that keep each row's continuation valid and finishable."""
    s = state.syn
    row = lambda table: table[s]  # noqa: E731 - [B, V] slices of the transition tables
    nxt, commit, event, arg = row(tables.next_state), row(tables.commit).astype(jnp.int32), row(tables.event), \
        row(tables.arg)
    free = (limits.bar_len >= FREE_BAR)[:, None]
    finishing = (state.chars >= limits.max_chars - limits.reserve)[:, None]
    must_end = finishing | ((limits.target_bars > 0) & (state.bars >= limits.target_bars))[:, None]

    r0 = (limits.bar_len - state.ticks)[:, None]
    commit_fits = free | (commit <= r0)
    r1 = r0 - commit
    ticks1 = state.ticks[:, None] + commit

    charged = tables.values[None, None, :] * row(tables.charge_num).astype(jnp.int32)[..., None] \
        // row(tables.charge_den).astype(jnp.int32)[..., None]
    bits = jnp.arange(tables.values.shape[0])
    usable = ((limits.values[:, None, None] >> bits) & 1) == 1  # [B, 1, K]: the values this row writes
    admissible = (((arg[..., None] >> bits) & 1) == 1) & usable
    fits = free[..., None] | (charged <= r1[..., None])
    starts = row(tables.starts_note)
    filling = jnp.where(starts, finishing, state.fill_note[:, None]) & row(tables.probe_fill)
    fills = ~filling[..., None] | (charged >= _min_fill(tables.values, usable, r1)[..., None])
    probe_ok = jnp.any(admissible & fits & fills, axis=-1)

    may_start = lambda feature: ((limits.features & feature) != 0)[:, None]  # noqa: E731
    ok_by_event = jnp.select(
        [event == grammar.EV_PROBE, event == grammar.EV_CHORD, event == grammar.EV_BAR,
         event == grammar.EV_TUPLET, (event == grammar.EV_GT) | (event == grammar.EV_LT),
         event == grammar.EV_QUOTE, (event == grammar.EV_EOS) | (event == grammar.EV_FINAL)],
        [probe_ok, probe_ok & (free | (r1 >= 2 * 12)) & may_start(FEATURE_NOTE_CHORD),
         jnp.where(free, ticks1 > 0, ticks1 == limits.bar_len[:, None]),
         free | (r1 >= _shortest_triplet(tables.values, usable)[:, None]), free | (r1 >= arg),
         (free | (r1 >= 12)) & may_start(FEATURE_CHORD_SYMBOL), (state.bars >= limits.min_bars)[:, None] | must_end],
        True)
    forbidden_now = finishing & jnp.isin(event, jnp.array(grammar.FINISH_FORBIDDEN))
    # a first ending needs a bar of its own and then a second ending's: not within the last bar asked for
    forbidden_now |= (event == grammar.EV_END1) & ~_first_ending_fits(limits, state.chars, state.bars)[:, None]
    ok = (nxt >= 0) & commit_fits & ok_by_event & ~forbidden_now
    # a '[' at a bar start that could only open a note chord, where none is to be started, is a dead end
    # unless an ending may follow it (at the next character, with the bar line the '[' may complete counted)
    nxt_state = jnp.maximum(nxt, 0)  # a state to look up for every transition, allowed or not
    bracket = tables.bracket[nxt_state]
    bars_next = state.bars[:, None] + (event == grammar.EV_BAR)
    first_next = _first_ending_fits(limits, state.chars[:, None] + 1, bars_next, column=True)
    ending_follows = ((bracket & BRACKET_SECOND_ENDING) != 0) | (((bracket & BRACKET_FIRST_ENDING) != 0)
                                                                 & first_next)
    # inside a first ending, a bar line that cannot close it leaves a bar of it and the second ending to come
    room_in_first = ((limits.target_bars == 0) | (state.bars + 3 <= limits.target_bars))[:, None]
    ok &= (tables.first_ending[nxt_state] != grammar.FIRST_ENDING_BAR_BEGUN) | room_in_first
    ok &= ((bracket & BRACKET_AT_BAR_START) == 0) | may_start(FEATURE_NOTE_CHORD) | ending_follows
    # the bar line that completes the target bar must already be one that can close the tune
    closes_target = (event == grammar.EV_BAR) & ((limits.target_bars > 0)
                                                  & (state.bars + 1 >= limits.target_bars))[:, None]
    ok &= ~(must_end | closes_target) | row(tables.endable)
    ok &= _phrase_allows(tables, event, nxt_state, state, limits, ok, free | must_end)
    at_end = tables.end_point[s][:, None]
    section_done = (limits.until_section == 1)[:, None] & (state.bars >= 1)[:, None]
    only_eos = at_end & (must_end | section_done)
    return jnp.where(only_eos, event == grammar.EV_EOS, ok) & (nxt >= 0)


def advance(tables: Tables, state: State, limits: Limits, token_B) -> State:
    """Apply each row's chosen character to its state."""
    s = state.syn
    commit = tables.commit[s, token_B].astype(jnp.int32)
    event = tables.event[s, token_B]
    arg = tables.arg[s, token_B]
    ticks = state.ticks + commit
    ticks = ticks + jnp.where(event == grammar.EV_GT, arg // 2, 0) - jnp.where(event == grammar.EV_LT, arg // 2, 0)
    is_bar = event == grammar.EV_BAR
    finishing = state.chars >= limits.max_chars - limits.reserve
    fill_note = jnp.where(tables.starts_note[s, token_B], finishing, state.fill_note & (commit == 0))
    part_bars = _part_bars_at(is_bar, state.part_bars, state.part_closed)
    part_closed = jnp.where(tables.part_end[s, token_B], 1, jnp.where(is_bar, 0, state.part_closed))
    return State(tables.next_state[s, token_B], jnp.where(is_bar, 0, ticks), state.chars + 1,
                 state.bars + is_bar.astype(jnp.int32), fill_note, part_bars, part_closed)
