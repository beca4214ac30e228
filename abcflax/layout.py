"""The recurrence's layout for a training run, chosen by timing both layouts on this machine.

A step of the recurrence multiplies a few rows of state by the H x 4H recurrent matrix. Held in rows
(B x H) or in columns (H x B, ``lstm.state_in_columns``), the same arithmetic runs at speeds that depend on
the CPU more than on the shape: the default's training step (H = 384, 12 rows a device, float32) was 1.06x
faster in columns on the Intel AMX machines of sessions 19-24 and 1.22x faster in rows on session 26's AMD
EPYC; a bfloat16 recurrence at 8 rows a device 1.13-1.27x faster in columns there, and the MIT lab shape's
1.51x faster in rows here (benchmarks/RESULTS.md, session 26). No rule of thumb is right on both, so a
training run times one forward and backward pass of the recurrence in each layout, on its own mesh and
shape, and keeps rows unless columns are clearly faster. The verdict is cached per machine in the user
cache folder, so this costs a few seconds once.
"""

from __future__ import annotations

import json
import os
import platform
import stat
import statistics
import time
from functools import lru_cache

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec

from . import atomic, lstm, runtime
from .errors import InputError

CACHE_NAME = "recurrence_layouts.json"
MEASURED_FROM_HIDDEN = 256  # below this the rule of thumb decides (``lstm.state_in_columns``): too small to time
TIMED_STEPS = 64  # time steps of each timed pass (a step's cost does not depend on how many follow)
ROUNDS = 5  # alternating rounds of each layout; the medians decide
# columns must time this much faster than rows to be chosen. Rows are the layout XLA and every other LSTM use,
# and near a tie the timed pass alone can pick wrong: the Keras seed shape (H = 256, 8 rows a device) timed
# 11.3 ms in columns against 11.5 in rows, but its whole training step ran 1.08x faster in rows. Where
# columns won whole steps they won by 1.06-1.38x.
COLUMNS_MARGIN = 1.05


def recurrence_in_columns(hidden: int, batch: int, seq_len: int, mesh, precision: lstm.Precision) -> bool:
    """Whether a training run's recurrence holds its state in columns: ``batch`` rows split over ``mesh``,
    windows of ``seq_len``, ``hidden`` units, ``precision``'s bfloat16 switches. Timed on this machine
    (cached), unless ``ABCFLAX_RECURRENCE_LAYOUT`` says which, the recurrence is small, or several processes
    share the run (each would time its own machine, and they must all compile the same program): then the
    rule of thumb."""
    setting = runtime.recurrence_layout()
    if setting != "measure":
        return setting == "columns"
    rows = max(1, batch // mesh.size)
    if hidden < MEASURED_FROM_HIDDEN or jax.process_count() > 1:
        w_rec = jax.ShapeDtypeStruct((hidden, 4 * hidden), jnp.bfloat16 if precision.recurrence else jnp.float32)
        return lstm.state_in_columns(w_rec, rows)
    key = _cache_key(hidden, rows, mesh.size, precision)
    cached = _read_cache().get(key)
    if isinstance(cached, dict) and isinstance(cached.get("columns"), bool):
        return cached["columns"]
    timings = time_layouts(hidden, batch, mesh, precision, min(TIMED_STEPS, seq_len))
    verdict = {"columns": timings[True] * COLUMNS_MARGIN < timings[False],
               "columns_ms": round(timings[True] * 1e3, 3), "rows_ms": round(timings[False] * 1e3, 3)}
    _write_cache(key, verdict)
    return verdict["columns"]


def time_layouts(hidden: int, batch: int, mesh, precision: lstm.Precision,
                 steps: int = TIMED_STEPS) -> dict[bool, float]:
    """Seconds of one forward and backward pass of the recurrence (``steps`` time steps: no more than the run's
    windows, so the timing never needs more memory than training; the batch split over ``mesh`` as training
    splits it) in columns (True) and in rows (False): medians of ``ROUNDS`` alternating rounds, each layout
    compiled and run once first."""
    rng = np.random.default_rng(0)
    split = NamedSharding(mesh, PartitionSpec(None, "data"))
    state = NamedSharding(mesh, PartitionSpec("data"))
    xproj = jax.device_put(rng.standard_normal((steps, batch, 4 * hidden), np.float32), split)
    w_hh = jax.device_put((rng.standard_normal((hidden, 4 * hidden)) / np.sqrt(hidden)).astype(np.float32),
                          NamedSharding(mesh, PartitionSpec()))
    zeros = jax.device_put(np.zeros((batch, hidden), np.float32), state)

    def pass_for(columns: bool):
        chosen = precision._replace(devices=mesh.size, columns=columns)

        def loss(xproj, w_hh):
            h_TxBxH, _, _ = lstm.lstm_scan(xproj, w_hh, zeros, zeros, chosen)
            return jnp.sum(h_TxBxH)

        return jax.jit(jax.grad(loss, argnums=(0, 1)))

    passes = {columns: pass_for(columns) for columns in (True, False)}
    for run in passes.values():
        jax.block_until_ready(run(xproj, w_hh))
    seconds = {columns: [] for columns in passes}
    for _ in range(ROUNDS):
        for columns, run in passes.items():
            start = time.perf_counter()
            jax.block_until_ready(run(xproj, w_hh))
            seconds[columns].append(time.perf_counter() - start)
    return {columns: statistics.median(times) for columns, times in seconds.items()}


@lru_cache(maxsize=1)
def _machine() -> str:
    """The CPU's model name (what the timing depends on), as Linux reports it, else Python's guess."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _cache_key(hidden: int, rows: int, devices: int, precision: lstm.Precision) -> str:
    # what the speeds depend on: the processor (and for an accelerator, its kind), XLA's flags, the shape
    return (f"{_machine()} {platform.machine()} {jax.devices()[0].device_kind} | {runtime.usable_cores()} cores | "
            f"XLA_FLAGS {os.environ.get('XLA_FLAGS', '')!r} | jax {jax.__version__} {jax.default_backend()} | "
            f"{devices} devices x {rows} rows | H {hidden} | bf16 recurrence {precision.recurrence} "
            f"products {precision.wide}")


def _cache_path():
    return runtime.cache_dir() / CACHE_NAME


MAX_CACHE_BYTES = 1 << 20  # a larger file is not this module's: it counts as empty


def _read_cache() -> dict:
    """The cached verdicts; an unreadable, foreign or damaged file counts as empty (it is rewritten on the next
    write), and so does anything but a regular file (a FIFO would block the read)."""
    path = _cache_path()
    try:
        info = path.stat()
        if not stat.S_ISREG(info.st_mode) or info.st_size > MAX_CACHE_BYTES:
            return {}
        cached = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):  # RecursionError: JSON nested thousands deep
        return {}
    return cached if isinstance(cached, dict) else {}


def _write_cache(key: str, verdict: dict) -> None:
    """Adds a verdict, atomically; a cache folder that cannot be written only costs the timing next time."""
    cached = _read_cache()
    cached[key] = verdict
    try:
        _cache_path().parent.mkdir(parents=True, exist_ok=True)
        atomic.write_text(_cache_path(), json.dumps(cached, indent=1, sort_keys=True) + "\n")
    except (OSError, InputError):
        pass
