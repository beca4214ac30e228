"""abcflax export."""

from __future__ import annotations

import click

from .common import cli_errors
from .options import FiniteFloatRange

ACCOMPANIMENTS = ("none", "block", "vamp")


@click.command("export")
@click.argument("source", metavar="FILE|-")
@click.option("-o", "--out", required=True, help="Output file (.musicxml .xml .mxl .mid .midi .abc) or - for stdout.")
@click.option("--format", "fmt", help="Output format (musicxml, mxl, mid, abc, or a plugin's); default: from -o.")
@click.option("--instrument", default="violin", show_default=True, help="Instrument of the melody part.")
@click.option("--tempo", type=FiniteFloatRange(10, 400), help="Quarter notes per minute (overrides Q:).")
@click.option("--accompaniment", type=click.Choice(ACCOMPANIMENTS), default="vamp", show_default=True,
              help="MIDI: chord symbols as a separate track: none, block chords, or bass-chord vamp.")
@click.option("--repair", is_flag=True,
              help="Remove the stray character behind each syntax error (an '=' before no note, an unclosed "
                   "'{'...) instead of refusing the tune; every removal is reported.")
@click.option("--force", is_flag=True, help="Overwrite existing output files.")
@cli_errors
def export_command(source, out, fmt, instrument, tempo, accompaniment, repair, force):
    """Export ABC (or MusicXML/MIDI) to MusicXML, MIDI or ABC for notation software.

    A tunebook becomes one .abc file, or one file per tune (OUT-<X>.ext) in the other formats.

    \b
    Examples:
      abcflax export tune.abc -o tune.musicxml
      abcflax export tunes.abc -o tunes.mid --accompaniment block
      abcflax export melody.musicxml -o melody.abc
      abcflax export old-tunebook.abc -o old.musicxml --repair
    """
    import abcflax

    abc, name = abcflax.read_abc_input(source)
    if repair:
        abc, notes = abcflax.repair_tunebook(abc, name)
        for note in notes:
            click.echo(f"abcflax: warning: {note}", err=True)
    # warnings (repeats that cannot be played, ...) become "abcflax: warning:" lines in cli_errors
    paths = abcflax.write_output(abc, out, fmt=fmt, force=force, source=name, instrument=instrument, tempo=tempo,
                                 accompaniment=accompaniment)
    if paths != ["-"]:
        for path in paths:
            click.echo(path, err=True)
