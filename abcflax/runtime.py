"""Process-wide runtime settings: the user cache folder and JAX's persistent compilation cache."""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

CACHE_ENV = "ABCFLAX_CACHE_DIR"  # where compiled programs and grammar tables are kept
NO_CACHE_ENV = "ABCFLAX_NO_COMPILE_CACHE"  # set to 1 to turn JAX's persistent cache off


def cache_dir() -> Path:
    base = os.environ.get(CACHE_ENV) or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "abcflax")
    return Path(base)


@lru_cache(maxsize=1)
def enable_compile_cache() -> bool:
    """Turn on JAX's persistent compilation cache in the user cache folder (once per process)."""
    if env_switch(NO_CACHE_ENV):  # 0 keeps the cache on, as a reader of "NO_COMPILE_CACHE=0" expects
        return False
    import jax

    folder = cache_dir() / "jax"
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        return False
    jax.config.update("jax_compilation_cache_dir", str(folder))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.2)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    return True


HOST_DEVICES_ENV = "ABCFLAX_HOST_DEVICES"  # CPU devices `abcflax train` splits the host into (1 = one device)
# the most devices `train --devices` (and ABCFLAX_HOST_DEVICES) may ask for: far above any host's cores or a
# multi-host run's accelerators, and it keeps the count XLA_FLAGS gets a number XLA parses
MAX_DEVICES = 1024
MIN_ROWS_PER_DEVICE = 8  # below this, a device's share of the batch is too little work to pay for the split
_FORCE_FLAG = "--xla_force_host_platform_device_count"


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def host_device_count(batch_size: int, cores: int) -> int:
    """How many CPU devices to train a batch of ``batch_size`` rows on: the most, up to one per core, that
    split the batch evenly with at least ``MIN_ROWS_PER_DEVICE`` rows each (1 when none does)."""
    fits = [n for n in range(1, max(cores, 1) + 1)
            if batch_size % n == 0 and (n == 1 or batch_size // n >= MIN_ROWS_PER_DEVICE)]
    return max(fits)


def host_devices_override() -> int | None:
    """``ABCFLAX_HOST_DEVICES`` as a device count, None when unset or empty; a ``UsageError`` for anything but
    a whole number from 1 to ``MAX_DEVICES`` (a typo silently ignored would train on another device count)."""
    value = os.environ.get(HOST_DEVICES_ENV, "").strip()
    if not value:
        return None
    if not (value.isascii() and value.isdigit() and 1 <= int(value) <= MAX_DEVICES):
        from .errors import UsageError

        raise UsageError(f"{HOST_DEVICES_ENV}={value!r}: must be a whole number from 1 to {MAX_DEVICES} "
                         "(1 = no split; unset = one device per core)")
    return int(value)


def split_host_cpu(batch_size: int, requested: int | None = None) -> int | None:
    """Expose the host CPU to JAX as several devices, so that training runs data parallel over its cores;
    the device count set, or None when it cannot or need not be (JAX already started, or ``XLA_FLAGS``
    already sets it). Must run before JAX is imported.

    Why: XLA's CPU backend runs one device's operations one after another and splits each one over the
    cores. A char-LSTM's operations are small (a 16-32 row matmul per time step), and splitting each of
    them costs more than it gains; two devices, each running its half of the batch whole, trained the
    default shape 1.3-1.4x as fast on 2 cores (benchmarks/RESULTS.md). With fewer than 8 rows per device
    it lost (the MIT lab shape, 4 rows each: 0.75x), as each device then reads all the weights for little
    work. With a device per core, each device's operations also run on one thread. ``requested``
    (``--devices``) sets the count; ``ABCFLAX_HOST_DEVICES`` overrides the choice.
    """
    import sys

    override = host_devices_override()  # a bad value is an error even when it would change nothing
    if "jax" in sys.modules or _FORCE_FLAG in os.environ.get("XLA_FLAGS", ""):
        return None
    if override is not None:
        count = override
    elif requested:
        count = requested
    else:
        count = host_device_count(batch_size, usable_cores())
    if count > 1:
        flags = [os.environ.get("XLA_FLAGS", ""), f"{_FORCE_FLAG}={count}"]
        if count >= usable_cores() and "xla_cpu_multi_thread_eigen" not in flags[0]:
            # a device per core: each runs its operations on its own thread (measured 1.05x: 16.9k vs 16.1k
            # chars/s on the Keras seed shape, 16.7k vs 15.8k on the default, interleaved)
            flags.append("--xla_cpu_multi_thread_eigen=false")
        os.environ["XLA_FLAGS"] = " ".join(flags).strip()
    return count


# glibc mallopt() parameters (malloc.h)
_M_TRIM_THRESHOLD, _M_MMAP_MAX, _M_ARENA_MAX = -1, -4, -8
_NEVER_TRIM = 2**31 - 1  # the largest value mallopt takes (an int): hand memory back only past 2 GB free


def reuse_freed_memory() -> bool:
    """Have glibc's malloc keep the memory this process frees and hand it out again, rather than return it
    to the kernel; True when the C library took the settings (False on other C libraries, which are left
    alone). Process-wide and permanent, so only ``abcflax train`` calls it (never the library on import),
    and before JAX starts any thread.

    Why: XLA's CPU runtime allocates every step's temporary buffers afresh (113 MB per device for the default
    shape). glibc serves blocks that large with mmap and unmaps them when they are freed (and trims its
    per-thread heaps), so each step faulted 216 MB of zeroed pages back in: 55,000 page faults a step, which
    cost the default shape about a fifth of its speed (benchmarks/RESULTS.md). With one heap, no mmap and no
    trimming, a step faults nothing once the heap has grown to its working size.
    """
    import sys

    if not sys.platform.startswith("linux"):
        return False
    import ctypes

    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    # one arena, the main heap: with no mmap and no trimming alone, XLA's device threads (each with its own
    # arena) still faulted 55,438 pages a step; with one arena as well, none
    settings = ((_M_ARENA_MAX, 1), (_M_MMAP_MAX, 0), (_M_TRIM_THRESHOLD, _NEVER_TRIM))
    return all(mallopt(parameter, value) == 1 for parameter, value in settings)


def cpu_has_bf16(cpuinfo: str | Path = "/proc/cpuinfo") -> bool | None:
    """Whether the CPU multiplies bfloat16 in hardware (the ``avx512_bf16`` or ``amx_bf16`` flag of Linux's
    ``/proc/cpuinfo``); None where that file cannot be read (another OS), as it cannot tell."""
    try:
        text = Path(cpuinfo).read_text(errors="replace")
    except OSError:
        return None
    flags = next((line.split(":", 1)[1].split() for line in text.splitlines() if line.startswith("flags")), None)
    if flags is None:  # an ARM or other CPU lists "Features", without these x86 names
        return None
    return "avx512_bf16" in flags or "amx_bf16" in flags


STEP_BF16_ENV = "ABCFLAX_STEP_BF16"  # 1 or 0: sample with bfloat16 kernels or not, whatever the CPU


@lru_cache(maxsize=1)
def bf16_stepping() -> bool:
    """Whether the sampler steps with bfloat16 kernels (``lstm.stepping_weights``): where the CPU multiplies
    bfloat16 in hardware (elsewhere XLA emulates it, and the halved bytes may not pay), unless
    ``ABCFLAX_STEP_BF16`` says otherwise. Held-out bits/char came out the same to four decimals."""
    setting = env_switch(STEP_BF16_ENV)
    return setting if setting is not None else cpu_has_bf16() is True


LAYOUT_ENV = "ABCFLAX_RECURRENCE_LAYOUT"  # rows or columns: training skips timing the two (layout.py)


def recurrence_layout() -> str:
    """``ABCFLAX_RECURRENCE_LAYOUT`` checked: "rows", "columns", or "measure" (unset: training times both)."""
    value = os.environ.get(LAYOUT_ENV, "").strip().lower() or "measure"
    if value not in ("rows", "columns", "measure"):
        from .errors import UsageError

        raise UsageError(f"{LAYOUT_ENV}={value!r}: must be rows, columns or measure (unset = measure)")
    return value


def check_sampling_environment() -> None:
    """A ``UsageError`` now for a bad value of the sampler's switches, which it reads only once it starts:
    a command checks them first, so the error is its only line (not one after "continuing...")."""
    for name in (STEP_BF16_ENV, NO_CACHE_ENV):
        env_switch(name)


def env_switch(name: str) -> bool | None:
    """An on/off environment variable: ``1`` is True, ``0`` False, unset or empty None (the default). Anything
    else is a ``UsageError``: ``yes`` or ``2`` silently taken for the default would hide the user's intent."""
    value = os.environ.get(name, "").strip()
    if value in ("", "0", "1"):
        return None if not value else value == "1"
    from .errors import UsageError

    raise UsageError(f"{name}={value!r}: must be 1 (on) or 0 (off), or unset for the default")
