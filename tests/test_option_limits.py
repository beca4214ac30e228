"""Out-of-range option values, model paths, closed stdin and bad environment variables: each one clear line.

Every refusal here is exactly one ``abcflax: error:`` line on stderr, exit 2 for usage (an option's or a
variable's value) and 1 for other bad input, no traceback, no ``internal error`` and nothing under --out.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

import abcflax
from abcflax import checkpoint, runtime
from abcflax.config import MAX_COPIES
from abcflax.errors import UsageError
from abcflax.training import parse_source
from abcflax_cli.common import main_group

from conftest import tiny_texts

HUGE = "99999999999999999999"  # past int64: click's int takes it, the code behind it overflowed
TUNE = "X:1\nT:Jig\nM:6/8\nL:1/8\nK:G\n|:GAG GAB|ABA ABd|edd gdd|edB dBA:|\n"
# a cheap one-step training run (what the catalogue's train rows use)
TRAIN_CHEAP = ["--preset", "tiny", "--steps", "1", "--batch-size", "2", "--seq-len", "8", "--eval-every", "1",
               "--quiet"]


def invoke(args, stdin=None, env=None):
    return CliRunner().invoke(main_group, [str(arg) for arg in args], input=stdin, env=env)


def one_error_line(result, code: int) -> str:
    """The single stderr line of a refusal with exit ``code``."""
    assert "Traceback" not in result.stdout + result.stderr, result.stderr
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert result.exit_code == code, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("abcflax: error: "), result.stderr
    assert "internal error" not in lines[0]
    return lines[0]


@pytest.fixture
def tune(tmp_path) -> Path:
    path = tmp_path / "tune.abc"
    path.write_text(TUNE)
    return path


@pytest.fixture
def corpus(tmp_path) -> Path:
    path = tmp_path / "corpus.abc"
    path.write_text("\n".join(tiny_texts(2)))
    return path


# ---- 1. SOURCE@N: a bounded weight

@pytest.mark.parametrize("weight", [HUGE, "1000000", str(MAX_COPIES + 1), "0"])
def test_train_refuses_a_repeat_count_out_of_range(weight, tune, tmp_path):
    out = tmp_path / "run"
    line = one_error_line(invoke(["train", f"{tune}@{weight}", "--out", out, *TRAIN_CHEAP]), 2)
    assert f"@{weight}" in line and f"N from 1 to {MAX_COPIES}" in line
    assert not out.exists()


def test_parse_source_bounds():
    assert parse_source(f"tunes/@{MAX_COPIES}") == ("tunes/", MAX_COPIES)
    assert parse_source("tunes/@2") == ("tunes/", 2)
    assert parse_source("a@b.abc") == ("a@b.abc", 1)  # not a count: part of the name
    assert parse_source("tune@²") == ("tune@²", 1)  # a digit to str.isdigit, none to int()
    with pytest.raises(UsageError, match="N from 1 to"):
        parse_source(f"tunes/@{MAX_COPIES + 1}")


# ---- 2. every integer option of train within what the code handles, refused before --out is touched

TRAIN_LIMITS = {  # option -> (first value refused above, last refused below)
    "--steps": ("1000000001", "0"),
    "--eval-every": ("1000000001", "0"),
    "--warmup-steps": ("1000000001", "-1"),
    "--dropout-from": ("1000000001", "-1"),
    "--chords-after": (str(MAX_COPIES), "-1"),
    "--batch-size": ("4097", "0"),
    "--seq-len": ("4097", "1"),
    "--transpose": ("7", "-1"),
    "--devices": ("1025", "0"),
    "--num-processes": ("1025", "0"),
    "--process-id": ("1024", "-1"),
}


@pytest.mark.parametrize("option", sorted(TRAIN_LIMITS))
@pytest.mark.parametrize("which", ["huge", "above", "below"])
def test_train_integer_options_are_bounded(option, which, corpus, tmp_path):
    value = {"huge": HUGE, "above": TRAIN_LIMITS[option][0], "below": TRAIN_LIMITS[option][1]}[which]
    out = tmp_path / "run"
    args = [a for a in TRAIN_CHEAP if a != option]
    if option in args:  # the cheap run's own value of this option gives way
        del args[args.index(option):args.index(option) + 2]
    line = one_error_line(invoke(["train", corpus, "--out", out, *args, option, value]), 2)
    assert option in line and value in line
    assert not out.exists()  # no log.csv, no folder


@pytest.mark.parametrize("command", ["continue", "compose"])
@pytest.mark.parametrize("option, value", [("--max-chars", HUGE), ("--bars", HUGE), ("--candidates", HUGE),
                                           ("--top-p", "2")])
def test_sampling_options_are_bounded(command, option, value, tune):
    line = one_error_line(invoke([command, tune, option, value]), 2)
    assert option in line


def test_compose_integer_options_are_bounded(tune):
    for option in ("-n", "--batch-size"):
        assert option in one_error_line(invoke(["compose", tune, option, HUGE]), 2)


@pytest.mark.parametrize("seed", ["-1", HUGE])
def test_train_takes_any_seed_as_continue_does(seed, corpus, tmp_path):
    """continue takes every integer (modulo 2**32); train crashed on -1 (numpy) and on 2**64 and up."""
    out = tmp_path / "run"
    result = invoke(["train", corpus, "--out", out, *TRAIN_CHEAP, "--seed", seed])
    assert result.exit_code == 0, result.stderr
    assert checkpoint.load(out).train_config.seed == int(seed) % 2**32


def test_continue_seed_is_taken_modulo_2_32(tiny_model_dir, tune):
    args = ["continue", tune, "--model", tiny_model_dir, "--max-chars", "300", "--quiet", "--seed"]
    first = invoke(args + ["-1"])
    assert first.exit_code == 0, first.stderr
    assert invoke(args + [str(2**32 - 1)]).stdout == first.stdout
    assert invoke(args + [str(2**70 - 1)]).stdout == first.stdout


# ---- 3. --devices never reaches XLA_FLAGS unchecked

def test_devices_past_the_limit_is_one_line_before_xla_starts(corpus, tmp_path):
    """In a fresh process, where the value would go into XLA_FLAGS (XLA printed 94 lines of its flag help)."""
    env = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", "ABCFLAX_HOST_DEVICES")}
    done = subprocess.run([sys.executable, "-m", "abcflax_cli.main", "train", str(corpus), "--out",
                           str(tmp_path / "run"), "--devices", HUGE, "--steps", "1"],
                          capture_output=True, text=True, timeout=120, env={**env, "ABCFLAX_PLUGINS": ""})
    assert done.returncode == 2
    assert done.stderr.splitlines() == [f"abcflax: error: Invalid value for '--devices': {HUGE} is not in the "
                                        f"range 1<=x<={runtime.MAX_DEVICES}. (see abcflax train --help)"]
    assert not (tmp_path / "run").exists()


# ---- 4. a model path below a regular file

@pytest.mark.parametrize("how", ["--model", "env", "--reverse-model"])
def test_model_path_below_a_file_is_one_line(how, tune, tmp_path, tiny_model_dir):
    below = tmp_path / "model.msgpack" / "x"
    (tmp_path / "model.msgpack").write_bytes(b"not a folder")
    if how == "--reverse-model":
        args, env = ["harmonize", tune, "--model", tiny_model_dir, "--reverse-model", below], None
    elif how == "env":
        args, env = ["continue", tune], {"ABCFLAX_MODEL": str(below)}
    else:
        args, env = ["continue", tune, "--model", below], None
    line = one_error_line(invoke(args + ["-o", tmp_path / "out.abc"], env=env), 1)
    assert str(below) in line and "Not a directory" in line
    assert not (tmp_path / "out.abc").exists()


def test_load_model_names_the_os_reason(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(abcflax.CheckpointError, match=r"file/x: cannot open the model \(Not a directory\)"):
        abcflax.load_model(tmp_path / "file" / "x")


# ---- 5. a closed stdin (and stdout)

def closed_fd(fd: int):
    return lambda: os.close(fd)  # runs in the child before Python starts: sys.stdin / sys.stdout is then None


@pytest.mark.parametrize("args", [["check", "-"], ["continue", "-"], ["harmonize", "-"], ["compose", "-"],
                                  ["export", "-", "-o", "x.abc"], ["train", "-", "--out", "run"]])
def test_closed_stdin_is_one_line(args, tmp_path, tiny_model_dir):
    model = ["--model", str(tiny_model_dir)] if args[0] in ("continue", "harmonize", "compose") else []
    done = subprocess.run([sys.executable, "-m", "abcflax_cli.main", *args, *model], cwd=tmp_path,
                          preexec_fn=closed_fd(0), capture_output=False, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True, timeout=120, env={**os.environ, "ABCFLAX_PLUGINS": ""})
    assert done.stderr.splitlines() == ["abcflax: error: cannot read stdin: it is closed"]
    assert done.returncode == 1
    assert list(tmp_path.iterdir()) == []


def test_closed_stdout_with_continue_is_one_line(tune, tiny_model_dir):
    done = subprocess.run([sys.executable, "-m", "abcflax_cli.main", "continue", str(tune), "--model",
                           str(tiny_model_dir), "--max-chars", "300", "--quiet"], preexec_fn=closed_fd(1),
                          stdin=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, timeout=120,
                          env={**os.environ, "ABCFLAX_PLUGINS": ""})
    assert done.stderr.splitlines() == ["abcflax: error: cannot write to stdout: it is closed"]
    assert done.returncode == 1


# ---- 6. train - reads the corpus from stdin

def test_train_reads_its_corpus_from_stdin(tmp_path):
    out = tmp_path / "run"
    # after --, as click would take "-@2" for options
    result = invoke(["train", "--out", out, *TRAIN_CHEAP, "--", "-@2"], stdin="\n".join(tiny_texts(2)))
    assert result.exit_code == 0, result.stderr
    assert checkpoint.load(out).meta["sources"] == ["-@2"]


def test_load_training_texts_reads_stdin_like_a_file(monkeypatch, corpus):
    import io

    from_file = abcflax.load_training_texts([str(corpus)])
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(corpus.read_bytes())))
    assert abcflax.load_training_texts(["-"]) == from_file[:2] + ([],)


def test_train_stdin_errors_name_stdin(tmp_path):
    empty = invoke(["train", "-", "--out", tmp_path / "run", *TRAIN_CHEAP], stdin="")
    assert "<stdin>" in one_error_line(empty, 1)
    twice = invoke(["train", "--out", tmp_path / "run", *TRAIN_CHEAP, "--", "-", "-@2"], stdin=TUNE)
    assert "read only once" in one_error_line(twice, 2)
    assert not (tmp_path / "run").exists()


# ---- 7. music21:NAME stays inside music21's corpus

@pytest.mark.parametrize("name", ["../../../..", "..", ".", "", "essenFolksong/..", "a/b", "a\\b", "/etc",
                                  "C:x"])
def test_train_refuses_a_music21_name_that_leaves_the_corpus(name, tmp_path):
    out = tmp_path / "run"
    line = one_error_line(invoke(["train", f"music21:{name}@2", "--out", out, *TRAIN_CHEAP]), 2)
    assert f"music21:{name}" in line and "music21:ryansMammoth" in line
    assert not out.exists()


@pytest.mark.parametrize("spec", ["", "@2"])
def test_train_refuses_an_empty_source(spec, tmp_path):
    """Path("") is the current folder: an empty name trained on whatever lay below it."""
    assert "empty source" in one_error_line(invoke(["train", spec, "--out", tmp_path / "run", *TRAIN_CHEAP]), 2)


# ---- 8. environment variables with bad values

@pytest.fixture
def fresh_switches():
    runtime.bf16_stepping.cache_clear()
    runtime.enable_compile_cache.cache_clear()
    yield
    runtime.bf16_stepping.cache_clear()
    runtime.enable_compile_cache.cache_clear()


@pytest.mark.parametrize("variable", ["ABCFLAX_STEP_BF16", "ABCFLAX_NO_COMPILE_CACHE"])
@pytest.mark.parametrize("value", ["yes", "2", "-1"])
@pytest.mark.parametrize("command", ["continue", "compose"])
def test_bad_sampler_switch_is_one_line(variable, value, command, tune, tiny_model_dir, tmp_path, fresh_switches):
    result = invoke([command, tune, "--model", tiny_model_dir, "-o", tmp_path / "out.abc"], env={variable: value})
    line = one_error_line(result, 2)
    assert f"{variable}='{value}'" in line and "must be 1 (on) or 0 (off)" in line
    assert not (tmp_path / "out.abc").exists()


def test_sampler_switches_take_0_1_and_unset(monkeypatch, fresh_switches):
    for value, expected in (("1", True), ("0", False), (" 1 ", True), ("", None)):
        monkeypatch.setenv("ABCFLAX_STEP_BF16", value)
        assert runtime.env_switch("ABCFLAX_STEP_BF16") is expected
    monkeypatch.setenv("ABCFLAX_STEP_BF16", "yes")
    with pytest.raises(UsageError):
        runtime.bf16_stepping()


@pytest.mark.parametrize("value", ["abc", "0", "-3", "1025", "1.5", "²"])
def test_bad_host_devices_is_one_line(value, corpus, tmp_path):
    out = tmp_path / "run"
    line = one_error_line(invoke(["train", corpus, "--out", out, *TRAIN_CHEAP], env={"ABCFLAX_HOST_DEVICES": value}),
                          2)
    assert f"ABCFLAX_HOST_DEVICES='{value}'" in line and f"1 to {runtime.MAX_DEVICES}" in line
    assert not out.exists()


@pytest.mark.parametrize("value", ["diagonal", "1", "row"])
def test_bad_recurrence_layout_is_one_line(value, corpus, tmp_path):
    out = tmp_path / "run"
    line = one_error_line(invoke(["train", corpus, "--out", out, *TRAIN_CHEAP],
                                 env={"ABCFLAX_RECURRENCE_LAYOUT": value}), 2)
    assert f"ABCFLAX_RECURRENCE_LAYOUT='{value}'" in line and "rows, columns or measure" in line
    assert not out.exists()


def test_host_devices_override_values(monkeypatch):
    for value, expected in (("", None), ("1", 1), (" 4 ", 4), (str(runtime.MAX_DEVICES), runtime.MAX_DEVICES)):
        monkeypatch.setenv("ABCFLAX_HOST_DEVICES", value)
        assert runtime.host_devices_override() == expected


def test_debug_variable_off_values_show_no_traceback(tmp_path):
    """ABCFLAX_DEBUG=0 turned tracebacks on (any non-empty text did); it is read as click reads --debug."""
    for value in ("0", "false", "no"):
        result = invoke(["check", tmp_path / "none.abc"], env={"ABCFLAX_DEBUG": value})
        assert "no such file" in one_error_line(result, 1)
    shown = CliRunner().invoke(main_group, ["check", str(tmp_path / "none.abc")], env={"ABCFLAX_DEBUG": "1"})
    assert isinstance(shown.exception, abcflax.InputError)  # raised for the traceback


@pytest.mark.parametrize("name", ["../../../..", "", "a/b"])
def test_evaluate_refuses_a_music21_name_that_leaves_the_corpus(name):
    # train refused it, evaluate scored 12,840 tunes from every *.abc under Python's lib
    result = CliRunner().invoke(main_group, ["evaluate", f"music21:{name}"])
    assert result.exit_code == 2 and "name one folder of music21's corpus" in result.output, result.output


@pytest.mark.parametrize("command", [["harmonize", "--method", "rules"], ["evaluate"]])
def test_closed_stdout_with_harmonize_or_evaluate_is_one_line(tune, command):
    # each exited 0 with its result lost
    done = subprocess.run([sys.executable, "-m", "abcflax_cli.main", command[0], str(tune), *command[1:]],
                          preexec_fn=closed_fd(1), stdin=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                          timeout=120, env={**os.environ, "ABCFLAX_PLUGINS": ""})
    assert done.stderr.splitlines() == ["abcflax: error: cannot write to stdout: it is closed"]
    assert done.returncode == 1


@pytest.mark.parametrize("change", [dict(steps=2**40), dict(batch_size=0), dict(warmup_steps=-1),
                                    dict(learning_rate=float("nan")), dict(clip_norm=0.0), dict(min_lr_ratio=2.0),
                                    dict(eval_every=0), dict(seq_len=1)])
def test_library_train_checks_its_config_as_the_cli_does(tmp_path, change):
    # the CLI's ranges were the only check: TrainConfig(steps=2**40) overflowed int32 inside jit
    import dataclasses

    config = dataclasses.replace(abcflax.TrainConfig(), **change)
    with pytest.raises(UsageError, match=next(iter(change))):
        abcflax.train(tiny_texts(2), tmp_path / "run", abcflax.preset("tiny"), config)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("change", [dict(hidden=0), dict(layers=0), dict(dropout=1.0), dict(dropout=-0.1),
                                    dict(dropout=0.99)])  # 0.99 rounds to 254/256: the CLI's 0.95 is the limit
def test_library_train_checks_the_model_shape(tmp_path, change):
    import dataclasses

    model = dataclasses.replace(abcflax.preset("tiny"), **change)
    with pytest.raises(UsageError, match=next(iter(change))):
        abcflax.train(tiny_texts(2), tmp_path / "run", model, abcflax.TrainConfig(steps=1))


@pytest.mark.parametrize("change", [dict(seed=-1), dict(seed=2**32), dict(reverse="yes"), dict(bf16_matmuls=1)])
def test_library_train_checks_seed_and_switches(tmp_path, change):
    # seed=-1 was numpy's "expected non-negative integer" (an internal error); reverse="yes" a silent True
    import dataclasses

    config = dataclasses.replace(abcflax.TrainConfig(), **change)
    with pytest.raises(UsageError, match=next(iter(change))):
        abcflax.train(tiny_texts(2), tmp_path / "run", abcflax.preset("tiny"), config)
    assert not (tmp_path / "run").exists()


@pytest.fixture(scope="module")
def one_step_checkpoint(tmp_path_factory):
    out = tmp_path_factory.mktemp("one_step")
    abcflax.train(tiny_texts(2), out, abcflax.preset("tiny"),
                  abcflax.TrainConfig(steps=1, batch_size=2, seq_len=8, eval_every=1))
    return checkpoint.load(out)


@pytest.mark.parametrize("stored", [dict(steps=2**40), dict(batch_size=0), dict(seq_len=0), None])
def test_resume_refuses_stored_settings_out_of_range(stored, one_step_checkpoint, tmp_path):
    """A checkpoint's own settings (written by a library call before train checked them) resumed with them:
    steps=2**40 ran into int32, batch 0 trained on nothing, seq_len 0 crashed in scan, none was an
    AttributeError. Each is one CheckpointError naming the file; the model still loads for continue."""
    import dataclasses

    ckpt = one_step_checkpoint
    settings = None if stored is None else dataclasses.replace(ckpt.train_config, **stored)
    checkpoint.save(tmp_path, dataclasses.replace(ckpt, train_config=settings))
    before = (tmp_path / checkpoint.FILE_NAME).read_bytes()
    expected = "the checkpoint holds no training settings" if stored is None else f"its stored {next(iter(stored))} must be"
    with pytest.raises(abcflax.CheckpointError, match=f"{checkpoint.FILE_NAME}: cannot resume: {expected}"):
        abcflax.train(tiny_texts(2), tmp_path, abcflax.preset("tiny"), abcflax.TrainConfig(steps=3), resume=True)
    assert (tmp_path / checkpoint.FILE_NAME).read_bytes() == before
    assert abcflax.load_model(tmp_path).config == ckpt.model_config
    line = one_error_line(invoke(["train", corpus_file(tmp_path), "--out", tmp_path, "--resume", "--quiet"]), 1)
    assert "cannot resume" in line


def corpus_file(folder: Path) -> Path:
    path = folder / "corpus.abc"
    path.write_text("\n".join(tiny_texts(2)))
    return path


@pytest.mark.parametrize("stored", [dict(dropout=1.0), dict(hidden=0)])
def test_fine_tuning_refuses_a_stored_shape_out_of_range(stored, one_step_checkpoint, tmp_path):
    # dropout 1 fine-tuned into NaN weights without a word
    import dataclasses

    ckpt = one_step_checkpoint
    checkpoint.save(tmp_path / "base", dataclasses.replace(ckpt, model_config=dataclasses.replace(ckpt.model_config,
                                                                                                  **stored)))
    with pytest.raises(abcflax.CheckpointError, match=f"cannot fine-tune from it: its stored {next(iter(stored))}"):
        abcflax.train(tiny_texts(2), tmp_path / "run", abcflax.preset("tiny"), abcflax.TrainConfig(steps=1),
                      init_from=tmp_path / "base")
    assert not (tmp_path / "run").exists()


def run_with_stdout_closed(args, cwd=None):
    return subprocess.run([sys.executable, "-m", "abcflax_cli.main", *map(str, args)], cwd=cwd,
                          preexec_fn=closed_fd(1), stdin=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                          timeout=120, env={**os.environ, "ABCFLAX_PLUGINS": ""})


@pytest.mark.parametrize("command", ["compose", "continue-musicxml", "export", "plugins"])
def test_closed_stdout_is_refused_before_the_work(command, tune, tmp_path, tiny_model_dir):
    """plugins exited 0 with its list lost; compose reported its bad seeds and sampled every tune, continue
    sampled (no --quiet: "continuing..."), and only then did writing to stdout fail. One line now, before."""
    seeds = tmp_path / "seeds.txt"
    seeds.write_text("K:G\n\nK:Zzz\n")  # a good seed, then a bad one (reported while planning)
    args = {"compose": ["compose", seeds, "--model", tiny_model_dir, "--max-chars", "300"],
            "continue-musicxml": ["continue", tune, "--model", tiny_model_dir, "--max-chars", "300", "-o", "-",
                                  "--format", "musicxml"],
            "export": ["export", tune, "-o", "-", "--format", "abc"],
            "plugins": ["plugins"]}[command]
    done = run_with_stdout_closed(args, cwd=tmp_path)
    assert done.stderr.splitlines() == ["abcflax: error: cannot write to stdout: it is closed"]
    assert done.returncode == 1
    assert sorted(path.name for path in tmp_path.iterdir()) == ["seeds.txt", "tune.abc"]


def test_train_with_stdout_closed_trains_and_names_its_model_on_stderr(tmp_path):
    """train's result is the saved model, not its stdout line: a nohup job started with ``>&-`` keeps its
    training, exits 0, and finds the path beside the progress (it was dropped without a word)."""
    corpus = tmp_path / "corpus.abc"
    corpus.write_text("\n".join(tiny_texts(2)))
    done = run_with_stdout_closed(["train", corpus, "--out", tmp_path / "run", "--preset", "tiny", "--steps", "1",
                                   "--quiet"])
    assert done.returncode == 0, done.stderr
    assert done.stderr.splitlines()[-1] == str(tmp_path / "run" / "model.msgpack")
    assert (tmp_path / "run" / "model.msgpack").is_file()


def test_compose_refuses_a_binary_format_on_stdout_before_sampling(tmp_path, tiny_model_dir):
    seeds = tmp_path / "seeds.txt"
    seeds.write_text("K:G\n\nK:Zzz\n")  # the bad seed's line came first, then the refusal after sampling
    line = one_error_line(invoke(["compose", seeds, "--model", tiny_model_dir, "-o", "-", "--format", "mid"]), 2)
    assert "mid is binary" in line


def test_check_with_stdout_closed_says_its_problems_are_not_listed(tmp_path):
    """The problems are check's output: with stdout closed they were lost under a bare "2 problems"; a clean
    file loses nothing and still passes."""
    bad = tmp_path / "bad.abc"
    bad.write_text("X:1\nT:Bad\nM:4/4\nL:1/8\nK:G\n|:GABc dedc|GABc dedc BAGA|GABc dedc|(GABc dedc|\n")
    done = run_with_stdout_closed(["check", bad])
    assert done.stderr.splitlines() == [f"abcflax: error: {bad}: 2 problems (not listed: stdout is closed)"]
    assert done.returncode == 1
    bad.write_text(TUNE)
    clean = run_with_stdout_closed(["check", bad])
    assert (clean.returncode, clean.stderr) == (0, "ok: 1 tune\n")


def test_evaluate_checks_every_music21_name_before_reading(tmp_path):
    # a folder before music21:.. was read (and a missing one refused) before the name was looked at
    line = one_error_line(invoke(["evaluate", tmp_path / "missing.abc", "music21:.."]), 2)
    assert "music21:..: name one folder of music21's corpus" in line


def test_the_library_and_the_cli_take_the_same_highest_dropout(tmp_path):
    from abcflax.config import MAX_DROPOUT
    from abcflax.training import check_configs

    check_configs(dataclasses_replace(abcflax.preset("tiny"), dropout=MAX_DROPOUT), abcflax.TrainConfig(steps=1))
    result = CliRunner().invoke(main_group, ["train", "-", "--out", str(tmp_path / "run"), "--dropout",
                                       str(MAX_DROPOUT + 0.01)], input="X:1\nK:G\nGABc|\n")
    assert result.exit_code == 2 and f"0<=x<={MAX_DROPOUT}" in result.output


def dataclasses_replace(config, **change):
    import dataclasses

    return dataclasses.replace(config, **change)
