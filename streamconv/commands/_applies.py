"""Options that do not apply to the job are refused, not ignored (``filter`` and ``match``).

A stream whose header says its rate, channels and sample type (an audio file, an audio file on
a pipe) takes none of them from the command line: ``--rate``, ``--channels`` or ``--format``
that say otherwise are an error naming both (`refuse_contradictions`); ones that agree are
accepted. The same for options of one kind of locator given with another: ``--type`` without
``-i -``, ``--out-type`` without ``-o -``, ``--columns`` without a ``.csv`` input,
``--float-format`` without a ``.csv`` output, ``--out-format`` for an output that has no sample
format (``.csv``, ``null``, a device).

``match`` takes several recordings, of mixed kinds: ``--rate`` describes its raw and ``.csv``
files, ``--channels`` and ``--format`` its raw files, and an audio file keeps its header. So
an option is checked against the recordings only when none of them takes it (every one
describes itself): then it must agree with each, as with ``filter``. And an option that acts
only beside another (``--snippet-pre`` with ``--snippets``, ...) is refused without it.
"""

from __future__ import annotations

import argparse

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
    refuse_contradictions(args, args.input, inp, source, format_used=out in SAMPLE_FORMAT_OUTPUTS)


#: Outputs that store samples in a ``--format`` (given for a ``.csv`` input, it is the output's).
SAMPLE_FORMAT_OUTPUTS = ("pipe", "raw", "udp", "audio")


def refuse_contradictions(args, name: str, kind: str, source, format_used: bool = False) -> None:
    """Raise `CommandLineError` for ``--rate``, ``--channels`` or ``--format`` of `args` that
    contradict what input `name` says of itself.

    Parameters
    ----------
    args : argparse.Namespace
        ``rate``, ``channels`` and ``format`` (None: not given). The messages name
        ``--out-format`` and ``--columns`` where the command has them.
    name, kind : str
        The input as written and its `locator_kind`.
    source : Source
        The opened input: an audio header's rate, channels and sample type; a ``.csv`` file's
        data columns.
    format_used : bool
        ``--format`` says something of a ``.csv`` input's job (its output's sample format).
    """
    opt = vars(args)
    subtype = getattr(source, "subtype", None)
    if subtype is not None and kind in ("audio", "pipe"):  # the input has a header
        what = f"{name}: the {'stream' if kind == 'pipe' else 'file'}'s header says"
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
            out = "; --out-format sets the output's sample format" if "out_format" in opt else ""
            raise CommandLineError(
                f"--format {args.format} contradicts the input ({what} {subtype}){out}"
            )
    if kind == "csv" and args.format is not None and not format_used:
        raise CommandLineError(f"--format does not apply: {name} holds numbers as text")
    if kind == "csv" and args.channels is not None and args.channels != source.channels:
        columns = "; --columns chooses them" if "columns" in opt else ""
        raise CommandLineError(
            f"--channels {args.channels} contradicts the input ({name} has "
            f"{source.channels} data columns{columns})"
        )


#: ``match``'s options that act only beside another: (option, what it needs, whether given).
MATCH_NEEDS = (
    ("--snippet-pre", "--snippets", lambda a: a.snippets),
    ("--snippet-post", "--snippets", lambda a: a.snippets),
    ("--mad-window", "--mad", lambda a: a.mad is not None),
    ("--mad-hop", "--mad", lambda a: a.mad is not None),
    ("--periodicity-threshold", "--periodicity", lambda a: a.periodicity),
    ("--tolerance", "--domain spectrogram", lambda a: a.domain == "spectrogram"),
    ("--spectrogram", "--domain spectrogram", lambda a: a.domain == "spectrogram"),
    ("--chunk", "--jobs, --scheduler or --resume", lambda a: a.jobs or a.scheduler or a.resume),
)

#: The recordings that take each stream option: the others say it themselves.
_TAKEN_BY = {"rate": ("raw", "csv"), "channels": ("raw",), "format": ("raw",)}


def refuse_unused_by_match(args, paths: list[str]) -> None:
    """Raise `CommandLineError` for the first option of ``match``'s `args` that the run would
    not use: one of `MATCH_NEEDS` without what it needs, or a stream option that no recording
    of `paths` takes and that contradicts one of them (a recording that cannot be opened is
    left to fail as a file does)."""
    from streamconv.errors import StreamconvError
    from streamconv.io import open_source

    opt = vars(args)
    for option, needs, present in MATCH_NEEDS:
        if opt.get(option.lstrip("-").replace("-", "_")) is not None and not present(args):
            raise CommandLineError(f"{option} needs {needs}")
    kinds = [locator_kind(path) for path in paths]
    unused = {
        key: opt[key]
        for key, takers in _TAKEN_BY.items()
        if opt[key] is not None and not any(kind in takers for kind in kinds)
    }
    if not unused:
        return
    asked = argparse.Namespace(**{key: unused.get(key) for key in _TAKEN_BY})
    for path, kind in zip(paths, kinds, strict=True):
        if kind == "csv" and asked.channels is None:  # --format: refused without a look
            refuse_contradictions(asked, path, kind, None)
            continue
        try:
            source = open_source(path, sample_rate=args.rate)
        except StreamconvError:
            continue
        with source:
            refuse_contradictions(asked, path, kind, source)
