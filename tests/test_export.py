"""Export: MIDI read back with mido, MusicXML contents, MuseScore opening it, music21 traps, the CLI."""

import io
import os
import shutil
import subprocess
import zipfile

import pytest

mido = pytest.importorskip("mido")

import abcflax
from abcflax.errors import InputError, UsageError

# 9 notes played twice, then bar 3 + first ending + bar 3 + second ending (4+1+4+1; G4-G4 is one note) = 28
REEL = """X:7
T:Test Reel
C:A. Fiddler
M:4/4
L:1/8
Q:1/4=100
R:reel
K:G
|:"G"GABc d2 B2|"D7"A2 F2 D4:|
|:"C"c2 e2 "G"d2 B2|[1"D"A8:|[2"G"G4-G4|]
"""
REEL_NOTES = 28
REEL_PITCHES = {67, 69, 71, 72, 74, 66, 62, 76}  # G A B c d F D e as MIDI numbers

JIG = """X:1
T:Jig
M:6/8
L:1/8
K:D
"D"ABc dcB|"A"AFA "D"d3|
"""


def midi(abc, **options):
    return mido.MidiFile(file=io.BytesIO(abcflax.export_bytes(abc, "mid", **options)))


def note_ons(track):
    return [m for m in track if m.type == "note_on" and m.velocity > 0]


def test_midi_tracks_tempo_program_and_notes():
    song = midi(REEL, accompaniment="block")
    assert len(song.tracks) == 3  # conductor, melody, accompaniment
    tempos = [m.tempo for m in song.tracks[0] if m.type == "set_tempo"]
    assert tempos == [600_000]  # Q:1/4=100
    melody, chords = song.tracks[1], song.tracks[2]
    assert [m.program for m in melody if m.type == "program_change"] == [40]  # violin, zero-based
    assert len(note_ons(melody)) == REEL_NOTES
    assert {m.note for m in note_ons(melody)} <= REEL_PITCHES  # no chord tones in the melody
    assert note_ons(chords) and {m.channel for m in note_ons(chords)}.isdisjoint({m.channel for m in note_ons(melody)})


def test_no_accompaniment_track_without_chords_or_when_none():
    assert len(midi(REEL, accompaniment="none").tracks) == 2
    assert len(midi(REEL.replace('"G"', "").replace('"D7"', "").replace('"C"', "").replace('"D"', "")).tracks) == 2


def test_vamp_in_six_eight_is_bass_on_one_chord_on_four():
    song = midi(JIG, accompaniment="vamp")
    ticks, time = [], 0
    for message in song.tracks[2]:
        time += message.time
        if message.type == "note_on" and message.velocity:
            ticks.append((time, message.note < 48))
    bar, half = 3 * song.ticks_per_beat, 3 * song.ticks_per_beat // 2
    assert {t for t, is_bass in ticks if is_bass} == {0, bar}
    assert {t for t, is_bass in ticks if not is_bass} == {half, bar + half}


def test_default_tempo_from_meter_and_override():
    tempo = [m.tempo for m in midi(JIG).tracks[0] if m.type == "set_tempo"][0]
    assert round(mido.tempo2bpm(tempo)) == 168  # dotted quarter 112 for a jig
    tempo = [m.tempo for m in midi(REEL, tempo=90).tracks[0] if m.type == "set_tempo"][0]
    assert round(mido.tempo2bpm(tempo)) == 90


def test_musicxml_has_harmony_metadata_and_instrument():
    xml = abcflax.export_bytes(REEL, "musicxml").decode()
    assert "<harmony" in xml and "<work-title>Test Reel</work-title>" in xml
    assert "A. Fiddler" in xml and "Music21" not in xml.split("<software>")[0]
    assert "Violin" in xml and "<per-minute>100</per-minute>" in xml


def test_mxl_is_a_musicxml_zip():
    archive = zipfile.ZipFile(io.BytesIO(abcflax.export_bytes(REEL, "mxl")))
    assert archive.namelist()[0] == "mimetype"
    assert b"<harmony" in archive.read("score.musicxml")


@pytest.mark.skipif(shutil.which("mscore3") is None, reason="MuseScore 3 (Debian musescore3) is not installed")
def test_musescore_opens_exported_musicxml(tmp_path):
    source = tmp_path / "reel.musicxml"
    abcflax.write_output(REEL, str(source))
    pdf = tmp_path / "reel.pdf"
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", XDG_RUNTIME_DIR=str(tmp_path))
    done = subprocess.run(["mscore3", "-o", str(pdf), str(source)], capture_output=True, text=True,
                          timeout=120, env=env)
    assert done.returncode == 0, done.stderr
    problems = [line for line in done.stderr.splitlines()
                if any(word in line.lower() for word in ("error", "empty bar", "no instrument", "fail"))]
    assert problems == []
    assert pdf.exists() and pdf.stat().st_size > 1000


def test_overlong_bar_exports():
    abc = "X:1\nT:Long\nM:4/4\nL:1/8\nK:D\n\"D\"ABcdefgabcdefg|\"G\"ABcd efga|\n"
    assert len(note_ons(midi(abc).tracks[1])) == 22
    assert b"<harmony" in abcflax.export_bytes(abc, "musicxml")


def test_badly_formed_repeats_export():
    abc = "X:1\nT:Bad\nM:2/4\nL:1/8\nK:D\n[2 AB cd:|[1 ef ga|:\n"
    assert note_ons(midi(abc).tracks[1])
    abcflax.export_bytes(abc, "musicxml")


def test_ten_end_repeats_without_start_play_each_section_twice():
    abc = "X:1\nT:Yanky\nM:2/4\nL:1/8\nK:D\n" + "\n".join(["ABcd|dcBA:|ABcd|dcBA:|"] * 5) + "\n"
    assert len(note_ons(midi(abc).tracks[1])) == 10 * 8 * 2  # linear, not music21's 16,000-bar expansion


def test_part_without_measures_still_plays():
    # music21 makes no measures of a tune with fewer than two plain bar lines; export adds them (music21_reading)
    abc = "X:1\nT:No bars\nM:2/4\nL:1/8\nK:D\n" + "ABcd:|" * 3 + "\n"
    assert len(note_ons(midi(abc).tracks[1])) == 24  # each :| repeats its bar, as abc2midi plays it


def test_errors_are_abcflax_errors():
    with pytest.raises(InputError):
        abcflax.export_bytes("X:1\nT:No key\nabc\n", "mid")
    with pytest.raises(InputError):
        abcflax.export_bytes("X:1\nT:Rests\nK:C\nz4|z4|\n", "musicxml")
    with pytest.raises(UsageError):
        abcflax.export_bytes(REEL, "pdf")
    with pytest.raises(UsageError):
        abcflax.export_bytes(REEL, "mid", accompaniment="oompah")
    with pytest.raises(UsageError):
        abcflax.write_output(REEL + "\n" + JIG, "-", fmt="mid")


@pytest.mark.parametrize("meter_at, line", [("M:999/8\nL:1/8\nK:G\nGABc|", 2),
                                             ("M:4/4\nL:1/8\nK:G\nGABc dedB|[M:65/4]GABc|", 5)])
def test_a_meter_music21_would_take_minutes_over_is_refused_at_its_line(meter_at, line):
    with pytest.raises(InputError, match=rf"^<text>:{line}: meter M:\d+/\d has \d+ beats; export handles at most 64$"):
        abcflax.export_bytes(f"X:1\n{meter_at}\n", "mid")
    assert abcflax.export_bytes("X:1\nM:64/4\nL:1/4\nK:G\n" + "G" * 64 + "|\n", "mid")  # the most it takes


def test_tunebook_one_file_per_tune_and_one_abc(tmp_path):
    book = REEL + "\n" + JIG.replace("X:1", "X:8")
    paths = abcflax.write_output(book, str(tmp_path / "book.mid"))
    assert [os.path.basename(p) for p in paths] == ["book-7.mid", "book-8.mid"]
    assert abcflax.write_output(book, str(tmp_path / "book.abc")) == [str(tmp_path / "book.abc")]
    assert (tmp_path / "book.abc").read_text().count("X:") == 2


def test_failing_tune_leaves_no_files(tmp_path):
    book = REEL + "\nX:9\nT:Rests only\nK:C\nz4|\n"
    with pytest.raises(InputError):
        abcflax.write_output(book, str(tmp_path / "book.musicxml"))
    assert list(tmp_path.iterdir()) == []


def test_refuses_overwrite_without_force(tmp_path):
    target = tmp_path / "t.mid"
    target.write_bytes(b"keep")
    with pytest.raises(InputError):
        abcflax.write_output(REEL, str(target))
    assert target.read_bytes() == b"keep"
    abcflax.write_output(REEL, str(target), force=True)
    assert target.read_bytes().startswith(b"MThd")


# --- the CLI ---------------------------------------------------------------------------------------------------

@pytest.fixture
def run():
    from click.testing import CliRunner

    from abcflax_cli.common import main_group

    return lambda *args, **kw: CliRunner().invoke(main_group, list(args), **kw)


@pytest.fixture
def reel_file(tmp_path):
    path = tmp_path / "reel.abc"
    path.write_text(REEL)
    return path


@pytest.mark.parametrize("suffix,magic", [(".musicxml", b"<?xml"), (".mxl", b"PK"), (".mid", b"MThd"),
                                          (".abc", b"X:7")])
def test_cli_exports_each_format(run, reel_file, tmp_path, suffix, magic):
    out = tmp_path / f"out{suffix}"
    result = run("export", str(reel_file), "-o", str(out))
    assert result.exit_code == 0, result.output
    assert out.read_bytes().startswith(magic)


def test_cli_refuses_overwrite_without_force(run, reel_file, tmp_path):
    out = tmp_path / "out.mid"
    assert run("export", str(reel_file), "-o", str(out)).exit_code == 0
    before = out.read_bytes()
    result = run("export", str(reel_file), "-o", str(out), "--accompaniment", "none")
    assert result.exit_code == 1 and "already exists" in result.output
    assert out.read_bytes() == before
    assert run("export", str(reel_file), "-o", str(out), "--force", "--accompaniment", "none").exit_code == 0
    assert out.read_bytes() != before


def test_cli_bad_input_is_one_line_and_no_file(run, tmp_path):
    bad = tmp_path / "bad.abc"
    bad.write_text("this is not ABC at all\n")
    out = tmp_path / "out.mid"
    result = run("export", str(bad), "-o", str(out))
    assert result.exit_code == 1
    assert len(result.output.strip().splitlines()) == 1 and "Traceback" not in result.output
    assert not out.exists()


def test_cli_stdin_to_stdout_musicxml(run):
    result = run("export", "-", "-o", "-", "--format", "musicxml", input=REEL)
    assert result.exit_code == 0 and "<harmony" in result.output


def test_a_meter_change_written_with_music_on_its_line_is_exported():
    # seen in the irish tunebook: "M:9/8 EDC DA,B, CDE|" inside the body, meaning [M:9/8] and then music
    from abcflax.export import abc_to_score, inline_fields_with_music

    tune = "X:1\nT:Swedish\nM:6/8\nL:1/8\nK:D\nABA AGF|EDC D3|\nM:9/8 EDC DA,B, CDE|\nM:6/8 Ddd e3|f3 g3|]\n"
    assert "\n[M:9/8] EDC DA,B, CDE|\n[M:6/8] Ddd e3|" in inline_fields_with_music(tune)
    assert inline_fields_with_music("X:1\nM:6/8 is odd\nK:D\nM:6/8\nABc|\n").endswith("K:D\nM:6/8\nABc|\n")
    two = inline_fields_with_music("X:1\nM:4/4\nK:G\nM:3/4 egdB A2| M:4/4 egdB GABd|\n")  # irish.abc, too
    assert two.endswith("K:G\n[M:3/4] egdB A2| [M:4/4] egdB GABd|\n")
    abcflax.export_bytes(two, "musicxml")
    score = abc_to_score(tune)  # music21 keeps 6/8 and re-bars the 9/8 bar, but every note is there
    assert score.parts[0].duration.quarterLength == 33 / 2
    assert abcflax.export_bytes(tune, "mid")[:4] == b"MThd"


METER_CHANGES = """X:1
T:Meter changes
M:6/8
L:1/8
K:D
P:A
dc/2B/2|A2D AGF|EDC D3|d2e fgf|edc d2A|
M:9/8
edc d2A BAG|
M:6/8
FED EDC|DA,B, CDE|fed edc|d3 dcB||
P:B
A2D AGF|EDC D3|
M:9/8
edc d2A BAG|
M:6/8
FED EDC|d3 d=c_B
K:F
|:A2f fef|A2f fef|Aff Agg|A2f fef:|
"""


def test_meter_changes_with_a_key_change_export():
    # music21 leaves some shared TimeSignature objects with no active site here (two Nottingham jigs hit it)
    assert abcflax.export_bytes(METER_CHANGES, "musicxml").startswith(b"<?xml")
    assert abcflax.export_bytes(METER_CHANGES, "mid")[:4] == b"MThd"


def test_an_empty_quoted_annotation_does_not_break_musicxml():
    # Nottingham writes '" "' before a chord in a few tunes; music21 makes it a ChordSymbol with no pitches
    tune = 'X:1\nT:Empty\nM:6/8\nL:1/8\nK:Am\n"Am"c2A A^GA|"Em""C"edc " ""G"BAG|"Am"E2A A3|]\n'
    xml = abcflax.export_bytes(tune, "musicxml").decode()
    assert xml.count("<harmony") >= 3 and "<root-step>G</root-step>" in xml  # the real chords stay
    from abcflax.export import drop_empty_annotations

    assert drop_empty_annotations('K:C\n"C" "G"c " "d|"x y"e % " "\n') == 'K:C\n"C" "G"c d|"x y"e % " "\n'
    assert abcflax.export_bytes(tune, "mid")[:4] == b"MThd"


def test_a_tempo_music21_cannot_write_is_rewritten_from_q():
    # music21 reads "Q:1/4 =50" (ryansMammoth) as a mark with a complex beat unit its MusicXML writer refuses
    from music21 import tempo

    from abcflax.export import abc_to_score, tempo_from_q

    tune = "X:1\nT:Slow\nQ:1/4 =50\nM:6/8\nL:1/8\nK:D\n(ABc d2) e|f3 e3|]\n"
    marks = list(abc_to_score(tune).recurse().getElementsByClass(tempo.MetronomeMark))
    assert [(m.number, m.referent.quarterLength) for m in marks] == [(50, 1.0)]
    assert b"<per-minute>50</per-minute>" in abcflax.export_bytes(tune, "musicxml")
    assert tempo_from_q('"Allegro" 3/8 = 100') == (100, 1.5) and tempo_from_q("fast") is None


# --- --repair: stray characters removed, each reported ------------------------------------------------------

BROKEN = "X:3\nT:Broken\nM:4/4\nL:1/8\nK:G\nGABc dBG= B|{g A4 A4|\n:c2B2 A2G2|]\n"


def test_repair_removes_the_stray_characters_and_says_which():
    from abcflax.abc_check import blocking_problem

    fixed, removed = abcflax.repair_tune(BROKEN)
    assert blocking_problem(fixed) is None
    assert [char for _, char in removed] == ["=", "{", ":"]
    assert fixed.split("\n")[5:7] == ["GABc dBG B|g A4 A4|", "c2B2 A2G2|]"]


def test_repair_keeps_line_numbers_of_a_tunebook():
    book = REEL + "\n" + BROKEN
    fixed, notes = abcflax.repair_tunebook(book, "book.abc")
    first = REEL.count("\n") + 1  # the blank line between tunes
    assert len(notes) == 3 and notes[0].startswith(f"book.abc:{first + 6}:9: removed '='")
    assert fixed.count("\n") == book.count("\n") and fixed.startswith(REEL)


@pytest.mark.parametrize("text", ["X:1\nT:No key\nABc|\n", "X:1\nK:G\n" + "=" * 60 + "A|\n"])
def test_repair_refuses_what_is_not_a_stray_character(text):
    with pytest.raises(InputError):
        abcflax.repair_tune(text)


def test_cli_export_repair(run, tmp_path):
    source = tmp_path / "broken.abc"
    source.write_text(BROKEN)
    out = tmp_path / "out.musicxml"
    refused = run("export", str(source), "-o", str(out))
    assert refused.exit_code == 1 and len(refused.stderr.strip().splitlines()) == 1 and not out.exists()
    repaired = run("export", str(source), "-o", str(out), "--repair")
    assert repaired.exit_code == 0, repaired.output
    assert repaired.stderr.count("abcflax: warning:") == 3 and f"{source}:6:9: removed '='" in repaired.stderr
    assert out.read_bytes().count(b"<note>") >= 14  # every note of the repaired tune (an overlong bar splits one)


@pytest.mark.parametrize("annotation", ['">"', '">right of it"', '"^"', '"<left"', '"_below"', '"@"', '" "'])
def test_every_note_after_an_annotation_is_played(annotation):
    # music21 drops the note after an annotation placed right of it ('">..."'); export places it above instead
    tune = f"X:1\nT:t\nM:3/4\nL:1/8\nK:G\n(EG).G {annotation}G2 D|G6|]\n"
    assert [m.note for m in note_ons(midi(tune).tracks[1])] == [64, 67, 67, 67, 62, 67]


def test_annotation_rewrites_leave_chord_symbols_and_text_fields_alone():
    from abcflax.export import drop_empty_annotations

    tune = 'X:1\nT:">" in a title\nK:G\n"G"G2 ">x"A2 ">"B2 " "c2|\nW:">"\n'
    assert drop_empty_annotations(tune) == 'X:1\nT:">" in a title\nK:G\n"G"G2 "^x"A2 B2 c2|\nW:">"\n'


@pytest.mark.parametrize("voices", ["", "V:1\nGABc dedB|\nV:2\n"])
def test_a_tune_of_more_bars_than_music21_lays_out_in_time_is_refused_at_the_first_bar_past(voices):
    """music21 beams a part in time quadratic in its bars: 5,000 bars took 8 minutes, 10,000 half an hour."""
    from abcflax.export import MAX_BARS

    bars = "GABc dedB|\n" * (MAX_BARS + 1)
    where = " in voice 2" if voices else ""
    first = 4 + voices.count("\n") + MAX_BARS + 1  # X: M: L: K: lines, then the bars
    with pytest.raises(InputError, match=rf"^<text>:{first}: tune has {MAX_BARS + 1} bars{where}; "
                                         rf"export handles at most {MAX_BARS}$"):
        abcflax.export_bytes(f"X:1\nM:4/4\nL:1/8\nK:G\n{voices}{bars}", "mid")
    from abcflax.export import _refuse_too_many_bars
    from abcflax.tunebook import read_tunebook

    at_limit = read_tunebook(f"X:1\nM:4/4\nL:1/8\nK:G\n{voices}" + "GABc dedB|\n" * MAX_BARS)[0][0]
    _refuse_too_many_bars(at_limit)  # the most it takes
