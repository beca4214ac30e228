"""Reading the user's input tune(s): ABC text from a file or stdin.

Other formats (MusicXML, MIDI) are converted to ABC by importer plugins (see ``abcflax.plugins``): chosen by the
file's extension, or for stdin by the data's first bytes.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
import warnings

from .errors import AbcflaxError, InputError
from .tunebook import MAX_INPUT_BYTES, decode_bytes, read_file_text

# first bytes -> the extension of the importer that reads them (stdin has no file name)
SIGNATURES = ((b"MThd", ".mid"), (b"PK\x03\x04", ".mxl"))
ABC_SUFFIXES = ("", ".abc", ".txt")
STDIN = "<stdin>"  # how stdin is named in messages


def _sniff_suffix(data: bytes) -> str | None:
    for magic, suffix in SIGNATURES:
        if data.startswith(magic):
            return suffix
    head = data.lstrip()[:200].lower()
    if head.startswith((b"<?xml", b"<score-partwise", b"<!doctype score")):
        return ".musicxml"
    return None


def _import_file(path: str) -> str | None:
    """ABC from an importer plugin for ``path``'s extension, or None when the file is not for one."""
    if os.path.splitext(path)[1].lower() in ABC_SUFFIXES:
        return None  # before importing the plugin system: it costs ~25 ms of startup (entry points)
    from .plugins import find_importer

    importer = find_importer(path)
    if importer is None:
        return None
    if not os.path.isfile(path):
        read_file_text(path)  # raises the usual "no such file" / "is a directory" errors
    try:
        size = os.stat(path).st_size
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror or exc})") from None
    if size > MAX_INPUT_BYTES:  # as for ABC: music21 would take many minutes over it, then refuse the tune
        raise InputError(f"{path}: file too large ({size} bytes; limit {MAX_INPUT_BYTES})")
    return importer.read(path)


def stdin_bytes(max_bytes: int = MAX_INPUT_BYTES) -> bytes:
    """Everything on stdin (at most ``max_bytes``). An ``InputError`` when there is no stdin (``<&-``: Python
    then sets ``sys.stdin`` to None) or it cannot be read (a folder, an I/O error), as for a closed stdout."""
    stream = getattr(sys.stdin, "buffer", sys.stdin)  # a text stream without .buffer: a test's or an embedder's
    if stream is None:
        raise InputError("cannot read stdin: it is closed")
    try:
        data = stream.read(max_bytes + 1)
    except OSError as exc:
        raise InputError(f"cannot read stdin: {exc.strerror or exc}") from None
    if isinstance(data, str):
        data = data.encode("utf-8")
    if len(data) > max_bytes:
        raise InputError(f"{STDIN}: input too large (limit {max_bytes} bytes)")
    return data


def read_abc_text(path: str) -> str:
    """ABC text, unconverted (no importer), from a file or ``-`` (stdin): what ``abcflax check`` reads."""
    if str(path) == "-":
        return decode_bytes(stdin_bytes(), STDIN)
    return read_file_text(path)


def _read_stdin() -> tuple[str, str]:
    data = stdin_bytes()
    suffix = _sniff_suffix(data)
    if suffix is None:
        return decode_bytes(data, STDIN), STDIN
    from .plugins import find_importer

    importer = find_importer("stdin" + suffix)
    with _stdin_in_a_file(data, suffix) as path, _naming_stdin(path):
        return importer.read(path), STDIN


@contextlib.contextmanager
def _stdin_in_a_file(data: bytes, suffix: str):
    """The path of a temporary file holding ``data`` (importers read files: music21 parses by path)."""
    try:
        temporary = tempfile.TemporaryDirectory(prefix="abcflax-")
    except OSError as exc:  # no usable temp folder
        raise _cannot_keep_stdin(exc) from None
    with temporary as folder:
        path = os.path.join(folder, "stdin" + suffix)
        try:
            with open(path, "wb") as handle:
                handle.write(data)
        except OSError as exc:  # a full temp folder
            raise _cannot_keep_stdin(exc) from None
        yield path


def _cannot_keep_stdin(exc: OSError) -> InputError:
    return InputError(f"{STDIN}: cannot keep the input in a temporary file ({exc.strerror or exc})")


@contextlib.contextmanager
def _naming_stdin(path: str):
    """Errors and warnings that name ``path`` (the temporary file stdin was saved to) name ``<stdin>``
    instead: the user never saw that file."""
    error = None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")  # each is issued again below, where the caller's filters apply
        try:
            yield
        except AbcflaxError as exc:
            error = type(exc)(str(exc).replace(path, STDIN))
    for warning in caught:
        warnings.warn_explicit(str(warning.message).replace(path, STDIN), warning.category, warning.filename,
                               warning.lineno)
    if error is not None:
        raise error


def read_abc_input(path: str) -> tuple[str, str]:
    """(ABC text, source name) for a path or ``-`` (stdin); MusicXML and MIDI are converted to ABC."""
    if str(path) == "-":
        return _read_stdin()
    converted = _import_file(str(path))
    if converted is not None:
        return converted, str(path)
    return read_file_text(path), str(path)
