"""Write files so that a reader never sees half of one: temp file in the same folder, then rename."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from .errors import InputError


def write_bytes(path: str | os.PathLike, data: bytes, *, force: bool = True) -> None:
    """Write ``data`` to ``path`` atomically; refuse to replace an existing file unless ``force``."""
    target = Path(path)
    if target.is_dir():
        raise InputError(f"{target}: is a directory, not a file to write")
    if target.exists() and not force:
        raise InputError(f"{target}: already exists (use --force to overwrite)")
    folder = target.parent if str(target.parent) else Path(".")
    folder.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=folder)
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; outputs get the usual permissions
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def write_text(path: str | os.PathLike, text: str, *, force: bool = True) -> None:
    """Write UTF-8 text atomically (see :func:`write_bytes`)."""
    write_bytes(path, text.encode("utf-8"), force=force)


def remove_leftovers(path: str | os.PathLike) -> list[Path]:
    """Delete the temp files a killed :func:`write_bytes` of ``path`` left behind (SIGKILL skips the cleanup
    above); returns what was removed. Only our own pattern, ``.<name>.<random>.tmp`` beside ``path``."""
    target = Path(path)
    folder = target.parent if str(target.parent) else Path(".")
    removed = []
    for leftover in folder.glob(f".{target.name}.*.tmp"):
        try:
            leftover.unlink()
            removed.append(leftover)
        except FileNotFoundError:
            pass
    return removed
