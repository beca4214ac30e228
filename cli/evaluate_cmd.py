"""abcflax evaluate."""

from __future__ import annotations

import click

from .common import cli_errors
from .options import model_option


@click.command("evaluate")
@click.argument("tunebook", nargs=-1, required=True)
@model_option
@cli_errors
def evaluate_command(tunebook, model_path):
    """Bits per character of the model over whole tunes in TUNEBOOK (files, folders, music21:NAME).

    Tunes are normalized as for training and scored with teacher forcing, the LSTM state carried
    through each tune. The last line is exactly: bpc=<float> chars=<int> tunes=<int>
    """
    import abcflax

    texts, problems = abcflax.load_corpus(list(tunebook))
    for problem in problems:
        click.echo(f"skipped: {problem}", err=True)
    if not texts:
        raise abcflax.InputError(f"{' '.join(tunebook)}: no tune to evaluate")
    model = abcflax.load_model(model_path)
    bpc, chars = abcflax.bits_per_char(model.module, model.vocab, texts)
    click.echo(f"bpc={bpc:.4f} chars={chars} tunes={len(texts)}")
