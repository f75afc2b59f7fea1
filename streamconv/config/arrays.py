"""Reading taps and templates from files: text/csv, ``.npy`` and audio files.

Every reader returns a ``(frames, channels)`` float64 array and the file's sample rate (None
where the format has none), or raises `UsageError` naming the file and, for text, the line.
"""

from __future__ import annotations

import itertools
import os
import re
from collections.abc import Iterable

import numpy as np
import soundfile as sf

from streamconv.errors import UsageError

TEXT_EXTENSIONS = (".txt", ".csv", ".dat")
_SPLIT = re.compile(r"[,;\s]+")


def read_text(path: str) -> np.ndarray:
    """Numbers, one row per line, columns split by commas, semicolons or blanks.

    Empty lines and ``#`` comments are skipped; a first line that is not numbers (a header) is
    skipped too. Every row must have the same number of columns.
    """
    with open(path, encoding="utf-8", errors="replace") as fh:
        return parse_text(fh, path)


def parse_text(lines: Iterable[str], name: str) -> np.ndarray:
    """Parse lines as :func:`read_text` does; ``name`` is the file named in errors."""
    rows: list[list[float]] = []
    for number, raw in enumerate(lines, start=1):
        text = raw.split("#", 1)[0].strip()
        if not text:
            continue
        fields = [f for f in _SPLIT.split(text) if f]
        try:
            row = [float(f) for f in fields]
        except ValueError:
            if not rows and number == 1:
                continue  # a header line
            bad = next(f for f in fields if not _is_number(f))
            raise UsageError(f"{name} line {number}: {bad!r} is not a number") from None
        if rows and len(row) != len(rows[0]):
            raise UsageError(f"{name} line {number}: {len(row)} columns, expected {len(rows[0])}")
        rows.append(row)
    if not rows:
        raise UsageError(f"{name}: no numbers in the file")
    return np.asarray(rows, dtype=np.float64)


def text_columns(path: str, max_lines: int = 50) -> int:
    """The column count of a text file, from its first lines only."""
    with open(path, encoding="utf-8", errors="replace") as fh:
        return parse_text(itertools.islice(fh, max_lines), path).shape[1]


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def read_array(path: str) -> tuple[np.ndarray, float | None]:
    """Read a file of samples as ``(frames, channels)`` float64, with its sample rate if known.

    ``.txt``/``.csv``/``.dat``: text (:func:`read_text`); ``.npy``: a 1-D or 2-D ``(frames,
    channels)`` array; anything else: an audio file through libsndfile (floats as stored;
    integer audio scaled by full scale).

    Raises
    ------
    UsageError
        Missing or unreadable file, bad contents, NaN/Inf, or no samples.
    """
    if not os.path.exists(path):
        raise UsageError(f"{path}: no such file")
    if os.path.isdir(path):
        raise UsageError(f"{path}: is a directory, not a file")
    ext = os.path.splitext(path)[1].lower()
    rate: float | None = None
    try:
        if ext in TEXT_EXTENSIONS:
            data = read_text(path)
        elif ext == ".npy":
            try:
                data = np.load(path, allow_pickle=False)
            except (ValueError, EOFError) as exc:
                raise UsageError(f"{path}: not a readable .npy array ({exc})") from None
            if data.dtype.kind not in "biuf":
                raise UsageError(f"{path}: holds {data.dtype} values, not numbers")
            if data.ndim == 1:
                data = data[:, np.newaxis]
            if data.ndim != 2:
                raise UsageError(f"{path}: array of shape {data.shape}; want (L,) or (L, C)")
            data = data.astype(np.float64)
        else:
            try:
                data, rate = sf.read(path, dtype="float64", always_2d=True)
            except (sf.LibsndfileError, RuntimeError, TypeError) as exc:
                raise UsageError(f"{path}: not a readable audio file ({exc})") from None
            rate = float(rate)
    except PermissionError:
        raise UsageError(f"{path}: permission denied") from None
    except OSError as exc:
        raise UsageError(f"{path}: cannot read: {exc.strerror or exc}") from None
    if data.shape[0] == 0 or data.shape[1] == 0:
        raise UsageError(f"{path}: holds no samples")
    if not np.all(np.isfinite(data)):
        frame = int(np.argwhere(~np.isfinite(data))[0][0])
        raise UsageError(f"{path}: NaN or Inf at frame {frame}")
    return data, rate
