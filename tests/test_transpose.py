"""Transposition by fifths: the training augmentation behind ``TrainConfig.transpose``."""

from pathlib import Path

import pytest

import abcflax
from abcflax.abc_check import analyze_tune
from abcflax.transposition import interval, transpose, transpose_chord, transpose_key
from abcflax.training import build_stream, copy_shifts
from abcflax.vocab import Vocab

from conftest import ROOT, SHARED_DATA, TINY_CORPUS

EXAMPLES = sorted((ROOT / "data" / "examples").glob("*.abc"))

HAND_MADE = (
    'X:1\nT:Test\nM:4/4\nL:1/8\nK:G\n'
    '"G"G2 ^F=F "D7/f+"E_E D,C,|!trill!c2 B=B "(Am)"A,2 z2|{ga}g\'2 [DFA]2 "^text"d4|\n'
    '[K:ADor] A2 ^G2 "Em"e4 % a comment with ABC letters\n'
    'G:|\n'
)


def _pitches(text: str) -> list[int]:
    return [p for e in analyze_tune(text).events if e.kind in ("note", "chord", "grace") for p in e.pitches]


def test_interval_is_a_fifth_brought_into_the_tune_range():
    assert interval(1) == (-3, -5)  # a fifth up is written as a fourth down
    assert interval(-1) == (3, 5)
    assert interval(2) == (1, 2)
    assert interval(-2) == (-1, -2)
    assert interval(0) == (0, 0)


def test_a_tune_moves_to_the_neighbouring_keys():
    text = (ROOT / "data" / "examples" / "speed_the_plough.abc").read_text()
    up = transpose(text, 1)
    assert "K:D\n" in up and '|:"D"DEFD "G"G2 BG|' in up
    down = transpose(text, -1)
    assert "K:C\n" in down and '|:"C"cdec "F"f2 af|' in down
    assert transpose(text, 0) == text


@pytest.mark.parametrize("fifths", [1, -1, 2, -2, 3])
@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_every_pitch_moves_by_the_interval(path, fifths):
    tune = abcflax.read_tunebook(path.read_text())[0][0].text
    try:
        moved = transpose(tune, fifths)
    except abcflax.InputError:  # a key that would pass six sharps or flats
        pytest.skip("key out of range")
    assert _pitches(moved) == [p + interval(fifths)[1] for p in _pitches(tune)]


@pytest.mark.parametrize("fifths", [1, -1, 2, -2])
def test_accidentals_decorations_and_inline_keys(fifths):
    moved = transpose(HAND_MADE, fifths)
    assert _pitches(moved) == [p + interval(fifths)[1] for p in _pitches(HAND_MADE)]
    assert "!trill!" in moved and '"^text"' in moved and "% a comment with ABC letters" in moved


def test_written_accidentals_are_respelled_for_the_new_letter():
    moved = transpose(HAND_MADE, 1)  # G -> D, a fourth down
    assert "K:D\n" in moved
    assert '"D"D2 ^C=C "A7/c+"B,_B, A,,G,,|' in moved  # F natural in G -> C natural in D
    assert "c2 B=B" not in moved and "G2 F^F" in moved  # B natural -> F sharp, written
    assert "[K:EDor]" in moved and '"Em"' not in moved and '"Bm"' in moved
    assert '"(Em)"' in moved
    assert moved.rstrip().endswith("D:|")  # a note before a repeat at the start of a line is music


def test_chords_and_keys():
    assert transpose_chord("F#m7", 1) == "C#m7"
    assert transpose_chord("Bb", -1) == "Eb"
    assert transpose_chord("D/f+", 1) == "A/c+"
    assert transpose_chord("G/B", -2) == "F/A"
    assert transpose_chord("N.C.", 1) == "N.C."  # not a chord: kept
    assert transpose_chord("D.C.", 1) == "D.C." and transpose_chord("Coda", 1) == "Coda"
    assert transpose_key("Em", 1) == "Bm"
    assert transpose_key("GMix", -1) == "CMix"
    assert transpose_key("E minor", 1) == "Bm"
    assert transpose_key("D clef=bass", 1) == "A clef=bass"
    assert transpose_key("none", 1) == "none"


@pytest.mark.parametrize("key,fifths", [("C#", 1), ("Gb", -1), ("HP", 1), ("D exp ^f ^c", 1)])
def test_keys_that_cannot_be_written_plainly_are_refused(key, fifths):
    with pytest.raises(abcflax.InputError):
        transpose(f"X:1\nK:{key}\nABc|\n", fifths)


@pytest.mark.parametrize("name", ["drowsy_maggie.abc", "speed_the_plough.abc"])
def test_music21_hears_the_same_transposition(name):
    from music21 import harmony

    from abcflax.export import abc_to_score

    def heard(abc: str) -> tuple[list[int], list[str]]:
        elements = list(abc_to_score(abc).recurse().notes)
        melody = [p.midi for n in elements if not isinstance(n, harmony.ChordSymbol) for p in n.pitches]
        chords = [n.root().name for n in elements if isinstance(n, harmony.ChordSymbol)]
        return melody, chords

    text = (ROOT / "data" / "examples" / name).read_text()
    melody, chords = heard(text)
    moved_melody, moved_chords = heard(transpose(text, -1))
    assert moved_melody == [m + 5 for m in melody] and len(melody) > 15
    assert len(moved_chords) == len(chords)


def test_copy_shifts_cycle_through_the_neighbouring_keys():
    assert copy_shifts(4, 1) == [0, 1, -1, 0]
    assert copy_shifts(5, 2) == [0, 1, -1, 2, -2]
    assert copy_shifts(3, 0) == [0, 0, 0]


def test_stream_repeats_are_transposed_copies():
    tune = TINY_CORPUS[0].replace("{n}", "1")
    full = Vocab.from_texts([tune, transpose(tune, 1), transpose(tune, -1)])
    text = full.decode(build_stream([tune], full, [3], transpose=1))
    assert text.count("K:G\n") == 1 and text.count("K:D\n") == 1 and text.count("K:C\n") == 1
    verbatim = full.decode(build_stream([tune], full, [3]))
    assert verbatim.count("K:G\n") == 3


def test_a_copy_needing_unknown_characters_stays_in_its_key():
    tune = TINY_CORPUS[0].replace("{n}", "1")
    narrow = Vocab.from_texts([tune])  # no F or C in the alphabet of this G-major tune's letters moved
    text = narrow.decode(build_stream([tune], narrow, [2], transpose=1))
    assert text.count("K:G\n") == 2


@pytest.mark.skipif(not (SHARED_DATA / "nottingham").exists(), reason="needs ../shared/data/nottingham")
def test_nottingham_transposes_exactly():
    texts, _ = abcflax.load_corpus([str(SHARED_DATA / "nottingham")])
    checked = 0
    for tune in texts[:150]:
        for fifths in (1, -1):
            try:
                moved = transpose(tune, fifths)
            except abcflax.InputError:
                continue
            assert _pitches(moved) == [p + interval(fifths)[1] for p in _pitches(tune)], tune
            checked += 1
    assert checked >= 290


def test_public_transpose_is_the_function_even_after_the_training_module_is_imported():
    import abcflax.training  # noqa: F401 - imports the transposition module

    assert callable(abcflax.transpose) and abcflax.transpose("X:1\nK:G\nG|\n", 1) == "X:1\nK:D\nD|\n"


# ---- register: whole octaves, for prompts far from the register the model was trained in

from abcflax.transposition import register_shift, shift_octaves  # noqa: E402

BASS = 'X:1\nT:B\nM:4/4\nL:1/8\nK:Bb clef=bass\nB,,2 D,2 "Bb/d"F,2 _B,2|[A,C]2 !trill!F,2 C,4|\n'


def test_shift_octaves_moves_notes_only_and_comes_back():
    up = shift_octaves(BASS, 2)
    assert up.endswith('B2 d2 "Bb/d"f2 _b2|[ac\']2 !trill!f2 c4|\n')  # chord symbol, decoration, key kept
    assert up.split("\n")[:5] == BASS.split("\n")[:5]
    assert shift_octaves(up, -2) == BASS
    assert shift_octaves("c'2 B, =e [K:G] %c d\n", -1, body_only=True) == "c2 B,, =E [K:G] %c d\n"


def test_register_shift_only_for_prompts_an_octave_or_more_away():
    assert register_shift(BASS) == 2
    assert register_shift("X:1\nK:G\nGABc dedB|\n") == 0
    assert register_shift("X:1\nK:G\nc'd'e'f' g'f'e'd'|\n") == -1
    assert register_shift("X:1\nK:G\nC,D,|\n") == 0  # too few notes to judge


@pytest.mark.parametrize("key, fifths", [("G", 0), ("D", 0), ("Dm", 0), ("Gdor", 0), ("F", 2), ("C", 1),
                                         ("Bb", 3), ("Eb", 4), ("A", -1), ("E", -2), ("Bm", -3), ("Am", -1),
                                         ("F#m", -4), ("Ador", -1), ("Emix", -2), ("Cm", 1)])
def test_the_home_key_shift_moves_the_tonic_to_the_nearest_of_g_and_d(key, fifths):
    from abcflax.transposition import home_key_shift

    assert home_key_shift(f"X:1\nM:4/4\nL:1/8\nK:{key}\nABcd|") == fifths


@pytest.mark.parametrize("tune", ["X:1\nK:none\nABcd|", "X:1\nK:HP\nABcd|", "X:1\nK:F exp _B _e\nABcd|",
                                  "X:1\nK:F\nABcd|\nK:C\ncdef|", "X:1\nK:F\nABcd|[K:C] cdef|", "X:1\nT:no key\n"])
def test_no_home_key_shift_for_a_key_that_cannot_be_moved_plainly_or_changes(tune):
    from abcflax.transposition import home_key_shift

    assert home_key_shift(tune) == 0
