"""Bad input never crashes: every command over the catalogue in tests/bad_inputs.py.

Each row asserts the exit code, exactly one non-empty stderr line naming the input (when refused), no
traceback anywhere and no output file (or temp file) left behind. Valid-but-unusual ABC must be processed.
"""

from __future__ import annotations

import contextlib
import errno
import importlib.util
import os
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

import abcflax
import bad_inputs as catalogue
from abcflax_cli.common import main_group

HAS_COMPOSE = importlib.util.find_spec("abcflax_cli.compose_cmd") is not None
COMMANDS = [c for c in catalogue.COMMANDS if c != "compose" or HAS_COMPOSE]
# these read every character with the model: the tiny test model knows only TINY_CORPUS's characters, so
# for them a clear "not in the model's vocabulary" refusal of unusual-but-valid ABC is the right answer
MODEL_READS_ALL = {"continue", "compose", "evaluate"}
OUTPUT_COMMANDS = {"continue": "out.abc", "harmonize": "out.abc", "export": "out.musicxml"}
# commands whose successful run leaves output under the catalogue's output folder
WRITERS = {*OUTPUT_COMMANDS, "compose"}

ROWS = [pytest.param(case, command, id=f"{case.name}-{command}")
        for case in catalogue.CASES for command in COMMANDS
        if command in case.only
        # training on valid input takes seconds of JAX per row: one run covers it (test_train_takes_unusual_abc)
        and not (command == "train" and catalogue.expected_code(case, command) == 0)]


def invoke(args: list[str], stdin: bytes | None = None):
    return CliRunner().invoke(main_group, args, input=stdin)


def folders(tmp_path: Path) -> tuple[Path, Path]:
    inputs, outputs = tmp_path / "in", tmp_path / "out"
    inputs.mkdir()
    outputs.mkdir()
    return inputs, outputs


@pytest.mark.parametrize("case, command", ROWS)
def test_catalogue(case, command, tmp_path, tiny_model_dir):
    inputs, out = folders(tmp_path)
    argument = case.make(inputs)
    result = invoke(catalogue.command_args(command, argument, tiny_model_dir, out), catalogue.stdin_bytes(case))
    everything = result.stdout + result.stderr
    assert "Traceback" not in everything
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    expected = catalogue.expected_code(case, command)
    if expected == 0 and command in MODEL_READS_ALL and result.exit_code == 1:
        assert len(lines) == 1 and "not in the model's vocabulary" in lines[0], result.stderr
    elif expected == 0:
        assert result.exit_code == 0, result.stderr
        if command in WRITERS:
            assert any(path.stat().st_size > 0 for path in out.rglob("*") if path.is_file())
        return
    else:
        assert result.exit_code == expected, result.stderr
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("abcflax: error: ")
    name = "<stdin>" if argument == "-" else Path(argument).name
    assert name in lines[0], lines[0]
    assert catalogue.files_under(out) == []


def test_train_takes_unusual_abc(tmp_path):
    """Every valid-but-unusual file of the catalogue is a training tune (the corpus reader skips none)."""
    import abcflax

    unusual = [case for case in catalogue.CASES if case.name.startswith("unusual_")]
    paths = [case.make(tmp_path) for case in unusual]
    texts, weights, problems = abcflax.load_training_texts([str(tmp_path)])
    assert problems == [] and len(texts) == len(paths) and weights == [1] * len(paths)


def test_train_runs_on_unusual_abc(tmp_path):
    """One real (one-step) training run on the unusual tunes: accepted, checkpoint written."""
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for case in catalogue.CASES:
        if case.name.startswith("unusual_"):
            case.make(corpus)
    result = invoke(catalogue.command_args("train", str(corpus), "", tmp_path / "out"))
    assert result.exit_code == 0, result.stderr
    assert (tmp_path / "out" / "run" / "model.msgpack").exists()


@pytest.mark.parametrize("args", [
    ["continue", "-", "--max-chars", "1000000"],
    ["continue", "-", "--temperature", "-1"],
    ["continue", "-", "--temperature", "nan"],  # NaN passes every comparison a range check makes
    ["continue", "-", "--temperature", "inf"],
    ["continue", "-", "--top-p", "nan"],
    ["compose", "-", "--temperature", "nan"],
    ["export", "-", "-o", "x.mid", "--tempo", "nan"],
    ["train", "x.abc", "--out", "o", "--lr", "nan"],
    ["train", "x.abc", "--out", "o", "--dropout", "nan"],
    ["harmonize", "-", "--beam", "0"],
    ["export", "-"],
    ["train", "x.abc", "--out", "o", "--steps", "0"],
    ["no-such-command"],
])
def test_usage_errors_are_one_line(args):
    result = invoke(args, b"")
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("abcflax: error: ") and "--help" in lines[0]


def test_debug_shows_the_traceback(tmp_path):
    """--debug lets the error through (click's runner then holds it instead of a one-line message)."""
    missing = str(tmp_path / "missing.abc")
    plain = invoke(["check", missing])
    debug = invoke(["--debug", "check", missing])
    assert plain.exit_code == 1 and "no such file" in plain.stderr
    import abcflax

    assert isinstance(debug.exception, abcflax.InputError)


def test_midi_on_stdin_without_a_usable_temp_folder_is_one_line(monkeypatch):
    """MIDI and MusicXML on stdin go through a temporary file (music21 parses by path)."""
    import tempfile

    def no_space(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(tempfile, "TemporaryDirectory", no_space)
    result = invoke(["export", "-", "-o", "-", "--format", "abc"], catalogue.MIDI)
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        "abcflax: error: <stdin>: cannot keep the input in a temporary file (No space left on device)"]


# ---- no partial or lost files: existing outputs are kept without --force; errors leave nothing


GOOD = catalogue.GOOD


@pytest.mark.parametrize("command", sorted(OUTPUT_COMMANDS))
def test_existing_output_is_kept_without_force(command, tmp_path, tiny_model_dir):
    inputs, out = folders(tmp_path)
    source = inputs / "good.abc"
    source.write_text(GOOD)
    target = out / OUTPUT_COMMANDS[command]
    target.write_text("precious")
    args = catalogue.command_args(command, str(source), tiny_model_dir, out)
    refused = invoke(args)
    assert refused.exit_code == 1 and "--force" in refused.stderr
    assert target.read_text() == "precious" and catalogue.files_under(out) == [target.name]
    forced = invoke(args + ["--force"])
    assert forced.exit_code == 0, forced.stderr
    assert target.read_text() != "precious" and catalogue.files_under(out) == [target.name]


def test_train_never_overwrites_a_run(tmp_path, tiny_model_dir):
    import shutil

    run = tmp_path / "out" / "run"
    shutil.copytree(tiny_model_dir, run)
    before = (run / "model.msgpack").read_bytes()
    corpus = tmp_path / "good.abc"
    corpus.write_text(GOOD)
    result = invoke(catalogue.command_args("train", str(corpus), "", tmp_path / "out"))
    assert result.exit_code == 2 and "--resume" in result.stderr
    assert (run / "model.msgpack").read_bytes() == before


def test_export_of_a_tunebook_with_a_bad_tune_writes_the_good_one_only(tmp_path):
    """Tune 2 of 2 is bad: it is named in one error line and gets no file; tune 1 is still written, whole (the
    tunebook policy, README), and nothing else is left behind."""
    book = tmp_path / "book.abc"
    book.write_text(GOOD + "\n" + GOOD.replace("X:1", "X:2").replace("GABc", "G^^^^c"))
    out = tmp_path / "out"
    out.mkdir()
    result = invoke(["export", str(book), "-o", str(out / "tunes.musicxml")])
    assert result.exit_code == 1 and "Traceback" not in result.output
    messages = [line for line in result.stderr.splitlines() if line.startswith("abcflax: ")]  # not the paths
    assert len(messages) == 1 and messages[0].startswith(f"abcflax: error: {book}:13:4: accidental")
    assert catalogue.files_under(out) == ["tunes-1.musicxml"]


def test_atomic_write_leaves_no_temp_file_on_failure(tmp_path, monkeypatch):
    from abcflax import atomic

    target = tmp_path / "x.abc"

    def broken_fsync(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", broken_fsync)
    with pytest.raises(abcflax.InputError, match=f"^{target}: cannot write: No space left on device$"):
        atomic.write_text(target, "data")
    assert list(tmp_path.iterdir()) == []


# ---- output paths: a device or FIFO is written into, a symlink's target is replaced, anything else that
# cannot take a file is one error line. Never --force at a real /dev node: without the fix that would
# replace it by a plain file. FIFOs, symlinks and sockets are made under tmp_path.


def good_tune(folder: Path) -> Path:
    source = folder / "good.abc"
    source.write_text(GOOD)
    return source


def output_run(command: str, target: Path, tiny_model_dir, *extra: str):
    """``command`` on a good tune, writing to ``target`` (named as catalogue.command_args names it)."""
    args = catalogue.command_args(command, str(good_tune(target.parent.parent)), tiny_model_dir, target.parent)
    assert str(target) in args
    return invoke(args + list(extra))


def one_error_line(result) -> str:
    assert "Traceback" not in result.stdout + result.stderr and "internal error" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("abcflax: error: "), result.stderr
    return lines[0]


@contextlib.contextmanager
def fifo_reader(path: Path):
    """A FIFO at ``path`` with a reader thread; yields a dict that gets the bytes read under "data"."""
    os.mkfifo(path)
    got: dict = {}

    def read():
        with open(path, "rb") as handle:
            got["data"] = handle.read()

    thread = threading.Thread(target=read, daemon=True)
    thread.start()
    try:
        yield got
    finally:
        thread.join(timeout=2)  # after a command wrote into it, the reader is done or about to be
        if thread.is_alive():  # nothing opened it for writing: let the reader's open return
            _release_reader(path, thread)
        thread.join(timeout=30)


def _release_reader(path: Path, reader: threading.Thread) -> None:
    """Open the FIFO for writing once its reader waits in open(): on a busy machine the reader thread may not
    have got there yet (ENXIO), or may be just finishing a read."""
    deadline = time.monotonic() + 10
    while reader.is_alive():
        try:
            os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))
            return
        except OSError as exc:
            if exc.errno != errno.ENXIO or time.monotonic() > deadline:
                raise
            time.sleep(0.01)


@pytest.mark.parametrize("force", [False, True], ids=["plain", "force"])
@pytest.mark.parametrize("command", sorted(OUTPUT_COMMANDS))
def test_fifo_output_is_written_into_not_replaced(command, force, tmp_path, tiny_model_dir):
    inputs, out = folders(tmp_path)
    target = out / OUTPUT_COMMANDS[command]
    with fifo_reader(target) as got:
        result = output_run(command, target, tiny_model_dir, *(["--force"] if force else []))
    assert result.exit_code == 0, result.stderr
    assert stat.S_ISFIFO(os.lstat(target).st_mode)
    assert got["data"].startswith(b"<?xml" if target.suffix == ".musicxml" else b"X:1")
    assert catalogue.files_under(out) == [target.name]  # no temp file left beside it


@pytest.mark.parametrize("command", sorted(OUTPUT_COMMANDS))
def test_dev_null_output_is_written_into_without_force(command, tmp_path, tiny_model_dir):
    args = catalogue.command_args(command, str(good_tune(tmp_path)), tiny_model_dir, tmp_path / "out")
    args[args.index(str(tmp_path / "out" / OUTPUT_COMMANDS[command]))] = os.devnull
    result = invoke(args + (["--format", "abc"] if command in ("continue", "export") else []))
    assert result.exit_code == 0, result.stderr
    assert stat.S_ISCHR(os.stat(os.devnull).st_mode)


def test_dev_full_output_is_one_error_line(tmp_path):
    result = invoke(["export", str(good_tune(tmp_path)), "-o", "/dev/full", "--format", "abc"])
    assert result.exit_code == 1
    assert one_error_line(result) == "abcflax: error: /dev/full: cannot write: No space left on device"
    assert stat.S_ISCHR(os.stat("/dev/full").st_mode)


@pytest.mark.parametrize("command", sorted(OUTPUT_COMMANDS))
def test_symlink_output_replaces_its_target_and_stays_a_link(command, tmp_path, tiny_model_dir):
    inputs, out = folders(tmp_path)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    real = elsewhere / f"real{Path(OUTPUT_COMMANDS[command]).suffix}"
    real.write_text("precious")
    link = out / OUTPUT_COMMANDS[command]
    link.symlink_to(real)
    refused = output_run(command, link, tiny_model_dir)
    assert refused.exit_code == 1 and "--force" in one_error_line(refused) and real.read_text() == "precious"
    forced = output_run(command, link, tiny_model_dir, "--force")
    assert forced.exit_code == 0, forced.stderr
    assert link.is_symlink() and os.readlink(link) == str(real)
    assert real.read_text() != "precious" and catalogue.files_under(elsewhere) == [real.name]


def test_dangling_symlink_output_creates_its_target(tmp_path):
    link, real = tmp_path / "link.abc", tmp_path / "real.abc"
    link.symlink_to(real)
    result = invoke(["export", str(good_tune(tmp_path)), "-o", str(link)])
    assert result.exit_code == 0, result.stderr
    assert link.is_symlink() and real.read_text().startswith("X:1")


def _socket(path: Path) -> None:
    import socket

    server = socket.socket(socket.AF_UNIX)
    server.bind(str(path))
    server.close()  # the socket file stays


def _block_device(path: Path) -> None:
    # major 240 is for local/experimental use: no real disk behind it (opening it fails with ENXIO)
    try:
        os.mknod(path, stat.S_IFBLK | 0o600, os.makedev(240, 0))
    except PermissionError:
        pytest.skip("cannot make a device node here")


@pytest.mark.parametrize("make, what", [(_socket, "is a socket"), (_block_device, "is a block device"),
                                        (Path.mkdir, "is a directory")], ids=["socket", "block", "directory"])
def test_unwritable_kinds_are_refused_even_with_force(make, what, tmp_path):
    target = tmp_path / "out.abc"
    make(target)
    before = os.lstat(target)
    result = invoke(["export", str(good_tune(tmp_path)), "-o", str(target), "--force"])
    assert result.exit_code == 1
    assert one_error_line(result) == f"abcflax: error: {target}: {what}, not a file to write"
    after = os.lstat(target)
    assert (after.st_mode, after.st_ino) == (before.st_mode, before.st_ino)


@pytest.mark.parametrize("command", sorted(OUTPUT_COMMANDS))
def test_output_below_a_plain_file_is_one_error_line(command, tmp_path, tiny_model_dir):
    source = good_tune(tmp_path)
    blocker = tmp_path / "plain.abc"
    blocker.write_text(GOOD)
    result = invoke(catalogue.command_args(command, str(source), tiny_model_dir, blocker))
    assert result.exit_code == 1
    target = blocker / OUTPUT_COMMANDS[command]
    assert one_error_line(result) == f"abcflax: error: {target}: cannot write: {blocker} is not a directory"
    assert blocker.read_text() == GOOD


@pytest.mark.skipif(not Path("/proc/version").is_file(), reason="needs Linux /proc")
def test_output_in_proc_is_one_error_line(tmp_path):
    # /proc takes no new files, so even without the fix nothing there is replaced
    result = invoke(["export", str(good_tune(tmp_path)), "-o", "/proc/version", "--format", "abc", "--force"])
    assert result.exit_code == 1
    assert one_error_line(result).startswith("abcflax: error: /proc/version: cannot write: ")


def test_write_error_is_one_error_line(tmp_path, monkeypatch):
    def broken_replace(src, dst):
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(os, "replace", broken_replace)
    target = tmp_path / "out" / "tune.mid"
    result = invoke(["export", str(good_tune(tmp_path)), "-o", str(target)])
    assert result.exit_code == 1
    assert one_error_line(result) == f"abcflax: error: {target}: cannot write: Input/output error"
    assert catalogue.files_under(tmp_path / "out") == []


@pytest.mark.skipif(not HAS_COMPOSE, reason="compose command not installed")
def test_compose_out_dir_write_error_stops_at_the_first_tune_in_one_line(tmp_path, tiny_model_dir, monkeypatch):
    """A folder that takes no file (a full disk, /proc) failed every tune alike: one line a tune, each naming
    the path twice, after sampling them all. Now the first failure stops the run."""
    def broken_replace(src, dst):
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(os, "replace", broken_replace)
    seeds = tmp_path / "seeds.txt"
    seeds.write_text("R:reel K:D\nR:jig K:G\nR:waltz K:A\n")
    out = tmp_path / "tunes"
    result = invoke(["compose", str(seeds), "--model", str(tiny_model_dir), "--max-chars", "300", "--out-dir",
                     str(out), "--quiet"])
    assert result.exit_code == 1
    line = one_error_line(result)
    assert line.startswith(f"abcflax: error: {out}{os.sep}") and line.endswith(": cannot write: Input/output error")
    assert line.count(str(out)) == 1
    assert not out.exists() or catalogue.files_under(out) == []


def test_tunebook_to_a_fifo_is_refused_not_split_beside_it(tmp_path):
    """Two tunes make two MusicXML files, <stem>-<X>: beside a FIFO (or in /dev) they have no place."""
    book = tmp_path / "book.abc"
    book.write_text(GOOD + "\n" + GOOD.replace("X:1", "X:2"))
    out = tmp_path / "out"
    out.mkdir()
    target = out / "pipe.musicxml"
    os.mkfifo(target)
    result = invoke(["export", str(book), "-o", str(target)])
    assert result.exit_code == 2 and "2 tunes make 2 musicxml files" in one_error_line(result)
    assert catalogue.files_under(out) == [target.name]


# ---- the same promise through a real process: the console script, real stdin, real exit codes


@pytest.mark.parametrize("name", ["binary", "empty", "fifo", "directory", "utf16_no_bom"])
def test_subprocess_check(name, tmp_path):
    case = next(c for c in catalogue.CASES if c.name == name)
    argument = case.make(tmp_path)
    done = subprocess.run([sys.executable, "-m", "abcflax_cli.main", "check", argument], capture_output=True,
                          text=True, timeout=120, env={**os.environ, "ABCFLAX_PLUGINS": ""})
    assert done.returncode == 1 and "Traceback" not in done.stderr + done.stdout
    assert len(done.stderr.strip().splitlines()) == 1 and Path(argument).name in done.stderr


def test_subprocess_continue_from_binary_stdin(tmp_path, tiny_model_dir):
    done = subprocess.run([sys.executable, "-m", "abcflax_cli.main", "continue", "-", "--model",
                           str(tiny_model_dir), "-o", str(tmp_path / "out.abc")],
                          input=bytes(range(256)) * 8, capture_output=True, timeout=120,
                          env={**os.environ, "ABCFLAX_PLUGINS": ""})
    stderr = done.stderr.decode()
    assert done.returncode == 1 and "Traceback" not in stderr
    assert stderr.strip().splitlines() == ["abcflax: error: <stdin>: binary data, not ABC text"]
    assert not (tmp_path / "out.abc").exists()


def stdout_args(command: str, source: Path, tiny_model_dir) -> list[str]:
    """``command`` writing ABC to stdout: export through the library, continue through click.echo."""
    if command == "export":
        return ["export", str(source), "--format", "abc", "-o", "-"]
    return ["continue", str(source), "--model", str(tiny_model_dir), "--max-chars", "300", "--quiet"]


@pytest.mark.slow
@pytest.mark.parametrize("command", ["export", "continue"])
def test_subprocess_full_stdout_is_one_error_line(command, tmp_path, tiny_model_dir):
    with open("/dev/full", "wb") as full:
        done = subprocess.run([sys.executable, "-m", "abcflax_cli.main", *stdout_args(command, good_tune(tmp_path),
                                                                                      tiny_model_dir)],
                              stdout=full, stderr=subprocess.PIPE, text=True, timeout=300,
                              env={**os.environ, "ABCFLAX_PLUGINS": ""})
    assert done.returncode == 1
    assert done.stderr.splitlines() == ["abcflax: error: cannot write to stdout: No space left on device"]


@pytest.mark.slow
@pytest.mark.parametrize("command", ["export", "continue"])
def test_subprocess_closed_pipe_ends_quietly(command, tmp_path, tiny_model_dir):
    """``abcflax continue ... | head -1``: the reader is gone before abcflax writes. No message, no
    "Exception ignored" from Python's flush at exit; exit 1, as click does for --help into a closed pipe."""
    process = subprocess.Popen([sys.executable, "-m", "abcflax_cli.main",
                                *stdout_args(command, good_tune(tmp_path), tiny_model_dir)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               env={**os.environ, "ABCFLAX_PLUGINS": ""})
    process.stdout.close()  # long before the child has started Python, let alone written
    stderr = process.stderr.read().decode()
    assert process.wait(timeout=300) == 1
    assert stderr == ""


@pytest.mark.parametrize("case", [c for c in catalogue.CASES if "export" in c.only], ids=lambda c: c.name)
def test_export_repair_never_crashes(case, tmp_path):
    # --repair edits what it reads: whatever the input, one error line and exit 1/2, or warnings and exit 0
    inputs, out = folders(tmp_path)
    argument = case.make(inputs)
    result = invoke(["export", argument, "-o", str(out / "out.musicxml"), "--repair"], catalogue.stdin_bytes(case))
    assert "Traceback" not in result.stdout + result.stderr
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    errors = [line for line in result.stderr.splitlines() if line.startswith("abcflax: error:")]
    if result.exit_code == 0:
        assert not errors and (out / "out.musicxml").exists()
    else:
        assert result.exit_code in (1, 2) and len(errors) == 1, result.stderr
        assert not list(out.iterdir())
