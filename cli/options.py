"""Options shared by the commands that generate music."""

from __future__ import annotations

import math

import click

import abcflax

MODEL_HELP = "Model folder or checkpoint file (default: $ABCFLAX_MODEL, else the bundled model)."


class FiniteFloatRange(click.FloatRange):
    """click's FloatRange that also refuses nan and inf: NaN passes every comparison a range check makes."""

    def convert(self, value, param, ctx):
        number = super().convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number.", param, ctx)
        return number


class Seed(click.ParamType):
    """Any integer, taken modulo 2**32 as the sampler takes it (JAX's keys hold 32 bits): ``-1`` is
    4294967295, for continue and train alike. (Train's data order once crashed on a negative seed and
    overflowed on one past 64 bits.)"""

    name = "integer"

    def convert(self, value, param, ctx):
        from abcflax.config import SEED_MODULUS

        return click.INT.convert(value, param, ctx) % SEED_MODULUS


SEED = Seed()


def model_option(func):
    return click.option("--model", "model_path", type=click.Path(), envvar="ABCFLAX_MODEL",
                        help=MODEL_HELP)(func)


def sampling_options(func):
    """--temperature --top-k --top-p --seed --max-chars --bars --until --part-bars --candidates --no-constrain."""
    decorators = [
        click.option("--temperature", type=FiniteFloatRange(min=0), default=1.0, show_default=True,
                     help="Sampling temperature (0 = always the likeliest character)."),
        click.option("--top-k", type=click.IntRange(min=0), default=0, help="Sample from the k likeliest (0 = off)."),
        click.option("--top-p", type=FiniteFloatRange(0, 1, min_open=True), default=1.0,
                     help="Nucleus sampling threshold (1 = off)."),
        click.option("--seed", type=SEED, default=0, show_default=True,
                     help="Random seed: same seed, same tune (any integer, taken modulo 2**32)."),
        click.option("--max-chars", type=click.IntRange(1, 20000), default=1200, show_default=True,
                     help="Most characters to add (at least 200 unless --no-constrain: room to finish a bar "
                          "and end the tune)."),
        click.option("--bars", type=click.IntRange(1, 100_000), help="Add this many bars, then end the tune."),
        click.option("--until", type=click.Choice(["end", "section"]), default="end", show_default=True,
                     help="Finish the whole tune, or only the current part (closed after at most 16 new bars "
                          "unless --bars says otherwise)."),
        click.option("--part-bars", type=click.IntRange(0, abcflax.MAX_PART_BARS), default=None,
                     help="Bars in each part (up to ||, :| or |]); 0: any length. Default: the prompt's own "
                          "last part, else 8 (or 4)."),
        click.option("--candidates", type=click.IntRange(1, abcflax.MAX_CANDIDATES), default=abcflax.DEFAULT_CANDIDATES,
                     show_default=True,
                     help="Draw this many continuations in one batch; keep the first that ends on the key's tonic "
                          "(else on its tonic chord). 1 = the first draw alone, fastest."),
        click.option("--no-constrain", is_flag=True, help="Raw sampling without the validity constraints."),
    ]
    for decorator in reversed(decorators):
        func = decorator(func)
    return func


def output_options(func):
    """-o/--output, --format, --force."""
    func = click.option("--force", is_flag=True, help="Overwrite an existing output file.")(func)
    func = click.option("--format", "fmt", type=click.Choice(["abc", "musicxml", "mxl", "mid"]),
                        help="Output format (default: from the -o extension).")(func)
    return click.option("-o", "--output", default="-", show_default=True,
                        help="Output file (.abc .musicxml .mxl .mid); - for stdout.")(func)


def sampling_kwargs(options: dict) -> dict:
    return dict(temperature=options["temperature"], top_k=options["top_k"] or None, top_p=options["top_p"],
                seed=options["seed"], max_chars=options["max_chars"], bars=options["bars"],
                until=options["until"], constrain=not options["no_constrain"], candidates=options["candidates"],
                part_bars=options["part_bars"])
