"""abcflax evaluate."""

from __future__ import annotations

import warnings

import click

from .common import cli_errors
from .options import model_option


@click.command("evaluate")
@click.argument("tunebook", nargs=-1, required=True)
@model_option
@click.option("--quiet", is_flag=True, help="No warnings (tunes skipped) on stderr.")
@cli_errors
def evaluate_command(tunebook, model_path, quiet):
    """Bits per character of the model over whole tunes in TUNEBOOK (files, folders, music21:NAME).

    Tunes are normalized as for training and scored with teacher forcing, the LSTM state carried
    through each tune. The last line is exactly: bpc=<float> chars=<int> tunes=<int>
    """
    import abcflax

    texts, problems = abcflax.load_corpus(list(tunebook))
    if not texts:  # one line: the first reason, or that there was nothing at all
        raise abcflax.InputError(f"no tune to evaluate: {problems[0]}" if problems
                                 else f"{' '.join(tunebook)}: no tune to evaluate")
    for problem in problems:  # one "abcflax: warning:" line each, none with --quiet
        warnings.warn(f"skipped {problem}", abcflax.AbcflaxWarning, stacklevel=1)
    model = abcflax.load_model(model_path)
    _require_known_characters(texts, model.vocab, tunebook)
    if model.reverse:  # a right-to-left model (train --reverse) reads every tune from its end
        texts = [text[::-1] for text in texts]
    bpc, chars = abcflax.bits_per_char(model.module, model.vocab, texts)
    click.echo(f"bpc={bpc:.4f} chars={chars} tunes={len(texts)}")


def _require_known_characters(texts: list[str], vocab, tunebook: tuple[str, ...]) -> None:
    """Refuse tunes with characters the model never saw (their bpc is undefined), naming the tune."""
    from abcflax import InputError

    known = set(vocab.chars)
    for text in texts:
        unknown = next((ch for ch in text if ch not in known), None)
        if unknown is not None:
            title = next((line[2:] for line in text.split("\n") if line.startswith("T:")), "untitled")
            raise InputError(f"{' '.join(tunebook)}: tune {title!r}: character {unknown!r} (U+{ord(unknown):04X}) "
                             "is not in the model's vocabulary")
