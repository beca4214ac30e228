"""A continuation's last note, followed inside the sampler's loop, so that extra draws can stop early.

With several draws of a tune (``--candidates``), the draw kept is the first, in draw order, whose last note is
its key's tonic (``endings.best_ending``). Once such a draw has finished and every draw before it has ended, the
draws after it cannot change the choice: the sampler stops them and gives their rows to other work. For that it
needs to know, as a draw finishes, whether its last note (or chord) is the tonic; this module follows the pitch
classes of the last note or chord, character by character, as ``abc_check`` reads them.

It is cautious: ``on_tonic`` is True only when it knows every pitch it used. A note with no accidental of its
own, whose letter had one earlier in the bar, is unknown (``abc_check`` carries an accidental for its letter
*and octave*; following octaves costs compile time for little), and so is a note or chord the prompt began.
Unknown only costs the early stop. The sampler's caller still checks the kept draw on the host
(``sample.Pending.results``) and samples the tune again in full if the two ever disagree.
"""

from __future__ import annotations

from typing import NamedTuple

import jax.numpy as jnp
import numpy as np

from . import grammar

LETTERS = "CDEFGAB"
SEMITONES = np.array([0, 2, 4, 5, 7, 9, 11], np.int32)  # C D E F G A B
NO_ACCIDENTAL = 9  # none written on the note being begun
ALL_LETTERS = (1 << len(LETTERS)) - 1


class Watch(NamedTuple):
    """Per-row state (arrays of shape [B])."""

    accidental: np.ndarray  # int32: the accidental written for the note being begun (-1, 0, 1), else NO_ACCIDENTAL
    note_unsure: np.ndarray  # bool: the note being begun started in the prompt (its accidental is out of sight)
    in_chord: np.ndarray  # bool: inside [..]
    chord_mask: np.ndarray  # int32: pitch classes (bit p for class p) of the open chord's notes so far
    chord_sure: np.ndarray  # bool: all of them are known
    last_mask: np.ndarray  # int32: pitch classes of the last finished note or chord
    last_sure: np.ndarray  # bool: they are known (False before the first note of the continuation)
    # int32: bit i set when letter LETTERS[i] has had an accidental in this bar (in any octave): its notes
    # without one of their own may carry it (abc_check: for their octave), so their pitch is not known here
    touched: np.ndarray


class Key(NamedTuple):
    """Per-row constants: the key in force at the prompt's end (a continuation writes no K: field)."""

    signature: np.ndarray  # int32 [B, 7]: alteration of each letter
    triad: np.ndarray  # int32 [B]: pitch-class bits of the tonic triad; 0 where the key has no tonic
    tonic: np.ndarray  # int32 [B]: the tonic's bit


def char_table(chars: tuple[str, ...]) -> np.ndarray:
    """int32 [2, V]: per character its letter index (-1 if none) and its alteration as an accidental
    (^ 1, _ -1, = 0)."""
    table = np.zeros((2, len(chars)), np.int32)
    for v, ch in enumerate(chars):
        table[0, v] = LETTERS.index(ch.upper()) if len(ch) == 1 and ch.upper() in LETTERS and ch.isalpha() else -1
        table[1, v] = {"^": 1, "_": -1}.get(ch, 0)
    return table


def start(phase: int, bar_accidentals: dict[tuple[str, int], int]) -> Watch:
    """The watch of one row where a prompt leaves it: ``phase`` is the grammar's ``PHASE_*`` of the prompt's
    state, ``bar_accidentals`` those in force at its end ((letter, octave) -> alteration, as ``abc_check``)."""
    touched = sum(1 << LETTERS.index(letter) for letter, _ in bar_accidentals if letter in LETTERS)
    if phase in (grammar.PHASE_BEFORE_LETTER, grammar.PHASE_CHORD) or any(
            letter not in LETTERS for letter, _ in bar_accidentals):
        touched = ALL_LETTERS  # a note begun in the prompt may bring an accidental the watch cannot see
    return Watch(np.int32(NO_ACCIDENTAL), np.bool_(phase == grammar.PHASE_BEFORE_LETTER),
                 np.bool_(phase == grammar.PHASE_CHORD), np.int32(0), np.bool_(False), np.int32(0), np.bool_(False),
                 np.int32(touched))


def key_of(signature: dict[str, int], triad: tuple[int, ...] | None) -> Key:
    """One row's key: ``signature`` letter -> alteration (``abc_check``), ``triad`` tonic first (or None)."""
    bits = 0 if triad is None else sum(1 << p for p in set(triad))
    return Key(np.array([signature.get(letter, 0) for letter in LETTERS], np.int32), np.int32(bits),
               np.int32(0 if triad is None else 1 << triad[0]))


def for_prompt(prompt: str, phase: int) -> tuple[Watch, Key]:
    """One row's watch and key where ``prompt`` (as continued) leaves them; ``phase`` is the grammar's
    ``PHASE_*`` of the state the prompt was placed in. The tonic is found as ``endings.ending_rank`` finds it."""
    from .abc_check import pitch_state_at_end
    from .endings import key_text_at_end, tonic_triad

    header_key, events, signature, accidentals = pitch_state_at_end(prompt)
    return start(phase, accidentals), key_of(signature, tonic_triad(key_text_at_end(header_key, events)))


def stack(rows: list) -> NamedTuple:
    """Rows (``Watch`` or ``Key`` of single rows) as one batch."""
    return type(rows[0])(*(np.stack(column) for column in zip(*rows)))


def advance(watch: Watch, key: Key, role_B, token_B, bar_line_B, chars_2xV) -> Watch:
    """Apply each row's character (its ``grammar.ROLE_*`` flags ``role_B``; ``bar_line_B``: it begins a bar
    line) to the watch. A note's pitch class is known at its letter (octave marks do not change it)."""
    role_B = role_B.astype(jnp.int32)
    is_letter = (role_B & grammar.ROLE_LETTER) != 0
    opens = (role_B & grammar.ROLE_CHORD_OPEN) != 0  # at '[', or at the letter after a bar line's '['
    closes = (role_B & grammar.ROLE_CHORD_CLOSE) != 0
    letter = jnp.maximum(chars_2xV[0, token_B], 0)
    letter_bit = jnp.left_shift(1, letter)
    written = watch.accidental != NO_ACCIDENTAL
    alteration = jnp.where(written, watch.accidental,
                           jnp.take_along_axis(key.signature, letter[:, None], axis=1)[:, 0])
    pitch_bit = jnp.left_shift(1, jnp.remainder(jnp.asarray(SEMITONES)[letter] + alteration, 12))
    sure = ~watch.note_unsure & (written | ((watch.touched & letter_bit) == 0))
    in_chord = watch.in_chord | opens
    chord_mask = jnp.where(opens, 0, watch.chord_mask)
    chord_sure = watch.chord_sure | opens
    chord_note = is_letter & in_chord
    chord_mask = jnp.where(chord_note, chord_mask | pitch_bit, chord_mask)
    chord_sure = jnp.where(chord_note, chord_sure & sure, chord_sure)
    single = is_letter & ~in_chord
    last_mask = jnp.where(single, pitch_bit, jnp.where(closes, chord_mask, watch.last_mask))
    last_sure = jnp.where(single, sure, jnp.where(closes, chord_sure, watch.last_sure))
    touched = jnp.where(is_letter & written, watch.touched | letter_bit, watch.touched)
    touched = jnp.where(bar_line_B, 0, touched)  # a bar line ends the bar's accidentals
    accidental = jnp.where(is_letter, NO_ACCIDENTAL,
                           jnp.where((role_B & grammar.ROLE_ACCIDENTAL) != 0, chars_2xV[1, token_B],
                                     watch.accidental))
    return Watch(accidental, watch.note_unsure & ~is_letter, in_chord & ~closes, chord_mask, chord_sure, last_mask,
                 last_sure, touched)


def on_tonic(watch: Watch, key: Key):
    """Per row: the last note (or every note of the last chord, the tonic among them) is surely the tonic,
    as ``endings.ending_rank`` would find it (TONIC)."""
    inside = (watch.last_mask & ~key.triad) == 0
    return watch.last_sure & (key.triad != 0) & inside & ((watch.last_mask & key.tonic) != 0)
