"""The MuseScore 4 plugin's contract with abcflax, on files MuseScore itself wrote.

MuseScore 4 cannot be installed here (Debian ships MuseScore 3 only), so the QML cannot run. What can be
checked with real components: the commands the plugin builds (read from abcflax.qml itself, so the test
follows the plugin) work as separate processes on MusicXML written by MuseScore (3), and MuseScore opens
what they write.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
QML = (ROOT / "plugins" / "musescore" / "abcflax.qml").read_text()

pytestmark = pytest.mark.skipif(shutil.which("mscore3") is None or shutil.which("abcflax") is None,
                                reason="needs MuseScore 3 (Debian musescore3) and the abcflax console script")


def test_the_plugin_builds_the_commands_this_test_runs():
    assert re.search(r'var args = \[action, input, "-o", output\];', QML)
    assert re.search(r'args\.concat\(\["--bars", String\(barsBox\.value\)\]\)', QML)
    assert re.search(r'model: \["harmonize", "continue"\]', QML)
    assert "writeScore(curScore, base, \"musicxml\")" in QML and "readScore(output)" in QML
    assert "startWithArgs(abcflaxProgram, args)" in QML


def musescore(args: list[str], folder: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", XDG_RUNTIME_DIR=str(folder))
    done = subprocess.run(["mscore3", *args], capture_output=True, text=True, timeout=180, env=env)
    assert done.returncode == 0, done.stderr
    problems = [line for line in done.stderr.splitlines()
                if any(word in line.lower() for word in ("error", "empty bar", "no instrument", "fail"))]
    assert problems == [], done.stderr
    return done


@pytest.mark.parametrize("action", ["harmonize", "continue"])
def test_plugin_round_trip_on_a_score_musescore_wrote(action, tmp_path):
    # the open score, as MuseScore's writeScore leaves it: MusicXML written by MuseScore
    melody = tmp_path / "melody.musicxml"
    subprocess.run(["abcflax", "export", str(ROOT / "data" / "examples" / "melody.abc"), "-o", str(melody)],
                   check=True, capture_output=True)
    written = tmp_path / "abcflax-in-1.musicxml"
    musescore(["-o", str(written), str(melody)], tmp_path)

    output = tmp_path / f"abcflax-out-{action}-1.musicxml"
    args = [action, str(written), "-o", str(output)] + (["--bars", "8"] if action == "continue" else [])
    done = subprocess.run(["abcflax", *args], capture_output=True, text=True, timeout=300)  # as QProcess does
    assert done.returncode == 0, done.stderr
    text, before = output.read_text(), written.read_text()
    if action == "harmonize":  # the same notes, now with chord symbols
        assert text.count("<harmony") >= 8 and text.count("<pitch>") == before.count("<pitch>")
    else:  # eight more bars
        assert text.count("<measure") >= before.count("<measure") + 8

    musescore(["-o", str(tmp_path / "opened.pdf"), str(output)], tmp_path)  # readScore's side: it opens
    assert (tmp_path / "opened.pdf").stat().st_size > 1000
