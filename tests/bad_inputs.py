"""A catalogue of bad (and valid-but-unusual) inputs, shared by tests/test_bad_input.py and
benchmarks/reliability.py.

Each case writes its input under a folder and returns the argument to pass (a path, or ``-`` with
``stdin`` bytes). ``expect`` is the exit code every command must give, except where ``accept`` lists
commands that take the input (exit 0: MusicXML for the commands with importers, unusual ABC for all).
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

GOOD = "X:1\nT:Jig\nM:4/4\nL:1/8\nK:G\n|:GABc dedB|dedB dedB|c2ec B2dB|c2A2 A2BA:|\n"
HEADER = "X:1\nT:Reel\nM:4/4\nL:1/8\nK:G\n"

COMMANDS = ("continue", "harmonize", "compose", "export", "check", "evaluate", "train")
ALL = frozenset(COMMANDS)
# commands that read MusicXML/MIDI through importer plugins
IMPORTING = frozenset({"continue", "harmonize", "compose", "export"})
# commands that read stdin for "-" (train does too: tests/test_option_limits.py)
STDIN_COMMANDS = frozenset({"continue", "harmonize", "export", "check", "evaluate"})

MUSICXML = """<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE score-partwise PUBLIC "-//Recordare//DTD MusicXML 3.1 Partwise//EN"
  "http://www.musicxml.org/dtds/partwise.dtd">
<score-partwise version="3.1"><part-list><score-part id="P1"><part-name>M</part-name></score-part></part-list>
<part id="P1"><measure number="1"><attributes><divisions>1</divisions><key><fifths>1</fifths></key>
<time><beats>4</beats><beat-type>4</beat-type></time><clef><sign>G</sign><line>2</line></clef></attributes>
<note><pitch><step>G</step><octave>4</octave></pitch><duration>1</duration><type>quarter</type></note>
<note><pitch><step>A</step><octave>4</octave></pitch><duration>1</duration><type>quarter</type></note>
<note><pitch><step>B</step><octave>4</octave></pitch><duration>1</duration><type>quarter</type></note>
<note><pitch><step>C</step><octave>5</octave></pitch><duration>1</duration><type>quarter</type></note>
</measure></part></score-partwise>
"""
# a minimal format-0 MIDI file: header chunk, then a track with one note
MIDI = (b"MThd\x00\x00\x00\x06\x00\x00\x00\x01\x00\x60"
        b"MTrk\x00\x00\x00\x0d\x00\x90\x3c\x40\x60\x80\x3c\x40\x00\xff\x2f\x00")


@dataclass(frozen=True)
class Case:
    """One input: how to make it, and what every command must do with it."""

    name: str
    make: Callable[[Path], str]  # writes the input under a folder; returns the FILE argument
    expect: int = 1  # exit code when refused
    accept: frozenset = frozenset()  # commands that must process it (exit 0)
    stdin: bytes | Callable[[], bytes] | None = None  # with make returning "-"; a callable builds it late
    only: frozenset = ALL  # commands this case applies to
    tags: tuple = field(default=())  # "big": slow to build, kept out of the quick subprocess checks


def _file(name: str, data: bytes | str) -> Callable[[Path], str]:
    def make(folder: Path) -> str:
        path = folder / name
        path.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
        return str(path)

    return make


def _stdin(folder: Path) -> str:
    return "-"


def _directory(folder: Path) -> str:
    path = folder / "a_folder.abc"
    path.mkdir()
    return str(path)


def _missing(folder: Path) -> str:
    return str(folder / "no_such_tune.abc")


def _under_a_file(folder: Path) -> str:
    # running as root, permissions do not stop a read: a path below a plain file cannot be opened by anyone
    (folder / "plain.abc").write_text(GOOD)
    return str(folder / "plain.abc" / "inner.abc")


def _fifo(folder: Path) -> str:
    # a FIFO with no writer would block a naive read forever
    path = folder / "pipe.abc"
    os.mkfifo(path)
    assert stat.S_ISFIFO(path.stat().st_mode)
    return str(path)


def _huge(size: int) -> Callable[[Path], str]:
    def make(folder: Path) -> str:
        path = folder / "huge.abc"
        chunk = ("GABc dedB|" * 100 + "\n").encode()
        with path.open("wb") as handle:
            handle.write(HEADER.encode())
            written = 0
            while written < size:
                handle.write(chunk)
                written += len(chunk)
        return str(path)

    return make


def _bad_utf16(folder: Path) -> str:
    # a BOM, then an unpaired high surrogate: not decodable as UTF-16
    path = folder / "bad16.abc"
    path.write_bytes(b"\xff\xfe" + GOOD.encode("utf-16-le") + b"\x00\xd8A\x00")
    return str(path)


UNUSUAL = {
    "multi_voice": "X:1\nT:Reel\nM:4/4\nL:1/8\nK:G\nV:1\n|:GABc dedB|dedB dedB|c2ec B2dB|c2A2 A2BA:|\n"
                   "V:2\n|:G,4 D4|G,4 D4|C4 G,4|A,4 D4:|\n",
    "inline_fields": "X:1\nT:Jig\nM:4/4\nL:1/8\nK:G\n|:GABc dedB|[L:1/4] dB dB|[L:1/8] c2ec B2dB|"
                     "c2A2 A2BA:|\n",
    "lyrics": "X:1\nT:Waltz\nM:4/4\nL:1/8\nK:G\nGABc dedB|dedB dedB|\nw: la la la la la la la la\n"
              "c2ec B2dB|c2A2 A2BA|]\n",
    "directives": "%%scale 0.8\nX:1\nT:Hornpipe\n%%titlefont Times 12\nM:4/4\nL:1/8\nK:G\n"
                  "%%vskip 10\n|:GABc dedB|dedB dedB|c2ec B2dB|c2A2 A2BA:|\n",
    "decorations": "X:1\nT:Reel\nM:4/4\nL:1/8\nK:G\n|:~G2Bc !trill!dedB|.d.e.d.B udvBAG|"
                   "!fermata!c2ec B2dB|Tc2A2 A2BA:|\n",
}


def _unusual_cases() -> list[Case]:
    cases = [Case(f"unusual_{name}", _file(f"{name}.abc", text), expect=0, accept=ALL)
             for name, text in UNUSUAL.items() if name != "multi_voice"]
    # several voices are played, exported and harmonized (the first voice), but not continued: the model writes
    # one melody line, and voices continued one by one would not fit together
    cases.append(Case("unusual_multi_voice", _file("multi_voice.abc", UNUSUAL["multi_voice"]), expect=1,
                      accept=ALL - {"continue", "compose"}))
    latin1 = GOOD.replace("T:Jig", "T:Caf\u00e9 na Sp\u00e9ire").encode("latin-1")
    cases.append(Case("unusual_latin1", _file("latin1.abc", latin1), expect=0, accept=ALL))
    cases.append(Case("unusual_crlf", _file("crlf.abc", GOOD.replace("\n", "\r\n")), expect=0, accept=ALL))
    cases.append(Case("unusual_utf16_bom", _file("bom16.abc", GOOD.encode("utf-16")), expect=0, accept=ALL))
    cases.append(Case("musicxml_file", _file("tune.musicxml", MUSICXML), accept=IMPORTING))
    cases.append(Case("musicxml_stdin", _stdin, stdin=MUSICXML.encode(), accept=IMPORTING, only=STDIN_COMMANDS))
    return cases


def _bad_text_cases() -> list[Case]:
    texts = {
        "empty": "",
        "whitespace": "  \n\t\n   \n",
        "no_tune": "just some words\nnothing musical here\n",
        "missing_K": "X:1\nT:No key\nM:4/4\nL:1/8\nGABc dedB|dedB dedB|\n",
        "unknown_chars": HEADER + "GABc d\u2603dB|dedB \u0416edB|\n",
        "malformed_notes": HEADER + "G,,,,,,,'''''' ^^^^__ =/0/ B/0 c''''''''''''|^=_zGA|\n",
        "unclosed_quote": HEADER + '"G GABc dedB|dedB dedB|\n',
        "unclosed_bracket": HEADER + "[GBd GABc dedB|dedB dedB|\n",
        "unclosed_slur": HEADER + "(GABc dedB|dedB dedB)) dedB|\n",
        "unclosed_decoration": HEADER + "!trill GABc dedB|dedB dedB|\n",
        "L_zero": "X:1\nT:Reel\nM:4/4\nL:1/0\nK:G\nGABc dedB|dedB dedB|\n",
        "M_zero": "X:1\nT:Reel\nM:7/0\nL:1/8\nK:G\nGABc dedB|dedB dedB|\n",
        "huge_length": HEADER + "GABC999999999 dedB|dedB dedB|\n",
        "huge_tuplet": HEADER + "(999GAB dedB|dedB dedB|\n",
        "huge_multirest": HEADER + "Z99999999999|dedB dedB|\n",
        # music21's MusicXML writer takes time cubic in a grace group's size: 5,000 notes would run for hours
        "huge_grace_group": HEADER + "{" + "g" * 100 + "}GABc dedB|dedB dedB|\n",
        "junk_key": "X:1\nT:Reel\nM:4/4\nL:1/8\nK:Q##ptolemaic 12\nGABc dedB|dedB dedB|\n",
        "controls": HEADER + "GA\x01Bc\x02de\x03dB|\x04\x05\x06\x07\x08\x0b\x0e\x0f\x10|\n",
        "long_line_1MB": HEADER + "GABc dedB|" * 100_000 + "\n",
    }
    cases = [Case(name, _file(f"{name}.abc", text)) for name, text in texts.items()]
    # legal ABC, so taken: no M: is free meter; a prompt may leave a slur open for the continuation to close
    cases.append(Case("missing_M", _file("no_meter.abc", "X:1\nT:Reel\nL:1/8\nK:G\nGABc dedB|dedB dedB|\n"),
                      accept=ALL))
    # legal ABC, but music21 would take minutes to build its time signature, and the decoder's bar is too long
    cases.append(Case("huge_meter", _file("huge_meter.abc", HEADER.replace("M:4/4", "M:9999/1") + "GABc dedB|\n"),
                      accept=frozenset({"harmonize", "check", "evaluate", "train"})))
    cases.append(Case("open_slur_prompt", _file("slur.abc", HEADER + "GABc dedB|(dedB dedB|\n"),
                      accept=frozenset({"continue", "compose"})))
    # a header alone is a seed to compose from or continue (from its first bar), and nothing to harmonize,
    # play or train on
    cases.append(Case("header_only", _file("header_only.abc", HEADER), accept=frozenset({"compose", "continue"})))
    return cases


def _padded_musicxml(size: int) -> bytes:
    """Good MusicXML of ``size`` bytes: spaces between its elements."""
    text = MUSICXML.encode()
    cut = text.index(b"<part id")
    return text[:cut] + b" " * (size - len(text)) + text[cut:]


def _mxl(size: int) -> bytes:
    """A compressed MusicXML file (a zip) that unpacks to ``size`` bytes: a few kB on disk."""
    import io
    import zipfile

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("META-INF/container.xml", '<?xml version="1.0"?><container><rootfiles>'
                                                   '<rootfile full-path="score.xml"/></rootfiles></container>')
        archive.writestr("score.xml", _padded_musicxml(size))
    return buffer.getvalue()


OVER_LIMIT = 17 * 1024 * 1024  # past the 16 MB that abcflax reads


def _bad_file_cases() -> list[Case]:
    binary = bytes(range(256)) * 64
    return [
        # music21 took minutes over a large file, and 2 GB of memory to unpack a 300 kB .mxl of 300 MB
        Case("musicxml_over_limit", _file("large.musicxml", _padded_musicxml(OVER_LIMIT)), only=IMPORTING,
             tags=("big",)),
        Case("mxl_unpacks_over_limit", _file("bomb.mxl", _mxl(OVER_LIMIT)), only=IMPORTING, tags=("big",)),
        Case("mxl_unpacks_over_limit_stdin", _stdin, stdin=lambda: _mxl(OVER_LIMIT), only=IMPORTING & STDIN_COMMANDS,
             tags=("big",)),
        Case("binary", _file("noise.abc", binary)),
        Case("binary_no_nul", _file("noise2.abc", bytes(range(1, 32)) * 100)),
        Case("midi_as_abc", _file("song.abc", MIDI)),
        Case("musicxml_as_abc", _file("score.abc", MUSICXML)),
        Case("zip_as_abc", _file("archive.abc", b"PK\x03\x04" + bytes(200))),
        Case("utf16_no_bom", _file("le16.abc", GOOD.encode("utf-16-le"))),
        Case("utf16_undecodable", _bad_utf16),
        Case("midi_broken", _file("broken.mid", MIDI[:20]), only=IMPORTING),
        Case("musicxml_broken", _file("broken.musicxml", MUSICXML[:300]), only=IMPORTING),
        # stdin is read through a temporary file: its error must name <stdin>, not that file
        Case("midi_broken_stdin", _stdin, stdin=MIDI[:20], only=IMPORTING & STDIN_COMMANDS),
        Case("musicxml_broken_stdin", _stdin, stdin=MUSICXML[:300].encode(), only=IMPORTING & STDIN_COMMANDS),
        Case("directory", _directory),
        Case("missing_path", _missing),
        Case("path_under_file", _under_a_file),
        Case("fifo", _fifo),
        Case("stdin_empty", _stdin, stdin=b"", only=STDIN_COMMANDS),
        Case("stdin_binary", _stdin, stdin=bytes(range(256)) * 16, only=STDIN_COMMANDS),
        Case("file_50MB", _huge(50 * 1024 * 1024), tags=("big",)),
        Case("stdin_50MB", _stdin, stdin=lambda: (HEADER + "GABc dedB|\n" * 5_000_000).encode(),
             only=STDIN_COMMANDS, tags=("big",)),
    ]


CASES: list[Case] = _bad_text_cases() + _bad_file_cases() + _unusual_cases()


def stdin_bytes(case: Case) -> bytes | None:
    return case.stdin() if callable(case.stdin) else case.stdin


def expected_code(case: Case, command: str) -> int:
    return 0 if command in case.accept else case.expect


def command_args(command: str, file: str, model_dir: str, out: Path) -> list[str]:
    """Arguments that run ``command`` on ``file`` cheaply, writing (if at all) only under ``out``."""
    model = ["--model", str(model_dir)]
    if command == "continue":
        return ["continue", file, *model, "--max-chars", "300", "-o", str(out / "out.abc"), "--quiet"]
    if command == "harmonize":
        return ["harmonize", file, *model, "-o", str(out / "out.abc")]
    if command == "compose":
        return ["compose", file, *model, "--max-chars", "300", "--out-dir", str(out / "composed"), "--quiet"]
    if command == "export":
        return ["export", file, "-o", str(out / "out.musicxml")]
    if command == "check":
        return ["check", file, "--quiet"]
    if command == "evaluate":
        return ["evaluate", file, *model]
    if command == "train":
        return ["train", file, "--out", str(out / "run"), "--preset", "tiny", "--steps", "1", "--batch-size", "2",
                "--seq-len", "8", "--eval-every", "1", "--quiet"]
    raise ValueError(f"unknown command {command}")


def files_under(folder: Path) -> list[str]:
    """Every file (not folder) below ``folder``, relative: outputs and leftover temp files alike."""
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if not p.is_dir())
