"""Reading the user's input tune(s): ABC text from a file or stdin.

Other formats (MusicXML, MIDI) are converted to ABC by importer plugins (see ``abcflax.plugins``): chosen by the
file's extension, or for stdin by the data's first bytes.
"""

from __future__ import annotations

import os
import sys
import tempfile

from .errors import InputError
from .tunebook import MAX_INPUT_BYTES, decode_bytes, read_file_text

# first bytes -> the extension of the importer that reads them (stdin has no file name)
SIGNATURES = ((b"MThd", ".mid"), (b"PK\x03\x04", ".mxl"))
ABC_SUFFIXES = ("", ".abc", ".txt")


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
    return importer.read(path)


def _read_stdin() -> tuple[str, str]:
    data = sys.stdin.buffer.read(MAX_INPUT_BYTES + 1)
    if len(data) > MAX_INPUT_BYTES:
        raise InputError(f"<stdin>: input too large (limit {MAX_INPUT_BYTES} bytes)")
    suffix = _sniff_suffix(data)
    if suffix is None:
        return decode_bytes(data, "<stdin>"), "<stdin>"
    from .plugins import find_importer

    importer = find_importer("stdin" + suffix)
    with tempfile.TemporaryDirectory(prefix="abcflax-") as folder:
        path = os.path.join(folder, "stdin" + suffix)  # importers read files: music21 parses by path
        with open(path, "wb") as handle:
            handle.write(data)
        return importer.read(path), "<stdin>"


def read_abc_input(path: str) -> tuple[str, str]:
    """(ABC text, source name) for a path or ``-`` (stdin); MusicXML and MIDI are converted to ABC."""
    if str(path) == "-":
        return _read_stdin()
    converted = _import_file(str(path))
    if converted is not None:
        return converted, str(path)
    return read_file_text(path), str(path)
