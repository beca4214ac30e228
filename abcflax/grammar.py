"""The grammar of generated ABC, compiled to tables for the jitted constrained sampler.

A continuation is written in a well-behaved subset of ABC: notes (decoration ``~``/``.``, accidental,
pitch, octave marks, a length from ``LENGTHS``), rests, ``[CEG]`` chords, ``(3`` triplets of three
notes of one length from ``TRIPLET_VALUES`` (``(3ABc``, ``(3A/B/c/``, ``(3A2B2c2``), broken
rhythm ``>``/``<``, chord symbols in quotes, bar lines ``| || |] |: :| ::``, first/second endings
``[1``/``[2``, spaces and line breaks after bar lines.

The *syntax* of that subset is a finite automaton over the model's characters; we enumerate its states
once per vocabulary (breadth-first, in Python) into tables ``next_state[S, V]`` and per-transition
*events*. The *arithmetic* (how full the bar is, how many characters are left) is a handful of integer
counters per row, checked against those events inside jit by ``abcflax.constrain``. Time is counted in
ticks: 48 per unit note length ``L``, so halves, quarters, dotted values and triplets are all whole.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import lru_cache

import numpy as np

TICKS_PER_UNIT = 48
# written length suffix -> ticks; every value is a multiple of 12, so any multiple of 12 can be filled
LENGTHS = {
    "": 48, "2": 96, "3": 144, "4": 192, "5": 240, "6": 288, "7": 336, "8": 384,
    "/": 24, "/2": 24, "//": 12, "/4": 12, "3/": 72, "3/2": 72, "3/4": 36,
}
VALUES = tuple(sorted(set(LENGTHS.values())))  # the distinct written values, in ticks
BROKEN_OK = (24, 48, 96)  # written values that may take '>' or '<' (their halves stay multiples of 12)
# written values a (3 triplet's notes may take, all three the same; each note takes 2/3 of it: sixteenths,
# eighths, quarters and halves of L:1/8 (24 of 182 triplets in the training tunebooks are halves, (3A/B/c/)
TRIPLET_VALUES = (12, 24, 48, 96)
PITCHES_UPPER = "CDEFGAB"
PITCHES_LOWER = "cdefgab"
ACCIDENTALS = "^_="
MAX_CHORD_NOTES = 3
MAX_OCTAVE_MARKS = 2

# pitch roles (bit flags) of a character, for following the last note's pitch (abcflax.last_note)
ROLE_ACCIDENTAL, ROLE_LETTER, ROLE_CHORD_OPEN, ROLE_CHORD_CLOSE = 1, 2, 4, 8
# phases of a state, for where a prompt leaves a note: past its letter (or between notes), before its letter
# (after its decoration or accidental), inside [..]
PHASE_CLEAR, PHASE_BEFORE_LETTER, PHASE_CHORD = range(3)
# a state inside a first ending ([1 written, its :| not yet): open, or with a bar line begun by '|', which
# cannot close it (abcflax.constrain keeps a first ending within the bars asked for)
FIRST_ENDING_OPEN, FIRST_ENDING_BAR_BEGUN = 1, 2
# the bar lines that end a part (what is played once through: ||, |], |:, :|, ::). abcflax.constrain lets a
# part end only at a phrase length; ``Tables.part_end`` marks the character that decides it: the ':' of a
# bar line begun with one (both its completions end a part), the second character of one begun with '|'
SECTION_BARS = frozenset({"||", "|]", "|:"})

# events: what the arithmetic must allow for a transition (checked in abcflax.constrain)
EV_NONE, EV_PROBE, EV_BAR, EV_TUPLET, EV_GT, EV_LT, EV_QUOTE, EV_CHORD, EV_END1, EV_END2, EV_SPACE, \
    EV_NEWLINE, EV_EOS, EV_FINAL = range(14)
FINISH_FORBIDDEN = (EV_TUPLET, EV_GT, EV_LT, EV_QUOTE, EV_END1, EV_SPACE, EV_NEWLINE)


def _length_trie() -> tuple[list[dict], list[int | None]]:
    children: list[dict] = [{}]
    value: list[int | None] = [None]
    for text, ticks in LENGTHS.items():
        node = 0
        for ch in text:
            if ch not in children[node]:
                children.append({})
                value.append(None)
                children[node][ch] = len(children) - 1
            node = children[node][ch]
        value[node] = ticks
    return children, value


LEN_CHILDREN, LEN_VALUE = _length_trie()


def _subtree_values(node: int) -> set[int]:
    found = {LEN_VALUE[node]} if LEN_VALUE[node] is not None else set()
    for child in LEN_CHILDREN[node].values():
        found |= _subtree_values(child)
    return found


def value_mask(values) -> int:
    """Bit k set for each ``VALUES[k]`` in ``values``."""
    return sum(1 << k for k, v in enumerate(VALUES) if v in values)


# chord symbols: root [accidental] [m] [6|7|9] [/ bass [accidental]] -- only what abc2midi and music21 both
# read (Nottingham's own "Gd" for diminished and "D/f+" for a sharp bass are not written)
SYM_ROOT, SYM_ACC, SYM_QUAL, SYM_DIGIT, SYM_SLASH, SYM_BASS, SYM_BASS_ACC = range(1, 8)
SYM_STEPS = {
    0: {**{c: SYM_ROOT for c in PITCHES_UPPER}},
    SYM_ROOT: {"#": SYM_ACC, "b": SYM_ACC, "m": SYM_QUAL,
               "6": SYM_DIGIT, "7": SYM_DIGIT, "9": SYM_DIGIT, "/": SYM_SLASH},
    SYM_ACC: {"m": SYM_QUAL, "6": SYM_DIGIT, "7": SYM_DIGIT, "9": SYM_DIGIT,
              "/": SYM_SLASH},
    SYM_QUAL: {"6": SYM_DIGIT, "7": SYM_DIGIT, "9": SYM_DIGIT, "/": SYM_SLASH},
    SYM_DIGIT: {"/": SYM_SLASH},
    SYM_SLASH: {c: SYM_BASS for c in PITCHES_LOWER + PITCHES_UPPER},
    SYM_BASS: {"#": SYM_BASS_ACC, "b": SYM_BASS_ACC},
    SYM_BASS_ACC: {},
}
SYM_CAN_CLOSE = {SYM_ROOT, SYM_ACC, SYM_QUAL, SYM_DIGIT, SYM_BASS, SYM_BASS_ACC}


@dataclass(frozen=True)
class Syn:
    """The syntactic part of the decoder's state (finite)."""

    mode: str = "TOK"  # TOK DECO ACC PITCH LEN CH_OPEN CH_ACC CH_PITCH CH_AFTER TUP SYM BAR LBRACK DONE
    node: int = 0  # trie node (LEN), symbol state (SYM) or bar token so far (BAR: index in BAR_TEXTS)
    upper: bool = False  # pitch case, for which octave mark is allowed
    octaves: int = 0  # octave marks so far on this pitch
    chord_notes: int = 0  # notes inside the open [..] chord
    tuplet_left: int = 0  # notes still owed to an open (3
    tuplet_value: int = 0  # written ticks of the open triplet's notes, set by its first one (0: not yet)
    need_note: bool = False  # after a chord symbol or '>'/'<': the next token must be a note
    exact: int = 0  # the next note must be written with exactly this many ticks (after '>'/'<')
    charge: str = "n"  # how the next note is charged: n = as written, h = half ('>'), t = 3/2 ('<')
    last_value: int = 0  # written ticks of the note just finished (0 if the last token was not a note)
    repeat_open: bool = False  # a |: is waiting for its :|
    closed_once: bool = False  # a :| has been written, so the next :| needs its own |: (abc2midi's rule)
    ending: int = 0  # 0 none, 1 inside a first ending, 2 first ending closed by :| (a [2 is owed), 3 inside [2
    bar_start: bool = False  # only bar lines / blanks since the last bar line
    owe_bar: bool = False  # a [2 was opened: one bar of music is owed before the tune may end
    prev_blank: bool = False  # last character was a space or newline
    end_point: bool = False  # the tune could end here (after a closing bar line, nothing open)
    final: bool = False  # after |]: only the end-of-tune marker may follow
    staccato: bool = False  # the note being written has a '.': abc2midi refuses '>'/'<' between a staccato
    #                         note and a plain one ("Notes not equal durations"), so neither side gets one


BAR_TEXTS = ("|", ":", "||", "|]", "|:", ":|", "::")
BAR_NEXT = {("|", "|"): "||", ("|", "]"): "|]", ("|", ":"): "|:", (":", "|"): ":|", (":", ":"): "::"}
BAR_COMPLETE = {"|", "||", "|]", "|:", ":|", "::"}  # tokens that may stand as they are


@dataclass(frozen=True)
class Edge:
    """One transition: the next syntactic state and what the arithmetic must check and do."""

    nxt: Syn
    commit: int = 0  # ticks charged to the bar by a note this character finishes (0: none)
    starts_note: bool = False  # this character begins a note, rest or chord
    event: int = EV_NONE
    arg: int = 0  # EV_PROBE: bit mask of admissible written values; EV_GT/EV_LT: the dotted note's ticks
    charge_num: int = 1  # EV_PROBE: charged = written * num / den
    charge_den: int = 1
    probe_fill: bool = False  # EV_PROBE: the fill rule applies to the note being started
    endable: bool = True  # allowed while the tune must end
    bar_kind: str = ""  # the bar token this character completes ("" if none)


def _charge(syn: Syn) -> tuple[int, int]:
    """How the note being written is charged to the bar: written * num / den."""
    if syn.tuplet_left:
        return 2, 3
    return {"n": (1, 1), "h": (1, 2), "t": (3, 2)}[syn.charge]


def _probe_charge(syn: Syn) -> tuple[int, int]:
    """What a probe of the note being written must find room for: the note as charged, or inside a triplet
    (whose three notes all take the first one's value) the notes still owed, this one included, at 2/3 each:
    the first note's check alone let a unit first note in where only a triplet of halves fitted, and the
    third then had no room."""
    if syn.tuplet_left:
        return 2 * syn.tuplet_left, 3
    return _charge(syn)


def _charged(syn: Syn, written: int) -> int:
    num, den = _charge(syn)
    return written * num // den


def _admissible(syn: Syn, node: int) -> int:
    """Mask of written values reachable below length-trie ``node`` for the note being written."""
    values = _subtree_values(node)
    if syn.tuplet_left:
        return value_mask(values & ({syn.tuplet_value} if syn.tuplet_value else set(TRIPLET_VALUES)))
    if syn.exact:
        values = {v for v in values if v == syn.exact}
    return value_mask(values)


def _after_note(syn: Syn, written: int) -> Syn:
    """State after a note or chord of ``written`` ticks is finished."""
    tuplet_left = max(0, syn.tuplet_left - 1)
    tuplet_value = written if tuplet_left else 0
    brokenable = written in BROKEN_OK and not syn.tuplet_left and syn.charge == "n" and not syn.staccato
    return replace(syn, mode="TOK", node=0, octaves=0, chord_notes=0, tuplet_left=tuplet_left,
                   tuplet_value=tuplet_value, need_note=False,
                   exact=0, charge="n", last_value=written if brokenable else 0, bar_start=False, owe_bar=False,
                   prev_blank=False, end_point=False, staccato=False)


def _note_start(syn: Syn, ch: str) -> Edge | None:
    """A character that begins a note, rest or chord from a token boundary."""
    base = replace(syn, bar_start=False, prev_blank=False, end_point=False, last_value=0, need_note=False)
    num, den = _probe_charge(syn)
    fill = not syn.tuplet_left and not syn.exact and syn.charge == "n"
    probe = dict(event=EV_PROBE, arg=_admissible(syn, 0), charge_num=num, charge_den=den, probe_fill=fill,
                 starts_note=True)
    if ch in "~." and not syn.tuplet_left and not (ch == "." and syn.exact):
        return Edge(replace(base, mode="DECO", staccato=ch == "."), **probe)
    if ch in ACCIDENTALS:
        return Edge(replace(base, mode="ACC"), **probe)
    if ch in PITCHES_UPPER + PITCHES_LOWER:
        return Edge(replace(base, mode="PITCH", upper=ch in PITCHES_UPPER, octaves=0), **probe)
    if ch == "z":
        return Edge(replace(base, mode="LEN", node=0, upper=False, octaves=0), **probe)
    if ch == "[" and not syn.tuplet_left:
        if syn.bar_start and not syn.need_note and syn.ending in (0, 2):
            # '[' at a bar start may open an ending ([1, [2) or a chord; the next character decides
            return Edge(replace(base, mode="LBRACK", bar_start=True))
        return Edge(replace(base, mode="CH_OPEN", chord_notes=0), **{**probe, "event": EV_CHORD})
    return None


def _from_token_boundary(syn: Syn, ch: str) -> Edge | None:
    """Any character at a token boundary (after a finished note, bar line, blank...)."""
    note = _note_start(syn, ch)
    if note is not None:
        if syn.ending == 2 and note.nxt.mode != "LBRACK":
            return None  # after :| closing a first ending, the [2 comes first
        return note
    if ch == " " and syn.need_note and not syn.exact and not syn.tuplet_left and not syn.prev_blank:
        return Edge(replace(syn, prev_blank=True), event=EV_SPACE)  # '"G" A': a blank after a chord symbol
    if syn.need_note or syn.tuplet_left:
        return None
    if ch in ">" "<" and syn.last_value:
        event = EV_GT if ch == ">" else EV_LT
        nxt = replace(syn, mode="TOK", need_note=True, exact=syn.last_value, charge="h" if ch == ">" else "t",
                      last_value=0, prev_blank=False)
        return Edge(nxt, event=event, arg=syn.last_value)
    if ch == "(" and syn.ending != 2:
        return Edge(replace(syn, mode="TUP", last_value=0, bar_start=False, prev_blank=False, end_point=False),
                    event=EV_TUPLET)
    if ch == '"' and syn.ending != 2:
        return Edge(replace(syn, mode="SYM", node=0, last_value=0, bar_start=False, prev_blank=False,
                            end_point=False), event=EV_QUOTE)
    if ch == ":" and not _can_close_repeat(syn):
        return None  # neither :| nor :: could follow
    if ch in "|:" and syn.ending != 2:
        # a bar line: the bar must be full (checked by the arithmetic)
        # while the tune must end, start the bar line that can close it: ':|' if a repeat or first
        # ending is open, else '|]' or '||'
        closer = ":" if (syn.repeat_open or syn.ending == 1) else "|"
        return Edge(replace(syn, mode="BAR", node=BAR_TEXTS.index(ch), last_value=0, prev_blank=False,
                            end_point=False), event=EV_BAR, endable=ch == closer)
    if ch == " " and not syn.prev_blank:
        return Edge(replace(syn, last_value=0, prev_blank=True), event=EV_SPACE)
    if ch == "\n" and syn.bar_start and not syn.prev_blank:
        return Edge(replace(syn, last_value=0, prev_blank=True), event=EV_NEWLINE)
    return None


def _finish_bar(syn: Syn, token: str) -> Syn:
    """Repeat and ending bookkeeping when bar token ``token`` is complete."""
    repeat_open, ending, closed_once = syn.repeat_open, syn.ending, syn.closed_once
    if token in (":|", "::"):
        repeat_open, closed_once = False, True
        ending = 2 if ending == 1 else (0 if ending == 3 else ending)
    elif token in ("||", "|]"):
        ending = 0 if ending == 3 else ending
    if token in ("|:", "::"):
        repeat_open = True
        ending = 0 if ending == 3 else ending
    closing = token in ("|]", "||", ":|") and not repeat_open and ending in (0,)
    if token == ":|" and ending == 2:
        closing = False
    return replace(syn, mode="TOK", node=0, repeat_open=repeat_open, ending=ending, closed_once=closed_once,
                   bar_start=True,
                   owe_bar=False, prev_blank=False, end_point=closing, last_value=0)


def _can_close_repeat(syn: Syn) -> bool:
    """A :| may close an explicit |:, or the implicit repeat from the start before any :| was written."""
    return syn.repeat_open or not syn.closed_once


def _bar_kind_endable(syn: Syn, token: str) -> bool:
    """While the tune must end, only bar lines that lead to a proper end are allowed."""
    if syn.ending == 1:
        return token == ":|"
    if syn.repeat_open:
        return token == ":|"
    return token in ("|]", "||", ":|")


@lru_cache(maxsize=None)
def step(syn: Syn, ch: str) -> Edge | None:
    """The transition on character ``ch``, or None if ``ch`` would break the syntax."""
    mode = syn.mode
    if mode == "DONE":
        return None
    if ch == "\x03":  # end of tune
        if syn.end_point and mode == "TOK":
            return Edge(replace(syn, mode="DONE"), event=EV_EOS)
        return None
    if syn.final:
        return Edge(replace(syn, prev_blank=True), event=EV_NEWLINE) if ch == "\n" and not syn.prev_blank else None
    if mode == "TOK":
        return _from_token_boundary(syn, ch)
    if mode == "DECO":
        if ch in ACCIDENTALS:
            return Edge(replace(syn, mode="ACC"))
        if ch in PITCHES_UPPER + PITCHES_LOWER:
            return Edge(replace(syn, mode="PITCH", upper=ch in PITCHES_UPPER, octaves=0))
        return None
    if mode == "ACC":
        if ch in PITCHES_UPPER + PITCHES_LOWER:
            return Edge(replace(syn, mode="PITCH", upper=ch in PITCHES_UPPER, octaves=0))
        return None
    if mode in ("PITCH", "LEN"):
        return _length_step(syn, ch)
    if mode in ("CH_OPEN", "CH_AFTER", "CH_ACC", "CH_PITCH"):
        return _chord_step(syn, ch)
    if mode == "TUP":
        if ch == "3":
            return Edge(replace(syn, mode="TOK", tuplet_left=3, need_note=True))
        return None
    if mode == "SYM":
        return _symbol_step(syn, ch)
    if mode == "BAR":
        return _bar_step(syn, ch)
    if mode == "LBRACK":
        if ch in "12":
            if ch == "1" and syn.ending == 0 and _can_close_repeat(syn):
                return Edge(replace(syn, mode="TOK", ending=1, bar_start=False, end_point=False),
                            event=EV_END1, endable=False)
            if ch == "2" and syn.ending == 2:
                return Edge(replace(syn, mode="TOK", ending=3, bar_start=False, owe_bar=True, end_point=False),
                            event=EV_END2, endable=True)
            return None
        if syn.ending == 2:
            return None
        chord = _chord_step(replace(syn, mode="CH_OPEN", chord_notes=0, bar_start=False), ch)
        if chord is None:
            return None
        num, den = _charge(syn)
        return replace(chord, event=EV_CHORD, arg=_admissible(syn, 0), charge_num=num, charge_den=den)
    raise AssertionError(mode)


def _length_step(syn: Syn, ch: str) -> Edge | None:
    if syn.mode == "PITCH" and syn.octaves < MAX_OCTAVE_MARKS and ch == ("," if syn.upper else "'"):
        return Edge(replace(syn, octaves=syn.octaves + 1))
    node = 0 if syn.mode == "PITCH" else syn.node
    child = LEN_CHILDREN[node].get(ch)
    if child is not None:
        mask = _admissible(syn, child)
        if mask:
            num, den = _probe_charge(syn)
            fill = not syn.tuplet_left and not syn.exact and syn.charge == "n"
            return Edge(replace(syn, mode="LEN", node=child, upper=False, octaves=0), event=EV_PROBE, arg=mask,
                        charge_num=num,
                        charge_den=den, probe_fill=fill)
        return None
    written = LEN_VALUE[node]
    if written is None or not (_admissible(syn, node) & value_mask({written})):
        return None
    done = _after_note(syn, written)
    follow = step(done, ch)
    if follow is None:
        return None
    return replace(follow, commit=_charged(syn, written))


def _chord_step(syn: Syn, ch: str) -> Edge | None:
    mode = syn.mode
    if mode in ("CH_OPEN", "CH_AFTER"):
        if ch == "]" and syn.chord_notes >= 2:
            return Edge(replace(syn, mode="LEN", node=0, upper=False, octaves=0, chord_notes=0))
        if syn.chord_notes >= MAX_CHORD_NOTES:
            return None
        if ch in ACCIDENTALS:
            return Edge(replace(syn, mode="CH_ACC"))
        if ch in PITCHES_UPPER + PITCHES_LOWER:
            return Edge(replace(syn, mode="CH_PITCH", upper=ch in PITCHES_UPPER, octaves=0,
                                chord_notes=syn.chord_notes + 1))
        return None
    if mode == "CH_ACC":
        if ch in PITCHES_UPPER + PITCHES_LOWER:
            return Edge(replace(syn, mode="CH_PITCH", upper=ch in PITCHES_UPPER, octaves=0,
                                chord_notes=syn.chord_notes + 1))
        return None
    # CH_PITCH
    if syn.octaves < MAX_OCTAVE_MARKS and ch == ("," if syn.upper else "'"):
        return Edge(replace(syn, octaves=syn.octaves + 1))
    return _chord_step(replace(syn, mode="CH_AFTER", octaves=0), ch)


def _symbol_step(syn: Syn, ch: str) -> Edge | None:
    if ch == '"':
        if syn.node in SYM_CAN_CLOSE:
            return Edge(replace(syn, mode="TOK", node=0, need_note=True, prev_blank=False))
        return None
    nxt = SYM_STEPS[syn.node].get(ch)
    return Edge(replace(syn, node=nxt)) if nxt is not None else None


def _bar_step(syn: Syn, ch: str) -> Edge | None:
    token = BAR_TEXTS[syn.node]
    # If the tune had to end when this bar line began with the wrong character, it closes one bar later.
    can_close = token == ":" or not (syn.repeat_open or syn.ending == 1)
    longer = BAR_NEXT.get((token, ch))
    if longer == "|:" and (syn.repeat_open or syn.ending in (1, 2)):
        return None  # a second |: before the open repeat is closed (or inside a first ending) is malformed
    if longer == "||" and (syn.repeat_open or syn.ending == 1):
        return None  # a part's end inside an open repeat: it ends with :| (--until section ran on past ||)
    if (longer == ":|" and not _can_close_repeat(syn)) or (longer == "::" and not syn.repeat_open):
        return None  # abc2midi: "found :: before |:" -- a repeat end needs an open repeat
    if longer is not None:
        finished = _finish_bar(syn, longer)
        endable = _bar_kind_endable(syn, longer) if can_close else False
        if longer == "|]":
            if not finished.end_point:
                return None  # |] with music after it, inside a repeat or an ending: a player reads it as the end
            # |] ends the tune: allowed once enough bars are written (checked by the arithmetic)
            return Edge(replace(finished, mode="TOK", final=True), bar_kind=longer, endable=endable,
                        event=EV_FINAL)
        return Edge(replace(finished, mode="TOK"), bar_kind=longer, endable=endable)
    if token not in BAR_COMPLETE:
        return None
    finished = _finish_bar(syn, token)
    follow = step(finished, ch)
    if follow is None:
        return None
    return replace(follow, bar_kind=token, endable=follow.endable and not can_close)


@dataclass(frozen=True)
class Tables:
    """The automaton over one vocabulary, as arrays indexed [state, character]."""

    next_state: np.ndarray  # int32 [S, V]; -1 = not allowed by the syntax
    commit: np.ndarray  # int16 [S, V]
    starts_note: np.ndarray  # bool [S, V]
    event: np.ndarray  # int8 [S, V]
    arg: np.ndarray  # int32 [S, V]
    charge_num: np.ndarray  # int8 [S, V]
    charge_den: np.ndarray  # int8 [S, V]
    probe_fill: np.ndarray  # bool [S, V]
    endable: np.ndarray  # bool [S, V]
    end_point: np.ndarray  # bool [S]: the tune may end in this state
    pitch_role: np.ndarray  # int8 [S, V]: ROLE_* flags of the character (0 for chord symbols, bar lines...)
    phase: np.ndarray  # int8 [S]: PHASE_* of the state
    first_ending: np.ndarray  # int8 [S]: FIRST_ENDING_* of the state (0: no first ending open)
    part_end: np.ndarray  # bool [S, V]: the character makes the bar line being written end a part
    second_ending: np.ndarray  # bool [S]: inside a second ending ([2 written, not yet closed)

    @staticmethod
    def index_of(start: Syn) -> int:
        """Index of a canonical start state (they are enumerated first, in order)."""
        return canonical_starts().index(start)


def canonical_starts() -> list[Syn]:
    """Where a prompt's last bar line can leave us: every repeat/ending situation, at or after a bar line."""
    # a prompt without any bar line starts plainly; after a bar line every repeat/ending situation can occur
    return [Syn()] + [Syn(bar_start=True, repeat_open=repeat_open, ending=ending, closed_once=closed_once)
                      for repeat_open in (False, True) for ending in range(4) for closed_once in (False, True)]


@lru_cache(maxsize=8)
def build_tables(chars: tuple[str, ...]) -> Tables:
    """Enumerate every syntactic state reachable from the canonical start states over ``chars``."""
    starts = canonical_starts()
    index: dict[Syn, int] = {}
    order: list[Syn] = []
    edges: list[list[Edge | None]] = []

    def visit(syn: Syn) -> int:
        if syn not in index:
            index[syn] = len(order)
            order.append(syn)
        return index[syn]

    for start in starts:
        visit(start)
    cursor = 0
    while cursor < len(order):
        syn = order[cursor]
        row = []
        for ch in chars:
            edge = step(syn, ch)
            if edge is not None:
                visit(edge.nxt)
            row.append(edge)
        edges.append(row)
        cursor += 1
    return _to_arrays(order, index, edges, chars)


def _to_arrays(order, index, edges, chars) -> Tables:
    shape = (len(order), len(chars))
    nxt = np.full(shape, -1, np.int32)
    commit = np.zeros(shape, np.int16)
    starts = np.zeros(shape, bool)
    event = np.zeros(shape, np.int8)
    arg = np.zeros(shape, np.int32)
    num = np.ones(shape, np.int8)
    den = np.ones(shape, np.int8)
    probe_fill = np.zeros(shape, bool)
    endable = np.ones(shape, bool)
    for s, row in enumerate(edges):
        for v, edge in enumerate(row):
            if edge is None:
                continue
            nxt[s, v] = index[edge.nxt]
            commit[s, v], starts[s, v], event[s, v], arg[s, v] = edge.commit, edge.starts_note, edge.event, edge.arg
            num[s, v], den[s, v], probe_fill[s, v], endable[s, v] = (edge.charge_num, edge.charge_den,
                                                                     edge.probe_fill, edge.endable)
    end_point = np.array([syn.end_point and syn.mode == "TOK" for syn in order], bool)
    role = np.zeros(shape, np.int8)
    for s, row in enumerate(edges):
        for v, edge in enumerate(row):
            if edge is not None:
                role[s, v] = pitch_role(order[s], chars[v], edge.nxt)
    phase = np.array([_phase(syn) for syn in order], np.int8)
    first_ending = np.array([_first_ending(syn) for syn in order], np.int8)
    part_end = np.array([[edge is not None and _ends_part(syn, ch, edge) for ch, edge in zip(chars, row)]
                         for syn, row in zip(order, edges)], bool).reshape(shape)
    second_ending = np.array([syn.ending == 3 for syn in order], bool)
    return Tables(nxt, commit, starts, event, arg, num, den, probe_fill, endable, end_point, role, phase,
                  first_ending, part_end, second_ending)


def _ends_part(syn: Syn, ch: str, edge: Edge) -> bool:
    """Whether ``ch`` makes the bar line being written end a part (``Tables.part_end``)."""
    return (edge.event == EV_BAR and ch == ":") or (
        syn.mode == "BAR" and BAR_TEXTS[syn.node] == "|" and BAR_NEXT.get(("|", ch)) in SECTION_BARS)


def pitch_role(syn: Syn, ch: str, nxt: Syn) -> int:
    """ROLE_* flags of the allowed transition ``syn`` --``ch``--> ``nxt``: what ``ch`` does to the pitch of
    the note (or chord) being written (octave marks do nothing to its pitch class)."""
    opens = ROLE_CHORD_OPEN if syn.mode == "LBRACK" and nxt.mode in ("CH_ACC", "CH_PITCH") else 0
    if ch in ACCIDENTALS and nxt.mode in ("ACC", "CH_ACC"):
        return ROLE_ACCIDENTAL | opens
    if ch in PITCHES_UPPER + PITCHES_LOWER and nxt.mode in ("PITCH", "CH_PITCH"):
        return ROLE_LETTER | opens
    if ch == "[" and nxt.mode == "CH_OPEN":
        return ROLE_CHORD_OPEN
    if ch == "]" and nxt.mode == "LEN" and syn.mode.startswith("CH_"):
        return ROLE_CHORD_CLOSE
    return 0


def _first_ending(syn: Syn) -> int:
    if syn.ending != 1:
        return 0
    begun_with_bar = syn.mode == "BAR" and BAR_TEXTS[syn.node].startswith("|")
    return FIRST_ENDING_BAR_BEGUN if begun_with_bar else FIRST_ENDING_OPEN


def _phase(syn: Syn) -> int:
    if syn.mode.startswith("CH_"):
        return PHASE_CHORD
    return PHASE_BEFORE_LETTER if syn.mode in ("DECO", "ACC") else PHASE_CLEAR


TABLE_FIELDS = ("next_state", "commit", "starts_note", "event", "arg", "charge_num", "charge_den", "probe_fill",
                "endable", "end_point", "pitch_role", "phase", "first_ending", "part_end",
                "second_ending")


def table_key(chars: tuple[str, ...]) -> str:
    """Names a table file: the vocabulary and this module's own source, so a grammar change rebuilds."""
    import hashlib
    from pathlib import Path

    digest = hashlib.sha256(Path(__file__).read_bytes())
    digest.update("\x00".join(chars).encode("utf-8"))
    return digest.hexdigest()[:20]


def load_or_build(chars: tuple[str, ...], folders) -> Tables:
    """Tables from the first folder holding them (``grammar-<key>.npz``), else built and saved in the last."""
    from pathlib import Path

    from . import atomic
    from .errors import InputError

    name = f"grammar-{table_key(chars)}.npz"
    for folder in folders:
        path = Path(folder) / name
        if path.is_file():
            try:
                with np.load(path, allow_pickle=False) as data:
                    return Tables(*(data[field] for field in TABLE_FIELDS))
            except (OSError, ValueError, KeyError):
                pass  # a damaged cache file is rebuilt below
    tables = build_tables(chars)
    if folders:
        import io

        buffer = io.BytesIO()
        np.savez_compressed(buffer, **{field: getattr(tables, field) for field in TABLE_FIELDS})
        try:
            atomic.write_bytes(Path(folders[-1]) / name, buffer.getvalue())
        except InputError:  # how atomic reports any failed write
            pass  # a read-only cache only costs time
    return tables
