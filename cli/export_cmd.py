"""abcflax export."""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path

import click

from .common import cli_errors, require_stdout
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

    A tunebook becomes one .abc file, or one file per tune (OUT-<X>.ext) in the other formats. A bad tune is
    reported (FILE:LINE:COL: why) and left out, the others are still written, and the exit code is 1.

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
    options = dict(instrument=instrument, tempo=tempo, accompaniment=accompaniment)
    exporter = abcflax.check_output(out, fmt=fmt, force=force)
    if out == "-":  # refused now, not after the rendering
        require_stdout()
    if exporter.tunebook:
        paths, problems = _export_book(abc, name, out, fmt, force, options)
    else:
        paths, problems = _export_each(abc, name, out, fmt, force, options)
    for problem in problems:  # the tunebook policy (README): each bad tune named, the good ones still written
        click.echo(f"abcflax: error: {problem}", err=True)
    if paths != ["-"]:
        for path in paths:
            click.echo(path, err=True)
    sys.exit(1 if problems else 0)


def _export_book(abc: str, name: str, out: str, fmt, force: bool, options: dict) -> tuple[list[str], list[str]]:
    """A format that holds a whole tunebook (ABC): one file of the good tunes, everything between them kept."""
    import abcflax
    from abcflax.abc_check import blocking_problem
    from abcflax.tunebook import map_tunes

    def exportable(text: str, first_line: int) -> str:
        """The tune unchanged, unless it has what every export refuses (notation software would misread it)."""
        problem = blocking_problem(text)
        if problem is not None:
            raise abcflax.InputError(f"{name}:{first_line + problem.line - 1}:{problem.column}: {problem.message}")
        return text

    problems: list[str] = []
    good = map_tunes(abc, exportable, name, problems)
    paths = abcflax.write_output(good, out, fmt=fmt, force=force, source=name, **options) if good else []
    return paths, problems


def _export_each(abc: str, name: str, out: str, fmt, force: bool, options: dict) -> tuple[list[str], list[str]]:
    """A format of one tune a file: every good tune to its own file, named as ``write_output`` names them
    (``OUT-<X>.ext``) from the whole book's tunes, so a bad tune renames no other."""
    import abcflax
    from abcflax.atomic import check_output_path, is_device_or_fifo
    from abcflax.export import _tune_paths
    from abcflax.tunebook import each_tune, read_tunebook, tune_in_place

    tunes = read_tunebook(abc, name)[0]
    if len(tunes) > 1 and (out == "-" or is_device_or_fifo(out)):  # no folder for OUT-<X> files: write_output
        return abcflax.write_output(abc, out, fmt=fmt, force=force, source=name), []  # refuses it, as one line
    names = _tune_paths(Path(out), tunes) if len(tunes) > 1 else [out]
    paths = {tune.line: str(path) for tune, path in zip(tunes, names)}
    if out != "-":
        for path in paths.values():  # refused now, before any rendering
            check_output_path(path, force=force)

    def write(tune) -> list[str]:
        with _output_errors_stop(name):  # the tune alone, at its own lines: messages name the file's lines
            return abcflax.write_output(tune_in_place(abc, tune), paths[tune.line], fmt=fmt, force=force,
                                        source=name, **options)

    done, problems = each_tune(abc, name, write)
    return [path for _, written in done for path in written], problems


@contextlib.contextmanager
def _output_errors_stop(name: str):
    """An error about the output (a full disk, a file that appeared) stops the export, as one line: only an
    error about a tune (it names the input) leaves that tune out and goes on to the next."""
    from abcflax.errors import AbcflaxError, InputError

    try:
        yield
    except InputError as exc:
        if str(exc).startswith(f"{name}:"):
            raise
        raise AbcflaxError(str(exc)) from None
