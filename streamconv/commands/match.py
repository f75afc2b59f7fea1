"""``streamconv match``: find templates (and periodicity) in recorded files. The command line.

Detections go out as JSON lines, in stream order, file after file: to stdout as they are found,
or to ``-o OUT`` (CSV for ``.csv``) written under a temporary name and renamed when complete.
Files are read in blocks, so memory does not grow with the file.

A template recorded at another sample rate than a file is resampled to the file's rate
(`streamconv.detect.resample`) with a note on stderr. Templates from ``.txt``, ``.csv`` and
``.npy`` files have no rate of their own and are taken at the file's rate.

The work is the library's: `streamconv.detect` (templates, detectors, records),
`streamconv.recordings` (one file) and `streamconv.archive` (many, on dask).
"""

from __future__ import annotations

import argparse
import math
import os
import sys

from streamconv.commands._applies import refuse_unused_by_match
from streamconv.commands._args import finite_float, key_values, positive_float, positive_int
from streamconv.detect import (
    DEFAULT_THRESHOLD,
    PERIODICITY,
    MatchOptions,
    RecordWriter,
    load_templates,
)
from streamconv.errors import CommandLineError, StreamconvError, UsageError
from streamconv.io.pcm import PCM_FORMATS
from streamconv.progress import Progress
from streamconv.recordings import expand, match_file

#: Defaults of options that act only beside another (None until given: commands/_applies).
SNIPPET_PRE_S = 1.0
SNIPPET_POST_S = 2.0
CHUNK_S = 600.0


def _snippet_pre(args) -> float:
    return SNIPPET_PRE_S if args.snippet_pre is None else args.snippet_pre


def _snippet_post(args) -> float:
    return SNIPPET_POST_S if args.snippet_post is None else args.snippet_post


def _period_range(text: str) -> tuple[float, float]:
    try:
        lo, hi = (float(v) for v in text.split(":"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected MIN:MAX in seconds, got {text!r}") from None
    if not (0 < lo < hi < math.inf):
        raise argparse.ArgumentTypeError(f"need 0 < MIN < MAX, got {text!r}")
    return lo, hi


def _score(text: str) -> float:
    value = finite_float(text)
    if not -1 <= value <= 1:
        raise argparse.ArgumentTypeError(f"a score threshold is in [-1, 1], got {text!r}")
    return value


def _periodicity_score(text: str) -> float:
    value = finite_float(text)
    if not 0 <= value <= 1:  # a normalized autocorrelation, as a config's threshold
        raise argparse.ArgumentTypeError(f"a periodicity score is in [0, 1], got {text!r}")
    return value


def _tolerance(text: str) -> float:
    value = finite_float(text)
    if not 0 <= value <= 0.2:
        raise argparse.ArgumentTypeError(f"must be in [0, 0.2], got {text!r}")
    return value


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "match",
        help="find templates in recorded files (JSON lines of detections)",
        description=(
            "Find templates in recorded files by normalized cross-correlation. Detections are "
            "printed as JSON lines (file, template, sample, time, score, channel, threshold), "
            "in stream order."
        ),
    )
    parser.add_argument("files", nargs="+", metavar="FILE", help="recordings (audio, .csv, .raw)")
    parser.add_argument(
        "-t",
        "--template",
        action="append",
        default=[],
        metavar="TEMPLATE",
        help="PATH (named by its file stem) or NAME=PATH; audio, .txt/.csv or .npy; repeatable",
    )
    thr = parser.add_mutually_exclusive_group()
    thr.add_argument(
        "--threshold",
        type=_score,
        metavar="X",
        help=f"absolute score threshold in [-1, 1] (default {DEFAULT_THRESHOLD})",
    )
    thr.add_argument(
        "--mad", type=positive_float, metavar="K", help="threshold: K times the score's MAD"
    )
    # Options that act only beside another default to None (given or not: commands/_applies).
    parser.add_argument("--mad-window", type=positive_float, metavar="S",
                        help="with --mad: its trailing window in seconds (default 10)")  # fmt: skip
    parser.add_argument("--mad-hop", type=positive_float, metavar="S",
                        help="with --mad: its update hop in seconds (default 1)")  # fmt: skip
    parser.add_argument(
        "--min-distance",
        type=positive_float,
        metavar="S",
        help="seconds between detections of a template (default: its length; spectrogram: "
        "its frames times the hop)",
    )
    parser.add_argument(
        "--domain",
        choices=("waveform", "spectrogram"),
        default="waveform",
        help="correlate samples (exact copies, default) or spectrograms (the same kind of "
        "sound: another room, microphone, a little higher or faster)",
    )
    parser.add_argument(
        "--tolerance",
        type=_tolerance,
        metavar="R",
        help="spectrogram domain: tolerate pitch/speed changes of about R (default 0.03: "
        "+-3 %%; 0: exact copies score 1)",
    )
    parser.add_argument(
        "--spectrogram",
        action="append",
        metavar="KEY=VALUE",
        help="spectrogram domain: a parameter as in a config's spectrogram = {...} (frame_s, "
        "hop_s, window, scale, floor_db, low_hz, high_hz, band_db, band_margin, tolerance; "
        "values read as TOML, a bare word as text); repeatable",
    )
    parser.add_argument(
        "--downmix",
        action="store_true",
        help="average a template's channels when a recording has other channels than it",
    )
    parser.add_argument(
        "--combine", action="store_true", help="score channels together (mean over channels)"
    )
    parser.add_argument(
        "--periodicity",
        type=_period_range,
        metavar="MIN:MAX",
        help="also report periodicity with a period between MIN and MAX seconds",
    )
    parser.add_argument("--periodicity-threshold", type=_periodicity_score, metavar="X",
                        help="with --periodicity: the score in [0, 1] a periodicity detection "
                        "needs (default 0.5)")  # fmt: skip
    parser.add_argument("-o", "--output", metavar="OUT", help="write to OUT (.csv: CSV)")
    parser.add_argument("--plot", metavar="DIR", help="write DIR/<file>.png: scores and detections")
    parser.add_argument("--snippets", metavar="DIR",
                        help="save the audio around each detection as DIR/<file>-<template>-"
                        "<sample>.wav, named in its record (docs/snippets.md)")  # fmt: skip
    parser.add_argument("--snippet-pre", type=finite_float, metavar="S",
                        help=f"with --snippets: seconds of a snippet before the detection "
                        f"(default {SNIPPET_PRE_S:g})")  # fmt: skip
    parser.add_argument("--snippet-post", type=finite_float, metavar="S",
                        help=f"with --snippets: seconds of a snippet from the detection on "
                        f"(default {SNIPPET_POST_S:g})")  # fmt: skip
    parser.add_argument("--block", type=positive_int, default=65536, metavar="N",
                        help="frames read at a time (default 65536)")  # fmt: skip
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress or notes")
    archive = parser.add_argument_group(
        "archives on dask.distributed",
        "FILE may also be a directory (its recordings, recursively) or a glob. With any of "
        "these options, files run in parallel and long audio files are cut into chunks; the "
        "detections are the same, in the same order. A file that fails is reported and "
        "skipped (exit 2 at the end).",
    )
    archive.add_argument("--jobs", type=positive_int, metavar="N",
                         help="run on a local cluster of N worker processes")  # fmt: skip
    archive.add_argument("--scheduler", metavar="ADDRESS",
                         help="run on a dask.distributed scheduler (tcp://HOST:8786)")  # fmt: skip
    archive.add_argument("--resume", metavar="STATE_DIR",
                         help="keep finished work here; a rerun does the rest")  # fmt: skip
    archive.add_argument("--chunk", type=positive_float, metavar="S",
                         help=f"seconds per chunk of a long audio file (default "
                         f"{CHUNK_S:g})")  # fmt: skip
    group = parser.add_argument_group(
        "raw and csv files",
        "--rate is the rate of the raw and .csv recordings, --channels and --format describe the "
        "raw ones; an audio file's header says its own. When no recording takes one, it must "
        "agree with every recording (streamconv does not resample).",
    )
    group.add_argument("--rate", type=positive_float, help="sample rate in Hz")
    group.add_argument("--channels", type=positive_int, help="channels per frame")
    group.add_argument("--format", metavar="FMT", help=f"raw PCM format: {', '.join(PCM_FORMATS)}")
    parser.set_defaults(run=run)


def options(args) -> MatchOptions:
    """The `MatchOptions` of parsed ``match`` arguments (`MatchOptions`' defaults for the
    options not given)."""
    spectrogram = _spectrogram(args)
    given = {
        "mad_window_s": args.mad_window,
        "mad_hop_s": args.mad_hop,
        "periodicity_threshold": args.periodicity_threshold,
    }
    return MatchOptions(
        **{key: value for key, value in given.items() if value is not None},
        threshold=args.threshold,
        mad=args.mad,
        min_distance_s=args.min_distance,
        combine=args.combine,
        domain=args.domain,
        spectrogram=spectrogram,
        downmix=args.downmix,
        periodicity=args.periodicity,
        rate=args.rate,
        channels=args.channels,
        fmt=args.format,
        block=args.block,
    )


def _spectrogram(args) -> dict | None:
    """The spectrogram parameters of ``--spectrogram KEY=VALUE`` and ``--tolerance``, checked
    as a config's ``spectrogram = {...}`` is (the same keys, bounds, defaults and messages)."""
    tokens = args.spectrogram or []  # with --domain spectrogram (commands/_applies)
    table = key_values(tokens, "--spectrogram")
    if args.tolerance is not None:
        if "tolerance" in table:
            raise CommandLineError("--tolerance and --spectrogram tolerance=: give one")
        table["tolerance"] = args.tolerance
    if not table:
        return None
    from pydantic import ValidationError

    from streamconv.config import problem_from_pydantic
    from streamconv.config.models import Spectrogram
    from streamconv.config.parse import LineMap, format_path

    try:
        return Spectrogram.model_validate(table).model_dump()
    except ValidationError as exc:
        keys = [problem_from_pydantic(err, LineMap()) for err in exc.errors()]
        text = "; ".join(f"--spectrogram {format_path(p.path)}: {p.message}" for p in keys)
        raise CommandLineError(text.replace("--spectrogram :", "--spectrogram:")) from None


def run(args) -> int:
    if not args.template and not args.periodicity:
        raise CommandLineError("match: give at least one template (-t TEMPLATE) or --periodicity")
    paths = expand(args.files)
    refuse_unused_by_match(args, paths)  # the command line's mistakes before any work
    opts = options(args)
    if args.plot:
        _check_plot_dir(args.plot)
    templates = load_templates(args.template)
    if args.jobs or args.scheduler or args.resume:
        if args.snippets:
            raise CommandLineError(
                "--snippets works on one process only: drop --jobs/--scheduler/--resume"
            )
        return _run_archive(args, paths, templates, opts)
    if args.snippets and not (0 <= _snippet_pre(args) <= 60 and 0 <= _snippet_post(args) <= 60):
        raise CommandLineError("--snippet-pre and --snippet-post are seconds from 0 to 60")
    from streamconv.archive import Report

    names = [t.name for t in templates] + ([PERIODICITY] if opts.periodicity else [])
    report = Report(len(paths), args.quiet, names, line=False)
    writer = RecordWriter(args.output)
    ok = False
    try:
        for path in paths:
            # A file's records are written once it is matched: a file that fails gives none
            # and the others go on, as with --jobs.
            records: list[dict] = []
            try:
                frames, rate = _match_one(path, templates, opts, args, records.append, report)
            except StreamconvError as exc:
                report.failed(str(exc))
                report.file_done(None, [])
                continue
            if args.snippets and records:
                records = _snippets(path, records, opts, args)
            report.clear()
            for record in records:
                writer.write(record)
            report.file_done(frames / rate, records)
        ok = True
    finally:
        writer.close(ok)
    report.summary()  # on a terminal; as with --jobs (streamconv.archive.Report)
    return 2 if report.failures else 0


def _run_archive(args, paths, templates, opts) -> int:
    from streamconv import archive

    if args.plot:
        raise CommandLineError("--plot works on one process only: drop --jobs/--scheduler/--resume")
    if args.resume:
        archive.check_state_dir(args.resume)
    client = archive.make_client(args.jobs, args.scheduler)
    writer = RecordWriter(args.output)
    ok = False
    try:
        chunk = args.chunk or CHUNK_S
        code = archive.run_archive(paths, templates, opts, writer.write, client, chunk,
                                   resume=args.resume, quiet=args.quiet)  # fmt: skip
        ok = True
    finally:
        writer.close(ok)
        client.close()
        if hasattr(client, "close_cluster"):
            client.close_cluster()
    return code


def _match_one(path: str, templates, opts: MatchOptions, args, write, report):
    """One file, with the command's notes, progress line and plot; returns (frames, rate)."""
    plot = None
    if args.plot:
        from streamconv.commands.match_plot import ScorePlot

        plot = ScorePlot(path, opts)
    rate = []

    def emit(record: dict) -> None:
        write(record)
        if plot is not None:
            plot.detection(record)

    def note(message: str) -> None:
        if not args.quiet:
            with progress.write_above():
                report.clear()
                print(f"note: {message}", file=sys.stderr)

    def start(sample_rate: float, frames: int | None) -> None:
        rate.append(sample_rate)
        if plot is not None:
            plot.start(sample_rate, frames)

    progress = Progress(path, None, quiet=args.quiet)
    try:
        frames = match_file(path, templates, opts, emit, note=note, on_start=start,
                            on_scores=plot.scores if plot is not None else None,
                            progress=progress.update)  # fmt: skip
    finally:
        progress.close()
    if plot is not None:
        plot.save(os.path.join(args.plot, os.path.splitext(os.path.basename(path))[0] + ".png"))
    return frames, rate[0]


def _snippets(path: str, records: list[dict], opts: MatchOptions, args) -> list[dict]:
    """The file read once more for the audio around its detections (`streamconv.snippets`)."""
    from streamconv.io import open_source
    from streamconv.snippets import save_file_snippets

    with open_source(path, sample_rate=opts.rate, channels=opts.channels, fmt=opts.fmt) as src:
        stem = os.path.splitext(os.path.basename(path))[0]
        return save_file_snippets(
            src, records, args.snippets, _snippet_pre(args), _snippet_post(args), stem, opts.block
        )


def _check_plot_dir(directory: str) -> None:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise UsageError("--plot needs matplotlib: pip install 'streamconv[plot]'") from None
    if os.path.exists(directory) and not os.path.isdir(directory):
        raise UsageError(f"--plot {directory}: not a directory")
    try:
        os.makedirs(directory, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"--plot {directory}: cannot create: {exc.strerror}") from None
