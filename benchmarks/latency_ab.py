"""A/B startup latency of two installs of abcflax, interleaved: `abcflax continue` (warm compilation cache) of
each, and the bare `import jax, flax, optax`, in turn, N rounds; medians as ratios to the import.

For a change that moves startup by less than this machine's drift between runs of benchmarks/latency.py
(seen: the same code at 1.31x and 1.52x in two runs minutes apart). Each install is a venv with
`pip install -e` of one checkout (e.g. `git worktree add /tmp/old <commit>`).

    python benchmarks/latency_ab.py --old /tmp/oldvenv --new /tmp/newvenv --rounds 12
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import time
from pathlib import Path

TUNE = Path(__file__).resolve().parents[1] / "data" / "examples" / "the_kesh.abc"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--old", required=True, help="venv of the baseline install")
    parser.add_argument("--new", required=True, help="venv of the changed install")
    parser.add_argument("--rounds", type=int, default=12)
    args = parser.parse_args()
    commands = {
        "import jax, flax, optax": [f"{args.new}/bin/python", "-c", "import jax, flax, optax"],
        "old: abcflax continue": [f"{args.old}/bin/abcflax", "continue", str(TUNE), "--seed", "0", "--quiet"],
        "new: abcflax continue": [f"{args.new}/bin/abcflax", "continue", str(TUNE), "--seed", "0", "--quiet"],
    }
    for command in commands.values():  # warm caches (compilation cache, file cache) first
        subprocess.run(command, check=True, capture_output=True, cwd="/")
    load = os.getloadavg()
    times: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(args.rounds):
        for name, command in commands.items():
            start = time.perf_counter()
            subprocess.run(command, check=True, capture_output=True, cwd="/")
            times[name].append(time.perf_counter() - start)
    base = statistics.median(times["import jax, flax, optax"])
    print(f"command: python benchmarks/latency_ab.py --old {args.old} --new {args.new} --rounds {args.rounds}")
    for name, values in times.items():
        median = statistics.median(values)
        print(f"{name}: median {median:.2f} s = {median / base:.2f}x (min {min(values):.2f} s)")
    print(f"load average: {load} (before) {os.getloadavg()} (after)")


if __name__ == "__main__":
    main()
