"""Shared CLI plumbing: the group, one-line errors, --debug."""

from __future__ import annotations

import contextlib
import functools
import os
import sys
import warnings

import importlib
import importlib.util

import click

DEBUG_ENV = "ABCFLAX_DEBUG"

# command name -> "module:attribute" inside this package; each module holds one command
COMMANDS = {
    "continue": "continue_cmd:continue_command",
    "harmonize": "harmonize_cmd:harmonize_command",
    "compose": "compose_cmd:compose_command",
    "export": "export_cmd:export_command",
    "check": "check_cmd:check_command",
    "evaluate": "evaluate_cmd:evaluate_command",
    "train": "train_cmd:train_command",
    "plugins": "plugins_cmd:plugins_command",
}


class LazyGroup(click.Group):
    """A group whose subcommands are imported only when they are run (or their help is shown)."""

    def _available(self) -> list[str]:
        package = __name__.rpartition(".")[0]
        return [name for name, target in COMMANDS.items()
                if importlib.util.find_spec(f"{package}.{target.split(':')[0]}") is not None]

    def list_commands(self, ctx):
        return sorted(set(super().list_commands(ctx)) | set(self._available()))

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        """click's main, but a usage error is one line on stderr (exit 2), like every other abcflax error."""
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode, **extra)
        try:
            code = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except click.UsageError as exc:
            command = exc.ctx.command_path if exc.ctx else (prog_name or "abcflax")
            click.echo(f"abcflax: error: {exc.format_message()} (see {command} --help)", err=True)
            sys.exit(exc.exit_code)
        except click.ClickException as exc:
            exc.show()
            sys.exit(exc.exit_code)
        except click.Abort:
            click.echo("abcflax: interrupted", err=True)
            sys.exit(130)
        sys.exit(code if isinstance(code, int) else 0)  # non-standalone click returns --help's and Exit's codes

    def get_command(self, ctx, name):
        if name in COMMANDS and name in self._available():
            module_name, attribute = COMMANDS[name].split(":")
            package = __name__.rpartition(".")[0]
            return getattr(importlib.import_module(f"{package}.{module_name}"), attribute)
        return super().get_command(ctx, name)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
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
    return bool(root and root.obj and root.obj.get("debug")) or _env_debug()


def _env_debug() -> bool:
    """ABCFLAX_DEBUG read as click reads the --debug flag from it: ``0``, ``false``, ``no`` are off (a mere
    ``bool()`` of the text turned tracebacks on for ``ABCFLAX_DEBUG=0``)."""
    try:
        return click.BOOL.convert(os.environ.get(DEBUG_ENV, ""), None, None)
    except click.BadParameter:  # the group itself refuses such a value with a usage error
        return False


def require_stdout() -> None:
    """An InputError when the command was started with stdout closed (``abcflax harmonize tune.abc >&-``):
    Python then sets ``sys.stdout`` to None and ``click.echo`` drops the result without a word, exit 0. Called
    before the work by every command whose result goes to stdout."""
    if sys.stdout is None:
        from abcflax.errors import InputError

        raise InputError("cannot write to stdout: it is closed")


def _writing_stdout(exc: OSError) -> bool:
    """Whether ``exc`` came from ``click.echo`` writing to stdout, as the commands print their results. (The
    library's own writes already say which: an AbcflaxError naming the file, or "cannot write to stdout".)"""
    trace = exc.__traceback__
    while trace is not None:
        frame = trace.tb_frame
        if frame.f_code is click.echo.__code__ and not frame.f_locals.get("err"):
            return True
        trace = trace.tb_next
    return False


def _settle_stdout() -> None:
    """Flush what stdout still holds; when it cannot take it (a full disk, a reader gone), point stdout at
    /dev/null, or Python's own flush at exit fails again and prints "Exception ignored ..." (the Python
    documentation's advice for broken pipes)."""
    try:
        if sys.stdout is not None:
            sys.stdout.flush()
        return
    except OSError:
        pass
    try:
        fd = sys.stdout.fileno()
    except (ValueError, OSError):  # no file descriptor: click's test runner
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, fd)
    os.close(devnull)


@contextlib.contextmanager
def _warnings_as_lines(quiet: bool):
    """abcflax's own warnings (``AbcflaxWarning``, a plugin's too) as one ``abcflax: warning:`` line each on
    stderr, none with --quiet. Other libraries' warnings (music21, JAX) tell the user nothing they can act on
    and are not shown. With --debug, Python shows every warning as usual."""
    if _debug_enabled():
        yield
        return
    from abcflax.errors import AbcflaxWarning

    def show(message, category, filename, lineno, file=None, line=None):
        if issubclass(category, AbcflaxWarning) and not quiet:
            click.echo(f"abcflax: warning: {message}", err=True)

    with warnings.catch_warnings():
        warnings.showwarning = show
        yield


def cli_errors(func):
    """Turn abcflax errors (and anything unexpected) into one line on stderr and a non-zero exit; abcflax's
    warnings into one line each (none with the command's --quiet)."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        from abcflax.errors import AbcflaxError

        try:
            with _warnings_as_lines(quiet=bool(kwargs.get("quiet"))):
                return func(*args, **kwargs)
        except (click.exceptions.Exit, click.ClickException, click.Abort):
            raise
        except AbcflaxError as exc:
            if _debug_enabled():
                raise
            click.echo(f"abcflax: error: {exc}", err=True)
            _settle_stdout()  # a stdout that failed (a full disk) must not fail once more at exit
            sys.exit(exc.exit_code)
        except KeyboardInterrupt:
            click.echo("abcflax: interrupted", err=True)
            sys.exit(130)
        except MemoryError:
            click.echo("abcflax: error: out of memory", err=True)
            sys.exit(1)
        except BrokenPipeError:
            # the reader went away (``abcflax continue ... | head -1``): nothing to report. abcflax writes to no
            # pipe of its own (a FIFO given as -o is reported with its path), so this was stdout or stderr
            _settle_stdout()
            sys.exit(1)  # as click does for --help into a closed pipe, and as the Python documentation does
        except OSError as exc:
            if _debug_enabled():
                raise
            if not _writing_stdout(exc):
                _report_internal_error(exc)
            click.echo(f"abcflax: error: cannot write to stdout: {exc.strerror or exc}", err=True)
            _settle_stdout()
            sys.exit(1)
        except Exception as exc:  # noqa: BLE001 - the promise is: no traceback without --debug
            if _debug_enabled():
                raise
            _report_internal_error(exc)

    return wrapper


def _report_internal_error(exc: Exception) -> None:
    click.echo(f"abcflax: internal error: {type(exc).__name__}: {exc} (rerun with --debug)", err=True)
    sys.exit(1)
