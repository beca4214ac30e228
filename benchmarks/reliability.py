"""Reliability benchmark: the bad-input catalogue (tests/bad_inputs.py) against every command as real
subprocesses, and random SIGKILL/resume trials of `abcflax train`.

Counts per command: inputs tried, tracebacks (target 0), wrong exit codes (0), partial or leftover output
files (0), refusals that are not exactly one stderr line (0); and kill/resume trials survived (all: the
resumed run's parameters equal an uninterrupted run's, log.csv has no duplicated step).

    nice -n 19 python benchmarks/reliability.py --trials 20 > benchmarks/reliability.log

A tiny model is trained first (about 30 s) for the commands that need one.
"""

from __future__ import annotations

import argparse
import csv
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

import bad_inputs as catalogue  # noqa: E402
from conftest import tiny_texts  # noqa: E402

ENV = {**os.environ, "ABCFLAX_PLUGINS": ""}
CLI = [sys.executable, "-m", "abcflax_cli.main"]
TRAIN = ["--preset", "tiny", "--steps", "20", "--batch-size", "8", "--seq-len", "32", "--eval-every", "4", "--quiet"]


def tiny_model(folder: Path) -> Path:
    import abcflax

    config = abcflax.TrainConfig(steps=120, batch_size=16, seq_len=32, learning_rate=3e-2, warmup_steps=5,
                                 eval_every=40, eval_chars=2000, valid_share=0.2)
    abcflax.train(tiny_texts(), folder, abcflax.preset("tiny"), config)
    return folder


def run_case(case, command: str, model: Path, work: Path) -> dict:
    """One subprocess; what went wrong with it, if anything."""
    inputs, out = work / "in", work / "out"
    inputs.mkdir()
    out.mkdir()
    argument = case.make(inputs)
    stdin = catalogue.stdin_bytes(case)
    done = subprocess.run(CLI + catalogue.command_args(command, argument, str(model), out), input=stdin or b"",
                          capture_output=True, timeout=600, env=ENV)
    stderr, stdout = done.stderr.decode(errors="replace"), done.stdout.decode(errors="replace")
    expected = catalogue.expected_code(case, command)
    lines = [line for line in stderr.splitlines() if line.strip()]
    vocabulary_refusal = (expected == 0 and done.returncode == 1 and len(lines) == 1
                          and "not in the model's vocabulary" in lines[0])  # the tiny model's small vocabulary
    refused = expected != 0 or vocabulary_refusal
    return {
        "traceback": "Traceback" in stderr + stdout,
        "wrong_exit": done.returncode != expected and not vocabulary_refusal,
        "partial_files": refused and bool(catalogue.files_under(out)),
        "not_one_line": refused and len(lines) != 1,
        "detail": f"{case.name} {command} rc={done.returncode} {lines[:2]}",
    }


def catalogue_table(model: Path, commands: list[str]) -> dict[str, dict[str, int]]:
    table: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for case in catalogue.CASES:
        for command in commands:
            if command not in case.only:
                continue
            if command == "train" and catalogue.expected_code(case, command) == 0:
                continue  # seconds of JAX per valid corpus; tests/test_bad_input.py trains on them once
            with tempfile.TemporaryDirectory(prefix="abcflax-rel-") as folder:
                outcome = run_case(case, command, model, Path(folder))
            row = table[command]
            row["inputs"] += 1
            for key in ("traceback", "wrong_exit", "partial_files", "not_one_line"):
                row[key] += int(outcome[key])
            if any(outcome[k] for k in ("traceback", "wrong_exit", "partial_files", "not_one_line")):
                print("FAIL", outcome["detail"], file=sys.stderr, flush=True)
    return table


def train(corpus: Path, out: Path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen(CLI + ["train", str(corpus), "--out", str(out), *TRAIN, *extra],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=ENV)


def params(path: Path) -> dict:
    import jax
    import numpy as np

    from abcflax import checkpoint

    leaves = jax.tree_util.tree_flatten_with_path(checkpoint.load(path).params)[0]
    return {jax.tree_util.keystr(k): np.asarray(v) for k, v in leaves}


def steps_logged(run: Path) -> list[int]:
    with (run / "log.csv").open(newline="") as handle:
        return [int(row["step"]) for row in csv.DictReader(handle)]


def kill_trial(corpus: Path, run: Path, reference: dict, rng: random.Random) -> tuple[bool, str]:
    """Kill a run at a random moment after its first checkpoint, resume it, compare with the reference."""
    import numpy as np

    process = train(corpus, run)
    while not (run / "model.msgpack").exists() and process.poll() is None:
        time.sleep(0.02)
    delay = rng.uniform(0.0, 1.0)
    time.sleep(delay)
    killed = process.poll() is None
    if killed:
        process.send_signal(signal.SIGKILL)
    process.wait()
    resumed = train(corpus, run, "--resume")
    _, stderr = resumed.communicate()
    if resumed.returncode != 0:
        return False, f"resume failed: {stderr.decode()[-200:]}"
    ours = params(run / "model.msgpack")
    same = ours.keys() == reference.keys() and all(np.array_equal(ours[k], reference[k]) for k in ours)
    steps = steps_logged(run)
    ok = same and len(steps) == len(set(steps))
    return ok, f"delay={delay:.2f}s killed={killed} same_params={same} log_steps={steps}"


def kill_trials(folder: Path, trials: int, seed: int) -> tuple[int, int, int]:
    corpus = folder / "corpus.abc"
    corpus.write_text("\n".join(tiny_texts(3)))
    reference_run = folder / "reference"
    reference = train(corpus, reference_run)
    reference.communicate()
    reference_params = params(reference_run / "model.msgpack")
    rng = random.Random(seed)
    survived = killed_count = 0
    for trial in range(trials):
        run = folder / f"trial{trial}"
        ok, detail = kill_trial(corpus, run, reference_params, rng)
        survived += ok
        killed_count += "killed=True" in detail
        print(f"trial {trial}: {'ok' if ok else 'LOST'} {detail}", file=sys.stderr, flush=True)
    return trials, survived, killed_count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=20, help="Kill/resume trials.")
    parser.add_argument("--seed", type=int, default=0, help="Seed of the kill moments.")
    parser.add_argument("--commands", default=",".join(catalogue.COMMANDS), help="Comma list of commands.")
    args = parser.parse_args()
    import importlib.util

    commands = [c for c in args.commands.split(",")
                if c != "compose" or importlib.util.find_spec("abcflax_cli.compose_cmd") is not None]
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="abcflax-reliability-") as folder:
        model = tiny_model(Path(folder) / "model")
        table = catalogue_table(model, commands)
        catalogue_s = time.perf_counter() - start
        trials, survived, killed = kill_trials(Path(folder), args.trials, args.seed)
    total_s = time.perf_counter() - start
    print("| command | inputs | tracebacks | wrong exit codes | partial files | refusals not one line |")
    print("|---|---|---|---|---|---|")
    for command in commands:
        row = table[command]
        print(f"| {command} | {row['inputs']} | {row['traceback']} | {row['wrong_exit']} | {row['partial_files']} | "
              f"{row['not_one_line']} |")
    print(f"\nkill/resume trials: {survived}/{trials} survived ({killed} killed mid-run, the rest finished "
          f"before the kill); catalogue {catalogue_s:.0f} s, total {total_s:.0f} s; "
          f"load average {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f}")


if __name__ == "__main__":
    main()
