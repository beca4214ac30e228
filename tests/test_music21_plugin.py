"""The music21 ABC writer (checked by abc2midi and by a round trip), ABC reading kept, importers, the bridge."""

import shutil
import subprocess
from pathlib import Path

import pytest
from music21 import converter, meter, note, stream

import abcflax
from abcflax_plugins.music21_abc import AbcWriteError, ConverterAbcflaxABC, stream_to_abc

TUNES = {
    "accidentals_ties_endings": """X:1
T:Accidentals
M:4/4
L:1/8
K:D
A|:"D"d2 ^c=c B2 AG|"G"F2 G2 A4-|A2 _B2 =B2 c'2|[1 "A7"a,2 =F2 ^G4:|[2 "D"d8|]
""",
    "triplets_grace_pickup": """X:2
T:Triplets
M:6/8
L:1/8
K:Ador
E|"Am"(3ABA G E2 {g}A|"G"B3 [GB]3|"Am"A2 A/B/ c2 d|e6|]
""",
    "sixteenths_rests_meter_change": """X:3
T:Changes
M:2/4
L:1/16
K:F
"F"A2Bc d4|z4 "C7"B4|[M:3/4][K:Bb]"Bb"B,4 D4 F4|f12|]
""",
}
DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "nottingham" / "jigs.abc"


def parse(abc):
    return converter.parse("%abc-2.1\n" + abc, format="abc")


def notes_of(score):
    """(MIDI pitches, quarter length) of every note, rest and chord, ties joined; chord symbols left out."""
    flat = score.stripTies().flatten().notesAndRests
    return [(tuple(p.midi for p in e.pitches), float(e.quarterLength)) for e in flat
            if e.quarterLength and "ChordSymbol" not in e.classes]


def chord_figures(score):
    return [c.figure for c in score.recurse().getElementsByClass("ChordSymbol")]


def abc2midi_errors(text, tmp_path):
    path = tmp_path / "out.abc"
    path.write_text(text)
    done = subprocess.run(["abc2midi", str(path), "-c"], capture_output=True, text=True, timeout=60)
    return [line for line in done.stdout.splitlines() + done.stderr.splitlines() if "Error" in line]


def sample_tunes():
    tunes = list(TUNES.values())
    if DATA.exists():  # a few real tunes with chords, endings and pickups when the shared data is there
        tunes += [t.text for t in abcflax.read_tunebook(DATA.read_text())[0][:6:2]]
    return tunes


@pytest.mark.parametrize("abc", sample_tunes(), ids=lambda abc: abc.split("T:", 1)[1].split("\n", 1)[0])
def test_written_abc_round_trips_and_passes_abc2midi(abc, tmp_path):
    original = parse(abc)
    written = stream_to_abc(original)
    again = parse(written)
    assert notes_of(again) == notes_of(original)
    assert chord_figures(again) == chord_figures(original)
    if shutil.which("abc2midi"):
        assert abc2midi_errors(written, tmp_path) == []


def test_written_header_and_bar_lines():
    text = stream_to_abc(parse(TUNES["accidentals_ties_endings"]))
    lines = text.splitlines()
    assert lines[:5] == ["X:1", "T:Accidentals", "M:4/4", "L:1/8", "K:D"]
    assert "|:" in text and "[1" in text and ":|" in text and "[2" in text and text.rstrip().endswith("|]")
    assert '"D"' in text and '"A7"' in text and "A4-" in text


def test_stream_write_abc_writes_abc_and_reading_still_works(tmp_path):
    score = parse(TUNES["triplets_grace_pickup"])
    path = score.write("abc", fp=tmp_path / "out.abc")
    assert Path(path).read_text().startswith("X:1\nT:Triplets")
    subconverter = converter.Converter().getSubConverterFromFormat("abc")
    assert isinstance(subconverter, ConverterAbcflaxABC)
    assert notes_of(converter.parse(str(path))) == notes_of(score)  # ABC input through our subclass


def test_refuses_what_it_cannot_write():
    two_parts = stream.Score([stream.Part([note.Note("C4")]), stream.Part([note.Note("E4")])])
    with pytest.raises(AbcWriteError, match="2 parts"):
        stream_to_abc(two_parts)
    quintuplet = stream.Part([meter.TimeSignature("2/4")] + [note.Note("C4", quarterLength=0.4) for _ in range(5)])
    with pytest.raises(AbcWriteError, match="5:4 tuplets|other than a triplet"):
        stream_to_abc(quintuplet)


def test_musicxml_input_is_converted_to_abc(tmp_path):
    source = TUNES["accidentals_ties_endings"]
    path = tmp_path / "melody.musicxml"
    abcflax.write_output(source, str(path))
    abc, name = abcflax.read_abc_input(str(path))
    assert name == str(path) and "T:Accidentals" in abc
    assert notes_of(parse(abc)) == notes_of(parse(source))


def test_midi_input_is_quantized_to_abc(tmp_path):
    source = "X:1\nT:Midi\nM:4/4\nL:1/8\nQ:1/4=120\nK:G\n\"G\"GABc d2 B2|A2 F2 G4|]\n"
    path = tmp_path / "melody.mid"
    abcflax.write_output(source, str(path), accompaniment="block")  # the chord track must not leak in
    with pytest.warns(UserWarning, match="2 parts; using the first"):
        abc, _ = abcflax.read_abc_input(str(path))
    assert [p for p, _ in notes_of(parse(abc)) if p] == [p for p, _ in notes_of(parse(source)) if p]


def test_cli_shows_the_two_parts_warning_as_one_line(tmp_path):
    from click.testing import CliRunner

    from abcflax_cli.common import main_group

    source = "X:1\nT:Midi\nM:4/4\nL:1/8\nQ:1/4=120\nK:G\n\"G\"GABc d2 B2|A2 F2 G4|]\n"
    path = tmp_path / "melody.mid"
    abcflax.write_output(source, str(path), accompaniment="block")  # a melody track and a chord track
    for args, name in (([str(path)], str(path)), (["-"], "<stdin>")):
        result = CliRunner().invoke(main_group, ["harmonize", *args, "--method", "rules"],
                                    input=path.read_bytes() if args == ["-"] else None)
        assert result.exit_code == 0, result.stderr
        assert result.stderr.splitlines() == [f"abcflax: warning: {name}: 2 parts; using the first as the melody"]


def test_a_cut_off_midi_file_is_refused_with_one_line(tmp_path):
    from click.testing import CliRunner

    from abcflax_cli.common import main_group

    whole = tmp_path / "whole.mid"
    abcflax.write_output("X:1\nT:Midi\nM:4/4\nL:1/8\nK:G\nGABc d2 B2|A2 F2 G4|]\n", str(whole))
    data = whole.read_bytes()
    for cut, why in ((len(data) - 5, "cut off in track"), (30, "cut off in track 1"), (14, "holds 0")):
        path = tmp_path / f"cut{cut}.mid"
        path.write_bytes(data[:cut])
        result = CliRunner().invoke(main_group, ["export", str(path), "-o", "-", "--format", "abc"])
        assert result.exit_code == 1 and result.stdout == ""
        assert result.stderr.splitlines() == [result.stderr.strip()] and why in result.stderr, result.stderr
    damaged = tmp_path / "damaged.mid"
    damaged.write_bytes(data[:-3] + b"\x00\x00\x00")  # the last track's end-of-track event overwritten
    with pytest.raises(abcflax.InputError, match="no end-of-track event"):
        abcflax.read_abc_input(str(damaged))


def test_cli_exports_musicxml_input_to_abc(tmp_path):
    from click.testing import CliRunner

    from abcflax_cli.common import main_group

    xml = tmp_path / "in.musicxml"
    abcflax.write_output(TUNES["triplets_grace_pickup"], str(xml))
    result = CliRunner().invoke(main_group, ["export", str(xml), "-o", "-", "--format", "abc"])
    assert result.exit_code == 0, result.output
    assert "(3" in result.output and "K:ADor" in result.output and "[GB]3" in result.output
    assert notes_of(parse(result.output)) == notes_of(parse(TUNES["triplets_grace_pickup"]))


def test_continue_and_harmonize_stream(monkeypatch):
    seen = {}

    def fake_complete(abc, **kw):
        seen["complete"] = (abc, kw)
        return abc.rstrip().rstrip("|]") + "| e6|]\n"

    def fake_harmonize(abc, **kw):
        seen["harmonize"] = abc
        return abc.replace("| (3", '| "Am"(3', 1)

    # setitem, not setattr: setattr would first read the lazy attribute and import the model code (JAX)
    monkeypatch.setitem(vars(abcflax), "complete", fake_complete)
    monkeypatch.setitem(vars(abcflax), "harmonize", fake_harmonize)
    melody = parse(TUNES["triplets_grace_pickup"].replace('"Am"', "").replace('"G"', ""))
    longer = abcflax.continue_stream(melody, bars=1)
    assert seen["complete"][1] == {"bars": 1}
    assert len(notes_of(longer)) == len(notes_of(melody)) + 1
    harmonized = abcflax.harmonize_stream(melody)
    assert chord_figures(harmonized) == ["Am"] and "ChordSymbol" not in seen["harmonize"]


def test_writing_abc_takes_time_linear_in_the_measures(monkeypatch):
    """Each measure asked music21 for the time signature in force (a context search over the whole part):
    a 2,000-bar MusicXML file took 35 s to import, 40,000 bars hours. The meter changes are still followed."""
    from music21 import base

    part = stream.Part()
    for number in range(1, 401):
        measure = stream.Measure(number=number)
        if number in (1, 201):
            measure.append(meter.TimeSignature("4/4" if number == 1 else "6/8"))
        for name in ("G4", "A4", "B4", "C5", "D5", "E5", "D5", "B4") if number <= 200 else ("G4", "A4", "B4") * 2:
            measure.append(note.Note(name, quarterLength=0.5))
        part.append(measure)
    calls = []
    original = base.Music21Object.getContextByClass
    monkeypatch.setattr(base.Music21Object, "getContextByClass",
                        lambda self, *args, **kwargs: calls.append(1) or original(self, *args, **kwargs))
    text = stream_to_abc(part)
    assert len(calls) < 10
    four, six = text.split("\nM:6/8\n")  # beamed by the beat of the meter in force: a quarter, a dotted quarter
    assert four.count("GA Bc de dB") == 200 and six.count("GAB GAB") == 200
