"""Chain algebra: a chain of filters and channel mixes collapsed into one ``(L, Cin, Cout)`` FIR.

Start from :func:`identity`, follow it by :func:`apply_filter`, :func:`apply_mix` and
:func:`apply_mimo` in chain order; :func:`compact_taps` gives the smallest equivalent layout for
``Convolver``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import signal

__all__ = ["apply_filter", "apply_mimo", "apply_mix", "compact_taps", "identity"]


def identity(channels: int) -> np.ndarray:
    """The ``(1, C, C)`` MIMO FIR that passes ``channels`` channels through unchanged."""
    if channels < 1:
        raise ValueError(f"channels must be >= 1, got {channels}")
    return np.eye(channels)[np.newaxis]


def apply_filter(
    mimo: np.ndarray, h: np.ndarray, channels: Sequence[int] | None = None
) -> np.ndarray:
    """Follow a MIMO FIR ``(L, Cin, C)`` by a filter on some of its C output channels.

    Parameters
    ----------
    mimo : numpy.ndarray
        ``(L, Cin, C)`` taps so far.
    h : numpy.ndarray
        ``(M,)``: the same filter on each selected channel; ``(M, K)``: column ``k`` filters
        the ``k``-th selected channel.
    channels : list of int, optional
        Channels (0-based, of the C current ones) to filter; default all. Others pass as they are.

    Returns
    -------
    numpy.ndarray
        ``(L + M - 1, Cin, C)``: convolving with it equals convolving with ``mimo`` and then
        filtering the selected channels with ``h``.
    """
    n_out = mimo.shape[2]
    chans = list(range(n_out)) if channels is None else list(channels)
    for c in chans:
        if not 0 <= c < n_out:
            raise ValueError(f"channel {c} does not exist; there are {n_out} (0..{n_out - 1})")
    if len(set(chans)) != len(chans):
        raise ValueError(f"channels lists a channel twice: {chans}")
    h = np.asarray(h, dtype=np.float64)
    if h.ndim == 1:
        h = np.repeat(h[:, np.newaxis], len(chans), axis=1)
    if h.ndim != 2 or h.shape[1] != len(chans):
        raise ValueError(f"{h.shape[1]} filter columns for {len(chans)} channels")
    length = mimo.shape[0] + h.shape[0] - 1
    delta = np.zeros(h.shape[0])
    delta[0] = 1.0
    out = np.empty((length, mimo.shape[1], n_out))
    for c in range(n_out):
        kernel = h[:, chans.index(c)] if c in chans else delta
        out[:, :, c] = signal.convolve(mimo[:, :, c], kernel[:, np.newaxis], method="direct")
    return out


def apply_mix(mimo: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Follow a MIMO FIR ``(L, Cin, C)`` by a ``(C, Cout)`` gain matrix.

    Output channel ``j`` becomes ``sum_i matrix[i, j] * channel i``.
    """
    matrix = np.asarray(matrix, dtype=np.float64)
    if matrix.ndim != 2 or matrix.shape[0] != mimo.shape[2]:
        raise ValueError(
            f"mix matrix needs {mimo.shape[2]} rows (one per channel), got shape {matrix.shape}"
        )
    return np.einsum("lic,cj->lij", mimo, matrix)


def apply_mimo(mimo: np.ndarray, taps: np.ndarray) -> np.ndarray:
    """Follow a MIMO FIR ``(L, Cin, C)`` by another, ``(M, C, Cout)``: their matrix convolution.

    ``out[:, i, k] = sum_j mimo[:, i, j] * taps[:, j, k]`` (``*``: full convolution).
    """
    taps = np.asarray(taps, dtype=np.float64)
    if taps.ndim != 3 or taps.shape[1] != mimo.shape[2]:
        raise ValueError(f"MIMO taps need {mimo.shape[2]} input channels, got shape {taps.shape}")
    length = mimo.shape[0] + taps.shape[0] - 1
    out = np.zeros((length, mimo.shape[1], taps.shape[2]))
    for j in range(mimo.shape[2]):
        for k in range(taps.shape[2]):
            if np.any(taps[:, j, k]):
                out[:, :, k] += signal.convolve(mimo[:, :, j], taps[:, j, k, np.newaxis])
    return out


def compact_taps(mimo: np.ndarray) -> np.ndarray:
    """The smallest layout of a ``(L, Cin, Cout)`` FIR that ``Convolver`` treats the same.

    ``(L,)`` when every path is one filter on a diagonal (Cin == Cout, no cross terms),
    ``(L, C)`` when diagonal with different filters, else the ``(L, Cin, Cout)`` input itself.
    Trailing all-zero taps are kept: they are part of the requested tail.
    """
    _, n_in, n_out = mimo.shape
    if n_in != n_out:
        return mimo
    off = mimo.copy()
    idx = np.arange(n_in)
    off[:, idx, idx] = 0.0
    if np.any(off):
        return mimo
    diag = mimo[:, idx, idx]
    if np.all(diag == diag[:, :1]):
        return diag[:, 0].copy()
    return diag.copy()
