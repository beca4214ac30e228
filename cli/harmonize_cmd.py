"""abcflax harmonize."""

from __future__ import annotations

import os
import sys

import click

from .common import cli_errors, require_stdout


@click.command("harmonize")
@click.argument("source", metavar="FILE|-")
@click.option("-o", "--out", default="-", show_default=True,
              help="Output file: .abc (or -, stdout) gets ABC; other extensions export (.musicxml, .mid, ...).")
@click.option("--per", type=click.Choice(["auto", "bar", "half", "beat"]), default="auto", show_default=True,
              help="Harmonic rhythm: a chord per bar, half bar or beat; auto chooses by meter.")
@click.option("--method", type=click.Choice(["model", "rules"]), default="model", show_default=True,
              help="model: the LSTM scores the chords in context (beam search); rules: in-key triad baseline.")
@click.option("--keep-existing", is_flag=True, help="Keep the tune's own chord symbols and fill in the rest.")
@click.option("--beam", type=click.IntRange(1, 64), default=4, show_default=True, help="Beam width of the search.")
@click.option("--model", "model_path", type=click.Path(), envvar="ABCFLAX_MODEL",
              help="Model folder or checkpoint (default: the bundled model).")
@click.option("--reverse-model", "reverse_path", metavar="MODEL|none", default="auto", show_default=True,
              help="Right-to-left model (train --reverse) that refines the chords with the melody after them; "
                   "auto: the reverse.msgpack beside the model (the bundled model has one); none: off.")
@click.option("--force", is_flag=True, help="Overwrite an existing output file.")
@click.option("--quiet", is_flag=True, help="No progress bar for a tunebook, no warnings.")
@cli_errors
def harmonize_command(source, out, per, method, keep_existing, beam, model_path, reverse_path, force, quiet):
    """Add chord symbols to the melody in FILE (or - for stdin); every tune of a tunebook is harmonized.

    The melody, header and layout are kept exactly; only chord symbols ("G", "D7", "Em") are added in
    front of the notes that start each bar, half bar or beat (existing chords are replaced unless
    --keep-existing).

    \b
    Examples:
      abcflax harmonize melody.abc -o chords.abc
      abcflax harmonize melody.abc --per bar --method rules
      cat melody.abc | abcflax harmonize - -o chords.musicxml
    """
    import abcflax

    text, name = abcflax.read_abc_input(source)
    if out != "-":
        abcflax.check_output_path(out, force=force)  # before, not after, the harmonizing
    else:
        require_stdout()
    tunes = len(abcflax.read_tunebook(text, name)[0])
    with click.progressbar(length=tunes, label="harmonizing", file=sys.stderr,  # a terminal only, a tunebook only
                           hidden=quiet or tunes < 2 or not sys.stderr.isatty()) as bar:
        result, problems = abcflax.harmonize_tunebook(
            text, model=model_path if method == "model" else None, per=per, method=method,
            keep_existing=keep_existing, beam=beam, source=name, on_tune=lambda done, total: bar.update(1),
            reverse_model=None if reverse_path.lower() == "none" else reverse_path)
    for problem in problems:  # the tunebook policy (README): each bad tune named, the good ones still written
        click.echo(f"abcflax: error: {problem}", err=True)
    if result:
        _write(result if result.endswith("\n") else result + "\n", out, force, name)
    sys.exit(1 if problems else 0)


def _write(result: str, out: str, force: bool, name: str) -> None:
    import abcflax
    from abcflax.atomic import write_text

    if out == "-":
        click.echo(result, nl=False)
    elif os.path.splitext(out)[1].lower() in ("", ".abc"):
        write_text(out, result, force=force)
    else:
        abcflax.write_output(result, out, force=force, source=name)
