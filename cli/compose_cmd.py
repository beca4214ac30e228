"""abcflax compose."""

from __future__ import annotations

import sys
import time

import click

from .common import cli_errors, require_stdout
from .options import model_option, sampling_kwargs, sampling_options

EXTENSIONS = {"abc": ".abc", "musicxml": ".musicxml", "mxl": ".mxl", "mid": ".mid"}


def _formats(text: str | None, out_dir: str | None) -> list[str]:
    """--format as a list; several formats only with --out-dir (one file per tune and format)."""
    from abcflax.errors import UsageError
    from abcflax.plugins import find_exporter

    names = [part.strip().lower() for part in (text or "").split(",") if part.strip()]
    for name in names:
        find_exporter(name)  # unknown names fail now, before any sampling
    if len(names) > 1 and not out_dir:
        raise UsageError("several --format values need --out-dir (one file per tune and format)")
    return names or (["abc"] if out_dir else [])


def _extension(fmt: str) -> str:
    from abcflax.plugins import find_exporter

    return EXTENSIONS.get(fmt) or find_exporter(fmt).extensions[0]


def _out_paths(out_dir: str, plans, formats: list[str], force: bool) -> list[dict[str, str]]:
    """Per tune, format -> path in ``out_dir`` (names from T:); refuses existing files without --force."""
    from pathlib import Path

    import abcflax
    from abcflax.composer import safe_file_names

    folder = Path(out_dir)
    stems = safe_file_names([plan.title for plan in plans])
    paths = [{fmt: str(folder / f"{stem}{_extension(fmt)}") for fmt in formats} for stem in stems]
    for row in paths:
        for path in row.values():
            abcflax.check_output_path(path, force=force)
    return paths


TUNE_SOURCE = "<text>"  # how write_output names the tune it was given: its errors about the tune start so


def _write_tune(tune, paths: dict[str, str], force: bool) -> str | None:
    """Write one tune in every format; the error line when the tune cannot be exported (the other tunes go
    on). An error about the output (a full disk, a folder that takes no files) stops the run, as one line:
    every other tune would fail alike."""
    import abcflax
    from abcflax.errors import AbcflaxError

    for fmt, path in paths.items():
        try:
            abcflax.write_output(tune.text, path, fmt=fmt, force=force, source=TUNE_SOURCE)
        except AbcflaxError as exc:
            if not str(exc).startswith(f"{TUNE_SOURCE}:"):
                raise
            return f"tune {tune.number} ({tune.title}): {path}: {exc}"
    return None


@click.command("compose")
@click.argument("seeds_file", metavar="SEEDS")
@click.option("-n", "per_seed", type=click.IntRange(1, 100_000), default=1, show_default=True,
              help="Tunes per seed.")
@click.option("-o", "--output", default="-", show_default=True,
              help="Tunebook file for all tunes (.abc; other formats give one file per tune); - for stdout.")
@click.option("--out-dir", type=click.Path(file_okay=False),
              help="Write one file per tune and format into this folder, named from T: titles.")
@click.option("--format", "formats", metavar="FORMATS",
              help="Comma-separated formats: abc, musicxml, mxl, mid (default: abc; with -o from its extension).")
@model_option
@sampling_options
@click.option("--batch-size", type=click.IntRange(1, 4096),
              help="Tunes sampled together (default: chosen for this machine, a power of two).")
@click.option("--force", is_flag=True, help="Overwrite existing output files.")
@click.option("--quiet", is_flag=True, help="No progress bar or summary on stderr.")
@cli_errors
def compose_command(seeds_file, per_seed, output, out_dir, formats, model_path, batch_size, force, quiet,
                    **options):
    """Write N new tunes for every seed in SEEDS (a file; - for stdin).

    \b
    A seed is one of:
      a partial tune     X:1 / T:The Kesh / M:6/8 / L:1/8 / K:G / |:GAG GAB|...  (continued)
      a header           M:6/8 on one line, K:G on the next                     (one seed)
      one line           K:Ador    R:reel    M:6/8 K:D    T:Morning Star R:reel K:D
    Lines starting with % and blank lines are ignored; a blank line ends a seed. Without X:, field lines
    group into one seed until its K: line; a line that repeats a field (R:reel then R:jig) starts a new seed.
    Missing fields get defaults: M: by R: (reel 4/4, jig 6/8, slip jig 9/8, waltz 3/4, polka 2/4...), L:1/8,
    K:G, and a title such as "Reel in D no. 3".

    Tunes are numbered X:1..N across the output and sampled in batches; tune k depends only on --seed and
    its position, so it is the same in any batch. A bad seed is reported (file:line and the seed) and
    skipped; the exit code is then 1.

    \b
    Examples:
      abcflax compose seeds.txt -n 4 -o tunes.abc
      abcflax compose seeds.txt -n 2 --out-dir tunes/ --format abc,musicxml,mid --seed 7
    """
    import abcflax
    from abcflax.composer import plan_tunes
    from abcflax.errors import UsageError
    from abcflax.runtime import check_sampling_environment

    check_sampling_environment()
    if out_dir and output != "-":
        raise UsageError("choose one of -o (one tunebook) and --out-dir (one file per tune)")
    fmts = _formats(formats, out_dir)
    if not out_dir:  # before, not after, sampling (a closed stdout or -o - --format mid was refused after it)
        abcflax.check_output(output, fmt=fmts[0] if fmts else ("abc" if output == "-" else None), force=force)
        if output == "-":
            require_stdout()
    text, source = abcflax.read_abc_input(seeds_file)
    problems: list[str] = []

    def report(problem: str) -> None:
        problems.append(problem)
        click.echo(f"abcflax: error: {problem}", err=True)

    kwargs = sampling_kwargs(options)
    model = abcflax.load_model(model_path)
    plans = plan_tunes(text, per_seed, model=model, constrain=kwargs["constrain"], source=source,
                       on_problem=report)
    paths = _out_paths(out_dir, plans, fmts, force) if out_dir else []
    tunes = abcflax.compose(plans, model=model, batch_size=batch_size, on_problem=report, **kwargs)
    done, chars, started = [], 0, time.perf_counter()
    with click.progressbar(length=len(plans), label="composing", file=sys.stderr,
                           hidden=quiet or not plans) as bar:
        for tune in tunes:
            done.append(tune)
            chars += tune.generated
            if out_dir:
                failed = _write_tune(tune, paths[tune.number - 1], force)
                if failed:
                    report(failed)
            bar.update(1)
    seconds = time.perf_counter() - started
    if done and not out_dir:
        book = "\n".join(tune.text.rstrip("\n") + "\n" for tune in done)
        abcflax.write_output(book, output, fmt=fmts[0] if fmts else ("abc" if output == "-" else None), force=force)
    if not quiet and (done or not problems):  # a refused seeds file is its error lines alone
        valid = sum(tune.valid for tune in done)
        click.echo(f"{len(done)} tunes, {valid} valid, {len(problems)} problems; {chars:,} characters in "
                   f"{seconds:.1f} s ({chars / max(seconds, 1e-9):,.0f} chars/s)", err=True)
    sys.exit(1 if problems else 0)
