"""Built-in exporters: MusicXML, compressed MusicXML, MIDI and ABC (registered through the same hook as
third-party plugins, see ``abcflax.plugins``)."""

from __future__ import annotations

import io
import re
import zipfile

from abcflax.plugins import hookimpl

SCORE_OPTIONS = ("instrument", "tempo")
BARLINE = re.compile(rb"(<barline[^>]*>)(.*?)</barline>", re.DOTALL)
MXL_CONTAINER = (
    '<?xml version="1.0" encoding="UTF-8"?>\n'
    '<container><rootfiles><rootfile full-path="score.musicxml" '
    'media-type="application/vnd.recordare.musicxml+xml"/></rootfiles></container>\n'
)


def _score(abc: str, options: dict):
    from abcflax.export import abc_to_score

    return abc_to_score(abc, **{k: options[k] for k in SCORE_OPTIONS if options.get(k) is not None})


def _fill_bar_style(match: re.Match) -> bytes:
    body = match.group(2)
    if b"<bar-style>" in body:
        return match.group(0)
    style = (b"light-heavy" if b'direction="backward"' in body
             else b"heavy-light" if b'direction="forward"' in body else b"regular")
    return match.group(1) + b"\n        <bar-style>" + style + b"</bar-style>" + body + b"</barline>"


def musicxml_bytes(score) -> bytes:
    """MusicXML for a music21 score (chord symbols as ``<harmony>``).

    music21 writes repeat and ending bar lines without ``<bar-style>``; MuseScore 3 then reports "empty bar
    type" and draws no repeat sign, so the style the repeat implies is filled in.
    """
    from music21.musicxml.m21ToXml import GeneralObjectExporter

    xml = GeneralObjectExporter(score).parse()
    return BARLINE.sub(_fill_bar_style, xml)


def write_musicxml(abc: str, options: dict) -> bytes:
    return musicxml_bytes(_score(abc, options))


def write_mxl(abc: str, options: dict) -> bytes:
    """Compressed MusicXML: a zip with an uncompressed ``mimetype`` first, as the format requires."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(zipfile.ZipInfo("mimetype"), "application/vnd.recordare.musicxml",
                         compress_type=zipfile.ZIP_STORED)
        archive.writestr("META-INF/container.xml", MXL_CONTAINER)
        archive.writestr("score.musicxml", write_musicxml(abc, options))
    return buffer.getvalue()


def _refuse_part_order(abc: str) -> None:
    """InputError for a header ``P:`` that orders the parts (``P:ABACA``, ``P:A2B``): abc2midi plays the parts
    in that order, abcflax's MIDI as written (found: Nottingham's Blue Bell Polka, 176 notes against 370).
    A single part name (``P:A``) orders nothing."""
    from abcflax.errors import InputError

    for number, line in enumerate(abc.split("\n"), 1):
        if line.startswith("K:"):
            return
        value = line[2:].split("%", 1)[0].strip() if line.startswith("P:") else ""
        if value and not re.fullmatch(r"[A-Za-z]", value):
            raise InputError(f"<text>:{number}: part order P:{value} cannot be exported to MIDI: abcflax plays "
                             "the parts as written (export MusicXML, or write the parts out in order)")


def write_midi(abc: str, options: dict) -> bytes:
    from .midi import score_to_midi

    _refuse_part_order(abc)
    return score_to_midi(_score(abc, options), options.get("accompaniment") or "vamp")


def write_abc(abc: str, options: dict) -> bytes:
    """The ABC text itself, after the check every export makes (tunes, none malformed): what MusicXML/MIDI input
    converts to."""
    from abcflax.export import check_exportable

    check_exportable(abc)
    return (abc.rstrip("\n") + "\n").encode("utf-8")


@hookimpl
def register_exporters(register):
    register("musicxml", (".musicxml", ".xml"), write_musicxml, binary=False,
             description="MusicXML with chord symbols as <harmony>, instrument, tempo")
    register("mxl", (".mxl",), write_mxl, description="compressed MusicXML")
    register("mid", (".mid", ".midi"), write_midi,
             description="MIDI: melody track + chord accompaniment track (none|block|vamp)")
    register("abc", (".abc",), write_abc, binary=False, tunebook=True, description="ABC text (a whole tunebook)")
