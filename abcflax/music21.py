"""abcflax for music21 users: continue or harmonize a music21 stream.

The stream goes to ABC through abcflax's ABC writer for music21 (``abcflax_plugins.music21_abc``), through the
model (``abcflax.complete`` / ``abcflax.harmonize``), and back to a music21 score::

    from music21 import corpus
    import abcflax
    longer = abcflax.continue_stream(melody, bars=8)
"""

from __future__ import annotations


def stream_to_abc(stream) -> str:
    """ABC text for a single-part music21 stream (raises ``AbcWriteError`` for what ABC cannot hold here)."""
    from abcflax_plugins.music21_abc import stream_to_abc as write

    return write(stream)


def _round_trip(stream, function_name: str, **kw):
    import abcflax
    from abcflax.export import abc_to_score

    abc = getattr(abcflax, function_name)(stream_to_abc(stream), **kw)
    return abc_to_score(abc)


def continue_stream(stream, **kw):
    """A music21 score continuing ``stream`` (keywords go to ``abcflax.complete``)."""
    return _round_trip(stream, "complete", **kw)


def harmonize_stream(stream, **kw):
    """A music21 score of ``stream`` with chord symbols added (keywords go to ``abcflax.harmonize``)."""
    return _round_trip(stream, "harmonize", **kw)
