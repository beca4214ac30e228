"""Reading the user's input tune(s): ABC text from a file or stdin.

Other formats (MusicXML, MIDI) are converted to ABC by importer plugins (see ``abcflax.plugins``).
"""

from __future__ import annotations

from .tunebook import read_file_text


def read_abc_input(path: str) -> tuple[str, str]:
    """(ABC text, source name) for a path or ``-`` (stdin)."""
    source = "<stdin>" if str(path) == "-" else str(path)
    return read_file_text(path), source
