"""harmonize(): melody kept exactly, chords where they belong, rules and beam search, errors, CLI."""

from __future__ import annotations

import dataclasses
import re
import string
from fractions import Fraction

import numpy as np
import pytest

import abcflax
from abcflax.errors import InputError, UsageError
from abcflax.harmonizer import (LSTMScorer, SearchConfig, auto_per, beam_search, candidate_chords, find_slots,
                                parse_chord, parse_key)
from abcflax.tunebook import is_chord_symbol

QUOTED = re.compile(r'"([^"\n]*)"')

# pickup, comment, annotation, decorations, grace notes, tuplet, slur, tie, endings, an inline chord
BUSY = """X:3
T:Busy Jig
% a comment with "quotes"
R:jig
M:6/8
L:1/8
K:G
D|"G"GAB "^here"~d2c|B{c}BG "C"E2c|(3ABA (GA) [DF]3-|[DF]2D GAB|
w:some words
"Am"c2A !trill!B2G|[1 A3 G2:|[2 A3 G3|]
"""

C_MAJOR = """X:1
T:Scale chords
M:4/4
L:1/4
K:C
CEGc|BdfB|FAcA|GBdg|c4|]
"""


def without_chords(text: str) -> str:
    """An independent chord remover: every quoted chord symbol goes, annotations stay."""
    return QUOTED.sub(lambda m: "" if is_chord_symbol(m.group(1)) else m.group(0), text)


class FakeScorer:
    """A ``Scorer`` whose state is the text read so far and whose log-prob is ``fn(text, segment)``."""

    def __init__(self, fn):
        self.fn = fn
        self.rows_seen: list[int] = []

    def start(self, prefix):
        return [prefix]

    def extend(self, state, parents, segments):
        self.rows_seen.append(len(segments))
        scores = np.array([self.fn(state[p], s) for p, s in zip(parents, segments)], float)
        return scores, [state[p] + s for p, s in zip(parents, segments)]

    def select(self, state, rows):
        self.best = state[int(rows[0])]  # after the last span: the text the best beam read
        return [state[int(i)] for i in rows]

    def states_along(self, state, text, cuts):
        return [state[0] + text[:cut] for cut in cuts]


def chords_in(text: str) -> list[str]:
    return [m.group(1) for m in QUOTED.finditer(text) if is_chord_symbol(m.group(1))]


@pytest.fixture(scope="module")
def tiny_model():
    """An untrained 1x16 CharLSTM over printable ASCII (scores are arbitrary, shapes are real)."""
    from flax import nnx  # noqa: F401  (the model module needs it)

    from abcflax.loading import Model

    vocab = abcflax.Vocab.from_texts([string.printable])
    config = dataclasses.replace(abcflax.preset("tiny"), vocab_size=vocab.size)
    module = abcflax.create_model(config)
    return Model.from_module(module, vocab, "<test>", {"chord_symbols": {"G": 50, "D": 30, "C": 20, "Em": 10, "D7": 8,
                                                             "Am": 6, "A7": 4, "F#m": 1, "D/f+": 3}})


# ---- the melody is never touched


@pytest.mark.parametrize("method", ["rules", "fake"])
@pytest.mark.parametrize("per", ["bar", "half", "beat", "auto"])
def test_melody_round_trips_exactly(method, per):
    scorer = FakeScorer(lambda text, seg: -len(seg)) if method == "fake" else None
    out = abcflax.harmonize(BUSY, method="rules" if method == "rules" else "model", per=per, scorer=scorer)
    assert without_chords(out) == without_chords(BUSY)
    assert abcflax.strip_chords(out) == without_chords(BUSY)
    assert chords_in(out) and chords_in(out) != chords_in(BUSY)
    assert '"^here"' in out and "% a comment" in out and "w:some words" in out


def test_tunebook_every_tune_in_order():
    book = "% book header\n\n" + BUSY + "\nfree text between\n\n" + C_MAJOR
    out = abcflax.harmonize(book, method="rules", per="bar")
    assert without_chords(out) == without_chords(book)
    first, second = out.split("free text between")
    assert chords_in(first) and chords_in(second)[:3] == ["C", "G7", "F"]


def test_keep_existing_keeps_them_and_fills_the_rest():
    melody = "X:1\nM:4/4\nL:1/4\nK:C\n\"Am\"CEGc|BdfB|\n"
    out = abcflax.harmonize(melody, method="rules", per="bar", keep_existing=True)
    assert chords_in(out) == ["Am", "G7"]
    assert chords_in(abcflax.harmonize(melody, method="rules", per="bar")) == ["C", "G7"]


def test_output_checks_and_music21_reads_chords_at_offsets():
    from music21 import converter, harmony

    from abcflax.abc_check import check_tune

    out = abcflax.harmonize(C_MAJOR, method="rules", per="half")
    assert check_tune(out) == []
    score = converter.parseData("%abc-2.1\n" + out, format="abc")
    found = [(float(c.getOffsetInHierarchy(score)), c.figure) for c in score.recurse()
             if isinstance(c, harmony.ChordSymbol)]
    # quarter-note offsets: a chord on every bar start, and at half bars only where the chord changes
    assert [offset for offset, _ in found] == sorted(offset for offset, _ in found)
    assert all(offset % 2 == 0 for offset, _ in found)
    assert {0.0, 4.0, 8.0, 12.0, 16.0} <= {offset for offset, _ in found}
    assert found[0][1] == "C" and dict(found)[8.0] == "F"


# ---- rules


def test_rules_give_the_obvious_chords():
    out = abcflax.harmonize(C_MAJOR, method="rules", per="bar")
    assert chords_in(out) == ["C", "G7", "F", "G", "C"]


def test_rules_in_minor_prefer_major_dominant_with_leading_tone():
    tune = "X:1\nM:3/4\nL:1/4\nK:Am\nACE|^GBE|A3|]\n"
    assert chords_in(abcflax.harmonize(tune, method="rules")) == ["Am", "E", "Am"]


# ---- where chords go


def test_slots_follow_meter_and_skip_held_notes():
    assert auto_per("6/8") == "half" and auto_per("3/4") == "bar" and auto_per("4/4") == "half"
    assert auto_per("9/8") == "beat" and auto_per("2/4") == "half"
    from abcflax.abc_check import analyze_tune

    analysis = analyze_tune("X:1\nM:4/4\nL:1/8\nK:D\nA|d6 ef|d2-d2 e4|]\n")
    slots = find_slots(analysis, "half")
    # no chord on the pickup, none inside the held d6, none on the tied continuation d2
    assert [s.onset for s in slots] == [Fraction(1, 8), Fraction(9, 8), Fraction(13, 8)]
    assert [s.bar_start for s in slots] == [True, True, False]


def test_chord_parsing_and_candidates():
    assert (parse_chord("D7").quality, parse_chord("Em").quality, parse_chord("D/f+").root) == ("dom7", "min", 2)
    assert parse_chord("Coda") is None
    key = parse_key("G")
    seen = {"G": 50, "D": 30, "C": 20, "Em": 10, "D7": 8, "Bb": 9, "F#m": 1, "D/f+": 3}
    picked = candidate_chords(key, seen, min_share=0.01)
    assert picked[:3] == ["G", "D", "C"] and "Bb" not in picked and "D/f+" not in picked and "F#m" not in picked
    assert set(candidate_chords(parse_key("Dm"), None)) >= {"Dm", "A", "A7", "Gm", "F", "C", "Bb"}


def test_chord_functions_rank_candidates_in_any_key():
    from abcflax.harmonizer import chord_degrees

    in_g = 'X:1\nK:G\n"G"GAB "D7"A2|"C"c2 "G"B2|"Em"E2 "D"D2|"G"G4|]\n'
    in_d = 'X:1\nK:D\n"D"DEF "A7"E2|"G"G2 "D"F2|"D"D4|]\n'
    degrees = chord_degrees([in_g, in_d] * 60)  # 600 chords in major tunes
    assert degrees["|0|maj"] == 360 and degrees["|7|dom7"] == 120 and degrees["|9|min"] == 60
    seen = {"G": 5000, "D": 3000, "C": 900, "Em": 500, "D7": 400, "A7": 300}  # the symbols of G and D tunes
    # by the symbols alone, a tune in F would not even get its tonic; by function it gets I, V7, IV first
    assert "F" not in candidate_chords(parse_key("F"), seen, limit=4)
    picked = candidate_chords(parse_key("F"), seen, limit=4, degrees=degrees)
    assert picked[0] == "F" and set(picked[1:3]) == {"C7", "Bb"} and picked[3] in ("C", "Dm")  # 360, 120, 120, 60
    assert candidate_chords(parse_key("ADor"), seen, degrees=degrees) == candidate_chords(parse_key("ADor"), seen)


# ---- the beam search


def test_search_picks_what_a_fake_model_prefers():
    scorer = FakeScorer(lambda text, seg: 5.0 if seg.startswith('"Em"') else 0.0)
    out = abcflax.harmonize(C_MAJOR.replace("K:C", "K:G"), per="bar", scorer=scorer)
    assert chords_in(out) == ["Em"] * 5


def test_search_scores_the_chord_with_the_notes_that_follow():
    # the fake model likes a chord whose root letter is the next note: only a search that feeds the
    # following melody with the chord can see that
    def fn(text, seg):
        match = re.match(r'"([A-G])[^"]*"([A-Ga-g])', seg)
        return 2.0 if match and match.group(1) == match.group(2).upper() else 0.0

    scorer = FakeScorer(fn)
    melody = "X:1\nM:2/4\nL:1/4\nK:C\nGB|ce|FA|Ed|]\n"  # not ending on the tonic, whose chord is fixed
    assert chords_in(abcflax.harmonize(melody, per="bar", scorer=scorer)) == ["G", "C", "F", "Em"]


def test_model_reads_the_training_normalization_of_the_tune():
    # comments, annotations, lyrics and the header's extra fields are not what the model was trained on
    scorer = FakeScorer(lambda text, seg: 0.0)
    out = abcflax.harmonize(BUSY, scorer=scorer)
    tune = abcflax.read_tunebook(out)[0][0]
    assert scorer.best == "X:1\n" + abcflax.normalize_tune(tune).split("\n", 1)[1]


def test_beam_batches_beams_times_candidates():
    scorer = FakeScorer(lambda text, seg: 0.0)
    from abcflax.abc_check import analyze_tune

    slots = find_slots(analyze_tune(C_MAJOR), "bar")
    chords = beam_search(scorer, "", ["x"] * len(slots), slots, [["C", "F", "G"]] * len(slots),
                         SearchConfig(beam=2, chord_weight=1.0))
    assert len(chords) == len(slots) and scorer.rows_seen == [3] + [6] * (len(slots) - 1)
    scorer.rows_seen.clear()  # a chord weight other than 1 adds one short call per span: the symbols alone
    beam_search(scorer, "", ["x"] * len(slots), slots, [["C", "F", "G"]] * len(slots),
                SearchConfig(beam=2, chord_weight=0.5))
    assert scorer.rows_seen == [3, 3] + [6, 6] * (len(slots) - 1)


def test_chord_weight_tempers_the_chord_prior():
    # the fake model finds the symbol "C" itself likely, but the melody likelier after "G": weight 1 takes
    # the joint log-prob (C wins), weight 0 only the melody's (G wins)
    def fn(text, seg):
        symbol, melody = re.match(r'("[^"]*")?(.*)', seg, re.S).groups()
        chord = -0.1 if symbol == '"C"' else -3.0
        return chord + (0.0 if not melody else -0.5 if symbol == '"G"' else -2.0)

    tune = "X:1\nM:4/4\nL:1/4\nK:C\nEGce|\n"
    pick = {w: chords_in(abcflax.harmonize(tune, per="bar", scorer=FakeScorer(fn), chord_weight=w, fit_weight=0.0))
            for w in (1.0, 0.0)}
    assert pick == {1.0: ["C"], 0.0: ["G"]}


def test_lstm_search_runs_and_keeps_the_melody(tiny_model):
    out = abcflax.harmonize(BUSY, model=tiny_model, beam=3)
    assert without_chords(out) == without_chords(BUSY)
    assert set(chords_in(out)) <= {"G", "D", "C", "Em", "D7", "Am", "A7"}
    state = LSTMScorer(tiny_model).start("X:1\nK:G\n")
    logp, _ = LSTMScorer(tiny_model).extend(state, np.zeros(3, np.int32), ['"G"AB', '"D"AB', ""])
    assert logp.shape == (3,) and logp[2] == 0.0 and np.all(logp[:2] < 0)


# ---- errors


@pytest.mark.parametrize("text, message", [
    ("", "empty input"),
    ("X:1\nT:no key\n", "no K:"),
    ('X:1\nM:4/4\nK:G\n"G ABc|\n', '<text>:4:1: unclosed "'),
    ("X:1\nK:G\n% only a comment\nz4|\n", "no notes"),
])
def test_bad_input_is_one_clear_line(text, message):
    with pytest.raises(InputError) as info:
        abcflax.harmonize(text, method="rules")
    assert message in str(info.value) and "\n" not in str(info.value)


def test_bad_options():
    with pytest.raises(UsageError):
        abcflax.harmonize(C_MAJOR, per="fortnight", method="rules")
    with pytest.raises(UsageError):
        abcflax.harmonize(C_MAJOR, method="dice")


# ---- CLI


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory, tiny_model):
    from flax import nnx

    from abcflax import checkpoint

    folder = tmp_path_factory.mktemp("harmonize_model")
    ckpt = checkpoint.Checkpoint(tiny_model.config, tiny_model.vocab, nnx.to_pure_dict(nnx.state(tiny_model.module)),
                                 meta=tiny_model.meta)
    checkpoint.save(folder, ckpt)
    return folder


def test_cli(tmp_path, tiny_model_dir):
    from click.testing import CliRunner

    from abcflax_cli.common import main_group

    source = tmp_path / "melody.abc"
    source.write_text(BUSY)
    runner = CliRunner()
    result = runner.invoke(main_group, ["harmonize", str(source), "--model", str(tiny_model_dir)])
    assert result.exit_code == 0, result.output
    assert without_chords(result.stdout) == without_chords(BUSY)
    out = tmp_path / "out.abc"
    args = ["harmonize", "-", "-o", str(out), "--method", "rules", "--per", "bar"]
    assert runner.invoke(main_group, args, input=C_MAJOR).exit_code == 0
    assert chords_in(out.read_text()) == ["C", "G7", "F", "G", "C"]
    again = runner.invoke(main_group, args, input=C_MAJOR)
    assert again.exit_code == 1 and "already exists" in again.stderr
    assert runner.invoke(main_group, args + ["--force"], input=C_MAJOR).exit_code == 0
    bad = runner.invoke(main_group, ["harmonize", str(tmp_path / "missing.abc"), "--method", "rules"])
    assert bad.exit_code == 1 and bad.stderr.strip().endswith("missing.abc: no such file")


def test_melody_fit_prior_picks_the_chord_the_melody_outlines():
    # an indifferent model: without the prior the first candidate wins everywhere; with it, each bar gets the
    # candidate whose tones cover its notes
    from abcflax.abc_check import analyze_tune

    melody = "X:1\nM:4/4\nL:1/4\nK:C\nCEGE|FAcA|GBdB|]\n"
    slots = find_slots(analyze_tune(melody), "bar")
    search = [["Am", "C", "F", "G"]] * len(slots)
    flat = beam_search(FakeScorer(lambda text, seg: 0.0), "", ["x"] * len(slots), slots, search,
                       SearchConfig(chord_weight=1.0, fit_weight=0.0))
    fitted = beam_search(FakeScorer(lambda text, seg: 0.0), "", ["x"] * len(slots), slots, search,
                         SearchConfig(chord_weight=1.0, fit_weight=3.0))
    assert flat == ["Am"] * 3 and fitted == ["C", "F", "G"]


def test_melody_fit_is_the_share_of_chord_tones():
    from abcflax.harmonizer import melody_fit

    weights = np.zeros(12)
    weights[[0, 4, 2]] = [2.0, 1.0, 1.0]  # C, E on the chord; D off it
    assert melody_fit("C", weights) == pytest.approx(0.75)
    assert melody_fit("G", weights) == pytest.approx(0.25)  # D is G's fifth
    assert melody_fit("C", np.zeros(12)) == 1.0


def test_negative_fit_weight_is_refused():
    with pytest.raises(UsageError):
        abcflax.harmonize(C_MAJOR, method="rules", fit_weight=-1)


# ---- refining with a right-to-left model


TWO_FOUR = "X:1\nM:2/4\nL:1/4\nK:C\nGB|ce|FA|Ed|]\n"  # not ending on the tonic, whose chord is fixed


def test_refine_lets_the_right_to_left_model_change_the_chords():
    # an indifferent forward model leaves the beam on its first candidate; a right-to-left model that likes
    # "Am" wherever it reads one (backwards: "mA") moves every span to it
    forward = FakeScorer(lambda text, seg: 0.0)
    backward = FakeScorer(lambda text, seg: 4.0 * seg.count('"mA"'))
    plain = abcflax.harmonize(TWO_FOUR, per="bar", scorer=forward, fit_weight=0.0)
    refined = abcflax.harmonize(TWO_FOUR, per="bar", scorer=forward, reverse_scorer=backward, fit_weight=0.0)
    assert chords_in(refined) == ["Am"] * 4 and chords_in(plain) != chords_in(refined)
    assert without_chords(refined) == without_chords(TWO_FOUR)
    off = abcflax.harmonize(TWO_FOUR, per="bar", scorer=forward, reverse_scorer=backward, fit_weight=0.0,
                            reverse_weight=0.0)
    assert chords_in(off) == chords_in(plain)


def test_refine_reads_the_tune_backwards_from_its_end():
    calls, readings = [], []

    class Recording(FakeScorer):
        def extend(self, state, parents, segments):
            calls.append(list(segments))
            return super().extend(state, parents, segments)

        def states_along(self, state, text, cuts):
            readings.append((text, list(cuts)))
            return super().states_along(state, text, cuts)

    backward = Recording(lambda text, seg: 0.0)
    abcflax.harmonize(TWO_FOUR, per="bar", scorer=FakeScorer(lambda text, seg: 0.0), reverse_scorer=backward)
    text, cuts = readings[0]  # the whole body backwards, cut where spans 0 and 2 need it: two spans on
    assert text.startswith("\n]|dE") and re.fullmatch(r'("[A-G][^"]*"[^"]+){4}', text[::-1])
    assert cuts[1] == 0 and re.fullmatch(r'"[A-G][^"]*"FA\|"[A-G][^"]*"Ed\|]\n', text[:cuts[0]][::-1])
    # every candidate row is whole spans (chord, then melody) read backwards
    rows = [row for call in calls for row in call if row]
    assert len(rows) > 5 and all(re.fullmatch(r'("[A-G][^"]*"[^"]+)+', row[::-1]) for row in rows)


def test_refine_keeps_what_both_models_agree_on():
    # both models prefer the chord whose root is the span's first note: refine leaves the beam's answer
    def forward_fn(text, seg):
        match = re.match(r'"([A-G])[^"]*"([A-Ga-g])', seg)
        return 2.0 if match and match.group(1) == match.group(2).upper() else 0.0

    melody = "X:1\nM:2/4\nL:1/4\nK:C\nGB|ce|FA|Ed|]\n"  # not ending on the tonic, whose chord is fixed
    plain = abcflax.harmonize(melody, per="bar", scorer=FakeScorer(forward_fn), fit_weight=0.0)
    both = abcflax.harmonize(melody, per="bar", scorer=FakeScorer(forward_fn), fit_weight=0.0,
                             reverse_scorer=FakeScorer(lambda text, seg: forward_fn("", seg[::-1])))
    assert chords_in(plain) == chords_in(both) == ["G", "C", "F", "Em"]


def reverse_copy(model_dir, folder, reverse: bool = True):
    from abcflax import checkpoint

    ckpt = checkpoint.load(model_dir)
    flipped = dataclasses.replace(ckpt, meta={**ckpt.meta, "reverse": reverse})
    return checkpoint.save(folder / "reverse.msgpack", flipped)


def test_a_right_to_left_model_only_rescores(tmp_path, tiny_model_dir):
    import shutil

    from abcflax.loading import load_model, reverse_companion

    folder = tmp_path / "model"
    shutil.copytree(tiny_model_dir, folder)
    assert reverse_companion(load_model(folder)) is None
    path = reverse_copy(folder, folder)
    companion = reverse_companion(load_model(folder))
    assert companion is not None and companion.reverse and not load_model(folder).reverse
    out = abcflax.harmonize(TWO_FOUR, model=folder, per="bar")  # the companion refines
    assert without_chords(out) == without_chords(TWO_FOUR) and len(chords_in(out)) == 4
    with pytest.raises(UsageError, match="right to left"):
        abcflax.complete("X:1\nM:2/4\nL:1/4\nK:C\nGB|ce|", model=path)
    with pytest.raises(UsageError, match="right to left"):
        abcflax.harmonize(TWO_FOUR, model=path)
    with pytest.raises(UsageError, match="not a right-to-left"):
        abcflax.harmonize(TWO_FOUR, model=folder, reverse_model=folder / "model.msgpack")
    with pytest.raises(UsageError, match="reverse_weight"):
        abcflax.harmonize(TWO_FOUR, model=folder, reverse_weight=-1)


def test_cli_reverse_model_option(tmp_path, tiny_model_dir):
    from click.testing import CliRunner

    from abcflax_cli.common import main_group

    reverse = reverse_copy(tiny_model_dir, tmp_path)
    source = tmp_path / "melody.abc"
    source.write_text(TWO_FOUR)
    runner = CliRunner()
    for option in (str(reverse), "none"):
        result = runner.invoke(main_group, ["harmonize", str(source), "--model", str(tiny_model_dir),
                                            "--reverse-model", option])
        assert result.exit_code == 0, result.output
        assert without_chords(result.stdout) == without_chords(TWO_FOUR)
    wrong = runner.invoke(main_group, ["harmonize", str(source), "--model", str(tiny_model_dir),
                                       "--reverse-model", str(tiny_model_dir)])
    assert wrong.exit_code == 2 and "not a right-to-left" in wrong.stderr and "Traceback" not in wrong.output
    for command in (["continue", str(source)], ["harmonize", str(source)]):  # a right-to-left model alone
        alone = runner.invoke(main_group, [*command, "--model", str(reverse)])
        errors = [line for line in alone.stderr.splitlines() if line.startswith("abcflax: error:")]
        assert alone.exit_code == 2 and len(errors) == 1 and "right to left" in errors[0]
        assert "Traceback" not in alone.output


def test_states_along_a_text_are_the_states_of_reading_its_prefixes(tiny_model):
    import jax

    scorer = LSTMScorer(tiny_model)
    start = scorer.start("X:1\nK:G\n")
    text, cuts = '"G"AB|"D"cd|]\n', [0, 3, 7, 14, 5]
    along = scorer.states_along(start, text, cuts)
    _, read = scorer.extend(start, np.zeros(len(cuts), np.int32), [text[:cut] for cut in cuts])
    for got, want in zip(jax.tree_util.tree_leaves(along), jax.tree_util.tree_leaves(read)):
        np.testing.assert_allclose(np.asarray(got), np.asarray(want)[:len(cuts)], rtol=1e-5, atol=1e-5)


def test_refine_a_one_span_tune(tiny_model):
    scorer = LSTMScorer(tiny_model)
    out = abcflax.harmonize("X:1\nM:2/4\nL:1/4\nK:G\nGB|]\n", model=tiny_model, per="bar", reverse_scorer=scorer)
    assert len(chords_in(out)) == 1


def test_cli_refuses_an_existing_output_before_harmonizing(tmp_path, monkeypatch):
    from click.testing import CliRunner

    import abcflax
    from abcflax_cli.common import main_group

    def never(*args, **kwargs):
        raise AssertionError("harmonized although the output could not be written")

    monkeypatch.setattr(abcflax, "harmonize", never)
    out = tmp_path / "out.musicxml"
    out.write_text("keep me")
    result = CliRunner().invoke(main_group, ["harmonize", "-", "-o", str(out), "--method", "rules"], input=C_MAJOR)
    assert result.exit_code == 1 and "already exists" in result.stderr
    assert out.read_text() == "keep me"


def test_on_tune_reports_progress_through_a_tunebook():
    book = C_MAJOR.rstrip("\n") + "\n\n" + C_MAJOR.replace("X:1", "X:2", 1)
    seen = []
    out = abcflax.harmonize(book, method="rules", on_tune=lambda done, total: seen.append((done, total)))
    assert seen == [(1, 2), (2, 2)] and out.count("X:") == 2


def test_cli_quiet_harmonize_prints_only_the_result():
    from click.testing import CliRunner

    from abcflax_cli.common import main_group

    book = C_MAJOR.rstrip("\n") + "\n\n" + C_MAJOR.replace("X:1", "X:2", 1)
    result = CliRunner().invoke(main_group, ["harmonize", "-", "--method", "rules", "--quiet"], input=book)
    assert result.exit_code == 0 and result.stderr == "" and result.stdout.count("X:") == 2


# ---- minor and modal tunes, and the last chord


def test_a_minor_or_modal_tune_gets_no_major_tonic_chord():
    # A and A7 (V of iv) clashed with an A dorian tune's C naturals; C7 (V of IV) in C major stays
    from abcflax.harmonizer import key_chords

    for key in ("Am", "ADor"):
        chords = key_chords(parse_key(key))
        assert (9, "maj") not in chords and (9, "dom7") not in chords and (9, "min") in chords
    assert (0, "dom7") in key_chords(parse_key("C"))
    seen = {"Am": 40, "A": 30, "A7": 20, "G": 20, "Em": 10, "D": 10, "C": 8}
    assert not {"A", "A7"} & set(candidate_chords(parse_key("ADor"), seen))


@pytest.mark.parametrize("key, tonic_chord", [("Ador", "Am"), ("G", "G"), ("Em", "Em")])
def test_a_tune_ending_on_its_tonic_ends_on_the_tonic_chord(key, tonic_chord):
    tonic = tonic_chord[0]
    tune = f"X:1\nT:t\nM:2/4\nL:1/8\nK:{key}\nAB cd|e2 A2|G2 B2|e4|cB AG|{tonic}4|]\n"
    scorer = FakeScorer(lambda text, seg: 5.0 if seg.startswith('"D"') else 0.0)  # D under every note
    out = abcflax.harmonize(tune, per="bar", scorer=scorer)
    assert chords_in(out) == ["D"] * 5 + [tonic_chord]
    ends_elsewhere = tune.replace(f"|{tonic}4|]", "|B4|]")
    assert chords_in(abcflax.harmonize(ends_elsewhere, per="bar", scorer=scorer)) == ["D"] * 6
