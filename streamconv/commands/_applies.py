"""Options that do not apply to the job are refused, not ignored (``filter``).

A stream whose header says its rate, channels and sample type (an audio file, an audio file on
a pipe) takes none of them from the command line: ``--rate``, ``--channels`` or ``--format``
that say otherwise are an error naming both. The same for options of one kind of locator given
with another: ``--type`` without ``-i -``, ``--out-type`` without ``-o -``, ``--columns`` without
a ``.csv`` input, ``--float-format`` without a ``.csv`` output, ``--out-format`` for an output
that has no sample format (``.csv``, ``null``, a device).
"""

from __future__ import annotations

from streamconv.errors import CommandLineError
from streamconv.locator import parse_locator

#: libsndfile sample types and the raw format that says the same.
_SUBTYPE_FORMAT = {"PCM_16": "s16le", "PCM_32": "s32le", "FLOAT": "f32le", "DOUBLE": "f64le"}


def locator_kind(locator: str) -> str:
    """``pipe``, ``device``, ``udp``, ``null``, or the file kind (``audio``, ``csv``, ``raw``):
    `streamconv.locator.parse_locator`'s answer."""
    loc = parse_locator(locator)
    if loc.kind == "file" and loc.file_kind is not None:
        return loc.file_kind
    return "device" if loc.is_device else loc.kind


def refuse_unused(args, source) -> None:
    """Raise `CommandLineError` for the first option of `args` that the job would not use.

    Parameters
    ----------
    args : argparse.Namespace
        ``filter``'s options as given (before a config filled any in).
    source : Source
        The opened input: its header's rate, channels and sample type, where it has one.
    """
    inp, out = locator_kind(args.input), locator_kind(args.output)
    opt = vars(args)
    if opt.get("type") and inp != "pipe":
        raise CommandLineError(f"--type applies to -i - (a pipe), not to {args.input}")
    if opt.get("out_type") and out != "pipe":
        raise CommandLineError(f"--out-type applies to -o - (a pipe), not to {args.output}")
    if opt.get("columns") and inp != "csv":
        raise CommandLineError(f"--columns applies to a .csv input, not to {args.input}")
    if opt.get("float_format") and out != "csv":
        raise CommandLineError(f"--float-format applies to a .csv output, not to {args.output}")
    if opt.get("out_format") and out in ("csv", "null", "device"):
        raise CommandLineError(
            f"--out-format does not apply to {args.output}: it has no sample format"
        )
    subtype = getattr(source, "subtype", None)
    if subtype is not None and inp in ("audio", "pipe"):  # the input has a header
        what = f"{args.input}: the {'stream' if inp == 'pipe' else 'file'}'s header says"
        if args.rate is not None and args.rate != source.sample_rate:
            raise CommandLineError(
                f"--rate {args.rate:g} contradicts the input ({what} {source.sample_rate:g} Hz; "
                "streamconv does not resample)"
            )
        if args.channels is not None and args.channels != source.channels:
            raise CommandLineError(
                f"--channels {args.channels} contradicts the input ({what} {source.channels})"
            )
        if args.format is not None and args.format != _SUBTYPE_FORMAT.get(subtype):
            raise CommandLineError(
                f"--format {args.format} contradicts the input ({what} {subtype}); "
                "--out-format sets the output's sample format"
            )
    if inp == "csv" and args.format is not None and out not in ("pipe", "raw", "udp", "audio"):
        raise CommandLineError(f"--format does not apply: {args.input} holds numbers as text")
    if inp == "csv" and args.channels is not None and args.channels != source.channels:
        raise CommandLineError(
            f"--channels {args.channels} contradicts the input ({args.input} has "
            f"{source.channels} data columns; --columns chooses them)"
        )
