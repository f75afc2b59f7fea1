"""Load FIR taps for ``--fir`` and ``type = "file"`` filters.

=================  ======================================================================
``.txt`` ``.csv``  one tap per line; several columns (comma or whitespace) = one per channel
``.npy``           an array ``(L,)``, ``(L, C)`` or a MIMO matrix ``(L, Cin, Cout)``
audio file         an impulse response through libsndfile; it carries its sample rate
=================  ======================================================================
"""

from __future__ import annotations

import contextlib
import io
import os
import warnings

import numpy as np

from streamconv.errors import UsageError
from streamconv.io import files


def load_taps(path: str) -> tuple[np.ndarray, float | None]:
    """Read FIR taps from a file.

    Parameters
    ----------
    path : str
        A ``.txt``/``.csv``/``.npy`` file or an audio file holding an impulse response.

    Returns
    -------
    taps : numpy.ndarray
        float64, ``(L,)`` for one filter, ``(L, C)`` one per channel, ``(L, Cin, Cout)`` MIMO.
    sample_rate : float or None
        The impulse response's sample rate for audio files; None where the file does not say.

    Raises
    ------
    UsageError
        Missing, empty or unparsable file, or taps that are not finite; the message names it.

    Examples
    --------
    >>> taps, rate = load_taps("lowpass.txt")  # doctest: +SKIP
    """
    files._check_readable(path)
    ext = os.path.splitext(path)[1].lower()
    if ext in (".txt", ".csv"):
        taps, rate = _load_text(path), None
    elif ext == ".npy":
        taps, rate = _load_npy(path), None
    else:
        taps, rate = _load_audio(path)
    if taps.size == 0 or len(taps) == 0:
        raise UsageError(f"{path}: no taps in the file")
    if not np.isfinite(taps).all():
        raise UsageError(f"{path}: taps must be finite (found NaN or Inf)")
    if len(taps) and taps.ndim == 2 and taps.shape[1] == 1:
        taps = taps[:, 0]
    return taps, rate


def _load_text(path: str) -> np.ndarray:
    with open(path, encoding="utf-8", errors="replace") as f:
        text = f.read()
    # numpy's parser is 6x as fast as the loop of _parse_lines on a 65536-tap file; that loop
    # runs when it fails, to name the line to blame (or say the file holds no taps).
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "input contained no data"
        with contextlib.suppress(ValueError):
            taps = np.loadtxt(io.StringIO(text.replace(",", " ")), comments="#", ndmin=2)
            if taps.size:
                return taps
    return _parse_lines(path, text.splitlines())


def _parse_lines(path: str, lines: list[str]) -> np.ndarray:
    rows = []
    for number, line in enumerate(lines, 1):
        text = line.split("#", 1)[0].strip()
        if not text:
            continue
        fields = text.replace(",", " ").split()
        try:
            rows.append([float(field) for field in fields])
        except ValueError:
            raise UsageError(f"{path}: line {number}: not a number in {line.strip()!r}") from None
        if len(rows[-1]) != len(rows[0]):
            raise UsageError(
                f"{path}: line {number}: {len(rows[-1])} columns, expected {len(rows[0])}"
            )
    if not rows:
        raise UsageError(f"{path}: no taps in the file")
    return np.array(rows, dtype=np.float64)


def _load_npy(path: str) -> np.ndarray:
    try:
        taps = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise UsageError(f"{path}: not a readable .npy array ({exc})") from None
    if taps.dtype.kind not in "iuf" or taps.ndim not in (1, 2, 3):
        raise UsageError(
            f"{path}: taps must be a real array (L,), (L, C) or (L, Cin, Cout); "
            f"got {taps.dtype} of shape {taps.shape}"
        )
    return taps.astype(np.float64)


def _load_audio(path: str) -> tuple[np.ndarray, float]:
    files.audio_format(path)
    with files.SoundFileSource(path) as src:
        blocks = list(src.blocks(1 << 16))
        rate = src.sample_rate
        channels = src.channels
    taps = np.concatenate(blocks) if blocks else np.zeros((0, channels))
    return taps, rate


def taps_channels(taps: np.ndarray) -> tuple[int | None, int | None]:
    """Return (input channels, output channels) a taps array fixes; None = any (mono taps)."""
    if taps.ndim == 1:
        return None, None
    if taps.ndim == 2:
        return taps.shape[1], taps.shape[1]
    return taps.shape[1], taps.shape[2]
