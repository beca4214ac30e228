"""The recurrence's two layouts, whole training steps side by side in one process: state in rows or in columns.

For each shape and precision, builds the training step as ``abcflax train`` runs it (the host CPU split into
devices, the batch sharded, ``train_throughput.sharded_step_for``'s model) twice, once with each layout
forced (``lstm.Precision.columns``), compiles both, then alternates ``--rounds`` rounds of ``--steps`` steps
of each and prints chars/s medians and each round's rows/columns ratio. Beside it, the verdict of
``layout.time_layouts`` (the timing a training run does to choose), so the two can be compared:

    python benchmarks/layout_ab.py --shapes default-b24,default,mit-lab,keras-seed --precisions f32,wide,both

``f32``: float32; ``wide``: ``--bf16-matmuls``; ``both``: ``--bf16-matmuls --bf16-recurrence``. Each
shape runs in a subprocess of its own (the device split depends on its batch). The load average is
printed: a figure taken on a busy machine is void.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

from train_throughput import SHAPES, VOCAB

PRECISIONS = {"f32": (False, False), "wide": (True, False), "both": (True, True)}


def worker(shape_name: str, precision_name: str, rounds: int, steps: int) -> dict:
    embed, hidden, layers, dropout, batch, seq_len = SHAPES[shape_name]
    from abcflax.runtime import reuse_freed_memory, split_host_cpu

    reuse_freed_memory()
    split_host_cpu(batch)
    import jax
    import numpy as np
    from flax import nnx

    from abcflax import layout
    from abcflax.config import ModelConfig, TrainConfig
    from abcflax.lstm import Precision
    from abcflax.model import create_model
    from abcflax.training import make_mesh, make_optimizer, sharded_train_step

    wide, recurrence = PRECISIONS[precision_name]
    mesh = make_mesh(None, batch)
    tokens = np.random.default_rng(0).integers(0, VOCAB, size=(steps, batch, seq_len + 1)).astype(np.int32)
    key = jax.random.key(0)
    runs = {}
    for columns in (True, False):
        model = create_model(ModelConfig(vocab_size=VOCAB, embed_dim=embed, hidden=hidden, layers=layers,
                                         dropout=dropout))
        graphdef, params = nnx.split(model, nnx.Param)
        tx = make_optimizer(TrainConfig(steps=10_000))
        precision = Precision(wide=wide, recurrence=recurrence, columns=columns)
        runs[columns] = list(sharded_train_step(graphdef, tx, params, tx.init(params), mesh, precision))

    def run(state: list, count: int) -> float:
        step, _, _, rows = state
        start = time.perf_counter()
        for i in range(count):
            window = tokens[i % steps]
            state[1], state[2], loss = step(state[1], state[2], jax.device_put(window[:, :-1], rows),
                                            jax.device_put(window[:, 1:], rows), key)
        loss.block_until_ready()
        return batch * seq_len * count / (time.perf_counter() - start)

    for state in runs.values():
        run(state, 2)  # compile and warm up
    rates = {True: [], False: []}
    for _ in range(rounds):
        for columns, state in runs.items():
            rates[columns].append(run(state, steps))
    # timed as a training run times it: windows of up to TIMED_STEPS
    timed = layout.time_layouts(hidden, batch, mesh, Precision(wide=wide, recurrence=recurrence),
                                min(layout.TIMED_STEPS, seq_len))
    return {"devices": mesh.size, "columns": rates[True], "rows": rates[False],
            "timed_ms": {"columns": timed[True] * 1e3, "rows": timed[False] * 1e3}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--shapes", default="default-b24,default,mit-lab,keras-seed")
    parser.add_argument("--precisions", default="f32,wide,both")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--steps", type=int, default=15)
    parser.add_argument("--worker", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(*args.worker, args.rounds, args.steps)))
        return
    from abcflax.layout import COLUMNS_MARGIN  # how much faster columns must time for training to choose them

    print(f"command: python benchmarks/layout_ab.py --shapes {args.shapes} --precisions {args.precisions} "
          f"--rounds {args.rounds} --steps {args.steps}")
    print(f"load average before: {tuple(round(x, 2) for x in os.getloadavg())}\n")
    print("| shape | precision | devices | columns chars/s | rows chars/s | rows/columns (each round's) "
          "| layout.time_layouts: columns / rows ms, chosen |")
    print("|---|---|---|---|---|---|---|")
    for shape in args.shapes.split(","):
        for precision in args.precisions.split(","):
            process = subprocess.run([sys.executable, __file__, "--worker", shape, precision, "--rounds",
                                      str(args.rounds), "--steps", str(args.steps)], capture_output=True, text=True)
            if process.returncode:
                raise SystemExit(f"{shape} {precision} failed: {process.stderr.strip().splitlines()[-1:]}")
            result = json.loads(process.stdout.strip().splitlines()[-1])
            columns, rows = statistics.median(result["columns"]), statistics.median(result["rows"])
            each = ", ".join(f"{r / c:.2f}" for r, c in zip(result["rows"], result["columns"]))
            timed = result["timed_ms"]
            chosen = "columns" if timed["columns"] * COLUMNS_MARGIN < timed["rows"] else "rows"
            print(f"| {shape} | {precision} | {result['devices']} | {columns:,.0f} | {rows:,.0f} | "
                  f"{rows / columns:.2f}x ({each}) | {timed['columns']:.1f} / {timed['rows']:.1f}, {chosen} |",
                  flush=True)
    print(f"\nload average after: {tuple(round(x, 2) for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
