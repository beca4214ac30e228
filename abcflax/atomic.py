"""Write files so that a reader never sees half of one: temp file in the same folder, then rename.

What the output path names decides how it is written: a regular file (or a new one) is replaced atomically; a
symlink's target is replaced, so the link stays a link; a character device or FIFO (``/dev/null``, a terminal,
a named pipe) is written into, since renaming over it would replace the device by a plain file. Anything else
(a folder, a block device, a socket) is refused. Every failure is an ``InputError`` naming the path.
"""

from __future__ import annotations

import errno
import os
import stat
import tempfile
from pathlib import Path

from .errors import InputError

_REFUSED_KINDS = ((stat.S_ISDIR, "is a directory"), (stat.S_ISBLK, "is a block device"),
                  (stat.S_ISSOCK, "is a socket"))


def _cannot_write(target: Path, exc: OSError) -> InputError:
    """The one-line error for an OS failure while writing ``target``."""
    if exc.errno in (errno.ENOTDIR, errno.EEXIST):  # mkdir or open met a file where a folder should be
        blocker = next((p for p in target.parents if p.exists() and not p.is_dir()), None)
        if blocker is not None:
            return InputError(f"{target}: cannot write: {blocker} is not a directory")
    return InputError(f"{target}: cannot write: {exc.strerror or exc}")


def is_device_or_fifo(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a character device or FIFO (``/dev/null``, a terminal, a named pipe)."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return False
    return stat.S_ISCHR(mode) or stat.S_ISFIFO(mode)


def writes_in_place(path: str | os.PathLike, *, force: bool) -> bool:
    """Check that ``path`` can take an output: True when it is written into directly (a character device or
    FIFO), False when it is written by temp file and rename. Raises ``InputError`` for a folder, block device
    or socket, for a path that cannot be looked at, and for an existing file without ``force``."""
    target = Path(path)
    try:
        mode = os.stat(target).st_mode  # follows symlinks: the kind of what gets written
    except FileNotFoundError:
        return False  # a new file (or a symlink to one)
    except OSError as exc:
        raise _cannot_write(target, exc) from None
    for is_kind, what in _REFUSED_KINDS:
        if is_kind(mode):
            raise InputError(f"{target}: {what}, not a file to write")
    if stat.S_ISCHR(mode) or stat.S_ISFIFO(mode):
        return True  # nothing is replaced, so no --force is needed
    if not stat.S_ISREG(mode):
        raise InputError(f"{target}: not a regular file, not a file to write")
    if not force:
        raise InputError(f"{target}: already exists (use --force to overwrite)")
    return False


def check_output_path(path: str | os.PathLike, *, force: bool = False) -> None:
    """Refuse early (an ``InputError``) an output path that cannot take a file: a folder, a block device, a
    socket, a path below a file, or an existing file without ``force``. Devices and FIFOs pass."""
    writes_in_place(path, force=force)


def write_bytes(path: str | os.PathLike, data: bytes, *, force: bool = True) -> None:
    """Write ``data`` to ``path`` (atomically unless it is a device or FIFO); refuse to replace an existing
    file unless ``force``. Any failure is an ``InputError`` naming ``path``."""
    target = Path(path)
    try:
        if writes_in_place(target, force=force):
            _write_into(target, data)
        else:
            _replace(Path(os.path.realpath(target)) if target.is_symlink() else target, data)
    except OSError as exc:
        raise _cannot_write(target, exc) from None


def _write_into(target: Path, data: bytes) -> None:
    """Write into a character device or FIFO as it is (a FIFO waits here for its reader, as a shell's
    ``>`` does). No O_CREAT: if it vanished since it was checked, fail rather than make a plain file."""
    fd = os.open(target, os.O_WRONLY | os.O_NOCTTY | os.O_CLOEXEC)
    with os.fdopen(fd, "wb") as handle:
        mode = os.fstat(fd).st_mode
        if not (stat.S_ISCHR(mode) or stat.S_ISFIFO(mode)):
            raise InputError(f"{target}: was replaced while being written to; not written")
        handle.write(data)


def _replace(target: Path, data: bytes) -> None:
    """Write a temp file beside ``target``, then rename it over ``target``."""
    folder = target.parent if str(target.parent) else Path(".")
    folder.mkdir(parents=True, exist_ok=True)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=folder)
    except OSError as exc:
        # e.g. a file in /proc: it exists, but no file can be made beside it (a bare ENOENT would mislead)
        raise OSError(exc.errno, f"cannot make a temporary file in {folder} ({exc.strerror or exc})") from None
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
