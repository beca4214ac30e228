"""abcflax command line: each command parses, calls one public function, formats the result.

Commands load lazily (click's LazyGroup pattern), so ``abcflax --help`` never imports JAX or music21.
"""

from __future__ import annotations

import os
import sys

from .common import main_group

# commands that leave nothing running when they return: once their output is flushed the process may end at
# once (``train`` is not among them: JAX's exit handlers shut a multi-process run's distributed client down)
QUICK_EXIT_COMMANDS = frozenset({"continue", "compose", "harmonize", "export", "check", "evaluate"})


def main() -> None:
    try:
        main_group(prog_name="abcflax")
    except SystemExit as exc:
        if _command(sys.argv[1:]) in QUICK_EXIT_COMMANDS and "jax" in sys.modules and not _threads_left():
            _exit_now(exc.code)
        raise


def _command(args: list[str]) -> str | None:
    """The subcommand named on the command line (the group's own options all start with '-')."""
    return next((arg for arg in args if not arg.startswith("-")), None)


def _threads_left() -> bool:
    """Whether a Python thread that the interpreter would wait for at exit is still running (a plugin's
    writer, say): then the process ends the usual way, after it."""
    import threading

    return any(thread.is_alive() and not thread.daemon for thread in threading.enumerate()
               if thread is not threading.main_thread())


def _exit_now(code) -> None:
    """End the process without the interpreter's teardown: with JAX loaded, tearing down its CPU client,
    thread pools and caches took 0.15-0.2 s after every command (benchmarks/RESULTS.md, session 19), more than
    a tenth of a warm ``abcflax continue``. Everything the command wrote is flushed first; a stdout that cannot
    take what is left (a full disk, a reader gone) is reported as the commands report it."""
    status = 0 if code is None else code if isinstance(code, int) else 1
    if isinstance(code, str):
        print(code, file=sys.stderr)
    try:
        if sys.stdout is not None:  # None: started with stdout closed (the command has said so)
            sys.stdout.flush()
    except BrokenPipeError:
        status = status or 1  # the reader went away: nothing to report (as cli_errors does)
    except OSError as exc:
        print(f"abcflax: error: cannot write to stdout: {exc.strerror or exc}", file=sys.stderr)
        status = status or 1
    try:
        sys.stderr.flush()
    except OSError:
        pass
    os._exit(status)


if __name__ == "__main__":
    main()
