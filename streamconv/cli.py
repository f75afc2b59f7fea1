"""The ``streamconv`` command: parse arguments, call the library, map errors to exit codes.

Each subcommand lives in ``streamconv/commands/<name>.py`` with ``register(subparsers)``, which
adds its parser and sets ``run=<function(args) -> int>`` as a default.

Exit codes: 0 success; 1 runtime failure; 2 bad usage, config or input; 130 interrupted.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from streamconv import __version__
from streamconv.errors import StreamconvError

# numpy's OpenBLAS starts a thread per core when it loads (numpy loads with the command's
# module, below), which costs every run ~50 ms of CPU and start-up; streamconv makes no large
# BLAS calls and runs its own threads.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

# Order here is the order of `streamconv --help`.
COMMAND_MODULES: list[str] = ["run", "filter", "match", "devices", "check", "design"]


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The argument parser; with ``only``, just that subcommand's (its imports are the
    startup time of every run, so a run imports only its own command)."""
    parser = argparse.ArgumentParser(
        prog="streamconv",
        description="Streaming convolution and pattern matching for audio and sensor streams.",
    )
    parser.add_argument("--version", action="version", version=f"streamconv {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES if only is None else [only]:
        importlib.import_module(f"streamconv.commands.{name}").register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command line; return the exit code."""
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser(argv[0] if argv and argv[0] in COMMAND_MODULES else None)
    args = parser.parse_args(argv)
    if not getattr(args, "run", None):
        parser.print_help(sys.stderr)
        return 2
    try:
        return int(args.run(args) or 0)
    except KeyboardInterrupt:
        return 130
    except StreamconvError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code


if __name__ == "__main__":
    sys.exit(main())
