"""abcflax evaluate."""

from __future__ import annotations

import sys
import warnings

import click

from .common import cli_errors, require_stdout
from .options import model_option


@click.command("evaluate")
@click.argument("tunebook", nargs=-1, required=True)
@model_option
@click.option("--quiet", is_flag=True, help="No warnings on stderr (errors are still shown).")
@cli_errors
def evaluate_command(tunebook, model_path, quiet):
    """Bits per character of the model over whole tunes in TUNEBOOK (files, folders, music21:NAME, - for stdin).

    Tunes are normalized as for training and scored with teacher forcing, the LSTM state carried through
    each tune. Characters of titles and other text fields that the model does not know are left out (a
    warning says how many), as continue leaves them out. A bad tune is reported (FILE:LINE:COL: why) and not
    scored; the others still are, and the exit code is 1. The last line is exactly:
    bpc=<float> chars=<int> tunes=<int>
    """
    import abcflax
    from abcflax.tunebook import source_texts, tunes_as_read

    require_stdout()  # the bpc line is the result
    books = list(source_texts(list(tunebook)))  # every file read (and refused) before the model is loaded
    model = abcflax.load_model(model_path)
    texts, problems, left_out = tunes_as_read(books, set(model.vocab.chars))
    for problem in problems:  # the tunebook policy (README): each bad tune named, the good ones still scored
        click.echo(f"abcflax: error: {problem}", err=True)
    if not texts:
        if problems:
            sys.exit(1)
        raise abcflax.InputError(f"{' '.join(tunebook)}: no tune to evaluate")
    if left_out:  # one "abcflax: warning:" line, none with --quiet
        shown = ", ".join(repr(ch) for ch in sorted(set(left_out))[:8])
        warnings.warn(f"{len(left_out)} characters of titles or other text fields are not in the model's "
                      f"vocabulary and were left out ({shown})", abcflax.AbcflaxWarning, stacklevel=1)
    if model.reverse:  # a right-to-left model (train --reverse) reads every tune from its end
        texts = [text[::-1] for text in texts]
    bpc, chars = abcflax.bits_per_char(model.module, model.vocab, texts)
    click.echo(f"bpc={bpc:.4f} chars={chars} tunes={len(texts)}")
    sys.exit(1 if problems else 0)
