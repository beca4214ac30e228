"""abcflax continue."""

from __future__ import annotations

import sys

import click

from .common import cli_errors, require_stdout
from .options import model_option, output_options, sampling_kwargs, sampling_options


@click.command("continue")
@click.argument("file", default="-")
@model_option
@sampling_options
@output_options
@click.option("--quiet", is_flag=True, help="No messages on stderr.")
@cli_errors
def continue_command(file, model_path, output, fmt, force, quiet, **options):
    """Continue the tune(s) in FILE (ABC; - for stdin) and print the whole tune(s).

    A tunebook is continued tune by tune, in order, into one output tunebook.

    \b
    Examples:
      abcflax continue data/examples/the_kesh.abc
      abcflax continue tune.abc --bars 8 --seed 3 -o tune.musicxml
    """
    import abcflax
    from abcflax.runtime import check_sampling_environment

    check_sampling_environment()
    text, source = abcflax.read_abc_input(file)
    plain_stdout = output == "-" and fmt in (None, "abc")  # plain ABC to stdout needs no exporter (nor music21)
    if not plain_stdout:
        abcflax.check_output(output, fmt=fmt, force=force)  # before, not after, sampling
    if output == "-":  # MusicXML to a closed stdout was refused only after sampling
        require_stdout()
    model = abcflax.load_model(model_path)  # a bad model is one error line, not one after "continuing..."
    announce = None if quiet else (lambda count: click.echo(
        f"continuing {count} tunes..." if count > 1 else "continuing...", err=True))
    result, problems = abcflax.complete_tunebook(text, source, model=model, on_start=announce,
                                                 **sampling_kwargs(options))
    for problem in problems:
        click.echo(f"abcflax: error: {problem}", err=True)
    if result and plain_stdout:
        click.echo(result, nl=False)
    elif result:
        abcflax.write_output(result, output, fmt=fmt, force=force)
    sys.exit(1 if problems else 0)
