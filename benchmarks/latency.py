"""End-to-end latency of `abcflax continue` as a ratio to the unavoidable `import jax, flax, optax`.

Runs A B A B ... in the same session: the import alone, `abcflax continue` with a warm persistent
compilation cache, and with a cold (empty) one; plus `abcflax --help` (which must not import JAX). With
`--candidates 1,4`, also `abcflax continue --candidates N` (warm) for each N, in the same rounds: what the
default's 8 draws per tune cost against fewer. With ``--seeds 1,2,3``, also the warm default at those seeds: its
draws stop once the kept one is known, so its time varies with the seed (seed 0 alone is one draw of that).

    python benchmarks/latency.py [--repeats 3] [--candidates 1,4] [--seeds 1,2,3] [--append]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TUNE = ROOT / "data" / "examples" / "the_kesh.abc"


def timed(args: list[str], env: dict | None = None) -> float:
    start = time.perf_counter()
    subprocess.run(args, check=True, capture_output=True, env={**os.environ, **(env or {})})
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--candidates", default="", help="comma-separated --candidates values to time as well")
    parser.add_argument("--seeds", default="", help="comma-separated further seeds to time the warm default at")
    parser.add_argument("--append", action="store_true")
    args = parser.parse_args()
    load = os.getloadavg()
    imports, warm, cold, helps = [], [], [], []
    continue_cmd = ["abcflax", "continue", str(TUNE), "--seed", "0", "--quiet"]
    counts = [int(n) for n in args.candidates.split(",") if n.strip()]
    by_count: dict[int, list[float]] = {n: [] for n in counts}
    seeds = [int(n) for n in args.seeds.split(",") if n.strip()]
    by_seed: dict[int, list[float]] = {0: [], **{n: [] for n in seeds}}
    seeded = lambda seed: continue_cmd[:3] + ["--seed", str(seed), "--quiet"]
    timed(continue_cmd)  # fill the warm cache
    for n in counts:
        timed(continue_cmd + ["--candidates", str(n)])
    for _ in range(args.repeats):
        imports.append(timed([sys.executable, "-c", "import jax, flax, optax"]))
        warm.append(timed(continue_cmd))
        by_seed[0].append(warm[-1])
        for n in counts:
            by_count[n].append(timed(continue_cmd + ["--candidates", str(n)]))
        for seed in seeds:
            by_seed[seed].append(timed(seeded(seed)))
        with tempfile.TemporaryDirectory() as empty:
            cold.append(timed(continue_cmd, {"ABCFLAX_CACHE_DIR": empty}))
        helps.append(timed(["abcflax", "--help"]))
    base = statistics.median(imports)
    per_seed = [statistics.median(times) for times in by_seed.values()]
    lines = [f"command: python benchmarks/latency.py --repeats {args.repeats}"
             + (f" --candidates {args.candidates}" if counts else "") + (f" --seeds {args.seeds}" if seeds else ""),
             f"import jax, flax, optax: {base:.2f} s (median of {args.repeats})",
             f"abcflax continue (warm cache): {statistics.median(warm):.2f} s = {statistics.median(warm) / base:.2f}x",
             *(f"abcflax continue --candidates {n} (warm cache): {statistics.median(times):.2f} s = "
               f"{statistics.median(times) / base:.2f}x" for n, times in by_count.items()),
             *([f"abcflax continue (warm cache) at seeds {', '.join(map(str, by_seed))}: "
                + ", ".join(f"{t:.2f}" for t in per_seed) + f" s; mean {statistics.mean(per_seed):.2f} s = "
                f"{statistics.mean(per_seed) / base:.2f}x"] if seeds else []),
             f"abcflax continue (cold cache): {statistics.median(cold):.2f} s = {statistics.median(cold) / base:.2f}x",
             f"abcflax --help: {statistics.median(helps):.2f} s",
             f"load average: {load} (before) {os.getloadavg()} (after)"]
    report = "\n".join(lines)
    print(report)
    if args.append:
        with open(ROOT / "benchmarks" / "RESULTS.md", "a") as handle:
            handle.write(f"\n## Latency of `abcflax continue` (benchmarks/latency.py)\n\n```\n{report}\n```\n")


if __name__ == "__main__":
    main()
