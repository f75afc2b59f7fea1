"""The one exception tree of streamconv.

::

    StreamconvError              anything streamconv raises on purpose; the CLI prints it as
    |                            ``error: <message>`` and exits with ``exit_code``
    +-- UsageError        (2)    bad command line, bad config, bad input file or sample
    |   +-- CommandLineError (2) a mistake on the command line itself: the CLI adds a
    |   |                        ``hint:`` line, as to argparse's own usage errors
    |   +-- ConfigError   (2)    a config that does not validate (every problem listed)
    +-- RuntimeFailure    (1)    the environment failed: device lost for good, disk full

Invalid arguments to the Python API (wrong shapes, NaN taps, ...) raise the built-in
``ValueError`` / ``TypeError`` as numpy and scipy do; where those come from a user's input,
the command that passed it wraps them in a ``UsageError`` naming the file or option. The CLI
does not catch them itself: anything else that escapes is a bug and keeps its traceback.
"""

from __future__ import annotations


class StreamconvError(Exception):
    """Base class of every error streamconv raises on purpose."""

    exit_code = 1


class UsageError(StreamconvError):
    """The user asked for something that cannot be done: bad arguments, file, or samples."""

    exit_code = 2


class CommandLineError(UsageError):
    """A mistake on the command line itself: an option or value the command cannot take, or
    options that do not go together. The CLI prints ``hint: streamconv CMD --help ...`` after
    it, as after argparse's own errors; a bad file, config or sample named on the command line
    is a plain `UsageError` (its ``--help`` would not help)."""


class ConfigError(UsageError):
    """A configuration that does not validate; ``errors`` lists every problem found."""

    def __init__(self, message: str, errors: list[str] | None = None):
        super().__init__(message)
        self.errors = list(errors or [])


class RuntimeFailure(StreamconvError):
    """A failure of the environment rather than of the input (device gone, disk full)."""

    exit_code = 1
