"""Peak picking on score traces, shared by the batch and the streaming paths.

The rule (docs/contract.md, "Scores and detections"): sample ``i`` is a peak when
``score[i] >= threshold[i]`` and ``score[i]`` is the largest score within ``min_distance - 1``
samples on either side; of equal scores the earliest wins. Written out::

    score[i] >  max(score[i - w : i])            (w = min_distance - 1, clipped at the start)
    score[i] >= max(score[i + 1 : i + w + 1])    (clipped at the end of the trace)

The decision for ``i`` needs ``w`` samples after it, so a streaming caller can decide every
candidate up to ``end - w`` and keep only ``w`` scores of context on each side.
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import maximum_filter1d

__all__ = ["PeakTracker", "find_peaks", "parabola_offset", "pick_peaks"]


def parabola_offset(a: float, b: float, c: float) -> float:
    """Where the parabola through ``(-1, a), (0, b), (1, c)`` peaks, clipped to +-1/2; 0 when
    it does not open downwards. Refines a peak at ``b`` between samples (for a local maximum,
    ``a, c <= b``, the vertex lies within +-1/2 already).

    >>> parabola_offset(0.0, 3.0, 2.0), parabola_offset(1.0, 2.0, 2.0), parabola_offset(1, 1, 1)
    (0.25, 0.5, 0.0)
    """
    curve = a - 2.0 * b + c
    if curve >= 0:
        return 0.0
    return float(min(max(0.5 * (a - c) / curve, -0.5), 0.5))


def _sliding_max(a: np.ndarray, width: int) -> np.ndarray:
    """``out[j] = max(a[j : j + width])`` for ``j`` in ``0 .. len(a) - width``."""
    # maximum_filter1d centres its window at j + width // 2 when origin is 0.
    full = maximum_filter1d(a, size=width, mode="nearest")
    return full[width // 2 : width // 2 + len(a) - width + 1]


def pick_peaks(
    scores: np.ndarray,
    threshold: float | np.ndarray,
    min_distance: int,
    start: int = 0,
    stop: int | None = None,
) -> np.ndarray:
    """Indices ``i`` in ``[start, stop)`` of ``scores`` that are peaks.

    Parameters
    ----------
    scores : (n,) array
        A score trace. Its ends are taken as the ends of the stream: a caller that holds a
        slice of a longer trace must include ``min_distance - 1`` samples of context on each
        side of ``[start, stop)`` (or reach the real end of the stream).
    threshold : float or (n,) array
        The value a peak must reach (``>=``), per sample or for all.
    min_distance : int
        At least 1. Peaks are strict maxima over ``min_distance - 1`` earlier samples and
        maxima over as many later samples.
    start, stop : int
        The candidate range; defaults to the whole trace.

    Returns
    -------
    (k,) int64 array, ascending.

    Examples
    --------
    >>> pick_peaks(np.array([0.0, 0.9, 0.9, 0.1, 0.8]), 0.5, 2).tolist()
    [1, 4]
    """
    scores = np.asarray(scores, dtype=np.float64)
    if scores.ndim != 1:
        raise ValueError(f"scores must be 1-D, got shape {scores.shape}")
    if int(min_distance) < 1:
        raise ValueError(f"min_distance must be >= 1, got {min_distance}")
    n = len(scores)
    stop = n if stop is None else min(int(stop), n)
    start = max(int(start), 0)
    if stop <= start:
        return np.zeros(0, dtype=np.int64)
    thr = np.broadcast_to(np.asarray(threshold, dtype=np.float64), (n,))
    cand = scores[start:stop] >= thr[start:stop]
    w = int(min_distance) - 1
    if w > 0 and cand.any():
        # Pad with -inf so that the windows clip at the ends of the trace.
        lo, hi = max(start - w, 0), min(stop + w, n)
        pad = np.full((stop - start) + 3 * w + 1, -np.inf)
        off = w - (start - lo)
        pad[off : off + hi - lo] = scores[lo:hi]
        # In pad, candidate start+k sits at index w + k.
        win = _sliding_max(pad, w)
        k = np.arange(stop - start)
        before = win[k]  # max(scores[i - w : i])
        after = win[k + w + 1]  # max(scores[i + 1 : i + w + 1])
        mine = scores[start:stop]
        cand &= (mine > before) & (mine >= after)
    return np.flatnonzero(cand).astype(np.int64) + start


def find_peaks(scores: np.ndarray, threshold: float | np.ndarray, min_distance: int) -> np.ndarray:
    """All peaks of a whole score trace (the batch form of :func:`pick_peaks`).

    Examples
    --------
    >>> find_peaks(np.array([0.2, 1.0, 0.3, 0.9, 0.0]), 0.5, 3).tolist()
    [1]
    """
    return pick_peaks(scores, threshold, min_distance)


class PeakTracker:
    """Streaming form of :func:`find_peaks`: feed scores and thresholds in pieces.

    Every peak is reported once, as soon as it is final (``min_distance - 1`` scores after it),
    and the peaks do not depend on how the trace was cut.

    Parameters
    ----------
    min_distance : int
        As in :func:`pick_peaks`.

    Examples
    --------
    >>> t = PeakTracker(3)
    >>> t.push(np.array([0.1, 0.9]), 0.5)[0].tolist(), t.push(np.array([0.2, 0.3]), 0.5)[0].tolist()
    ([], [1])
    """

    def __init__(self, min_distance: int):
        if int(min_distance) < 1:
            raise ValueError(f"min_distance must be >= 1, got {min_distance}")
        self.min_distance = int(min_distance)
        self.reset()

    def reset(self) -> None:
        self._scores = np.zeros(0)
        self._thr = np.zeros(0)
        self._base = 0  # stream index of self._scores[0]
        self.decided = 0  # every candidate below this index has been decided

    @property
    def end(self) -> int:
        """Stream index one past the last score pushed."""
        return self._base + len(self._scores)

    def push(
        self, scores: np.ndarray, threshold: float | np.ndarray, final: bool = False
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Append scores (with their thresholds); return the new peaks.

        With ``final=True`` the trace ends here and every remaining candidate is decided.

        Returns
        -------
        (indices, scores, thresholds) of the new peaks; indices count from the first score
        ever pushed.
        """
        scores = np.asarray(scores, dtype=np.float64)
        thr = np.broadcast_to(np.asarray(threshold, dtype=np.float64), scores.shape)
        self._scores = np.concatenate([self._scores, scores])
        self._thr = np.concatenate([self._thr, thr])
        w = self.min_distance - 1
        stop = self.end if final else max(self.end - w, self.decided)
        base = self._base
        found = pick_peaks(
            self._scores, self._thr, self.min_distance, self.decided - base, stop - base
        )
        values, thresholds = self._scores[found], self._thr[found]
        self.decided = stop
        keep_from = max(self.decided - w, self._base)
        self._scores = self._scores[keep_from - self._base :]
        self._thr = self._thr[keep_from - self._base :]
        self._base = keep_from
        return found + base, values, thresholds
