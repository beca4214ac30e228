"""``harmonize``: add chord symbols to a melody, by the char-LSTM (beam search) or by a rules baseline.

The melody is never edited: chord symbols (``"G"``) are only inserted in front of notes or rests that
start a harmonic-rhythm span (per bar, half bar or beat), so removing the chord symbols from the output
gives back the input with its own chord symbols removed.

Model method: the LSTM reads the tune from its start; at each span it is offered every candidate chord
followed by the melody up to the next span, and log p(chord + melody | carry) ranks the beams. So a
chord is judged by the notes it has to accompany, not only by what came before. All beam x candidate
rows of one span go through the model in one batched, jitted call (``scoring.score_segments``).

Rules method: per span, the key's major or minor diatonic triad (or V7) under which most of the
melody's duration sounds, strong beats counting double.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from fractions import Fraction
from typing import Callable, Protocol, Sequence

import numpy as np

from .errors import InputError, UsageError
from .tunebook import (FIELD_LINE, HEADER_KEEP, QUOTED, is_chord_symbol, is_no_chord, map_tunes, normalize_key,
                       read_tunebook)

PERS = ("auto", "bar", "half", "beat")
METHODS = ("model", "rules")
DEFAULT_BEAM = 4
DEFAULT_CHANGE_PENALTY = 0.0  # log-prob subtracted when a span's chord differs from the one before (tuned)
# both tuned on the validation subset of held-out tunes for the bundled model (benchmarks/RESULTS.md): with the
# transposition-trained model the plain joint log-prob (1.0) beat 0.3 / 0.5 / 1.5 / 2 / 3 (56.3% at 0.5, 62.6% at
# 1.0), and a melody-fit prior of 3 added a little (63.2%; 1.5: 62.2%, 8: 62.7%)
DEFAULT_CHORD_WEIGHT = 1.0  # see SearchConfig.chord_weight
DEFAULT_FIT_WEIGHT = 3.0  # see SearchConfig.fit_weight
MIN_CHORD_SHARE = 0.002  # a seen chord is a candidate only if it is at least this share of all chords seen
# the right-to-left rescoring (refine), tuned for the bundled pair on the validation subset (53 tunes; beam alone
# 63.5%): weight 0.5 / 1 / 2 / 3 / 5 gave 64.4 / 64.6 / 65.2 / 64.9 / 64.7%; window 2 / 3 / 5 (one sweep, weight 2)
# 65.0 / 64.9 / 64.9%; a second sweep 65.2%. On the training run's validation split (39 tunes) it did not help:
# 66.4-66.5% against the beam's 66.7% (benchmarks/RESULTS.md)
DEFAULT_REVERSE_WEIGHT = 2.0
DEFAULT_WINDOW = 3
DEFAULT_SWEEPS = 2
MAX_CANDIDATES = 8  # most frequent in-key chords kept: more rows cost time and admit rare, odd choices
MIN_MODE_CHORDS = 300  # a mode with fewer chords in training ranks its candidates by the chords seen instead

# ---------------------------------------------------------------------------------------------------
# Chords and keys

LETTER_PC = {"C": 0, "D": 2, "E": 4, "F": 5, "G": 7, "A": 9, "B": 11}
SHARP_NAMES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")
FLAT_NAMES = ("C", "Db", "D", "Eb", "E", "F", "Gb", "G", "Ab", "A", "Bb", "B")
QUALITIES = ("maj", "min", "dom7", "dim", "aug", "other")
TRIAD = {"maj": (0, 4, 7), "min": (0, 3, 7), "dom7": (0, 4, 7, 10), "dim": (0, 3, 6), "aug": (0, 4, 8),
         "other": (0, 7)}
MAJOR_SCALE = (0, 2, 4, 5, 7, 9, 11)
MODE_SHIFT = {"": 0, "m": 5, "Dor": 1, "Phr": 2, "Lyd": 3, "Mix": 4, "Loc": 6}  # degree of major scale
CHORD_PARTS = re.compile(r"^\(?([A-G])([#b]?)([^/)]*)(?:/([A-Ga-g])([#b+]?))?\)?$")


@dataclass(frozen=True)
class Chord:
    """A parsed chord symbol: root pitch class, quality class, chord-tone pitch classes."""

    text: str  # as written, without quotes
    root: int
    quality: str  # one of QUALITIES
    tones: frozenset[int]  # pitch classes, extensions (7th, 6th) included


def _quality(suffix: str) -> tuple[str, tuple[int, ...]]:
    """(quality class, intervals) of a chord suffix such as ``m``, ``7``, ``maj7``, ``dim``, ``sus4``."""
    s = suffix.strip()
    if s.startswith(("dim", "o")) or "m7b5" in s or s.startswith("\u00f8"):
        extra = (9,) if "7" in s and "b5" not in s and not s.startswith("\u00f8") else (10,) if "7" in s else ()
        return "dim", TRIAD["dim"] + extra
    if s.startswith(("aug", "+")):
        return "aug", TRIAD["aug"]
    if s.startswith("sus"):
        return "other", (0, 5 if "4" in s or s == "sus" else 2, 7)
    if s.startswith(("maj", "M")):
        return "maj", TRIAD["maj"] + ((11,) if "7" in s or "9" in s else ())
    if s.startswith(("m", "min")):
        return "min", TRIAD["min"] + ((10,) if "7" in s else (9,) if "6" in s else ())
    if s[:1] in ("7", "9") or s.startswith(("11", "13")):
        return "dom7", TRIAD["dom7"]
    if s.startswith("6"):
        return "maj", TRIAD["maj"] + (9,)
    if s == "" or s.startswith(("add", "5", "2")):
        return "maj", TRIAD["maj"]
    return "other", TRIAD["other"]


def parse_chord(text: str) -> Chord | None:
    """A ``Chord`` from a chord symbol (``G``, ``Em``, ``D7``, ``A/C#``, Nottingham's ``D/f+``), else None."""
    text = text.strip().strip('"')
    match = CHORD_PARTS.match(text)
    if not match or not is_chord_symbol(text):
        return None
    letter, accidental, suffix = match.group(1), match.group(2), match.group(3)
    root = (LETTER_PC[letter] + {"#": 1, "b": -1}.get(accidental, 0)) % 12
    quality, intervals = _quality(suffix)
    return Chord(text, root, quality, frozenset((root + i) % 12 for i in intervals))


@dataclass(frozen=True)
class Key:
    """Tonic pitch class, mode (``""``, ``m``, ``Dor``, ...) and scale pitch classes."""

    tonic: int
    mode: str
    scale: tuple[int, ...]
    flats: bool  # spell chord roots with flats (a flat key signature)


def parse_key(text: str) -> Key:
    """The key of a ``K:`` value; unknown or ``none`` keys count as C major."""
    value = normalize_key(text.split("%", 1)[0])
    match = re.match(r"^([A-G])([#b]?)(m|Dor|Phr|Lyd|Mix|Loc)?(?![a-z])", value)
    if not match:
        return Key(0, "", MAJOR_SCALE, False)
    tonic = (LETTER_PC[match.group(1)] + {"#": 1, "b": -1}.get(match.group(2), 0)) % 12
    mode = match.group(3) or ""
    shift = MODE_SHIFT[mode]
    major_tonic = (tonic - MAJOR_SCALE[shift]) % 12
    scale = tuple(sorted((major_tonic + d) % 12 for d in MAJOR_SCALE))
    scale = scale[scale.index(tonic):] + scale[:scale.index(tonic)]
    flats = major_tonic in (5, 10, 3, 8, 1, 6) and not (major_tonic == 6 and match.group(2) == "#")
    return Key(tonic, mode, scale, flats)


def chord_name(root: int, quality: str, key: Key) -> str:
    """A chord symbol spelled for ``key`` (``Bb`` in flat keys, ``A#`` never in them)."""
    name = (FLAT_NAMES if key.flats else SHARP_NAMES)[root]
    return name + {"maj": "", "min": "m", "dom7": "7", "dim": "dim", "aug": "aug"}.get(quality, "")


def diatonic_triads(key: Key) -> list[tuple[int, str]]:
    """(root, quality) of the triads built on each scale degree, tonic first."""
    out = []
    for degree in range(7):
        root = key.scale[degree]
        third = (key.scale[(degree + 2) % 7] - root) % 12
        fifth = (key.scale[(degree + 4) % 7] - root) % 12
        quality = {(4, 7): "maj", (3, 7): "min", (3, 6): "dim", (4, 8): "aug"}.get((third, fifth), "other")
        out.append((root, quality))
    return out


def key_chords(key: Key) -> dict[tuple[int, str], str]:
    """In-key chords as (root, quality) -> function: diatonic triads, V7, minor-key V, secondary dominants,
    and the folk staples borrowed across modes (bVII, iv in major; IV in minor)."""
    chords: dict[tuple[int, str], str] = {}
    for degree, (root, quality) in enumerate(diatonic_triads(key)):
        chords.setdefault((root, quality), f"diatonic{degree + 1}")
    dominant = (key.tonic + 7) % 12
    chords.setdefault((dominant, "maj"), "dominant")
    chords.setdefault((dominant, "dom7"), "dominant")
    minor_tonic = diatonic_triads(key)[0][1] == "min"
    for root, quality in diatonic_triads(key):
        secondary = (root + 7) % 12
        # V of iv in a minor or modal tune is the tonic made major (A, A7 in A dorian): it clashes with the
        # mode's own third (C), and Nottingham's minor tunes give it 1.3% of their chords
        if quality in ("maj", "min") and root != key.tonic and not (minor_tonic and secondary == key.tonic):
            chords.setdefault((secondary, "dom7"), "secondary")
            chords.setdefault((secondary, "maj"), "secondary")
    chords.setdefault(((key.tonic + 10) % 12, "maj"), "borrowed")
    chords.setdefault(((key.tonic + 5) % 12, "min" if key.mode == "" else "maj"), "borrowed")
    return chords


def chord_degrees(texts: Sequence[str]) -> dict[str, int]:
    """How often each chord function occurs in ``texts``: ``"<mode>|<semitones above the tonic>|<quality>"``
    -> count, the key read from each tune's (first) ``K:``. Unlike the chord symbols themselves, these
    counts hold in every key: a model's candidates in F are F, C, Bb... even if most training tunes were in G."""
    from collections import Counter

    counts: Counter = Counter()
    for text in texts:
        found = re.search(r"^K:(.*)$", text, re.M)
        if not found:
            continue
        key = parse_key(found.group(1))
        for match in QUOTED.finditer(text):
            chord = parse_chord(match.group(1))
            if chord is not None:
                counts[f"{key.mode}|{(chord.root - key.tonic) % 12}|{chord.quality}"] += 1
    return dict(counts.most_common())


def _ranked_by_degree(key: Key, degrees: dict[str, int], min_share: float) -> list[tuple[int, str]]:
    """In-key (root, quality) pairs, commonest function first in this mode; none when the mode was rare
    in training (Nottingham has chords in major and minor tunes only: a Dorian tune falls back)."""
    table: dict[str, int] = {}
    for name, n in degrees.items():
        mode, function = name.split("|", 1)
        if mode == key.mode:
            table[function] = table.get(function, 0) + n
    total = sum(table.values())
    if total < MIN_MODE_CHORDS:
        return []

    def count(pair: tuple[int, str]) -> int:
        return table.get(f"{(pair[0] - key.tonic) % 12}|{pair[1]}", 0)

    pairs = [pair for pair in key_chords(key) if count(pair) / total >= min_share]
    return sorted(pairs, key=lambda pair: -count(pair))


def candidate_chords(key: Key, seen: dict[str, int] | None, allowed_chars: set[str] | None = None,
                     limit: int = MAX_CANDIDATES, min_share: float = MIN_CHORD_SHARE,
                     degrees: dict[str, int] | None = None) -> list[str]:
    """Chord symbols to try in ``key``. With ``degrees`` (a model's ``chord_degrees``): the in-key chords
    ranked by how often their function occurred in training tunes of this mode. Else the in-key ones among
    the chords a model saw (most frequent first), else spelled from the key (diatonic triads, V7, minor-key V)."""
    if degrees:
        picked = [chord_name(root, quality, key) for root, quality in _ranked_by_degree(key, degrees, min_share)]
        if allowed_chars is not None:
            picked = [c for c in picked if set(f'"{c}"') <= allowed_chars]
        if len(picked) >= 3:
            return picked[:limit]
    in_key = key_chords(key)
    picked = []
    if seen:
        total = sum(seen.values()) or 1
        taken: set[tuple[int, str]] = set()
        for text, count in sorted(seen.items(), key=lambda item: -item[1]):
            chord = parse_chord(text)
            if chord is None or count / total < min_share or "/" in text or "(" in text:
                continue  # slash and optional chords: the bass line is not what the search decides
            if (chord.root, chord.quality) not in in_key or (chord.root, chord.quality) in taken:
                continue
            if allowed_chars is not None and not set(f'"{text}"') <= allowed_chars:
                continue
            taken.add((chord.root, chord.quality))
            picked.append(text)
    if len(picked) < 3:  # no inventory (or a key the training set hardly had): spell the basic set
        picked = [chord_name(r, q, key) for r, q in rule_chords(key)]
        if allowed_chars is not None:
            picked = [c for c in picked if set(f'"{c}"') <= allowed_chars]
    return picked[:limit]


def rule_chords(key: Key) -> list[tuple[int, str]]:
    """The rules method's chords in order of preference (ties go to the earlier): the major and minor
    diatonic triads as I, V, IV, vi, VII, ii, iii (minor keys: i, V, iv, VI, VII, III, v), then V7."""
    triads = diatonic_triads(key)
    dominant = (key.tonic + 7) % 12
    chords: list[tuple[int, str]] = []
    for degree in (0, 4, 3, 5, 6, 1, 2):
        root, quality = triads[degree]
        if degree == 4 and key.mode == "m":
            chords.append((dominant, "maj"))  # the harmonic-minor V comes before the modal v
        if quality in ("maj", "min") and (root, quality) not in chords:
            chords.append((root, quality))
    for extra in ((dominant, "maj"), (dominant, "dom7")):
        if extra not in chords:
            chords.append(extra)
    return chords


# ---------------------------------------------------------------------------------------------------
# Where chords go


@dataclass(frozen=True)
class Note:
    onset: Fraction  # whole notes from the tune start
    duration: Fraction
    pitches: tuple[int, ...]  # MIDI; empty for a rest


@dataclass(frozen=True)
class Slot:
    """One harmonic-rhythm span: where its chord symbol is inserted and the melody under it."""

    offset: int  # character offset in the chord-free tune text
    onset: Fraction
    end: Fraction
    bar_start: bool  # the first span of a bar: a chord is always written there
    beat: Fraction  # the beat length, for weighting strong beats
    key: Key
    notes: tuple[Note, ...]


MUSIC = ("note", "rest", "chord")
ATTACHED = ("decoration", "grace", "tuplet", "annotation", "chord_symbol")  # written in front of their note


def auto_per(meter_text: str) -> str:
    """Folk practice (and the Nottingham collection's own chords): one chord per bar in triple time
    (3/4, 3/8, 3/2); per half bar in 4/4, 2/2, 6/8, 12/8 and 2/4 (whose half bar is its beat); per beat
    in 9/8 (three dotted quarters, usually one chord, sometimes two). A span that keeps the chord before
    it is written only at a bar start, so finer spans mean "may change here", not "changes here"."""
    match = re.match(r"^\s*(\d+)/(\d+)", meter_text or "")
    if meter_text.strip() in ("C", "C|"):
        return "half"
    if not match:
        return "bar"
    numerator = int(match.group(1))
    if numerator == 9:
        return "beat"
    if numerator in (2, 4, 6, 12):
        return "half"
    return "bar"


def beat_length(bar: Fraction, meter_text: str) -> Fraction:
    """Beat in whole notes: dotted for compound meters (6/8, 9/8, 12/8), else 1/denominator."""
    match = re.match(r"^\s*(\d+)/(\d+)", meter_text or "")
    if not match:
        return Fraction(1, 2) if meter_text.strip() == "C|" else Fraction(1, 4)
    numerator, denominator = int(match.group(1)), int(match.group(2))
    if numerator % 3 == 0 and numerator > 3 and denominator >= 8:
        return Fraction(3, denominator)
    return Fraction(1, denominator)


def span_length(per: str, bar: Fraction, beat: Fraction) -> Fraction:
    if per == "bar":
        return bar
    if per == "beat":
        return beat
    half = bar / 2
    return half if half >= beat else bar  # "half" of a one-beat bar is the bar


def _insert_offset(events: list, index: int) -> int:
    """Where a chord symbol for ``events[index]`` goes: before the decorations, grace notes, tuplet mark
    and opening slur written right in front of the note."""
    start = events[index].start
    j = index - 1
    while j >= 0 and events[j].end == start and (
            events[j].kind in ATTACHED or (events[j].kind == "slur" and events[j].text == "(")):
        start = events[j].start
        j -= 1
    return start


def _tied_notes(events: list) -> set[int]:
    """Indices of notes that continue a tie: no chord goes there (it would split the held note)."""
    tied, pending = set(), False
    for i, e in enumerate(events):
        if e.kind == "tie":
            pending = True
        elif e.kind in MUSIC:
            if pending:
                tied.add(i)
            pending = False
    return tied


def first_voice(analysis) -> str:
    """The voice of the tune's first note, rest or chord: the melody harmonize works on."""
    return next((e.voice for e in analysis.events if e.kind in MUSIC), "")


def find_slots(analysis, per: str, skip_existing: bool = False) -> list[Slot]:
    """The harmonic-rhythm spans of the first voice, each anchored at a note or rest onset."""
    voice = first_voice(analysis)
    events = [e for e in analysis.events if e.voice == voice]
    expected = {b.index: b.expected for b in analysis.bars if b.voice == voice}
    meter_text = analysis.meter_text
    key = parse_key(analysis.key)
    per = auto_per(meter_text) if per == "auto" else per
    slots: list[Slot] = []
    by_bar: dict[int, list[int]] = {}
    keys: dict[int, Key] = {}
    for i, e in enumerate(events):
        if e.kind == "field" and e.text.strip("[]").startswith("K:"):
            key = parse_key(e.text.strip("[]")[2:])
        by_bar.setdefault(e.bar, []).append(i)
        keys.setdefault(i, key)
    first_bar = min((e.bar for e in events if e.kind in MUSIC), default=None)
    tied = _tied_notes(events)
    for bar, indices in sorted(by_bar.items()):
        music = [i for i in indices if events[i].kind in MUSIC]
        if not music:
            continue
        start = events[music[0]].onset
        end = max(events[i].onset + events[i].duration for i in music)
        length = expected.get(bar) or analysis.meter or (end - start)
        beat = beat_length(length, meter_text)
        span = span_length(per, length, beat)
        pickup = bar == first_bar and end - start < length
        slots.extend(_bar_slots(events, indices, music, start, end, span, beat, pickup, keys, skip_existing,
                                tied))
    return slots


def _bar_slots(events, indices, music, start, end, span, beat, pickup, keys, skip_existing,
               tied) -> list[Slot]:
    """Spans of one bar; a pickup bar's spans are counted back from its end (it is the bar's tail)."""
    anchor = end - span * ((end - start) // span) if pickup else start
    targets = []
    t = anchor
    while t < end:
        if t >= start:
            targets.append(t)
        t += span
    chosen: list[tuple[int, Fraction]] = []
    for n, t in enumerate(targets):
        # a chord belongs on (or just after) its beat: the bar's first span takes its first note however
        # late, later spans only a note starting within half a beat of the span start
        window = span if n == 0 else min(span, beat) / 2
        hit = next((i for i in music if t <= events[i].onset < t + window and i not in tied), None)
        if hit is not None and (not chosen or chosen[-1][0] != hit):
            chosen.append((hit, t))
    slots = []
    for n, (i, t) in enumerate(chosen):
        span_end = chosen[n + 1][1] if n + 1 < len(chosen) else end
        onset = events[i].onset
        if skip_existing and any(events[j].kind == "chord_symbol" and onset <= events[j].onset < span_end
                                 for j in indices):
            continue
        notes = tuple(Note(events[j].onset, events[j].duration, events[j].pitches) for j in music
                      if events[j].onset < span_end and events[j].onset + events[j].duration > onset)
        slots.append(Slot(_insert_offset(events, i), onset, span_end, n == 0 and not pickup, beat, keys[i],
                          notes))
    return slots


# ---------------------------------------------------------------------------------------------------
# Rules method


def _weight(note: Note, beat: Fraction) -> float:
    """Strong-beat notes count double: what sounds on the beat is what the ear hears as harmony."""
    return 2.0 if note.onset % beat == 0 else 1.0


def pitch_weights(slot: Slot) -> np.ndarray:
    """Melody duration per pitch class inside the span, strong-beat notes counted double."""
    weights = np.zeros(12)
    for note in slot.notes:
        lo, hi = max(note.onset, slot.onset), min(note.onset + note.duration, slot.end)
        for pitch in note.pitches:
            weights[pitch % 12] += float(hi - lo) * _weight(note, slot.beat)
    return weights


def melody_fit(chord: str, weights: np.ndarray) -> float:
    """Share of the span's (weighted) melody that is a tone of ``chord``: 1 = every note a chord tone.
    An empty span fits every chord."""
    parsed = parse_chord(chord)
    total = float(weights.sum())
    if parsed is None or total <= 0:
        return 1.0
    return float(sum(weights[pc] for pc in parsed.tones)) / total


def fit_scores(slot: Slot, options: Sequence[str], fit_weight: float) -> np.ndarray:
    """The melody-fit prior of each candidate chord for a span: ``fit_weight`` x its ``melody_fit``."""
    if not fit_weight:
        return np.zeros(len(options))
    weights = pitch_weights(slot)
    return np.array([fit_weight * melody_fit(cand, weights) for cand in options])


def rules_choose(slot: Slot, previous: str | None = None) -> str:
    """The rules method's chord for one span: the candidate triad covering the most melody duration
    (strong beats weighted); ties go to the chord already sounding, then to the lower scale degree
    (I, ii, iii, IV, V, ...: the tonic wins an empty or ambiguous span). V becomes V7 when the span
    holds the dominant's seventh."""
    weights = pitch_weights(slot)
    triads = [(r, q) for r, q in rule_chords(slot.key) if q != "dom7"]
    best, best_score = triads[0], -1.0
    for root, quality in triads:
        score = sum(weights[(root + i) % 12] for i in TRIAD[quality])
        name = chord_name(root, quality, slot.key)
        if score > best_score + 1e-9 or (abs(score - best_score) <= 1e-9 and name == previous):
            best, best_score = (root, quality), score
    root, quality = best
    if root == (slot.key.tonic + 7) % 12 and quality == "maj" and weights[(root + 10) % 12] > 0:
        quality = "dom7"
    return chord_name(root, quality, slot.key)


def rules_search(slots: Sequence[Slot]) -> list[str]:
    chosen: list[str] = []
    for slot in slots:
        chosen.append(rules_choose(slot, chosen[-1] if chosen else None))
    return chosen


# ---------------------------------------------------------------------------------------------------
# Model method: beam search over chord choices, with an injectable scorer


class Scorer(Protocol):
    """What the beam search needs from a model. A state holds one row per beam."""

    def start(self, prefix: str): ...

    def extend(self, state, parents: np.ndarray, segments: list[str]) -> tuple[np.ndarray, object]:
        """log p(segment_i | row parents[i] of state) for each i, and the state after them (row i)."""

    def select(self, state, rows: np.ndarray): ...

    def states_along(self, state, text: str, cuts: Sequence[int]):
        """A state with one row per cut: ``state`` (one row) after reading ``text[:cut]``."""


class LSTMScorer:
    """A ``Scorer`` over a loaded model: carries and next-char logits, batched and bucketed."""

    def __init__(self, model) -> None:
        self.model = model
        self.table = model.vocab.index()

    def encode(self, text: str) -> np.ndarray:
        return np.fromiter((self.table[ch] for ch in text), np.int32, len(text))

    def start(self, prefix: str):
        from .scoring import prime

        # the header may hold characters the model never saw (a title's letters); it reads only what it knows,
        # as model_mask does for the body
        known = "".join(ch for ch in prefix if ch in self.table)
        ids = np.concatenate([[self.model.vocab.bos_id], self.encode(known)]).astype(np.int32)
        _, carry, logits = prime(self.model.weights, [ids])
        return carry, logits

    def extend(self, state, parents: np.ndarray, segments: list[str]):
        from .scoring import bucket, score_segments, take_rows

        rows = [self.encode(s) for s in segments]
        size = bucket(len(rows), 1)  # pad the batch to a power of two: a handful of compiled shapes
        index = np.zeros(size, np.int32)
        index[:len(rows)] = parents
        rows += [np.zeros(0, np.int32)] * (size - len(rows))  # empty rows: masked, state frozen
        carry, logits = take_rows(state, index)
        logp, carry, logits = score_segments(self.model.weights, carry, logits, rows)
        return np.asarray(logp)[:len(segments)], (carry, logits)

    def select(self, state, rows: np.ndarray):
        from .scoring import take_rows

        return take_rows(state, np.asarray(rows, np.int32))

    def states_along(self, state, text: str, cuts: Sequence[int]):
        from .scoring import states_at

        carry, logits = state
        return states_at(self.model.weights, carry, logits, self.encode(text), cuts)


@dataclass(frozen=True)
class SearchConfig:
    beam: int = DEFAULT_BEAM  # beams kept between spans
    change_penalty: float = DEFAULT_CHANGE_PENALTY  # nats charged for changing chord (a prior on changes)
    # weight of log p(chord symbol | context) against log p(melody | chord): below 1 it tempers the model's
    # habit of repeating the commonest chords, so the melody decides more (1 = the plain joint log-prob)
    chord_weight: float = DEFAULT_CHORD_WEIGHT
    candidates: int = MAX_CANDIDATES  # chords tried per span (the most frequent in-key ones)
    # nats added per unit of melody fit (share of the span's melody that is a chord tone): a prior that
    # the model's scores can overrule but that keeps it from chords the melody contradicts (0 = off)
    fit_weight: float = DEFAULT_FIT_WEIGHT
    # weight of the right-to-left model's log-prob when refining (0 or no such model: the beam's choice stays)
    reverse_weight: float = DEFAULT_REVERSE_WEIGHT
    window: int = DEFAULT_WINDOW  # spans after (forward) and before (right-to-left) a span that rescore its chord
    sweeps: int = DEFAULT_SWEEPS  # refinement passes over the tune (it stops early once a pass changes nothing)


def chord_text(candidate: str, previous: str | None, bar_start: bool) -> str:
    """The text written for a span: the chord, or nothing when a mid-bar span keeps the chord before it."""
    if not bar_start and candidate == previous:
        return ""
    return f'"{candidate}"'


def beam_search(scorer: Scorer, prefix: str, segments: Sequence[str], slots: Sequence[Slot],
                candidates: Sequence[Sequence[str]], config: SearchConfig = SearchConfig()) -> list[str]:
    """Best chord per slot: at slot k, each beam x candidate row scores chord + ``segments[k]`` (the
    melody up to the next slot) in one ``scorer.extend`` call; the best ``config.beam`` rows survive."""
    state = scorer.start(prefix)
    beams: list[tuple[float, tuple[str, ...]]] = [(0.0, ())]
    for k, slot in enumerate(slots):
        parents, rows, totals, paths = [], [], [], []
        fit = dict(zip(candidates[k], fit_scores(slot, candidates[k], config.fit_weight)))
        for b, (score, path) in enumerate(beams):
            previous = path[-1] if path else None
            for cand in candidates[k]:
                parents.append(b)
                rows.append(chord_text(cand, previous, slot.bar_start) + segments[k])
                penalty = config.change_penalty if previous is not None and cand != previous else 0.0
                totals.append(score - penalty + fit[cand])
                paths.append(path + (cand,))
        parents_arr = np.asarray(parents, np.int32)
        logp, new_state = scorer.extend(state, parents_arr, rows)
        totals = np.asarray(totals) + logp
        if config.chord_weight != 1.0:  # a second, short call: the chord symbols' own log-prob
            symbols = [row[:len(row) - len(segments[k])] for row in rows]
            chord_logp, _ = scorer.extend(state, parents_arr, symbols)
            totals += (config.chord_weight - 1.0) * chord_logp
        state = new_state
        keep = np.argsort(-totals, kind="stable")[:config.beam]
        beams = [(float(totals[i]), paths[i]) for i in keep]
        state = scorer.select(state, keep)
    return list(beams[0][1]) if beams else []


def span_text(chords: Sequence[str], k: int, slots: Sequence[Slot], segments: Sequence[str]) -> str:
    """What the model reads for span ``k`` of a chord sequence: its chord (``chord_text``) and its melody."""
    return chord_text(chords[k], chords[k - 1] if k else None, slots[k].bar_start) + segments[k]


def refine(forward: Scorer, backward: Scorer, prefix: str, segments: Sequence[str], slots: Sequence[Slot],
           candidates: Sequence[Sequence[str]], chords: Sequence[str], config: SearchConfig = SearchConfig()
           ) -> list[str]:
    """The beam's chords re-chosen span by span with both readings of the tune (iterated conditional modes).

    The left-to-right model chose each chord before reading any of the melody after its span; ``backward``,
    a right-to-left model (trained with ``--reverse``), reads the tune from its end, so it names a chord
    after the melody that follows it. Every candidate for span k is scored by the forward log-prob of spans
    k..k+window, the backward log-prob of spans k+1 down to k-window times ``config.reverse_weight`` (all
    other chords as they stand), and the melody-fit prior; the best replaces the chord. Even spans are
    re-chosen together, then odd ones, so that each half-pass is one batched call per model for the states
    and one for every candidate of every span in it."""
    chords, count = list(chords), len(chords)
    fits = [fit_scores(slot, options, config.fit_weight) for slot, options in zip(slots, candidates)]
    for _ in range(config.sweeps):
        changed = False
        for first in (0, 1):
            spans = list(range(first, count, 2))
            changed |= _refine_spans(forward, backward, prefix, segments, slots, candidates, chords, fits, spans,
                                     config)
        if not changed:
            break
    return chords


def _refine_spans(forward: Scorer, backward: Scorer, prefix: str, segments: Sequence[str], slots: Sequence[Slot],
                  candidates: Sequence[Sequence[str]], chords: list[str], fits: list[np.ndarray],
                  spans: list[int], config: SearchConfig) -> bool:
    """Re-choose the chords of ``spans`` (no two adjacent) in place; whether any changed."""
    count = len(chords)
    if not spans:  # a one-span tune has no odd spans
        return False
    pieces = [span_text(chords, j, slots, segments) for j in range(count)]
    # per span: the forward reading up to it, and the backward reading of everything after its successor
    starts = np.cumsum([0] + [len(piece) for piece in pieces])  # where each span's text starts
    body = "".join(pieces)
    before = forward.states_along(forward.start(prefix), body, [starts[k] for k in spans])
    after = backward.states_along(backward.start(""), body[::-1], [len(body) - starts[min(count, k + 2)]
                                                                   for k in spans])
    parents, ahead, behind = [], [], []
    for row, k in enumerate(spans):
        for cand in candidates[k]:
            trial = chords[:k] + [cand] + chords[k + 1:]
            parents.append(row)
            ahead.append("".join(span_text(trial, j, slots, segments)
                                 for j in range(k, min(count, k + config.window + 1))))
            behind.append("".join(span_text(trial, j, slots, segments)
                                  for j in range(max(0, k - config.window), min(count, k + 2)))[::-1])
    parents_arr = np.asarray(parents, np.int32)
    ahead_logp, _ = forward.extend(before, parents_arr, ahead)
    behind_logp, _ = backward.extend(after, parents_arr, behind)
    totals = np.asarray(ahead_logp) + config.reverse_weight * np.asarray(behind_logp)
    changed, offset = False, 0
    for k in spans:
        options = candidates[k]
        best = options[int(np.argmax(totals[offset:offset + len(options)] + fits[k]))]
        offset += len(options)
        changed |= best != chords[k]
        chords[k] = best
    return changed


# ---------------------------------------------------------------------------------------------------
# Text: removing chord symbols, the model's view of the tune, inserting chords


def chord_symbol_spans(analysis) -> list[tuple[int, int]]:
    """(start, end) of every chord symbol (not annotation) in an analyzed tune, "no chord" marks (``"N.C."``)
    too: replacing a tune's harmony replaces them as well."""
    return [(e.start, e.end) for e in analysis.events
            if e.kind == "chord_symbol" and (is_chord_symbol(e.text.strip('"')) or is_no_chord(e.text.strip('"')))]


def remove_spans(text: str, spans: list[tuple[int, int]]) -> str:
    out, last = [], 0
    for start, end in sorted(spans):
        out.append(text[last:start])
        last = end
    out.append(text[last:])
    return "".join(out)


def strip_chords(abc: str) -> str:
    """``abc`` (a tune or a tunebook) with every chord symbol removed and all else kept."""
    from .abc_check import analyze_tune

    def one(tune_text: str, line: int) -> str:
        return remove_spans(tune_text, chord_symbol_spans(analyze_tune(tune_text)))

    return map_tunes(abc, one, "<text>")


def model_mask(text: str, analysis, body_start: int, allowed: set[str] | None) -> np.ndarray:
    """Which characters of the tune the model reads: the body minus comments, annotations, non-music
    field lines (w:, N:, ...) and characters outside its vocabulary — the training text's rule."""
    keep = np.array([allowed is None or ch in allowed for ch in text], bool)
    keep[:body_start] = False
    for match in re.finditer(r"(?<!\\)%[^\n]*", text):
        keep[match.start():match.end()] = False
    for match in re.finditer(r"^([A-Za-z]):[^\n]*\n?", text, re.M):
        if match.start() >= body_start and match.group(1) not in ("K", "M", "L", "P", "Q"):
            keep[match.start():match.end()] = False
    for e in analysis.events:
        if e.kind == "annotation" or (e.kind == "chord_symbol" and not is_chord_symbol(e.text.strip('"'))):
            keep[e.start:e.end] = False
    return keep


def model_header(header_lines: list[str]) -> str:
    """The header as training text has it: X:1 and the kept fields, modes spelled one way."""
    lines = ["X:1"]
    for line in header_lines:
        match = FIELD_LINE.match(line)
        if match and match.group(1) in HEADER_KEEP and match.group(1) != "X":
            value = match.group(2).split("%", 1)[0].strip()
            value = normalize_key(value) if match.group(1) == "K" else value
            if value:
                lines.append(f"{match.group(1)}:{value}")
    return "\n".join(lines) + "\n"


def insert_chords(text: str, slots: Sequence[Slot], chords: Sequence[str]) -> str:
    """Write each slot's chord in front of its note; a mid-bar chord equal to the last one is left out."""
    pieces, last, previous = [], 0, None
    for slot, chord in zip(slots, chords):
        pieces.append(text[last:slot.offset])
        pieces.append(chord_text(chord, previous, slot.bar_start))
        last, previous = slot.offset, chord
    pieces.append(text[last:])
    return "".join(pieces)


# ---------------------------------------------------------------------------------------------------
# The chords-after format: each chord written after the notes it accompanies
#
# An auxiliary training task. In ABC a chord symbol comes before its notes; in this second format (marked by
# AFTER_MARKER in the header) the model names each span's chord after reading the span's melody, on
# harmonize's own spans (``find_slots``). Measured on the validation tunes, a fine-tune with some copies of
# Nottingham in this format harmonizes (in the ABC order) about a point better than the same fine-tune
# without them. A search in this format itself measured worse than the ABC-order search (64.0% beat accuracy
# vs 71.1% on 20 validation tunes; 67.1% for a product of the two), so harmonize searches in ABC order;
# ``after_layout`` reads a bare melody the way training writes it, and a test holds the two to the same
# characters.

AFTER_MARKER = "I:chords after"  # header line before K: that tells the model which format it reads


def mark_after(header: str) -> str:
    """``header`` with the chords-after marker line inserted before its K: line."""
    match = re.search(r"^K:", header, re.M)
    at = match.start() if match else len(header)
    return header[:at] + AFTER_MARKER + "\n" + header[at:]


def close_points(analysis, slots: Sequence[Slot], text_length: int) -> list[int]:
    """Where each span's chord goes in the chords-after format: right after the last note, rest or chord
    written before the next span starts (for the last span, the tune's last one)."""
    from bisect import bisect_left

    voice = first_voice(analysis)
    music = [e for e in analysis.events if e.kind in MUSIC and e.voice == voice]
    starts = [e.start for e in music]
    limits = [s.offset for s in slots[1:]] + [text_length]
    points = []
    for slot, limit in zip(slots, limits):
        i = bisect_left(starts, limit) - 1
        points.append(max(music[i].end, slot.offset) if i >= 0 else slot.offset)
    return points


@dataclass(frozen=True)
class AfterLayout:
    """A chord-free tune cut at its spans for the chords-after format."""

    prefix: str  # the marked header and whatever precedes the first span
    melodies: tuple[str, ...]  # span k from its start to its close point
    gaps: tuple[str, ...]  # from span k's close point to span k+1 (bar lines, spaces); the tune's tail last


def after_layout(text: str, analysis, slots: Sequence[Slot], header: str, view) -> AfterLayout:
    """Cut ``text`` (chord-free, ``analysis`` of it) at ``slots``; ``view(a, b)`` is the model's reading of
    ``text[a:b]`` and ``header`` its reading of the header."""
    points = close_points(analysis, slots, len(text))
    ends = [s.offset for s in slots[1:]] + [len(text)]
    melodies = tuple(view(s.offset, p) for s, p in zip(slots, points))
    gaps = [view(p, e) for p, e in zip(points, ends)]
    if not gaps[-1].endswith("\n"):
        gaps[-1] += "\n"  # training tunes end with a newline
    prefix = mark_after(header) + view(_body_start(text), slots[0].offset)
    return AfterLayout(prefix, melodies, tuple(gaps))


def assemble_after(layout: AfterLayout, slots: Sequence[Slot], chords: Sequence[str | None]) -> str:
    """The chords-after text of a tune whose span k has chord ``chords[k]`` (None: no chord in effect). A
    chord is written at its span's close point at a bar's end, at the tune's end, and where the next span
    (mid-bar) changes chord."""
    out = [layout.prefix]
    for k, (melody, gap) in enumerate(zip(layout.melodies, layout.gaps)):
        out.append(melody)
        closes = k + 1 == len(slots) or slots[k + 1].bar_start or chords[k + 1] != chords[k]
        if chords[k] is not None and closes:
            out.append(f'"{chords[k]}"')
        out.append(gap)
    return "".join(out)


def chords_after_text(text: str) -> str | None:
    """A (normalized) training tune rewritten in the chords-after format: its chord symbols re-read as the
    chord in effect at each harmonize span (per="auto") and written after the span's notes. None when the
    tune has no chord symbols (or no spans)."""
    from bisect import bisect_right

    from .abc_check import analyze_tune

    analysis = analyze_tune(text)
    spans = chord_symbol_spans(analysis)
    voice = first_voice(analysis)
    symbols = [(e.onset, e.text.strip('"')) for e in analysis.events
               if e.kind == "chord_symbol" and e.voice == voice and is_chord_symbol(e.text.strip('"'))]
    if not symbols:
        return None
    bare = remove_spans(text, spans)
    bare_analysis = analyze_tune(bare)
    slots = find_slots(bare_analysis, "auto")
    if not slots:
        return None
    onsets = [onset for onset, _ in symbols]
    chords = []
    for slot in slots:
        i = bisect_right(onsets, slot.onset) - 1
        chords.append(symbols[i][1] if i >= 0 else None)
    layout = after_layout(bare, bare_analysis, slots, bare[:_body_start(bare)], lambda a, b: bare[a:b])
    return assemble_after(layout, slots, chords)


# ---------------------------------------------------------------------------------------------------
# Public API


def _check_tune(analysis, source: str, line: int) -> None:
    """Refuse what cannot be harmonized safely: bad header fields, malformed notes or quotes, no notes."""
    for problem in analysis.problems:
        if problem.kind in ("header", "syntax"):  # chords would be placed against misread durations
            raise InputError(f"{source}:{line + problem.line - 1}:{problem.column}: {problem.message}")
    if not any(e.kind in ("note", "chord") for e in analysis.events):
        raise InputError(f"{source}:{line}: the tune has no notes to harmonize")


@dataclass
class Harmonizer:
    """Everything ``harmonize`` decides once per call (model, candidates, search) applied per tune."""

    per: str
    method: str
    keep_existing: bool
    search: SearchConfig
    model: object = None
    scorer: Scorer | None = None
    source: str = "<text>"
    reverse: Scorer | None = None  # the right-to-left model's scorer (refine), if there is one

    def tune(self, text: str, line: int = 1) -> str:
        from .abc_check import analyze_tune

        analysis = analyze_tune(text)
        _check_tune(analysis, self.source, line)
        if not self.keep_existing:
            text = remove_spans(text, chord_symbol_spans(analysis))
            analysis = analyze_tune(text)
        slots = find_slots(analysis, self.per, skip_existing=self.keep_existing)
        if not slots:
            return text
        if self.method == "rules":
            chords = rules_search(slots)
        else:
            chords = self.model_chords(text, analysis, slots)
        return insert_chords(text, slots, chords)

    def model_chords(self, text: str, analysis, slots: list[Slot]) -> list[str]:
        allowed = set(self.model.vocab.chars[2:]) if self.model is not None else None
        header, view = model_view(text, analysis, allowed)
        prefix = header + view(_body_start(text), slots[0].offset)
        ends = [s.offset for s in slots[1:]] + [len(text)]
        segments = [view(s.offset, e) for s, e in zip(slots, ends)]
        if not segments[-1].endswith("\n"):
            segments[-1] += "\n"  # training tunes end with a newline
        meta = self.model.meta if self.model is not None else {}
        seen, degrees = meta.get("chord_symbols") or None, meta.get("chord_degrees") or None
        per_key = {key: candidate_chords(key, seen, allowed, self.search.candidates, degrees=degrees)
                   for key in {s.key for s in slots}}
        candidates = [per_key[s.key] for s in slots]
        candidates[-1] = final_candidates(candidates[-1], slots[-1])
        chords = beam_search(self.scorer, prefix, segments, slots, candidates, self.search)
        if self.reverse is not None and self.search.reverse_weight:
            chords = refine(self.scorer, self.reverse, prefix, segments, slots, candidates, chords, self.search)
        return chords


def final_candidates(options: list[str], slot: Slot) -> list[str]:
    """The last span's candidates: the tonic chord alone where the tune's last note is its key's tonic
    (when the tonic chord is a candidate). Nottingham's tunes that end on the tonic end on its chord 92%
    of the time (708 of 773); the model, free, put D7 under a dorian tune's final A."""
    last = next((note for note in reversed(slot.notes) if note.pitches), None)
    if last is None or max(last.pitches) % 12 != slot.key.tonic:
        return options
    root, quality = diatonic_triads(slot.key)[0]
    tonic = [text for text in options for chord in [parse_chord(text)]
             if chord is not None and (chord.root, chord.quality) == (root, quality)]
    return tonic or options


def model_view(text: str, analysis, allowed: set[str] | None):
    """(header, view): the model's reading of the header, and ``view(a, b)``, its reading of
    ``text[a:b]`` (``model_mask``)."""
    body_start = _body_start(text)
    keep = model_mask(text, analysis, body_start, allowed)
    chars = np.array(list(text), dtype=object)

    def view(a: int, b: int) -> str:
        return "".join(chars[a:b][keep[a:b]])

    return model_header(text[:body_start].split("\n")), view


def _body_start(text: str) -> int:
    """Offset just after the header's K: line."""
    match = re.search(r"^K:[^\n]*(\n|$)", text, re.M)
    return match.end() if match else 0


def _validate(per: str, method: str, beam: int, candidates: int) -> None:
    if per not in PERS:
        raise UsageError(f"per must be one of {', '.join(PERS)} (got {per!r})")
    if method not in METHODS:
        raise UsageError(f"method must be one of {', '.join(METHODS)} (got {method!r})")
    if not isinstance(beam, int) or beam < 1:
        raise UsageError(f"beam must be a positive integer (got {beam!r})")
    if not isinstance(candidates, int) or candidates < 1:
        raise UsageError(f"candidates must be a positive integer (got {candidates!r})")


def harmonize(abc: str, *, model=None, per: str = "auto", method: str = "model", keep_existing: bool = False,
              beam: int = DEFAULT_BEAM, seed: int = 0, change_penalty: float = DEFAULT_CHANGE_PENALTY,
              chord_weight: float = DEFAULT_CHORD_WEIGHT, candidates: int = MAX_CANDIDATES,
              fit_weight: float = DEFAULT_FIT_WEIGHT, reverse_model="auto",
              reverse_weight: float = DEFAULT_REVERSE_WEIGHT, scorer: Scorer | None = None,
              reverse_scorer: Scorer | None = None, source: str = "<text>",
              on_tune: Callable[[int, int], None] | None = None, problems: list[str] | None = None) -> str:
    """``abc`` (a tune or a tunebook) with chord symbols added at harmonic-rhythm positions.

    ``per``: ``bar``, ``half``, ``beat`` or ``auto`` (by meter, see ``auto_per``). ``method``: ``model``
    (beam search scored by the LSTM; ``model`` is a path, a ``Model`` or None for the default) or
    ``rules``. Existing chord symbols are replaced, or kept (and their spans left alone) with
    ``keep_existing``. Search knobs (see ``SearchConfig``): ``beam``, ``change_penalty``, ``chord_weight``,
    ``candidates``, ``fit_weight``. ``reverse_model``: the right-to-left model that refines the beam's
    chords (``refine``): ``"auto"`` (the ``reverse.msgpack`` beside the model, if any; the bundled model has
    one), a path or ``Model``, or None (off); ``reverse_weight`` weighs it. The search is deterministic;
    ``seed`` is accepted for symmetry with ``complete`` and unused. ``scorer`` and ``reverse_scorer`` replace
    the models' scorers (tests inject fakes). ``on_tune(done, total)`` is called after each tune of a tunebook
    (a progress bar for long books). A bad tune is an InputError, unless ``problems`` is a list: then it is
    reported there and left out, and the other tunes are harmonized (``harmonize_tunebook``).
    """
    del seed  # beam search has no randomness
    if not isinstance(abc, str):
        raise InputError(f"{source}: expected ABC text, got {type(abc).__name__}")
    if not abc.strip():
        raise InputError(f"{source}: empty input")
    _validate(per, method, beam, candidates)
    for name, value in (("fit_weight", fit_weight), ("reverse_weight", reverse_weight)):
        if not isinstance(value, (int, float)) or not value >= 0:
            raise UsageError(f"{name} must be 0 or more (got {value!r})")
    loaded = None
    if method == "model" and scorer is None:
        from .loading import resolve_model

        loaded = resolve_model(model)
        scorer = LSTMScorer(loaded)
        if reverse_scorer is None and reverse_weight:
            reverse_scorer = _reverse_scorer(loaded, reverse_model)
    search = SearchConfig(beam, change_penalty, chord_weight, candidates, float(fit_weight), float(reverse_weight))
    worker = Harmonizer(per, method, keep_existing, search, loaded, scorer, source, reverse_scorer)
    if on_tune is None:
        return map_tunes(abc, worker.tune, source, problems)
    total, done = len(read_tunebook(abc, source)[0]), 0

    def counted(text: str, first_line: int) -> str:
        nonlocal done
        try:
            return worker.tune(text, first_line)
        finally:  # a refused tune is done too
            done += 1
            on_tune(done, total)

    return map_tunes(abc, counted, source, problems)


def _reverse_scorer(model, reverse_model) -> LSTMScorer | None:
    """The scorer of the right-to-left model that goes with ``model``: its companion for ``"auto"``."""
    from .loading import resolve_model, reverse_companion

    if reverse_model is None:
        return None
    backward = reverse_companion(model) if reverse_model == "auto" else resolve_model(reverse_model, reverse=True)
    if backward is None:
        return None
    missing = set(model.vocab.chars[2:]) - set(backward.vocab.chars)
    if missing:
        raise UsageError(f"{backward.path}: the right-to-left model lacks characters the model reads "
                         f"({''.join(sorted(missing))[:20]!r})")
    return LSTMScorer(backward)


def harmonize_tunebook(abc: str, **kw) -> tuple[str, list[str]]:
    """Every good tune of a tunebook harmonized, in order: (output tunebook, problems), as
    ``complete_tunebook``. A bad tune is reported as ``source:line:col: why`` and left out; the output is ""
    when no tune is good."""
    problems: list[str] = []
    return harmonize(abc, problems=problems, **kw), problems
