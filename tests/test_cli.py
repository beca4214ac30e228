"""The CLI through click's CliRunner: continue, evaluate, train, help."""

import subprocess
import sys

from click.testing import CliRunner

import abcflax
from abcflax_cli.common import main_group

from conftest import TINY_CORPUS, tiny_texts

PROMPT = 'X:1\nT:Jig\nM:6/8\nL:1/8\nK:G\n|:"G"GAG GAB|"D"ABA ABd|\n'


def run(args, input=None):
    return CliRunner().invoke(main_group, args, input=input, catch_exceptions=False)


def test_help_lists_commands_without_importing_jax():
    code = ("import sys; from abcflax_cli.common import main_group\n"
            "try:\n    main_group(['--help'])\nexcept SystemExit:\n    pass\n"
            "assert 'jax' not in sys.modules and 'music21' not in sys.modules, 'heavy import'")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    for name in ("continue", "harmonize", "export", "check", "evaluate", "train"):
        assert name in result.stdout


def test_continue_prints_the_prompt_and_new_bars(tiny_model_dir, tmp_path):
    source = tmp_path / "tune.abc"
    source.write_text(PROMPT)
    result = run(["continue", str(source), "--model", str(tiny_model_dir), "--seed", "3", "--max-chars", "300",
                  "--bars", "4", "--quiet"])
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith(PROMPT.rstrip("\n"))
    added = result.stdout[len(PROMPT) - 1:]
    assert added.count("|") >= 4
    assert not abcflax.check_tune(result.stdout)


def test_continue_warns_when_max_chars_cuts_the_bars_asked_for(tiny_model_dir, tmp_path):
    source = tmp_path / "tune.abc"
    source.write_text(PROMPT)
    args = ["continue", str(source), "--model", str(tiny_model_dir), "--max-chars", "200"]
    cut = run(args + ["--bars", "500"])
    assert cut.exit_code == 0, cut.output
    (warning,) = [line for line in cut.stderr.splitlines() if "warning" in line]
    written = int(warning.split("abcflax: warning: ")[1].split(" of the 500 bars asked for fit in 200 characters")[0])
    assert 1 <= written < 500
    assert not abcflax.check_tune(cut.stdout)  # still a whole tune, only shorter
    assert "warning" not in run(args + ["--bars", "2"]).stderr  # two bars fit: no warning
    assert run(args + ["--bars", "500", "--quiet"]).stderr == ""


def test_compose_names_the_tune_that_max_chars_cut_short(tiny_model_dir, tmp_path):
    seeds = tmp_path / "seeds.txt"
    seeds.write_text("R:reel K:D\n")
    result = run(["compose", str(seeds), "-n", "2", "--model", str(tiny_model_dir), "--max-chars", "200",
                  "--bars", "500"])
    assert result.exit_code == 0, result.output
    warned = [line for line in result.stderr.splitlines() if line.startswith("abcflax: warning: ")]
    assert len(warned) == 2 and all(f"{seeds}:1" in line and "of the 500 bars asked for" in line for line in warned)


def test_continue_reads_stdin_and_writes_a_file(tiny_model_dir, tmp_path):
    out = tmp_path / "out.abc"
    result = run(["continue", "-", "--model", str(tiny_model_dir), "--max-chars", "300", "-o", str(out),
                  "--quiet"], input=PROMPT)
    assert result.exit_code == 0, result.output
    assert out.read_text().startswith(PROMPT.rstrip("\n"))
    again = run(["continue", "-", "--model", str(tiny_model_dir), "--max-chars", "300", "-o", str(out)],
                input=PROMPT)
    assert again.exit_code == 1 and "--force" in again.stderr


def test_continue_output_problems_are_refused_before_the_model_is_loaded(tmp_path):
    source = tmp_path / "tune.abc"
    source.write_text(PROMPT)
    missing_model = str(tmp_path / "no-model")  # reached only if the output were accepted
    for out, expected in ((tmp_path / "tune.pdf", "unknown output extension '.pdf' (use one of"),
                          (tmp_path / "tune", "no extension to tell the output format"),
                          (tmp_path, "is a directory, not a file to write")):
        result = run(["continue", str(source), "--model", missing_model, "-o", str(out)])
        assert result.exit_code != 0 and result.stderr.count("\n") == 1, result.stderr
        assert expected in result.stderr and "continuing" not in result.stderr


def test_continue_to_a_device_writes_abc(tiny_model_dir, tmp_path):
    source = tmp_path / "tune.abc"
    source.write_text(PROMPT)
    result = run(["continue", str(source), "--model", str(tiny_model_dir), "--max-chars", "200", "-o", "/dev/null",
                  "--quiet"])
    assert result.exit_code == 0 and result.stderr == "", result.stderr


def test_continue_a_tunebook_keeps_going_past_a_bad_tune(tiny_model_dir, tmp_path):
    book = tmp_path / "book.abc"
    book.write_text(PROMPT + "\nX:2\nT:Bad\nM:6/8\nK:G\nGAG€\n\n" + PROMPT.replace("X:1", "X:3"))
    result = run(["continue", str(book), "--model", str(tiny_model_dir), "--max-chars", "250", "--quiet"])
    assert result.exit_code == 1
    assert result.stdout.count("X:") == 2
    assert f"{book}:12:4:" in result.stderr and "'€'" in result.stderr


def test_continue_unknown_character_is_one_error_line(tiny_model_dir, tmp_path):
    source = tmp_path / "tune.abc"
    source.write_text(PROMPT + "GAG€|\n")
    result = run(["continue", str(source), "--model", str(tiny_model_dir), "--quiet"])
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and ":7:4:" in lines[0] and "'€'" in lines[0] and "Traceback" not in result.output


def test_evaluate_last_line(tiny_model_dir, tmp_path):
    book = tmp_path / "book.abc"
    book.write_text("\n".join(TINY_CORPUS).replace("{n}", "1"))
    result = run(["evaluate", str(book), "--model", str(tiny_model_dir)])
    assert result.exit_code == 0, result.output
    last = result.stdout.strip().splitlines()[-1]
    bpc, chars, tunes = (part.split("=")[1] for part in last.split())
    assert last.startswith("bpc=") and 0 < float(bpc) < 7 and int(tunes) == len(TINY_CORPUS) and int(chars) > 100


def test_train_then_resume(tmp_path):
    corpus = tmp_path / "corpus.abc"
    corpus.write_text("\n".join(tiny_texts(2)))
    out = tmp_path / "run"
    args = ["train", str(corpus), "--out", str(out), "--preset", "tiny", "--steps", "6", "--batch-size", "4",
            "--seq-len", "16", "--eval-every", "3", "--quiet"]
    assert run(args).exit_code == 0
    assert abcflax.checkpoint.load(out).step == 6
    refused = run(args)
    assert refused.exit_code == 2 and "--resume" in refused.stderr
    resumed = run(args[:6] + ["--steps", "9", "--resume", "--quiet"])
    assert resumed.exit_code == 0, resumed.output
    assert abcflax.checkpoint.load(out).step == 9
    finished = run(args[:6] + ["--resume"])  # nothing left: said in one line, not a silent exit
    assert finished.exit_code == 0 and "trained all its 9 steps, nothing to do" in finished.stderr
    assert finished.stderr.count("warning") == 1 and finished.stdout.strip() == str(out / "model.msgpack")


def test_evaluate_names_a_bad_tune_and_scores_the_rest(tiny_model_dir, tmp_path):
    """The tunebook policy (README): one error line for the bad tune, exit 1, and the others still scored."""
    book = tmp_path / "book.abc"
    book.write_text("\n".join(TINY_CORPUS).replace("{n}", "1") + "\nX:99\nT:Broken\nK:G\nGA[B|\n")
    result = run(["evaluate", str(book), "--model", str(tiny_model_dir)])
    assert result.exit_code == 1, result.output
    errors = result.stderr.splitlines()
    assert len(errors) == 1 and errors[0].startswith(f"abcflax: error: {book}:46:3: "), result.stderr
    assert result.stdout.strip().splitlines()[-1].endswith(f" tunes={len(TINY_CORPUS)}")
    quiet = run(["evaluate", str(book), "--model", str(tiny_model_dir), "--quiet"])
    assert quiet.stderr == result.stderr and quiet.stdout == result.stdout  # --quiet hides warnings, not errors


def test_train_dropout_from_is_stored_and_off_by_default(tmp_path):
    corpus = tmp_path / "corpus.abc"
    corpus.write_text("\n".join(tiny_texts(2)))
    args = ["--preset", "tiny", "--steps", "2", "--batch-size", "4", "--seq-len", "16", "--quiet"]
    assert run(["train", str(corpus), "--out", str(tmp_path / "a")] + args).exit_code == 0
    assert abcflax.checkpoint.load(tmp_path / "a").train_config.dropout_from == 0
    assert run(["train", str(corpus), "--out", str(tmp_path / "b"), "--dropout-from", "1"] + args).exit_code == 0
    assert abcflax.checkpoint.load(tmp_path / "b").train_config.dropout_from == 1
    assert run(["train", str(corpus), "--out", str(tmp_path / "c"), "--dropout-from", "-1"] + args).exit_code == 2


def test_train_optimizer_options_are_stored_and_checked(tmp_path):
    corpus = tmp_path / "corpus.abc"
    corpus.write_text("\n".join(tiny_texts(2)))
    args = ["--preset", "tiny", "--steps", "2", "--batch-size", "4", "--seq-len", "16", "--quiet"]
    options = ["--warmup-steps", "0", "--min-lr-ratio", "0", "--clip-norm", "5", "--weight-decay", "0"]
    assert run(["train", str(corpus), "--out", str(tmp_path / "a")] + options + args).exit_code == 0
    stored = abcflax.checkpoint.load(tmp_path / "a").train_config
    assert (stored.warmup_steps, stored.min_lr_ratio, stored.clip_norm, stored.weight_decay) == (0, 0.0, 5.0, 0.0)
    for bad in (["--clip-norm", "0"], ["--min-lr-ratio", "1.5"], ["--warmup-steps", "-1"], ["--weight-decay", "nan"]):
        refused = run(["train", str(corpus), "--out", str(tmp_path / "b")] + bad + args)
        assert refused.exit_code == 2 and bad[0] in refused.stderr


def test_train_bf16_and_nesterov_switches_are_stored_and_warned_about_without_hardware(tmp_path, monkeypatch):
    import abcflax.runtime

    corpus = tmp_path / "corpus.abc"
    corpus.write_text("\n".join(tiny_texts(2)))
    args = ["--preset", "tiny", "--steps", "2", "--batch-size", "4", "--seq-len", "16"]
    plain = run(["train", str(corpus), "--out", str(tmp_path / "a"), "--quiet"] + args)
    assert plain.exit_code == 0 and not abcflax.checkpoint.load(tmp_path / "a").train_config.bf16_matmuls
    monkeypatch.setattr(abcflax.runtime, "cpu_has_bf16", lambda: False)
    low = run(["train", str(corpus), "--out", str(tmp_path / "b"), "--bf16-matmuls"] + args)
    assert low.exit_code == 0, low.output
    assert "warning: --bf16-matmuls: this CPU has no AVX512-BF16" in low.stderr
    assert abcflax.checkpoint.load(tmp_path / "b").train_config.bf16_matmuls
    assert not abcflax.checkpoint.load(tmp_path / "b").train_config.bf16_recurrence
    recurrence = run(["train", str(corpus), "--out", str(tmp_path / "d"), "--bf16-recurrence"] + args)
    assert recurrence.exit_code == 0, recurrence.output
    assert "warning: --bf16-recurrence: this CPU has no AVX512-BF16" in recurrence.stderr
    stored = abcflax.checkpoint.load(tmp_path / "d").train_config
    assert stored.bf16_recurrence and not stored.bf16_matmuls
    monkeypatch.setattr(abcflax.runtime, "cpu_has_bf16", lambda: True)
    quiet = run(["train", str(corpus), "--out", str(tmp_path / "c"), "--bf16-matmuls", "--bf16-recurrence"] + args)
    assert quiet.exit_code == 0 and "warning" not in quiet.stderr
    assert not abcflax.checkpoint.load(tmp_path / "c").train_config.nesterov
    nesterov = run(["train", str(corpus), "--out", str(tmp_path / "e"), "--nesterov", "--quiet"] + args)
    assert nesterov.exit_code == 0 and abcflax.checkpoint.load(tmp_path / "e").train_config.nesterov


def test_train_with_transposed_repeats(tmp_path):
    corpus = tmp_path / "corpus.abc"
    corpus.write_text("\n".join(tiny_texts(2)))
    out = tmp_path / "run"
    result = run(["train", f"{corpus}@3", "--out", str(out), "--preset", "tiny", "--steps", "2", "--batch-size", "4",
                  "--seq-len", "16", "--transpose", "1", "--quiet"])
    assert result.exit_code == 0, result.output
    assert abcflax.checkpoint.load(out).train_config.transpose == 1 and "warning" not in result.stderr
    unrepeated = run(["train", str(corpus), "--out", str(tmp_path / "r1"), "--preset", "tiny", "--steps", "1",
                      "--batch-size", "4", "--seq-len", "16", "--transpose", "1", "--quiet"])
    assert unrepeated.exit_code == 0 and "changes nothing" in unrepeated.stderr
    assert run(["train", str(corpus), "--out", str(tmp_path / "r2"), "--transpose", "9"]).exit_code == 2


def test_train_with_chords_after_copies(tmp_path):
    corpus = tmp_path / "corpus.abc"
    corpus.write_text("\n".join(tiny_texts(2)))
    args = ["--preset", "tiny", "--steps", "2", "--batch-size", "4", "--seq-len", "16", "--quiet"]
    result = run(["train", f"{corpus}@2", "--out", str(tmp_path / "run"), "--chords-after", "1"] + args)
    assert result.exit_code == 0, result.output
    trained = abcflax.checkpoint.load(tmp_path / "run")
    assert trained.train_config.chords_after == 1 and trained.meta["chords_after"] is True
    plain = run(["train", f"{corpus}@2", "--out", str(tmp_path / "plain")] + args)
    assert plain.exit_code == 0 and abcflax.checkpoint.load(tmp_path / "plain").meta["chords_after"] is False
    unrepeated = run(["train", str(corpus), "--out", str(tmp_path / "r1"), "--chords-after", "1"] + args)
    assert unrepeated.exit_code == 0 and "changes nothing" in unrepeated.stderr
    assert abcflax.checkpoint.load(tmp_path / "r1").meta["chords_after"] is False


def test_bad_model_path_is_one_line(tmp_path):
    result = run(["continue", "-", "--model", str(tmp_path / "nope")], input=PROMPT)
    assert result.exit_code == 1 and "no model found" in result.stderr


def warning_reader(monkeypatch):
    """``abcflax.read_abc_input`` that also warns twice: as abcflax does, and as a third-party library might."""
    import warnings

    def read_abc_input(path):
        warnings.warn("tune.abc: something to know", abcflax.AbcflaxWarning)
        warnings.warn("deep inside some library", UserWarning)
        return PROMPT, "tune.abc"

    # setitem, not setattr: setattr would first read the lazy attribute
    monkeypatch.setitem(vars(abcflax), "read_abc_input", read_abc_input)


def test_warnings_are_one_line_each_and_only_abcflax_ones(monkeypatch):
    warning_reader(monkeypatch)
    result = run(["export", "tune.abc", "--format", "abc", "-o", "-"])
    assert result.exit_code == 0, result.stderr
    assert result.stderr.splitlines() == ["abcflax: warning: tune.abc: something to know"]


def test_quiet_silences_warnings(monkeypatch, tiny_model_dir):
    warning_reader(monkeypatch)
    args = ["continue", "tune.abc", "--model", str(tiny_model_dir), "--max-chars", "300"]
    loud, quiet = run(args), run(args + ["--quiet"])
    assert loud.exit_code == quiet.exit_code == 0, loud.stderr
    assert loud.stderr.splitlines() == ["abcflax: warning: tune.abc: something to know", "continuing..."]
    assert quiet.stderr == ""


def test_a_command_run_as_a_program_ends_without_teardown_and_loses_no_output(tiny_model_dir, tmp_path):
    from abcflax_cli.main import QUICK_EXIT_COMMANDS, _command

    assert _command(["--debug", "continue", "x.abc", "--seed", "1"]) == "continue"
    assert "train" not in QUICK_EXIT_COMMANDS  # its exit handlers shut a distributed run down
    # a tunebook's continuations through a pipe, as the program writes them
    book = tmp_path / "book.abc"
    book.write_text("\n".join(PROMPT.replace("X:1", f"X:{i}") for i in range(1, 7)))
    args = ["continue", str(book), "--model", str(tiny_model_dir), "--seed", "2", "--max-chars", "400", "--quiet"]
    done = subprocess.run([sys.executable, "-m", "abcflax_cli.main", *args], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0 and done.stderr == "", done.stderr
    assert done.stdout == run(args).stdout and done.stdout.count("X:") == 6
    # an error still ends the program with one line and a non-zero code
    failed = subprocess.run([sys.executable, "-m", "abcflax_cli.main", "continue", str(tmp_path / "none.abc"),
                             "--model", str(tiny_model_dir)], capture_output=True, text=True, timeout=300)
    assert failed.returncode != 0 and len(failed.stderr.splitlines()) == 1, failed.stderr


def test_the_program_waits_for_a_python_thread_still_running():
    import threading

    from abcflax_cli.main import _threads_left

    assert not _threads_left()
    release = threading.Event()
    writer = threading.Thread(target=release.wait)  # not a daemon: the interpreter would wait for it
    writer.start()
    try:
        assert _threads_left()
    finally:
        release.set()
        writer.join()
    assert not _threads_left()


def test_continue_part_bars_sets_every_parts_length(tiny_model_dir, tmp_path):
    from test_sample import part_lengths

    source = tmp_path / "tune.abc"
    source.write_text("X:1\nT:t\nM:4/4\nL:1/8\nK:D\nABcd efga|\n")
    result = run(["continue", str(source), "--model", str(tiny_model_dir), "--part-bars", "3", "--max-chars",
                  "1500", "--seed", "1", "--quiet"])
    assert result.exit_code == 0, result.output
    lengths = [bars for bars, second in part_lengths(result.stdout)[:-1] if not second]
    assert lengths and set(lengths) == {3}, (lengths, result.stdout)


def test_continue_part_bars_out_of_range_is_a_usage_error(tmp_path):
    source = tmp_path / "tune.abc"
    source.write_text(PROMPT)
    result = run(["continue", str(source), "--part-bars", "-1"])
    assert result.exit_code == 2 and "--part-bars" in result.output
