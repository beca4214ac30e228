"""XLA compile options A/B on the real training step, in one process: the drift-free way to compare them.

This machine's speed drifts by up to 25% within minutes, so separate processes compared a few percent badly
(one A/B across processes put the Keras seed shape's rounds anywhere from 14.9k to 21.7k chars/s). Here
the train step that ``abcflax train`` runs (the host CPU split into devices, the batch sharded, state
replicated and donated) is compiled once per variant in the same process, each variant with its own XLA
debug options, and the variants then run in alternating order (A B, B A, ...), each from its own copy of
the state. The report gives each variant's median chars/s and its ratio to the first.

A variant is ``name=json``, a JSON object of XLA compile options, ``{}`` meaning the defaults:

    python benchmarks/compile_options_ab.py --shape mit-lab --variant 'default={}' \\
        --variant 'ynn_off={"xla_cpu_experimental_ynn_fusion_type": ""}' --rounds 8

Options that only take effect when the process starts (``--xla_force_host_platform_device_count``) belong
in ``XLA_FLAGS``, not here. The load average is printed: a figure taken on a busy machine is void.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time

from results import publish
from train_throughput import SHAPES, VOCAB, sharded_step_for


def parse_variant(spec: str) -> tuple[str, dict]:
    """``'ynn_off={"xla_cpu_experimental_ynn_fusion_type": ""}'`` -> ("ynn_off", {...})."""
    name, _, options = spec.partition("=")
    return name.strip(), json.loads(options or "{}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--shape", default="default", choices=sorted(SHAPES))
    parser.add_argument("--variant", action="append", dest="variants", required=True,
                        help="name=JSON object of XLA compile options (repeatable; the first is the reference)")
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--steps", type=int, default=5, help="timed steps per variant and round")
    parser.add_argument("--append", action="store_true", help="append the table to benchmarks/RESULTS.md")
    args = parser.parse_args()
    variants = dict(parse_variant(spec) for spec in args.variants)
    batch, seq_len = SHAPES[args.shape][4:]

    load_before = os.getloadavg()
    step, params, opt_state, rows = sharded_step_for(SHAPES[args.shape])
    import jax
    import numpy as np

    tokens = np.random.default_rng(0).integers(0, VOCAB, size=(batch, seq_len + 1)).astype(np.int32)
    inputs, targets = jax.device_put(tokens[:, :-1], rows), jax.device_put(tokens[:, 1:], rows)
    key = jax.random.key(0)
    lowered = step.lower(params, opt_state, inputs, targets, key)
    compiled = {name: lowered.compile(compiler_options=options) for name, options in variants.items()}
    copy = lambda tree: jax.tree_util.tree_map(lambda leaf: leaf.copy(), tree)
    state = {name: (copy(params), copy(opt_state)) for name in compiled}  # the step donates its state

    rates = {name: [] for name in compiled}
    for round_index in range(args.rounds):
        order = list(compiled) if round_index % 2 == 0 else list(reversed(compiled))
        for name in order:
            run = compiled[name]
            p, o, loss = run(*state[name], inputs, targets, key)  # one untimed step: caches warm
            loss.block_until_ready()
            start = time.perf_counter()
            for _ in range(args.steps):
                p, o, loss = run(p, o, inputs, targets, key)
            loss.block_until_ready()
            rates[name].append(batch * seq_len * args.steps / (time.perf_counter() - start))
            state[name] = (p, o)

    reference = statistics.median(rates[next(iter(rates))])
    lines = [f"command: python benchmarks/compile_options_ab.py --shape {args.shape} "
             + " ".join(f"--variant '{spec}'" for spec in args.variants)
             + f" --rounds {args.rounds} --steps {args.steps}",
             "", "| variant | XLA compile options | chars/s median (range) | vs the first |", "|---|---|---|---|"]
    for name, values in rates.items():
        median = statistics.median(values)
        lines.append(f"| {name} | `{json.dumps(variants[name])}` | {median:,.0f} ({min(values):,.0f}–{max(values):,.0f}) "
                     f"| {median / reference:.3f}x |")
    lines += ["", f"shape {args.shape} on {len(jax.devices())} CPU device(s); load average: {load_before} (before) "
              f"{os.getloadavg()} (after); {os.cpu_count()} cores"]
    publish("XLA compile options, in-process A/B of the train step (benchmarks/compile_options_ab.py)", lines,
            args.append)


if __name__ == "__main__":
    main()
