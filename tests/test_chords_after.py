"""The chords-after format (an auxiliary training task): the training rewrite, and the harmonizer's reading of a
bare melody in it, to the character."""

from __future__ import annotations

import abcflax
from abcflax.abc_check import analyze_tune
from abcflax.harmonizer import (AFTER_MARKER, after_layout, assemble_after, chord_symbol_spans, chords_after_text,
                                find_slots, model_view, remove_spans)
from abcflax.training import build_stream, copy_formats

from test_harmonize import without_chords

REEL = """X:1
T:Test Reel
M:4/4
L:1/8
K:D
A2|"D"d2fd "G"B2dB|"D"A2FA d2fa|"Em"g2eg "A7"f2ec|"D"d4 d2:|
"""

WALTZ = """X:1
T:Test Waltz
M:3/4
L:1/4
K:G
D|"G"G2B|d2B|"C"c2e|"D7"d2c|"G"B2G|]
"""


def test_chords_move_after_the_notes_they_accompany():
    assert chords_after_text(REEL) == (
        "X:1\nT:Test Reel\nM:4/4\nL:1/8\n" + AFTER_MARKER + "\nK:D\n"
        'A2|d2fd"D" B2dB"G"|A2FA d2fa"D"|g2eg"Em" f2ec"A7"|d4 d2"D":|\n')


def test_a_held_chord_is_written_at_every_bar_end():
    # per="auto" in 3/4 is one span per bar: the G of bar 1 is named at the end of bar 1 and bar 2
    assert chords_after_text(WALTZ).endswith('D|G2B"G"|d2B"G"|c2e"C"|d2c"D7"|B2G"G"|]\n')


def test_tunes_without_chords_have_no_chords_after_text():
    assert chords_after_text(without_chords(REEL)) is None


def harmonizer_reading(tune: str, chords: list) -> str:
    """What harmonize reads for ``tune`` stripped of chords, with ``chords`` named after each span."""
    bare = remove_spans(tune, chord_symbol_spans(analyze_tune(tune)))
    analysis = analyze_tune(bare)
    slots = find_slots(analysis, "auto")
    header, view = model_view(bare, analysis, None)
    return assemble_after(after_layout(bare, analysis, slots, header, view), slots, chords)


def test_harmonize_reads_a_melody_exactly_as_training_wrote_it():
    # the same spans, the same close points, the same header: what the model learnt is what it is asked
    # the reel's spans: two per bar (a pickup shorter than a span has none), the short last bar's two
    reel = ["D", "G", "D", "D", "Em", "A7", "D", "D"]
    assert harmonizer_reading(REEL, reel) == chords_after_text(REEL)
    assert harmonizer_reading(WALTZ, ["G", "G", "C", "D7", "G"]) == chords_after_text(WALTZ)
    # a different chord anywhere gives a different text
    assert harmonizer_reading(REEL, reel[:3] + ["A"] + reel[4:]) != chords_after_text(REEL)


def test_build_stream_adds_chords_after_copies_of_chord_tunes_only():
    vocab = abcflax.Vocab.from_texts([REEL, WALTZ, AFTER_MARKER])
    bare = without_chords(WALTZ)
    text = vocab.decode(build_stream([REEL, bare], vocab, [3, 3], chords_after=1))
    assert text.count(AFTER_MARKER) == 1 and chords_after_text(REEL) in text
    assert text.count("Test Reel") == 3 and text.count("Test Waltz") == 2  # no after-copy of a chord-free tune
    assert copy_formats(3, 1) == [False, False, True]
    assert copy_formats(2, 5) == [False, True] and copy_formats(1, 5) == [False]  # one copy stays as written
