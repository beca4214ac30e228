"""Time to quality: held-out Nottingham bits/char against minutes of training, one run per recipe.

Each recipe trains in its own subprocess exactly as ``abcflax train`` does (glibc keeping freed memory, the
host CPU split into devices, the batch sharded), on the bundled model's stage-one data (MODEL_CARD.md:
Nottingham x2, the MIT lab's Irish tunes, three music21 tunebooks, every source minus its hash-chosen
held-out 10%). At every ``eval_every`` steps the worker scores the held-out Nottingham tunes (the ones
``benchmarks/heldout.py`` scores) from the checkpoint just written; that scoring is not counted as training
time, nor is the validation, checkpoint and plot of that step (the step counts as long as the one before
it); the first step's compilation is. The recipes run one after another in the same benchmark run, and the
report gives, for each, the minutes its training took to reach the first recipe's best held-out bpc.

A recipe is ``preset`` or ``preset:key=value,...`` with keys of ``TrainConfig`` (``steps``,
``batch_size``, ``seq_len``, ``learning_rate``, ``warmup_steps``, ``dropout_from`` ...) and the model's
``dropout``:

    python benchmarks/time_to_quality.py --recipe keras-seed --recipe default --steps 2500 --eval-every 250

Needs ../shared/data (the Nottingham and Irish tunebooks). The load average is printed: a figure taken on a
busy machine is void.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
SOURCES = [f"{SHARED / 'nottingham'}@2", str(SHARED / "irish"), "music21:ryansMammoth", "music21:oneills1850",
           "music21:airdsAirs"]


def parse_recipe(spec: str) -> tuple[str, dict]:
    """``default:learning_rate=5e-3,steps=1500`` -> ("default", {"learning_rate": 0.005, "steps": 1500})."""
    preset, _, rest = spec.partition(":")
    overrides = {}
    for item in filter(None, rest.split(",")):
        key, _, value = item.partition("=")
        value = value.strip()  # numbers and true/false as JSON reads them, anything else as text
        overrides[key.strip()] = json.loads(value) if value[0] in "-0123456789" or value in ("true", "false") else value
    return preset, overrides


def worker(spec: str, steps: int, eval_every: int, out: str, stop_after: int | None) -> None:
    """Train one recipe; print one JSON line per evaluation: step, training seconds, held-out bpc."""
    from abcflax.runtime import reuse_freed_memory, split_host_cpu

    preset, overrides = parse_recipe(spec)
    batch = int(overrides.get("batch_size", 32))
    reuse_freed_memory()
    split_host_cpu(batch)
    from dataclasses import replace

    import abcflax
    from abcflax.training import load_training_texts, train
    from heldout import held_out_tunes

    model_config = abcflax.preset(preset)
    if "dropout" in overrides:
        model_config = replace(model_config, dropout=float(overrides.pop("dropout")))
    train_config = replace(abcflax.TrainConfig(steps=steps, eval_every=eval_every, eval_chars=5_000, seed=0),
                           **overrides)
    texts, weights, _ = load_training_texts(SOURCES, holdout=0.1)
    held_out = held_out_tunes()
    clock = {"last": time.perf_counter(), "step_s": 0.0, "train_s": 0.0}

    def on_progress(report) -> None:
        # training time is the sum of step times; a step that also validated, checkpointed and plotted is
        # counted as long as the step before it (those extras, and the held-out scoring, are not training)
        now = time.perf_counter()
        if report.valid_bpc is None or report.step == 1:
            clock["step_s"] = now - clock["last"]
        clock["train_s"] += clock["step_s"]
        if report.valid_bpc is not None:
            trained = abcflax.load_model(out)
            bpc, _ = abcflax.bits_per_char(trained.module, trained.vocab, held_out)
            print(json.dumps({"step": report.step, "train_s": round(clock["train_s"], 2),
                              "heldout_bpc": round(bpc, 4), "train_bpc": round(report.loss_bpc, 4)}), flush=True)
        clock["last"] = time.perf_counter()

    train(texts, out, model_config, train_config, weights=weights, sources=SOURCES, on_progress=on_progress,
          stop_after=stop_after)


def run(spec: str, steps: int, eval_every: int, workdir: Path, stop_after: int | None) -> list[dict]:
    out = workdir.resolve() / spec.replace(":", "_").replace(",", "_").replace("=", "-")
    shutil.rmtree(out, ignore_errors=True)  # a fresh run each time (a run folder with a checkpoint is refused)
    command = [sys.executable, __file__, "--worker", spec, "--steps", str(steps), "--eval-every", str(eval_every),
               "--out", str(out)] + (["--stop-after", str(stop_after)] if stop_after else [])
    process = subprocess.run(command, capture_output=True, text=True, cwd=Path(__file__).parent)
    if process.returncode:
        raise SystemExit(f"{spec} failed: {process.stderr.strip().splitlines()[-1:]}")
    return [json.loads(line) for line in process.stdout.splitlines() if line.startswith("{")]


def minutes_to(rows: list[dict], target: float) -> float | None:
    """Training minutes at the first evaluation whose held-out bpc is at or below ``target``."""
    for row in rows:
        if row["heldout_bpc"] <= target:
            return row["train_s"] / 60
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--recipe", action="append", dest="recipes",
                        help="a recipe (repeat the option for more); the first is the reference "
                             "(default: keras-seed, then default)")
    parser.add_argument("--steps", type=int, default=2500)
    parser.add_argument("--eval-every", type=int, default=250)
    parser.add_argument("--stop-after", type=int, help="end each run after this many steps (the learning-rate "
                        "schedule still spans --steps, or a recipe's steps=)")
    parser.add_argument("--workdir", default="runs/ttq")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker, args.steps, args.eval_every, args.out, args.stop_after)
        return
    if not (SHARED / "nottingham").is_dir():
        raise SystemExit(f"needs {SHARED} (the Nottingham and Irish tunebooks)")
    specs = args.recipes or ["keras-seed", "default"]
    print("command: python benchmarks/time_to_quality.py " + " ".join(f"--recipe '{spec}'" for spec in specs)
          + f" --steps {args.steps} --eval-every {args.eval_every}"
          + (f" --stop-after {args.stop_after}" if args.stop_after else ""))
    results = {}
    for spec in specs:
        began = time.strftime("%H:%M UTC", time.gmtime())
        results[spec] = run(spec, args.steps, args.eval_every, Path(args.workdir), args.stop_after)
        rows = results[spec]
        print(f"\n{spec} (from {began}; load average at end {tuple(round(x, 2) for x in os.getloadavg())})")
        for row in rows:
            print(f"  step {row['step']:>6}  {row['train_s'] / 60:6.2f} min  held-out {row['heldout_bpc']:.4f}")
    reference = specs[0]
    best = min(results[reference], key=lambda row: row["heldout_bpc"])
    print(f"\nreference {reference}: best held-out {best['heldout_bpc']:.4f} at step {best['step']}, "
          f"{best['train_s'] / 60:.2f} min")
    for spec in specs[1:]:
        minutes = minutes_to(results[spec], best["heldout_bpc"])
        print(f"{spec}: " + ("never reached it" if minutes is None else
                             f"reached it in {minutes:.2f} min = {minutes / (best['train_s'] / 60):.2f}x the reference's time"))


if __name__ == "__main__":
    main()
