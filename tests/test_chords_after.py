"""The chords-after format: the training rewrite, the harmonizer's identical reading of a bare melody, and the
search that names each span's chord after its notes."""

from __future__ import annotations

import dataclasses
import re

import abcflax
from abcflax.abc_check import analyze_tune
from abcflax.harmonizer import (AFTER_MARKER, SearchConfig, after_layout, assemble_after, beam_search_after,
                                chord_symbol_spans, chords_after_text, find_slots, model_view, remove_spans)
from abcflax.training import build_stream, copy_formats

from test_harmonize import FakeScorer, chords_in, without_chords

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


class ReadsTheSpan(FakeScorer):
    """A fake model in the chords-after format: it likes a chord whose root is the span's first note."""

    def __init__(self):
        def fn(text, segment):
            match = re.match(r'"([A-G])[^"]*"', segment)
            if not match:
                return 0.0
            span = re.split(r'[|"\n]', text)[-1]  # the notes read since the last bar line or chord
            return 2.0 if span and span[0].upper() == match.group(1) else 0.0

        super().__init__(fn)


def test_after_search_names_each_chord_from_the_notes_before_it():
    melody = "X:1\nM:2/4\nL:1/4\nK:C\nGB|ce|FA|Ec|]\n"
    analysis = analyze_tune(melody)
    slots = find_slots(analysis, "bar")
    header, view = model_view(melody, analysis, None)
    layout = after_layout(melody, analysis, slots, header, view)
    chords = beam_search_after(ReadsTheSpan(), layout, slots, [["C", "Em", "F", "G"]] * len(slots),
                               SearchConfig(fit_weight=0.0))
    assert chords == ["G", "C", "F", "Em"]


def test_after_search_changes_mid_bar_only_to_another_chord():
    # half-bar spans: a mid-bar close is a chord change, so the run it opens never names the same chord
    melody = "X:1\nM:4/4\nL:1/4\nK:C\nCEGc|cGEC|]\n"
    analysis = analyze_tune(melody)
    slots = find_slots(analysis, "half")
    header, view = model_view(melody, analysis, None)
    layout = after_layout(melody, analysis, slots, header, view)
    # the fake likes naming C and dislikes naming G: a mid-bar C would have to be followed by a G
    scorer = FakeScorer(lambda text, seg: 1.0 if seg.startswith('"C"') else -1.0 if seg.startswith('"G"') else 0.0)
    chords = beam_search_after(scorer, layout, slots, [["C", "G"]] * len(slots), SearchConfig(fit_weight=0.0))
    assert chords == ["C", "C", "C", "C"]
    assert scorer.best.endswith('K:C\nCEGc"C"|cGEC"C"|]\n')  # the run stayed open at each half bar
    # a model that likes changing mid-bar gets its change, to a different chord
    changes = FakeScorer(lambda text, seg: 1.0 if re.match(r'"[CG]"[a-gA-G]', seg) else 0.0)
    assert beam_search_after(changes, layout, slots, [["C", "G"]] * len(slots),
                             SearchConfig(fit_weight=0.0)) in (["C", "G", "C", "G"], ["G", "C", "G", "C"])


def test_harmonize_uses_the_after_search_for_a_model_trained_on_it(tiny_model, monkeypatch):
    from abcflax import harmonizer

    calls = []
    real = harmonizer.beam_search_after
    monkeypatch.setattr(harmonizer, "beam_search_after", lambda *a, **k: calls.append(a[1]) or real(*a, **k))
    tune = without_chords(REEL)
    plain = abcflax.harmonize(tune, model=tiny_model, beam=2)
    assert calls == [] and without_chords(plain) == tune
    after_model = dataclasses.replace(tiny_model, meta={**tiny_model.meta, "chords_after": True})
    out = abcflax.harmonize(tune, model=after_model, beam=2)
    assert without_chords(out) == tune and len(chords_in(out)) >= 4
    assert len(calls) == 1 and calls[0].prefix.startswith("X:1\nT:Test Reel\nM:4/4\nL:1/8\n" + AFTER_MARKER)
    # chords kept in place are read where ABC writes them: the plain search
    abcflax.harmonize(REEL, model=after_model, beam=2, keep_existing=True)
    assert len(calls) == 1
