"""Lost work: training survives SIGKILL and resumes to the same parameters; bad checkpoints are refused
with CheckpointError; the code is safe by construction (no pickle/eval/exec/network; plugins switchable)."""

from __future__ import annotations

import csv
import os
import random
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import jax
import numpy as np
import pytest

import abcflax
from abcflax import checkpoint
from abcflax.errors import CheckpointError
from conftest import tiny_texts

ROOT = Path(__file__).resolve().parents[1]
TRAIN_ARGS = ["--preset", "tiny", "--steps", "40", "--batch-size", "8", "--seq-len", "32", "--eval-every", "5",
              "--quiet"]


def train_process(corpus: Path, out: Path, *extra: str) -> subprocess.Popen:
    command = [sys.executable, "-m", "abcflax_cli.main", "train", str(corpus), "--out", str(out), *TRAIN_ARGS, *extra]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env={**os.environ, "ABCFLAX_PLUGINS": ""})


def finish(process: subprocess.Popen) -> None:
    _, stderr = process.communicate(timeout=300)
    assert process.returncode == 0, stderr.decode()


def flat_params(path: Path) -> dict[str, np.ndarray]:
    import jax

    leaves = jax.tree_util.tree_flatten_with_path(checkpoint.load(path).params)[0]
    return {jax.tree_util.keystr(key): np.asarray(value) for key, value in leaves}


def logged_steps(run: Path) -> list[int]:
    with (run / "log.csv").open(newline="") as handle:
        return [int(row["step"]) for row in csv.DictReader(handle)]


def kill_after_first_checkpoint(process: subprocess.Popen, run: Path, delay: float) -> bool:
    """SIGKILL ``delay`` seconds after the first checkpoint appears; False if the run finished first."""
    deadline = time.monotonic() + 300
    while not (run / checkpoint.FILE_NAME).exists():
        if process.poll() is not None or time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    time.sleep(delay)
    if process.poll() is not None:
        return False
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=60)
    return True


def test_training_survives_sigkill_and_resumes_exactly(tmp_path):
    corpus = tmp_path / "corpus.abc"
    corpus.write_text("\n".join(tiny_texts(3)))
    reference, killed = tmp_path / "reference", tmp_path / "killed"
    uninterrupted = train_process(corpus, reference)
    victim = train_process(corpus, killed)  # the two run side by side: one compile wait, not two
    delay = random.Random(os.urandom(8)).uniform(0.0, 1.5)
    was_killed = kill_after_first_checkpoint(victim, killed, delay)
    finish(uninterrupted)
    if not was_killed:
        victim.communicate(timeout=60)
    step_at_kill = checkpoint.load(killed).step
    finish(train_process(corpus, killed, "--resume"))
    ours, theirs = flat_params(killed / checkpoint.FILE_NAME), flat_params(reference / checkpoint.FILE_NAME)
    assert ours.keys() == theirs.keys()
    for key in ours:
        assert np.array_equal(ours[key], theirs[key]), f"{key} differs (killed at step {step_at_kill}, {delay=:.2f})"
    assert checkpoint.load(killed).step == 40
    assert logged_steps(killed) == logged_steps(reference) == list(range(5, 41, 5))
    assert not [p for p in killed.iterdir() if p.name.endswith(".tmp")], "a temp file was left behind"


# ---- checkpoints: corrupt, truncated, mismatched -> CheckpointError, never a wrong model


def test_corrupt_checkpoint_is_refused(tiny_model_dir, tmp_path):
    data = bytearray((tiny_model_dir / checkpoint.FILE_NAME).read_bytes())
    data[len(data) // 2] ^= 0x40
    bad = tmp_path / "corrupt.msgpack"
    bad.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="digest"):
        abcflax.load_model(bad)


@pytest.mark.parametrize("keep", [0, 10, 90, -1])
def test_truncated_checkpoint_is_refused(tiny_model_dir, tmp_path, keep):
    data = (tiny_model_dir / checkpoint.FILE_NAME).read_bytes()
    bad = tmp_path / "truncated.msgpack"
    bad.write_bytes(data[:keep])
    with pytest.raises(CheckpointError):
        checkpoint.load(bad)


def test_not_a_checkpoint_is_refused(tmp_path):
    bad = tmp_path / "model.msgpack"
    bad.write_bytes(b"X:1\nK:G\nGABc|\n")
    with pytest.raises(CheckpointError, match="not an abcflax checkpoint"):
        checkpoint.load(bad)


def test_params_that_do_not_fit_the_config_are_refused(tiny_model_dir, tmp_path):
    """A checkpoint with a valid digest whose parameters belong to another shape."""
    import dataclasses

    ckpt = checkpoint.load(tiny_model_dir)
    ckpt.model_config = dataclasses.replace(ckpt.model_config, hidden=ckpt.model_config.hidden * 2)
    target = tmp_path / "wrong_shape.msgpack"
    target.write_bytes(checkpoint.to_bytes(ckpt))
    with pytest.raises(CheckpointError, match="do not fit"):
        abcflax.load_model(target)


def test_vocabulary_that_does_not_fit_the_config_is_refused(tiny_model_dir, tmp_path):
    ckpt = checkpoint.load(tiny_model_dir)
    ckpt.vocab = abcflax.Vocab(ckpt.vocab.chars + ("\u00e9",))
    target = tmp_path / "wrong_vocab.msgpack"
    target.write_bytes(checkpoint.to_bytes(ckpt))
    with pytest.raises(CheckpointError, match="vocabulary"):
        checkpoint.load(target)


def test_resume_with_a_corpus_of_other_characters_is_refused(tmp_path):
    config = abcflax.TrainConfig(steps=4, batch_size=4, seq_len=16, eval_every=2, eval_chars=200)
    texts = tiny_texts(2)
    abcflax.train(texts, tmp_path, abcflax.preset("tiny"), config, stop_after=2)
    before = (tmp_path / checkpoint.FILE_NAME).read_bytes()
    other = [text.replace("T:Jig", "T:Caf\u00e9 \u00d1") for text in texts]
    with pytest.raises(CheckpointError, match="cannot resume.*vocabulary lacks"):
        abcflax.train(other, tmp_path, abcflax.preset("tiny"), config, resume=True)
    assert (tmp_path / checkpoint.FILE_NAME).read_bytes() == before


def payload_of(path: Path) -> dict:
    """The decoded fields of a real checkpoint, to be spoiled and written back with ``rewritten``."""
    from flax import serialization

    data = path.read_bytes()
    return serialization.msgpack_restore(data[len(checkpoint.MAGIC) + 65:])


def rewritten(payload, target: Path) -> Path:
    """``payload`` as a checkpoint file with a valid digest: only its fields are wrong."""
    import hashlib

    from flax import serialization

    body = serialization.msgpack_serialize(payload)
    target.write_bytes(checkpoint.MAGIC + hashlib.sha256(body).hexdigest().encode() + b"\n" + body)
    return target


def spoiled(good: dict, change: str) -> object:
    """``good`` with one field of the wrong type (``change`` names which)."""
    if change == "not_a_mapping":
        return [good["vocab"]]
    field, _, value = change.partition("=")
    if "." in field:
        outer, inner = field.split(".")
        return {**good, outer: {**good[outer], inner: value}}
    return {**good, field: {"missing": None}.get(value, value)}


@pytest.mark.parametrize("change, words", [
    ("not_a_mapping", "holds list, not a mapping"),
    ("model_config=tiny", "'model_config' is str, not a mapping"),
    ("train_config=fast", "'train_config' is str, not a mapping"),
    ("meta=none of it", "'meta' is str, not a mapping"),
    ("params=weights", "'params' is str, not a mapping"),
    ("step=many", "'step' is str, not an integer"),
    ("model_config.hidden=16", "ModelConfig.hidden is '16', not of type int"),
    ("train_config.learning_rate=fast", "TrainConfig.learning_rate is 'fast', not of type float"),
])
def test_checkpoint_fields_of_the_wrong_type_are_refused(tiny_model_dir, tmp_path, change, words):
    good = payload_of(tiny_model_dir / checkpoint.FILE_NAME)
    bad = rewritten(spoiled(good, change), tmp_path / "model.msgpack")
    with pytest.raises(CheckpointError, match=f"^{re.escape(str(bad))}: .*{re.escape(words)}"):
        abcflax.load_model(bad)


def test_checkpoint_vocabulary_of_the_wrong_type_is_refused(tiny_model_dir, tmp_path):
    good = payload_of(tiny_model_dir / checkpoint.FILE_NAME)
    for vocab, words in ((12, "'vocab' is int, not a string"), (good["vocab"] + good["vocab"][-1], "repeats")):
        bad = rewritten({**good, "vocab": vocab}, tmp_path / "model.msgpack")
        with pytest.raises(CheckpointError, match=words):
            checkpoint.load(bad)


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_checkpoint_with_non_finite_parameters_is_refused(tiny_model_dir, tmp_path, value):
    ckpt = checkpoint.load(tiny_model_dir)
    kernel = np.array(ckpt.params["head"]["kernel"])
    kernel[0, 1] = value
    ckpt.params["head"]["kernel"] = kernel
    bad = tmp_path / "diverged.msgpack"
    bad.write_bytes(checkpoint.to_bytes(ckpt))
    with pytest.raises(CheckpointError, match=f"^{re.escape(str(bad))}: parameter head/kernel holds NaN or Inf"):
        abcflax.load_model(bad)


def test_cli_refuses_a_diverged_checkpoint_in_one_line(tiny_model_dir, tmp_path):
    """Accepted, it made harmonize write the same chord everywhere and continue add nothing to the prompt."""
    from click.testing import CliRunner

    from abcflax_cli.common import main_group

    ckpt = checkpoint.load(tiny_model_dir)
    ckpt.params["layers"]["0"]["w_hh"] = np.full_like(ckpt.params["layers"]["0"]["w_hh"], np.nan)
    bad = tmp_path / "diverged.msgpack"
    bad.write_bytes(checkpoint.to_bytes(ckpt))
    tune = tmp_path / "t.abc"
    tune.write_text("X:1\nM:4/4\nL:1/8\nK:G\nGABc dedB|dedB dedB|\n")
    for command in ("continue", "harmonize"):
        result = CliRunner().invoke(main_group, [command, str(tune), "--model", str(bad)])
        assert result.exit_code == 1 and result.stdout == ""
        assert result.stderr.splitlines() == [f"abcflax: error: {bad}: parameter layers/0/w_hh holds NaN or Inf "
                                              "values; the checkpoint is corrupt (was the training diverging?)"]


def test_cli_reports_a_checkpoint_of_the_wrong_shape_of_fields_in_one_line(tiny_model_dir, tmp_path):
    from click.testing import CliRunner

    from abcflax_cli.common import main_group

    good = payload_of(tiny_model_dir / checkpoint.FILE_NAME)
    bad = rewritten({**good, "model_config": "tiny"}, tmp_path / "model.msgpack")
    tune = tmp_path / "t.abc"
    tune.write_text("X:1\nM:4/4\nL:1/8\nK:G\nGABc dedB|\n")
    for args in (["continue", str(tune)], ["harmonize", str(tune)], ["evaluate", str(tune)]):
        result = CliRunner().invoke(main_group, [*args, "--model", str(bad)])
        assert result.exit_code == 1, result.stderr
        assert result.stderr.splitlines() == [
            f"abcflax: error: {bad}: checkpoint field 'model_config' is str, not a mapping"]


def test_cli_reports_a_bad_checkpoint_in_one_line(tmp_path):
    from click.testing import CliRunner

    from abcflax_cli.common import main_group

    model = tmp_path / "model"
    model.mkdir()
    (model / checkpoint.FILE_NAME).write_bytes(checkpoint.MAGIC + b"0" * 64 + b"\nnot msgpack")
    tune = tmp_path / "t.abc"
    tune.write_text("X:1\nM:4/4\nL:1/8\nK:G\nGABc dedB|\n")
    result = CliRunner().invoke(main_group, ["continue", str(tune), "--model", str(model)])
    assert result.exit_code == 1
    assert result.stderr.strip().splitlines() == [
        f"abcflax: error: {model / checkpoint.FILE_NAME}: checkpoint is corrupt or truncated (digest mismatch)"]


# ---- bounded resources


@pytest.mark.parametrize("max_chars", [0, 20_001, 10**12, 2.5])
def test_complete_caps_max_chars(tiny_model, max_chars):
    with pytest.raises(abcflax.UsageError, match="max_chars"):
        abcflax.complete("X:1\nM:4/4\nL:1/8\nK:G\nGABc dedB|", model=tiny_model, max_chars=max_chars)


def test_input_limit_is_checked_before_reading(tmp_path, monkeypatch):
    """A file over MAX_INPUT_BYTES is refused from its size alone: its bytes are never read."""
    from abcflax import tunebook

    big = tmp_path / "big.abc"
    with big.open("wb") as handle:
        handle.truncate(tunebook.MAX_INPUT_BYTES + 1)  # sparse: no disk, no memory
    monkeypatch.setattr(Path, "read_bytes", lambda self: pytest.fail("read a file over the limit"))
    with pytest.raises(abcflax.InputError, match="too large"):
        tunebook.read_file_text(big)
    assert tunebook.MAX_INPUT_BYTES < 50 * 1024 * 1024


# ---- safe by construction


SOURCE_DIRS = ("abcflax", "cli", "plugins")
FORBIDDEN = {
    "pickle": re.compile(r"^\s*(import|from)\s+(c?pickle|dill|joblib|shelve)\b|\bpickle\.(loads?|Unpickler)\b", re.M),
    "eval/exec": re.compile(r"(?<![\w.])(eval|exec)\s*\(", re.M),
    "network": re.compile(r"^\s*(import|from)\s+(urllib|requests|http\.client|httpx|socket|ftplib|aiohttp)\b"
                          r"|urlopen\s*\(", re.M),
}


def source_files() -> list[Path]:
    return [path for folder in SOURCE_DIRS for path in sorted((ROOT / folder).rglob("*.py"))]


@pytest.mark.parametrize("kind", sorted(FORBIDDEN))
def test_no_pickle_eval_exec_or_network(kind):
    assert len(source_files()) > 20  # the scan really looks at the package
    offenders = [str(path.relative_to(ROOT)) for path in source_files()
                 if FORBIDDEN[kind].search(path.read_text(encoding="utf-8"))]
    assert offenders == []


def test_the_forbidden_patterns_do_find_what_they_forbid():
    assert FORBIDDEN["pickle"].search("import pickle\n")
    assert FORBIDDEN["eval/exec"].search("x = eval(text)\n") and not FORBIDDEN["eval/exec"].search("model.eval()")
    assert FORBIDDEN["network"].search("from urllib.request import urlopen\n")


def test_checkpoints_load_without_pickle(tiny_model_dir, monkeypatch):
    import pickle

    def refuse(*args, **kwargs):
        raise AssertionError("pickle used")

    monkeypatch.setattr(pickle, "loads", refuse)
    monkeypatch.setattr(pickle, "load", refuse)
    assert checkpoint.load(tiny_model_dir).vocab.size > 2


def test_the_checkpoint_reader_reads_what_flax_writes(monkeypatch):
    """abcflax reads checkpoints without importing flax (its import costs ~0.2 s of every `continue`); what
    flax.serialization writes, including bfloat16, scalars, complex numbers and chunked arrays, reads the same."""
    import ml_dtypes
    from flax import serialization

    monkeypatch.setattr(serialization, "MAX_CHUNK_SIZE", 64)  # so that a small array is written in chunks
    tree = {"w": np.arange(60, dtype=np.float32).reshape(3, 4, 5), "b": np.ones(3, ml_dtypes.bfloat16),
            "i": np.array([1, -2], np.int64), "s": np.float32(2.5), "c": 1 + 2j, "n": None, "t": "x",
            "l": [1, 2.5, {"deep": np.zeros((0, 2), np.float64)}]}
    body = serialization.msgpack_serialize(tree)
    assert b"__msgpack_chunked_array__" in body
    ours, theirs = checkpoint.msgpack_restore(body), serialization.msgpack_restore(body)
    assert jax.tree_util.tree_structure(ours) == jax.tree_util.tree_structure(theirs)
    for mine, flax_leaf in zip(jax.tree_util.tree_leaves(ours), jax.tree_util.tree_leaves(theirs)):
        assert type(mine) is type(flax_leaf)
        if isinstance(mine, np.ndarray):
            assert mine.dtype == flax_leaf.dtype and mine.shape == flax_leaf.shape
            np.testing.assert_array_equal(mine, flax_leaf)
        else:
            assert mine == flax_leaf


def test_continue_never_imports_flax(tiny_model_dir, tmp_path):
    tune = tmp_path / "t.abc"
    tune.write_text("X:1\nT:t\nM:6/8\nL:1/8\nK:G\nGAG GAB|\n")
    # the click group, not the program's main(): that ends the process at once (no teardown) after a command
    code = ("import sys; from abcflax_cli.common import main_group as main\n"
            "sys.argv = ['abcflax', 'continue', sys.argv[1], "
            "'--model', sys.argv[2], '--max-chars', '300', '--quiet', '-o', sys.argv[3]]\n"
            "try:\n    main()\nexcept SystemExit as e:\n    assert not e.code, e.code\n"
            "print(sorted(m for m in sys.modules if m == 'flax' or m.startswith('flax.')))")
    out = subprocess.run([sys.executable, "-c", code, str(tune), str(tiny_model_dir), str(tmp_path / "o.abc")],
                         capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "[]"


def test_plugins_come_only_from_entry_points_and_can_be_switched_off(monkeypatch):
    """With ABCFLAX_PLUGINS empty, an installed entry point is not even imported; unset, it loads."""
    import importlib.metadata
    import types

    from abcflax import plugins

    loaded = []
    module = types.ModuleType("fake_abcflax_plugin")

    @plugins.hookimpl
    def register_exporters(register):
        register("fake", (".fake",), lambda abc, options: b"fake", binary=True)

    module.register_exporters = register_exporters

    class FakeEntryPoint:
        name, value, group = "fake", "fake_abcflax_plugin", plugins.GROUP

        def load(self):
            loaded.append(self.name)
            return module

    real = importlib.metadata.entry_points
    monkeypatch.setattr(importlib.metadata, "entry_points",
                        lambda **kw: [FakeEntryPoint()] if kw.get("group") == plugins.GROUP else real(**kw))
    for setting, expected in (("", False), ("other", False), ("fake", True), (None, True)):
        if setting is None:
            monkeypatch.delenv(plugins.ENV_VAR, raising=False)
        else:
            monkeypatch.setenv(plugins.ENV_VAR, setting)
        plugins.reset_plugins()
        loaded.clear()
        assert ("fake" in plugins.exporters()) is expected and bool(loaded) is expected, setting
    plugins.reset_plugins()


def _fifo(tmp_path: Path) -> Path:
    os.mkfifo(tmp_path / "pipe.msgpack")
    return tmp_path / "pipe.msgpack"


def _folder_with_a_fifo(tmp_path: Path) -> Path:
    (tmp_path / "model").mkdir()
    os.mkfifo(tmp_path / "model" / checkpoint.FILE_NAME)
    return tmp_path / "model"


@pytest.mark.parametrize("make, named", [(_fifo, "pipe.msgpack"), (_folder_with_a_fifo, checkpoint.FILE_NAME),
                                         (lambda tmp_path: Path("/dev/zero"), "/dev/zero")])
@pytest.mark.parametrize("command", ["continue", "train"])
def test_a_model_that_is_no_regular_file_is_one_line_not_a_hang(make, named, command, tmp_path):
    """A FIFO with no writer blocked the read forever; /dev/zero never ended it (nor did memory)."""
    model = make(tmp_path)
    tune = tmp_path / "t.abc"
    tune.write_text("X:1\nM:4/4\nL:1/8\nK:G\nGABc dedB|dedB dedB|\n")
    args = ({"continue": ["continue", str(tune), "--model", str(model)],
             "train": ["train", str(tune), "--out", str(tmp_path / "run"), "--init-from", str(model), *TRAIN_ARGS]})
    result = subprocess.run([sys.executable, "-m", "abcflax_cli.main", *args[command]], capture_output=True,
                            text=True, timeout=60, env={**os.environ, "ABCFLAX_PLUGINS": ""})
    assert result.returncode == 1
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("abcflax: error: ") and named in lines[0], result.stderr
    assert "not a regular file" in lines[0]


def test_a_diverging_run_stops_in_one_line_and_keeps_its_last_good_checkpoint(tmp_path):
    """It trained on, exited 0 and saved a model of NaNs that every command then refused."""
    from click.testing import CliRunner

    from abcflax_cli.common import main_group

    corpus = tmp_path / "corpus.abc"
    corpus.write_text("\n".join(tiny_texts(2)))
    run = tmp_path / "run"
    # step 1 moves the weights by about 1e30 (float32 holds them: step 1 is saved); step 2 overflows
    args = ["train", str(corpus), "--out", str(run), "--preset", "tiny", "--steps", "6", "--batch-size", "8",
            "--seq-len", "32", "--eval-every", "1", "--warmup-steps", "0", "--lr", "1e30", "--quiet"]
    result = CliRunner().invoke(main_group, args)
    assert result.exit_code == 1
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("abcflax: error: training diverged at step 2: "), result.stderr
    assert f"the checkpoint in {run / checkpoint.FILE_NAME} is the last good one" in lines[0]
    kept = checkpoint.load(run)
    assert kept.step == 1 and logged_steps(run) == [1]  # loads: its weights are finite
    with pytest.raises(abcflax.AbcflaxError, match=r"^training diverged at step \d: .*no model was saved"):
        abcflax.train(tiny_texts(2), tmp_path / "fresh", abcflax.preset("tiny"),
                      abcflax.TrainConfig(steps=4, batch_size=8, seq_len=32, eval_every=10, warmup_steps=0,
                                          learning_rate=1e308))
    assert not (tmp_path / "fresh" / checkpoint.FILE_NAME).exists()
