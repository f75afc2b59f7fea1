"""The one reader of arrays of samples: FIR taps and templates (``--fir``, ``match -t``, config).

=====================  ==================================================================
``.txt .csv .dat``     text: one row per line (frame or tap), one column per channel
``.npy``               an array ``(L,)``, ``(L, C)`` (or, for taps, ``(L, Cin, Cout)``)
anything else          an audio file through libsndfile; it carries its sample rate
=====================  ==================================================================

Text rules (`streamconv.io.rows`), the same for ``--fir``, ``match -t``, a config's files and
the ``.csv`` stream: the first line holding anything decides the separator (`columns_of`:
``;`` or tab when it holds one, else ``,``, else blanks; with ``;`` or tab, ``0,25`` is a
number with a decimal comma); blank lines and ``#`` comments are skipped; the first line
holding anything may be a header (`streamconv.io.rows.is_header`: it holds no number, or fewer
numbers than the line after it); every row has the columns of the first. Errors are one line
naming the file, the line, the value and its column: ``knock.csv: line 7: 'x' is not a number
(column 1 (knock))``.
"""

from __future__ import annotations

import contextlib
import io
import os
import warnings

import numpy as np

from streamconv.errors import UsageError
from streamconv.io import files
from streamconv.io.rows import RowParser, layout_of

__all__ = ["TEXT_EXTENSIONS", "read_array"]

TEXT_EXTENSIONS = (".txt", ".csv", ".dat")


def _read_text(path: str) -> np.ndarray:
    with open(path, encoding="utf-8", errors="replace") as f:
        text = f.read()
    # numpy's parser is 5x as fast as RowParser on a 65536-tap file (it starts after the header
    # line, if any). RowParser runs when it fails: it names the line to blame.
    lines = text.splitlines()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "input contained no data"
        with contextlib.suppress(ValueError):
            rule, skip = layout_of(lines[:1000])
            plain = text.replace(",", ".") if rule.commas_are_decimal else text
            data = np.loadtxt(
                io.StringIO(plain), comments="#", ndmin=2, dtype=np.float64, skiprows=skip,
                delimiter=None if rule.separator == " " else rule.separator,
            )  # fmt: skip
            if data.size:
                return data
    return RowParser(path).parse(lines)


def _read_npy(path: str, max_ndim: int) -> np.ndarray:
    try:
        data = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise UsageError(f"{path}: not a readable .npy array ({exc})") from None
    if not isinstance(data, np.ndarray) or data.dtype.kind not in "iuf":
        raise UsageError(f"{path}: holds {getattr(data, 'dtype', 'no')} values, not numbers")
    want = "(L,), (L, C) or (L, Cin, Cout)" if max_ndim == 3 else "(L,) or (L, C)"
    if not 1 <= data.ndim <= max_ndim:
        raise UsageError(f"{path}: an array of shape {data.shape}; want {want}")
    data = data.astype(np.float64)
    return data[:, np.newaxis] if data.ndim == 1 else data


def _read_audio(path: str) -> tuple[np.ndarray, float]:
    files.audio_format(path)
    with files.SoundFileSource(path) as src:
        blocks = list(src.blocks(1 << 16))
        rate, channels = src.sample_rate, src.channels
    return (np.concatenate(blocks) if blocks else np.zeros((0, channels))), rate


def read_array(path: str, max_ndim: int = 2) -> tuple[np.ndarray, float | None]:
    """Read a file of samples as float64 ``(frames, channels)``, with its sample rate if known.

    Parameters
    ----------
    path : str
        Text (see the module docstring), ``.npy`` or an audio file.
    max_ndim : {2, 3}
        3 lets a ``.npy`` file hold a MIMO FIR ``(L, Cin, Cout)`` (returned as it is).

    Returns
    -------
    data : numpy.ndarray
        ``(frames, channels)`` (a 1-D ``.npy`` array is one column), finite.
    rate : float or None
        An audio file's sample rate; None for text and ``.npy``.

    Raises
    ------
    UsageError
        A missing or unreadable file, bad contents, NaN/Inf, or no samples; one line naming
        the file (and for text the line and value).
    """
    files._check_readable(path)
    ext = os.path.splitext(path)[1].lower()
    rate = None
    try:
        if ext in TEXT_EXTENSIONS:
            data = _read_text(path)
        elif ext == ".npy":
            data = _read_npy(path, max_ndim)
        else:
            data, rate = _read_audio(path)
    except PermissionError:
        raise UsageError(f"{path}: permission denied") from None
    except OSError as exc:
        raise UsageError(f"{path}: cannot read: {exc.strerror or exc}") from None
    if data.size == 0:
        raise UsageError(f"{path}: holds no samples")
    if not np.all(np.isfinite(data)):
        frame = int(np.argwhere(~np.isfinite(data))[0][0])
        raise UsageError(f"{path}: NaN or Inf sample at frame {frame}")
    return data, rate
