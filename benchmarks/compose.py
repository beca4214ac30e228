"""Batched composition against one tune at a time: generated characters per second, in the same run.

The same prompts (8 tune openings in different rhythms, cycled to ``--tunes``) are continued
  * batched: ``abcflax.compose`` with each ``--sizes`` batch size (one jitted ``while_loop`` per batch), and
  * one at a time: ``abcflax.complete`` per prompt (what a loop over ``abcflax continue`` does).
chars/s counts only the characters the model wrote, over wall time. Every configuration first runs one
untimed batch of its own shape, so compile time (cached per shape) is left out of both sides alike.
Target: the best batch size at least 20x the one-at-a-time rate.

    python benchmarks/compose.py                   # 256 tunes, batch sizes 8 32 64 128 256
    python benchmarks/compose.py --quick           # smoke run: 16 tunes, sizes 4 and 16, short tunes
    python benchmarks/compose.py --append          # also append the figures to benchmarks/RESULTS.md

Model: ``--model``, else the bundled model (data/model/model.msgpack) when it exists, else ``runs/default``
(read only).
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[1]
OPENINGS = [  # one bar each, so complete() (which needs music after K:) takes the same prompts
    "T:Bench Reel\nR:reel\nM:4/4\nL:1/8\nK:D\n|:A2FA DAFA|",
    "T:Bench Jig\nR:jig\nM:6/8\nL:1/8\nK:G\n|:GAG GAB|",
    "T:Bench Waltz\nR:waltz\nM:3/4\nL:1/4\nK:D\nd2 f|",
    "T:Bench Hornpipe\nR:hornpipe\nM:4/4\nL:1/8\nK:A\n|:cBAG FEDC|",
    "T:Bench Polka\nR:polka\nM:2/4\nL:1/8\nK:G\n|:GB dB|",
    "T:Bench Slip Jig\nR:slip jig\nM:9/8\nL:1/8\nK:Em\n|:B2E G2E F2E|",
    "T:Bench Dorian\nR:reel\nM:4/4\nL:1/8\nK:Ador\n|:eA A2 eAdB|",
    "T:Bench March\nR:march\nM:2/4\nL:1/8\nK:D\n|:d>e fd|",
]


def default_model() -> str:
    bundled = PROJECT / "data" / "model" / "model.msgpack"
    return str(bundled if bundled.exists() else PROJECT / "runs" / "default")


def seeds_text(tunes: int) -> str:
    return "\n\n".join(f"X:{i + 1}\n{OPENINGS[i % len(OPENINGS)]}" for i in range(tunes)) + "\n"


def batched(plans, model, size: int, options: dict) -> tuple[int, float]:
    """(characters written, seconds) for all plans in batches of ``size``, after one untimed warm-up batch."""
    import abcflax
    from abcflax.composer import POOL_PER_ROW

    # compile this shape: one pool of tunes, ``size`` rows
    list(abcflax.compose(plans[:POOL_PER_ROW * size], model=model, batch_size=size, **options))
    start = time.perf_counter()
    chars = sum(tune.generated for tune in abcflax.compose(plans, model=model, batch_size=size, **options))
    return chars, time.perf_counter() - start


def sampler_only(plans, model, size: int, options: dict) -> tuple[int, float]:
    """(characters written, seconds) for ``sample.generate`` alone, one pool of all plans on ``size`` rows."""
    from abcflax.sample import Request, generate

    requests = [Request(p.prompt, options["seed"], p.row) for p in plans]
    generate(model, requests, max_chars=options["max_chars"], slots=size)  # compile this shape
    start = time.perf_counter()
    results = generate(model, requests, max_chars=options["max_chars"], slots=size)
    return sum(r.generated for r in results), time.perf_counter() - start


def one_at_a_time(plans, model, options: dict) -> tuple[int, float]:
    """(characters written, seconds) for every plan through ``abcflax.complete``, after one warm-up call."""
    import abcflax

    abcflax.complete(plans[0].prompt, model=model, **options)
    start = time.perf_counter()
    chars = sum(len(abcflax.complete(p.prompt, model=model, **options)) - len(p.prompt) for p in plans)
    return chars, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="Model folder or checkpoint (default: bundled, else runs/default).")
    parser.add_argument("--tunes", type=int, default=256, help="Tunes per configuration.")
    parser.add_argument("--sizes", default="8,32,64,128,256", help="Batch sizes to try.")
    parser.add_argument("--max-chars", type=int, default=1200, help="Most characters per tune.")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="Smoke run: 16 tunes, sizes 4,16, --max-chars 200.")
    parser.add_argument("--append", action="store_true", help="Append the figures to benchmarks/RESULTS.md.")
    args = parser.parse_args()
    if args.quick:
        args.tunes, args.sizes, args.max_chars = 16, "4,16", 200
    command = "python benchmarks/compose.py " + " ".join(shlex.quote(a) for a in sys.argv[1:])

    import jax

    import abcflax
    from abcflax.composer import auto_batch_size, plan_tunes

    model_path = args.model or default_model()
    model = abcflax.load_model(model_path)
    plans = plan_tunes(seeds_text(args.tunes), 1, model=model, source="benchmark")
    options = dict(max_chars=args.max_chars, seed=args.seed, candidates=1)  # sampler throughput: one draw a tune
    lines = [f"command: {command} (cwd {PROJECT})", f"model: {model_path}",
             f"tunes: {len(plans)}, max_chars {args.max_chars}, cpus {os.cpu_count()}, "
             f"devices {jax.device_count()} ({jax.devices()[0].platform})"]
    print("\n".join(lines), flush=True)
    chars, seconds = one_at_a_time(plans, model, options)
    single = chars / seconds
    lines.append(f"one at a time (complete): {chars:,} chars in {seconds:.1f} s = {single:,.0f} chars/s")
    print(lines[-1], flush=True)
    rates = {}
    for size in [int(s) for s in args.sizes.split(",")]:
        chars, seconds = batched(plans, model, size, options)
        rates[size] = chars / seconds
        lines.append(f"batch {size:>4}: {chars:,} chars in {seconds:.1f} s = {rates[size]:,.0f} chars/s "
                     f"({rates[size] / single:.1f}x one at a time)")
        print(lines[-1], flush=True)
    best = max(rates, key=rates.get)
    chars, seconds = sampler_only(plans, model, best, options)
    lines.append(f"sampler alone at batch {best} (no validity check, no headers): {chars:,} chars in {seconds:.1f} s "
                 f"= {chars / seconds:,.0f} chars/s ({chars / seconds / single:.1f}x one at a time)")
    print(lines[-1], flush=True)
    lines.append(f"best batch size: {best} ({rates[best] / single:.1f}x; target 20x); "
                 f"auto choice here: {auto_batch_size(len(plans), model, args.max_chars)}")
    lines.append(f"load average: {os.getloadavg()}")
    print("\n".join(lines[-2:]))
    if args.append:
        stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        with (PROJECT / "benchmarks" / "RESULTS.md").open("a") as handle:
            handle.write(f"\n## Batched composition vs one at a time (benchmarks/compose.py), {stamp}\n\n```\n"
                         + "\n".join(lines) + "\n```\n")


if __name__ == "__main__":
    main()
