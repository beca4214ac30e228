"""abcflax check: report bar-length, balance and syntax problems in an ABC file."""

from __future__ import annotations

import sys

import click

from .common import cli_errors


@click.command("check")
@click.argument("file")
@click.option("--quiet", is_flag=True, help="Print nothing on stderr when the file is clean.")
@cli_errors
def check_command(file, quiet):
    """Check the tunes in FILE (or - for stdin) without music21 or a model.

    Prints one line per problem as FILE:LINE:COL: MESSAGE and exits 1 when there are any;
    exits 0 when every tune looks valid.

    \b
    Example:
      abcflax check tune.abc
      abcflax continue tune.abc | abcflax check -
    """
    import abcflax
    from abcflax.inputs import read_abc_text

    # ABC text only: line numbers in a MIDI or MusicXML file converted to ABC would point nowhere useful
    source = "<stdin>" if file == "-" else file
    text = read_abc_text(file)
    problems = abcflax.check_text(text, source)
    if problems and sys.stdout is None:  # started with stdout closed: the list would go nowhere
        raise abcflax.InputError(f"{source}: {len(problems)} problem{'s' if len(problems) != 1 else ''} "
                                 "(not listed: stdout is closed)")
    for line in problems:
        click.echo(line)
    if problems:
        # the problems are the output (stdout); stderr gets the one-line verdict every command gives
        click.echo(f"abcflax: error: {source}: {len(problems)} problem{'s' if len(problems) != 1 else ''}",
                   err=True)
        sys.exit(1)
    if not quiet:
        tunes, _ = abcflax.read_tunebook(text, source)
        click.echo(f"ok: {len(tunes)} tune{'s' if len(tunes) != 1 else ''}", err=True)
