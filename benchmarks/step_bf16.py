"""The sampler's step with bfloat16 kernels (``lstm.stepping_weights``) against float32: time and held-out bpc.

Time: ``sample.generate`` of 8 draws of the_kesh.abc at seeds 0-2 (warm, best of 3 per seed), constrained and
raw, in a subprocess per setting (``ABCFLAX_STEP_BF16=1`` / ``0``), alternately; milliseconds per step of the
loop (the time over the longest draw's characters). Quality: held-out Nottingham bits/char scored with each
kind of weights (needs ../shared/data; skipped without it).

    python benchmarks/step_bf16.py [--rounds 2] [--append]
    python benchmarks/step_bf16.py --sweep 1,2,4,8,16 [--append]   # raw sampling at each row count, in one process
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from results import publish

ROOT = Path(__file__).resolve().parents[1]


def worker() -> dict:
    import abcflax
    from abcflax import sample
    from abcflax.sample import Request

    model = abcflax.load_model(None)
    prompt = (ROOT / "data" / "examples" / "the_kesh.abc").read_text()
    out = {}
    for constrained in (True, False):
        seconds = steps = 0
        for seed in range(3):
            requests = [Request(prompt, seed=seed, draw=d) for d in range(8)]
            options = dict(stop_early=False, constrained=constrained, max_chars=1500)
            sample.generate(model, requests, **options)
            best = math.inf
            for _ in range(3):
                start = time.perf_counter()
                results = sample.generate(model, requests, **options)
                best = min(best, time.perf_counter() - start)
            seconds += best
            steps += max(r.generated for r in results)
        out["constrained" if constrained else "raw"] = 1e3 * seconds / steps
    return out


def row_sweep(rows_list: list[int], rounds: int = 5) -> list[str]:
    """Raw sampling, ms a step, float32 against bf16 kernels at each row count, in one process (the setting
    toggled call by call, alternating which goes first): medians of ``rounds``."""
    import statistics

    import abcflax
    from abcflax import runtime, sample
    from abcflax.sample import Request

    model = abcflax.load_model(None)
    prompt = (ROOT / "data" / "examples" / "the_kesh.abc").read_text()
    sample.BF16_MIN_ROWS = 1  # let every row count take either kind of kernels
    lines = []
    for rows in rows_list:
        requests = [Request(prompt, seed=0, row=row) for row in range(rows)]
        per_step = {False: [], True: []}
        for index in range(rounds + 1):
            for flag in ((False, True) if index % 2 else (True, False)):
                runtime.bf16_stepping = lambda flag=flag: flag
                start = time.perf_counter()
                results = sample.generate(model, requests, max_chars=1500, constrained=False)
                if index:  # the first round compiles
                    per_step[flag].append((time.perf_counter() - start) / max(r.generated for r in results))
        f32, bf16 = (1e3 * statistics.median(per_step[flag]) for flag in (False, True))
        lines.append(f"{rows:>3} rows: float32 {f32:.3f} ms/step, bf16 kernels {bf16:.3f} ms/step ({f32 / bf16:.2f}x)")
    return lines


def held_out_bpc() -> dict | None:
    import jax
    import numpy as np

    import abcflax
    from abcflax import lstm, scoring

    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        from heldout import held_out_tunes

        texts = held_out_tunes()
    except (OSError, ValueError):
        return None
    if not texts:
        return None
    model = abcflax.load_model(None)
    rows = [np.concatenate([[model.vocab.bos_id], model.vocab.encode(t, "tune")]).astype(np.int32) for t in texts]
    chars = sum(len(r) - 1 for r in rows)
    bpc = {}
    for name, weights in (("float32", model.weights), ("bf16", jax.jit(lstm.stepping_weights)(model.weights))):
        total = sum(float(np.sum(np.asarray(scoring.prime(weights, rows[i:i + 16])[0])))
                    for i in range(0, len(rows), 16))
        bpc[name] = -total / chars / math.log(2)
    return {"tunes": len(rows), "chars": chars, **bpc}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--append", action="store_true")
    parser.add_argument("--sweep", default="", help="comma-separated row counts: raw sampling at each instead")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker()))
        return
    if args.sweep:
        load = os.getloadavg()
        lines = [f"command: python benchmarks/step_bf16.py --sweep {args.sweep}",
                 *row_sweep([int(n) for n in args.sweep.split(",")]),
                 f"load average: {load} (before) {os.getloadavg()} (after)"]
        publish("bfloat16 kernels by row count (benchmarks/step_bf16.py --sweep)", lines, args.append, fenced=True)
        return
    load = os.getloadavg()
    runs = {"1": [], "0": []}
    for _ in range(args.rounds):
        for setting in runs:
            done = subprocess.run([sys.executable, __file__, "--worker"], capture_output=True, text=True, check=True,
                                  env={**os.environ, "ABCFLAX_STEP_BF16": setting})
            runs[setting].append(json.loads(done.stdout.strip().splitlines()[-1]))
    median = lambda setting, kind: statistics.median(run[kind] for run in runs[setting])
    lines = [f"command: python benchmarks/step_bf16.py --rounds {args.rounds}"]
    for kind in ("constrained", "raw"):
        lines.append(f"{kind}: float32 {median('0', kind):.3f} ms/step, bf16 kernels {median('1', kind):.3f} ms/step "
                     f"({median('0', kind) / median('1', kind):.2f}x)")
    bpc = held_out_bpc()
    lines.append("held-out Nottingham: " + (f"{bpc['tunes']} tunes, {bpc['chars']} chars: float32 "
                                            f"{bpc['float32']:.4f} bpc, bf16 kernels {bpc['bf16']:.4f} bpc"
                                            if bpc else "skipped (no ../shared/data)"))
    lines += [f"all runs: {json.dumps(runs)}", f"load average: {load} (before) {os.getloadavg()} (after)"]
    publish("Sampling with bfloat16 kernels (benchmarks/step_bf16.py)", lines, args.append, fenced=True)


if __name__ == "__main__":
    main()
