"""The ``streamconv`` command: parse arguments, call the library, map errors to exit codes.

Each subcommand lives in ``streamconv/commands/<name>.py`` with ``register(subparsers)``, which
adds its parser and sets ``run=<function(args) -> int>`` as a default.

Exit codes: 0 success; 1 runtime failure; 2 bad usage, config or input; 130 interrupted.

Every subcommand's ``--help`` ends with examples (`EXAMPLES`); a mistake on the command line is
one ``error:`` line and one ``hint:`` line (exit 2), not argparse's usage block: argparse's own
errors (`_Parser.error`) and the commands' `CommandLineError` alike. ``-v`` and
``-q`` are added to every subcommand here: ``-v`` shows the messages the sound libraries print
while they start (`streamconv.io.chatter`), ``-q`` hides progress and notes.
"""

from __future__ import annotations

import argparse
import difflib
import gc
import importlib
import os
import sys
from collections.abc import Mapping
from types import MappingProxyType

from streamconv import __version__
from streamconv.errors import CommandLineError, StreamconvError

# numpy's OpenBLAS starts a thread per core when it loads (numpy loads with the command's
# module, below), which costs every run ~50 ms of CPU and start-up; streamconv makes no large
# BLAS calls and runs its own threads.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

# = streamconv.io.chatter.VERBOSE_ENV, not imported from there: importing streamconv.io loads
# numpy, which `--version`, `--help` and a usage error should not wait for.
VERBOSE_ENV = "STREAMCONV_VERBOSE"

# Order here is the order of `streamconv --help`.
COMMAND_MODULES: list[str] = ["run", "filter", "match", "devices", "check", "design"]


#: The examples at the end of each subcommand's ``--help``.
EXAMPLES: dict[str, str] = {
    "run": """\
examples:
  streamconv run -c configs/default.toml
  streamconv check configs/default.toml && streamconv run -c configs/default.toml""",
    "filter": """\
examples:
  streamconv filter -i in.wav -o out.flac --fir lowpass.txt --tail
  sox in.flac -t wav - | streamconv filter -i - --type wav --fir lp.txt -o - | sox -t wav - out.flac
  streamconv filter -i sensors.csv --rate 100 --columns ax,ay -o smooth.csv --fir ma.txt
  streamconv filter -i device:USB -o device:0 --fir room_ir.wav --block 256""",
    "match": """\
examples:
  streamconv match recording.wav -t bell=bell.wav
  streamconv match archive/ -t bell.wav --jobs 2 -o detections.csv""",
    "devices": """\
examples:
  streamconv devices
  streamconv devices --json""",
    "check": """\
examples:
  streamconv check configs/default.toml
  streamconv check --schema > schema.json""",
    "design": """\
examples:
  streamconv design lowpass cutoff_hz=1000 transition_hz=200 attenuation_db=80 \\
      --rate 48000 --plot lp.svg > lp.txt
  streamconv design bandpass low_hz=300 high_hz=3000 taps=201 --rate 16000""",
}


class _HelpFormatter(argparse.HelpFormatter):
    """Wraps descriptions as usual, but keeps the line breaks of text that has some (the
    examples)."""

    def _fill_text(self, text, width, indent):
        if "\n" in text:
            return "".join(indent + line for line in text.splitlines(keepends=True))
        return super()._fill_text(text, width, indent)


def _help_hint(parser: argparse.ArgumentParser) -> str:
    """The ``hint:`` line of a mistake on a command's command line."""
    return f"{parser.prog} --help shows the options and examples"


class _Parser(argparse.ArgumentParser):
    """A parser whose usage errors are one ``error:`` line and a ``hint:`` line, exit 2."""

    #: The subcommands' parsers by name (set by `build_parser`), to name one in an error.
    _subcommands: Mapping[str, argparse.ArgumentParser] = MappingProxyType({})

    def error(self, message: str):
        message = message.replace("\n", " ")
        hint = _help_hint(self)
        if "invalid choice" in message and self.prog == "streamconv":
            wrong = message.split("'")[1] if "'" in message else ""
            close = difflib.get_close_matches(wrong, COMMAND_MODULES, n=1)
            message = f"unknown command {wrong!r} (commands: {', '.join(COMMAND_MODULES)})"
            if close:
                hint = f"did you mean `streamconv {close[0]}`?"
        self.exit(2, f"error: {message}\nhint: {hint}\n")


def _add_common_options(parser: argparse.ArgumentParser) -> None:
    """-v and -q on a subcommand (unless it has its own)."""
    taken = parser._option_string_actions
    group = parser.add_argument_group("messages")
    if "-v" not in taken:
        group.add_argument(
            "-v",
            "--verbose",
            action="store_true",
            help="show what the sound libraries print as they start (ALSA, JACK)",
        )
    if "-q" not in taken:
        group.add_argument(
            "-q", "--quiet", action="store_true", help="no progress display or notes on stderr"
        )


def build_parser(only: str | None = None) -> _Parser:
    """The argument parser; with ``only``, just that subcommand's (its imports are the
    startup time of every run, so a run imports only its own command)."""
    parser = _Parser(
        prog="streamconv",
        description="Streaming convolution and pattern matching for audio and sensor streams.",
        epilog="Run `streamconv COMMAND --help` for a command's options and examples. Exit "
        "codes: 0 success, 1 runtime failure, 2 bad usage, config or input, 130 interrupted.",
    )
    parser.add_argument("--version", action="version", version=f"streamconv {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES if only is None else [only]:
        importlib.import_module(f"streamconv.commands.{name}").register(subparsers)
        sub = subparsers.choices[name]
        sub.formatter_class = _HelpFormatter
        sub.epilog = EXAMPLES.get(name)  # every command has some: tests/test_cli_usage.py
        _add_common_options(sub)
    parser._subcommands = subparsers.choices
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command line; return the exit code.

    Without ``argv`` (the ``streamconv`` program: the process ends when this returns) the
    garbage collector is tuned for such a process: start-up creates ~100,000 objects (numpy,
    the command's modules) and no garbage, which the collector would walk many times while
    they load and once more at exit. It is off while the command's parser is built (which
    imports the command), what exists then is frozen (`gc.freeze`: kept, never walked), and
    it runs as usual for the command; at the end what the command made is frozen too. ~8% of
    the instructions of a short ``filter`` job.
    """
    program = argv is None
    argv = sys.argv[1:] if argv is None else argv
    if argv == ["--version"]:  # without building every command's parser (scipy: ~1 s)
        print(f"streamconv {__version__}")
        return 0
    if program:
        gc.disable()
    try:
        parser = build_parser(argv[0] if argv and argv[0] in COMMAND_MODULES else None)
        args, extra = parser.parse_known_args(argv)
    finally:
        if program:
            gc.freeze()
            gc.enable()
    if extra:  # named by the subcommand, whose --help lists its options
        choices = parser._subcommands
        choices.get(args.command, parser).error(f"unrecognized arguments: {' '.join(extra)}")
    if getattr(args, "verbose", False):
        os.environ[VERBOSE_ENV] = "1"  # inherited by device worker processes
    if not getattr(args, "run", None):
        parser.print_help(sys.stderr)
        return 2
    try:
        return int(args.run(args) or 0)
    except KeyboardInterrupt:
        return 130
    except StreamconvError as exc:
        hint = ""
        if isinstance(exc, CommandLineError):  # as argparse's errors: the command's --help
            hint = f"\nhint: {_help_hint(parser._subcommands.get(args.command, parser))}"
        print(f"error: {exc}{hint}", file=sys.stderr)
        return exc.exit_code
    finally:
        if program:
            gc.freeze()


if __name__ == "__main__":
    sys.exit(main())
