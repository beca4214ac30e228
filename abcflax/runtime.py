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
    if os.environ.get(NO_CACHE_ENV):
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
