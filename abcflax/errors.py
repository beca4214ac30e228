"""The one error type abcflax raises for bad input, bad files and bad checkpoints.

The CLI turns an ``AbcflaxError`` into one line on stderr and exit code 1; anything
else escaping is a bug.
"""


class AbcflaxError(Exception):
    """Bad input, a bad file or a bad checkpoint; the message is meant for the user."""

    exit_code = 1


class InputError(AbcflaxError):
    """Input text or file that abcflax cannot use (the message names where)."""


class CheckpointError(AbcflaxError):
    """A checkpoint that is missing, corrupt, truncated or of the wrong kind."""


class UsageError(AbcflaxError):
    """Options that do not fit together."""

    exit_code = 2


class AbcflaxWarning(UserWarning):
    """Something the user should know that does not stop the work (``warnings.warn(..., AbcflaxWarning)``); the
    CLI shows it as one ``abcflax: warning:`` line. Plugins may use it too."""
