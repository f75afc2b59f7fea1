"""Matching recorded files: a whole file (`match_file`) or a range of one (`match_range`).

``streamconv match`` runs `match_file` on every file, one after the other;
`streamconv.archive` runs both on dask workers. Both read the file in blocks (memory does not
grow with the file) through the detectors `streamconv.detect.MatchOptions` builds, and return
the same records for the same samples: a range gives the whole-file run's detections in it.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Callable

from streamconv.detect import MatchOptions, Template, to_record
from streamconv.errors import CommandLineError, UsageError
from streamconv.io import files, open_source, pcm
from streamconv.io.pipes import RawSource
from streamconv.locator import file_kind

__all__ = ["expand", "file_frames", "match_file", "match_range"]

GLOB_CHARS = "*?["


def _is_recording(path: str) -> bool:
    kind = file_kind(path)
    if kind != "audio":
        return True
    try:
        files.audio_format(path)
    except UsageError:
        return False
    return True


def expand(items: list[str]) -> list[str]:
    """Files, directories (recursively, recordings by extension) and globs -> sorted paths.

    The order is the order of `items`, each directory and glob sorted. A plain path is kept
    as given even if it does not exist (it fails as a file).
    """
    out: list[str] = []
    for item in items:
        if item == "-":  # each file is opened more than once (its plan, its match, snippets)
            raise CommandLineError(
                "-: match reads recorded files, not stdin (save the stream to a file, or run "
                "the templates on a live stream with streamconv run)"
            )
        if os.path.isdir(item):
            found = []
            for root, dirs, names in os.walk(item):
                dirs.sort()
                found += [os.path.join(root, n) for n in names if not n.startswith(".")]
            found = sorted(p for p in found if _is_recording(p))
            if not found:
                raise UsageError(f"{item}: directory holds no recordings")
        elif any(c in item for c in GLOB_CHARS) and not os.path.exists(item):
            found = sorted(p for p in glob.glob(item, recursive=True) if os.path.isfile(p))
            if not found:
                raise UsageError(f"{item}: no file matches")
        else:
            found = [item]
        out += found
    return out


def _open(path: str, options: MatchOptions):
    return open_source(path, sample_rate=options.rate, channels=options.channels, fmt=options.fmt)


def match_file(
    path: str,
    templates: list[Template],
    options: MatchOptions,
    emit: Callable[[dict], None],
    *,
    note: Callable[[str], None] | None = None,
    on_start: Callable[[float, int | None], None] | None = None,
    on_scores=None,
    progress: Callable[[int, int | None], None] | None = None,
) -> int:
    """Match every template (and the periodicity `options` ask for) on one file.

    Parameters
    ----------
    path : str
        The recording (audio, ``.csv``, raw PCM; `options` say how to read the last two).
    templates : list of Template
        Resampled to the file's rate (`note` is told).
    options : MatchOptions
    emit : callable
        Gets each detection's record (`streamconv.detect.to_record`), in stream order, as soon
        as it is final.
    note : callable, optional
        Gets notes (a template resampled).
    on_start : callable, optional
        Called as ``on_start(sample_rate, frames_or_None)`` once the file is open.
    on_scores : callable, optional
        Gets the templates' score traces (see `streamconv.Matcher`).
    progress : callable, optional
        Called as ``progress(frames_read, total_frames_or_None)`` after each block.

    Returns
    -------
    int
        The file's frames.

    Raises
    ------
    UsageError
        An unreadable file, a template that does not fit it, bad samples (NaN...).
    """
    with _open(path, options) as src:
        rate, channels = src.sample_rate, src.channels
        arrays = {
            t.name: t.for_stream(rate, channels, path, note, options.downmix) for t in templates
        }
        total = getattr(src, "frames", None)
        if on_start is not None:
            on_start(rate, total)
        detectors = options.detectors(arrays, rate, channels, on_scores, where=path)
        if total is not None:
            detectors.check_length(path, total, templates, arrays)
        try:
            for block in src.blocks(options.block):
                for det in detectors.process(block):
                    emit(to_record(path, det))
                if progress is not None:
                    progress(src.frames_read, total)
            for det in detectors.flush():
                emit(to_record(path, det))
        except ValueError as exc:
            raise UsageError(f"{path}: {exc}") from None
        detectors.check_length(path, src.frames_read, templates, arrays)
        return src.frames_read


def file_frames(src, path: str, options: MatchOptions) -> int | None:
    """The frames of an open file that can be read from any frame on, else None."""
    if isinstance(src, files.SoundFileSource):
        return src.frames if src.seekable else None
    if file_kind(path) == "raw":
        size, frame_bytes = os.path.getsize(path), _frame_bytes(options)
        # A stray partial frame at the end is the whole-file run's error: run it whole.
        return size // frame_bytes if size % frame_bytes == 0 else None
    return None


def _raw(options: MatchOptions) -> tuple[str, float, int]:
    """Format, rate and channels of a raw PCM file (given: it was opened with them)."""
    if options.fmt is None or options.rate is None or options.channels is None:
        raise UsageError("raw PCM needs --format, --rate and --channels")
    return options.fmt, options.rate, options.channels


def _frame_bytes(options: MatchOptions) -> int:
    fmt, _, channels = _raw(options)
    return pcm.pcm_dtype(fmt).itemsize * channels


def match_range(
    path: str, start: int, stop: int, templates: list[Template], options: MatchOptions
) -> list[dict]:
    """The whole-file run's records with a sample in ``[start, stop)``.

    The file must be one `file_frames` knows the length of. The file's detectors
    (`streamconv.detect.Detectors`) say which frames they need for that
    (`Matcher.chunk_bounds`); only those are read.
    """
    src = _open(path, options)
    try:
        rate, channels = src.sample_rate, src.channels
        frames = file_frames(src, path, options)
        arrays = {
            t.name: t.for_stream(rate, channels, path, downmix=options.downmix) for t in templates
        }
        detectors = options.detectors(arrays, rate, channels, where=path)
        first, end = detectors.start_chunk(start, stop, frames)
        src = _seek(src, path, options, first)
        found, pos = [], first
        while pos < end:
            block = src.read(min(options.block, end - pos))
            if not len(block):
                break
            found += detectors.process(block)
            pos += len(block)
        if end == frames:
            found += detectors.flush()
    except ValueError as exc:
        raise UsageError(f"{path}: {exc}") from None
    finally:
        src.close()
    return [to_record(path, d) for d in found if start <= d.sample < stop]


def _seek(src, path: str, options: MatchOptions, frame: int):
    """`src`, reading from `frame` on (raw PCM: a new source over the file at that byte)."""
    if isinstance(src, files.SoundFileSource):
        if frame:
            src.seek(frame)
        return src
    src.close()
    stream = open(path, "rb")
    stream.seek(frame * _frame_bytes(options))
    return RawSource(stream, *_raw(options), name=path, close_stream=True)
