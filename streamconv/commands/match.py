"""``streamconv match``: find templates (and periodicity) in recorded files.

Detections go out as JSON lines, in stream order, file after file: to stdout as they are found,
or to ``-o OUT`` (CSV for ``.csv``) written under a temporary name and renamed when complete.
Files are read in blocks, so memory does not grow with the file.

A template recorded at another sample rate than a file is resampled to the file's rate
(polyphase, ``scipy.signal.resample_poly``) with a note on stderr. Templates from ``.txt``,
``.csv`` and ``.npy`` files have no rate of their own and are taken at the file's rate.

The detectors of a file (the `Matcher` of the templates, `Periodicity`) run side by side in
`Detectors`, which merges their detections into stream order; `streamconv.archive` runs the same
objects on chunks of a file.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import sys
from fractions import Fraction

import numpy as np
from scipy import signal

from streamconv.commands._args import finite_float, positive_float, positive_int
from streamconv.dsp.matcher import DEFAULT_THRESHOLD, Matcher
from streamconv.dsp.periodicity import PeriodEstimate, Periodicity
from streamconv.errors import UsageError
from streamconv.io import files, open_source
from streamconv.io.pcm import PCM_FORMATS
from streamconv.io.taps import load_taps

FIELDS = ["file", "template", "sample", "time", "score", "channel", "threshold", "period"]
PERIODICITY = "periodicity"


def _period_range(text: str) -> tuple[float, float]:
    try:
        lo, hi = (float(v) for v in text.split(":"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected MIN:MAX in seconds, got {text!r}") from None
    if not (0 < lo < hi < math.inf):
        raise argparse.ArgumentTypeError(f"need 0 < MIN < MAX, got {text!r}")
    return lo, hi


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
        type=finite_float,
        metavar="X",
        help=f"absolute score threshold in [-1, 1] (default {DEFAULT_THRESHOLD})",
    )
    thr.add_argument(
        "--mad", type=positive_float, metavar="K", help="threshold: K times the score's MAD"
    )
    parser.add_argument("--mad-window", type=positive_float, default=10.0, metavar="S",
                        help="MAD trailing window in seconds (default 10)")  # fmt: skip
    parser.add_argument("--mad-hop", type=positive_float, default=1.0, metavar="S",
                        help="MAD update hop in seconds (default 1)")  # fmt: skip
    parser.add_argument(
        "--min-distance",
        type=positive_int,
        metavar="S",
        help="samples between detections of a template (default: its length)",
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
    parser.add_argument("--periodicity-threshold", type=finite_float, default=0.5, metavar="X",
                        help="score a periodicity detection needs (default 0.5)")  # fmt: skip
    parser.add_argument("-o", "--output", metavar="OUT", help="write to OUT (.csv: CSV)")
    parser.add_argument("--plot", metavar="DIR", help="write DIR/<file>.png: scores and detections")
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
    archive.add_argument("--chunk", type=positive_float, default=600.0, metavar="S",
                         help="seconds per chunk of a long audio file (default 600)")  # fmt: skip
    group = parser.add_argument_group("raw and csv files")
    group.add_argument("--rate", type=positive_float, help="sample rate in Hz")
    group.add_argument("--channels", type=positive_int, help="channels per frame")
    group.add_argument("--format", metavar="FMT", help=f"raw PCM format: {', '.join(PCM_FORMATS)}")
    parser.set_defaults(run=run)


# -- templates ------------------------------------------------------------------------------


def parse_template_arg(text: str) -> tuple[str, str]:
    """``NAME=PATH`` or ``PATH`` -> (name, path); the name of a bare path is its file stem."""
    name, sep, path = text.partition("=")
    if not sep or os.sep in name or os.path.exists(text):
        path = text
        name = os.path.splitext(os.path.basename(text))[0]
    if not name or not path:
        raise UsageError(f"template {text!r}: expected PATH or NAME=PATH")
    return name, path


class Template:
    """A template file, loaded once and resampled per file rate on demand."""

    def __init__(self, name: str, path: str):
        self.name, self.path = name, path
        self.samples, self.rate = load_taps(path)
        if self.samples.ndim > 2:
            raise UsageError(f"{path}: a template must be (L,) or (L, C), got {self.samples.shape}")
        try:
            Matcher({name: self.samples}, 1.0)
        except ValueError as exc:
            raise UsageError(f"{path}: {exc}") from None
        self._cache: dict[float, np.ndarray] = {}

    def for_file(self, rate: float, channels: int, path: str, note) -> np.ndarray:
        """The samples at a file's rate; `UsageError` if their channels do not fit the file.

        Parameters
        ----------
        rate : float
            The file's sample rate (the template is resampled to it, with a note).
        channels : int
            The file's channels: a ``(L, C)`` template needs ``C == channels``.
        path : str
            The file, for messages.
        note : callable
            Called with a message when the template is resampled.
        """
        a = self.at(rate, lambda m: note(f"{m} for {path}"))
        if a.ndim == 2 and a.shape[1] != channels:
            raise UsageError(
                f"{self.path}: template '{self.name}' has {a.shape[1]} channels, "
                f"{path} has {channels}"
            )
        return a

    def at(self, rate: float, note) -> np.ndarray:
        if self.rate is None or self.rate == rate:
            return self.samples
        if rate not in self._cache:
            ratio = Fraction(rate / self.rate).limit_denominator(1000)
            self._cache[rate] = signal.resample_poly(
                self.samples, ratio.numerator, ratio.denominator, axis=0
            )
            note(f"template '{self.name}' resampled from {self.rate:g} Hz to {rate:g} Hz")
        return self._cache[rate]


def load_templates(args) -> list[Template]:
    out, seen = [], set()
    for text in args.template:
        name, path = parse_template_arg(text)
        if name in seen:
            raise UsageError(f"template name {name!r} given twice (use NAME=PATH)")
        seen.add(name)
        out.append(Template(name, path))
    return out


# -- output ---------------------------------------------------------------------------------


class Writer:
    """JSON lines to stdout, or JSON lines / CSV to a file that appears only when complete."""

    def __init__(self, path: str | None):
        self.atomic = None
        if path is None:
            self.stream = sys.stdout
        else:
            self.atomic = files.AtomicFile(path)
            self.stream = open(self.atomic.tmp_path, "w", encoding="utf-8", newline="")
        self.csv = None
        if path is not None and path.lower().endswith(".csv"):
            self.csv = csv.DictWriter(self.stream, FIELDS, lineterminator="\n")
            self.csv.writeheader()

    def write(self, record: dict) -> None:
        if self.csv is not None:
            self.csv.writerow({k: ("" if v is None else v) for k, v in record.items()})
        else:
            self.stream.write(json.dumps(record) + "\n")
        if self.atomic is None:
            self.stream.flush()

    def close(self, ok: bool) -> None:
        if self.atomic is None:
            return
        self.stream.close()
        if ok:
            self.atomic.commit()
        else:
            self.atomic.discard()


# -- running --------------------------------------------------------------------------------


def run(args) -> int:
    if not args.template and not args.periodicity:
        raise UsageError("match: give at least one template (-t TEMPLATE) or --periodicity")
    if args.plot:
        _check_plot_dir(args.plot)
    from streamconv import archive

    args.files = archive.expand(args.files)
    templates = load_templates(args)
    if args.jobs or args.scheduler or args.resume:
        return _run_archive(args, templates, archive)
    writer = Writer(args.output)
    ok = False
    try:
        for path in args.files:
            match_file(path, templates, args, writer)
        ok = True
    finally:
        writer.close(ok)
    return 0


def _run_archive(args, templates, archive) -> int:
    if args.plot:
        raise UsageError("--plot works on one process only: drop --jobs/--scheduler/--resume")
    if args.resume:
        archive.check_state_dir(args.resume)
    client = archive.make_client(args)
    writer = Writer(args.output)
    ok = False
    try:
        code = archive.run_archive(args, templates, writer, client, args.chunk)
        ok = True
    finally:
        writer.close(ok)
        client.close()
        if hasattr(client, "close_cluster"):
            client.close_cluster()
    return code


def _note(args):
    def note(message: str) -> None:
        if not args.quiet:
            print(f"note: {message}", file=sys.stderr)

    return note


def match_file(path: str, templates: list[Template], args, writer: Writer) -> None:
    """Match every template (and periodicity) on one file; write its detections."""
    src = open_source(path, sample_rate=args.rate, channels=args.channels, fmt=args.format)
    with src:
        rate, channels = src.sample_rate, src.channels
        arrays = {t.name: t.for_file(rate, channels, path, _note(args)) for t in templates}
        total = getattr(src, "frames", None)
        plot = _plot_recorder(args, path, rate, total) if args.plot else None
        detectors = Detectors(build_detectors(args, arrays, rate, channels, plot))
        if total is not None:
            detectors.check_length(path, total, templates, arrays)
        progress = _Progress(path, total, args.quiet)
        try:
            for block in src.blocks(args.block):
                for det in detectors.process(block):
                    _emit(writer, path, det, plot)
                progress.update(src.frames_read)
            for det in detectors.flush():
                _emit(writer, path, det, plot)
        except ValueError as exc:
            raise UsageError(f"{path}: {exc}") from None
        finally:
            progress.done()
        detectors.check_length(path, src.frames_read, templates, arrays)
    if plot is not None:
        plot.save(os.path.join(args.plot, os.path.splitext(os.path.basename(path))[0] + ".png"))


def build_detectors(args, arrays: dict, rate: float, channels: int, plot=None) -> list:
    """The detectors the options ask for on one file: a `Matcher` of `arrays`, `Periodicity`.

    Parameters
    ----------
    args : argparse.Namespace
        The ``match`` options (threshold, mad, mad_window, mad_hop, min_distance, combine,
        periodicity, periodicity_threshold).
    arrays : dict of str to array
        The templates at the file's rate (`Template.for_file`); may be empty.
    rate : float
        The file's sample rate.
    channels : int
        The file's channels.
    plot : ScorePlot, optional
        Receives the score traces.
    """
    combine = "mean" if args.combine else None
    out = []
    if arrays:
        out.append(
            Matcher(
                arrays,
                rate,
                threshold=None if args.mad else args.threshold,
                mad=args.mad,
                min_distance=args.min_distance,
                combine=combine,
                channels=channels,
                mad_window_s=args.mad_window,
                mad_hop_s=max(min(args.mad_hop, args.mad_window), 1 / rate),
                on_scores=plot.scores if plot is not None else None,
            )
        )
    if args.periodicity:
        lo, hi = args.periodicity
        try:
            out.append(
                Periodicity(
                    rate, lo, hi, args.periodicity_threshold, combine=combine, channels=channels
                )
            )
        except ValueError as exc:
            raise UsageError(f"--periodicity {lo:g}:{hi:g}: {exc}") from None
    return out


class Detectors:
    """The detectors of one file, side by side; their detections come out in stream order.

    A detection is held back until every detector has decided up to its sample (their
    ``decided``), and detections of the same sample come in detector order, so the output
    depends neither on the block sizes nor on how the file is cut into chunks. Periodicity
    estimates below their threshold are dropped.

    Parameters
    ----------
    detectors : list
        `Matcher` and `Periodicity` objects (anything with ``process``, ``flush``,
        ``decided``, ``chunk_bounds`` and ``start_at``).
    """

    def __init__(self, detectors: list):
        self.detectors = list(detectors)
        self._from = [0] * len(self.detectors)  # stream frame each detector starts at
        self._pos = 0  # stream frame of the next block
        self._pending: list[tuple[int, object]] = []  # (detector index, detection)

    def check_length(self, path: str, frames: int, templates: list[Template], arrays: dict):
        """Raise `UsageError` if a template or the periodicity window is longer than the file.

        Parameters
        ----------
        path : str
            The file, for the message.
        frames : int
            The file's length.
        templates : list of Template
            The templates, and `arrays` their samples at the file's rate.
        """
        for t in templates:
            if len(arrays[t.name]) > frames:
                raise UsageError(
                    f"{t.path}: template '{t.name}' ({len(arrays[t.name])} frames) is longer "
                    f"than {path} ({frames} frames)"
                )
        for d in self.detectors:
            if isinstance(d, Periodicity) and d.window > frames:
                raise UsageError(
                    f"--periodicity: the analysis window ({d.window} frames, three times the "
                    f"longest period) is longer than {path} ({frames} frames)"
                )

    def start_chunk(self, start: int, stop: int, frames: int) -> tuple[int, int]:
        """Set every detector up for the detections in ``[start, stop)`` of a file.

        Returns
        -------
        first, end : int
            Feed frames ``[first, end)`` of the file to `process` (then `flush` if ``end`` is
            ``frames``) and keep the detections in ``[start, stop)``: they are the whole
            file's (see `Matcher.chunk_bounds`).
        """
        bounds = [d.chunk_bounds(start, stop, frames) for d in self.detectors]
        for d, (first, _) in zip(self.detectors, bounds, strict=True):
            d.start_at(first)
        self._from = [first for first, _ in bounds]
        self._pos = min(self._from)
        self._pending = []
        return self._pos, max(end for _, end in bounds)

    def process(self, block: np.ndarray) -> list:
        """Feed the next block; return the detections now final, in stream order."""
        for i, d in enumerate(self.detectors):
            skip = self._from[i] - self._pos  # this detector starts later in the chunk
            if skip < len(block):
                self._add(i, d.process(block[max(skip, 0) :]))
        self._pos += len(block)
        return self._release(min(d.decided for d in self.detectors))

    def flush(self) -> list:
        """End of the file: the detections left, in stream order."""
        for i, d in enumerate(self.detectors):
            self._add(i, d.flush())
        return self._release(None)

    def _add(self, i: int, found: list) -> None:
        self._pending += [(i, d) for d in found if getattr(d, "detected", True)]

    def _release(self, upto: int | None) -> list:
        if upto is None:
            ready, self._pending = self._pending, []
        else:
            ready = [p for p in self._pending if p[1].sample < upto]
            self._pending = [p for p in self._pending if p[1].sample >= upto]
        # Stable: one detector's detections of a sample keep that detector's own order.
        ready.sort(key=lambda p: (p[1].sample, p[0]))
        return [d for _, d in ready]


def to_record(path: str, det) -> dict:
    """The output record of a detection (or periodicity estimate) of file `path`."""
    if not isinstance(det, PeriodEstimate):
        return {"file": path, **det.to_dict()}
    return {
        "file": path,
        "template": PERIODICITY,
        "sample": det.sample,
        "time": det.time,
        "score": det.score,
        "channel": det.channel,
        "threshold": det.threshold,
        "period": det.period,
    }


def _emit(writer: Writer, path: str, det, plot) -> None:
    record = to_record(path, det)
    writer.write(record)
    if plot is not None:
        plot.detection(record)


class _Progress:
    """A one-line percentage on stderr, only when it is a terminal."""

    def __init__(self, path: str, total: int | None, quiet: bool):
        self.path, self.total = path, total
        self.on = not quiet and sys.stderr.isatty()
        self.last = -1

    def update(self, frames: int) -> None:
        if not self.on:
            return
        if self.total:
            pct = int(100 * frames / self.total)
            if pct != self.last:
                self.last = pct
                print(f"\r{self.path}: {pct:3d}%", end="", file=sys.stderr, flush=True)
        else:
            print(f"\r{self.path}: {frames} frames", end="", file=sys.stderr, flush=True)

    def done(self) -> None:
        if self.on:
            print("\r\033[K", end="", file=sys.stderr, flush=True)


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


def _plot_recorder(args, path, rate, total):
    from streamconv.commands.match_plot import ScorePlot

    return ScorePlot(path, rate, total)
