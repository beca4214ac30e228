"""Shared CLI plumbing: the group, one-line errors, --debug."""

from __future__ import annotations

import functools
import os
import sys

import click

DEBUG_ENV = "ABCFLAX_DEBUG"


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="abcflax")
@click.option("--debug", is_flag=True, envvar=DEBUG_ENV, help="Show a traceback on errors.")
@click.pass_context
def main_group(ctx, debug):
    """abcflax: continue, harmonize and export folk tunes in ABC notation.

    \b
    Examples:
      abcflax continue data/examples/the_kesh.abc
      abcflax continue tune.abc --bars 8 -o longer.abc
      abcflax harmonize melody.abc -o chords.abc
      abcflax compose seeds.txt -n 3 --out-dir tunes/
      abcflax export tune.abc -o tune.musicxml
      abcflax train corpus/ --out runs/mine
    """
    ctx.ensure_object(dict)
    ctx.obj["debug"] = debug


def _debug_enabled() -> bool:
    ctx = click.get_current_context(silent=True)
    root = ctx.find_root() if ctx else None
    return bool(root and root.obj and root.obj.get("debug")) or bool(os.environ.get(DEBUG_ENV))


def cli_errors(func):
    """Turn abcflax errors (and anything unexpected) into one line on stderr and a non-zero exit."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        from abcflax.errors import AbcflaxError

        try:
            return func(*args, **kwargs)
        except (click.exceptions.Exit, click.ClickException, click.Abort):
            raise
        except AbcflaxError as exc:
            if _debug_enabled():
                raise
            click.echo(f"abcflax: error: {exc}", err=True)
            sys.exit(exc.exit_code)
        except KeyboardInterrupt:
            click.echo("abcflax: interrupted", err=True)
            sys.exit(130)
        except MemoryError:
            click.echo("abcflax: error: out of memory", err=True)
            sys.exit(1)
        except Exception as exc:  # noqa: BLE001 - the promise is: no traceback without --debug
            if _debug_enabled():
                raise
            click.echo(f"abcflax: internal error: {type(exc).__name__}: {exc} (rerun with --debug)", err=True)
            sys.exit(1)

    return wrapper
