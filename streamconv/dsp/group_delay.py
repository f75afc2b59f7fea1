"""The delay a filter chain puts on the timeline, when it is one delay for every frequency.

A linear-phase FIR delays every frequency by the same number of samples: a symmetric
(``h[k] = h[L-1-k]``) or antisymmetric (``h[k] = -h[L-1-k]``) filter of ``L`` taps by
``(L - 1) / 2``. Counted from the first to the last non-zero tap, a pure delay (one tap at
``D``) is ``D`` and zero-padding does not change anything. A pattern that starts at input
sample ``n`` then starts at ``n + delay`` in the filtered stream, so detections made on the
filtered stream are moved back by the delay to the input's timeline.

Other filters (minimum-phase, measured impulse responses, paths with different delays) delay
each frequency differently: no single number puts a detection back on the input's timeline,
so :func:`chain_delay` returns None and the detections stay on the filtered stream's timeline.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["chain_delay", "linear_phase_delay"]

#: Taps this close (relative to the largest) count as equal for the symmetry test; designs
#: computed in floating point are symmetric to rounding.
SYMMETRY_RTOL = 1e-9


def linear_phase_delay(h) -> float | None:
    """Group delay in samples of a 1-D FIR if it is linear phase, else None.

    Examples
    --------
    >>> linear_phase_delay([1.0, 2.0, 1.0]), linear_phase_delay([0, 0, 1.0, 0])
    (1.0, 2.0)
    >>> linear_phase_delay([1.0, 0.5]) is None
    True
    """
    h = np.asarray(h, dtype=np.float64)
    nz = np.flatnonzero(h)
    if len(nz) == 0:
        return None
    a, b = int(nz[0]), int(nz[-1])
    core = h[a : b + 1]
    tol = SYMMETRY_RTOL * float(np.max(np.abs(core)))
    if np.all(np.abs(core - core[::-1]) <= tol) or np.all(np.abs(core + core[::-1]) <= tol):
        return (a + b) / 2
    return None


def whole_delay(delay: float) -> int:
    """A chain delay in whole samples, halves rounded up: what the service subtracts to put a
    detection on the input's timeline, and what a filtered snippet is shifted by (an even-length
    symmetric filter delays by ``(L - 1) / 2``, a half; both must round it the same way).

    >>> whole_delay(2.5), whole_delay(3.0)
    (3, 3)
    """
    return math.floor(delay + 0.5)


def chain_delay(taps) -> float | None:
    """The delay of a whole chain ``(L,)``, ``(L, C)`` or ``(L, Cin, Cout)`` (docs/contract.md,
    "Python API").

    Every non-zero path must be linear phase with the same delay; otherwise None.
    """
    taps = np.asarray(taps, dtype=np.float64)
    paths = taps.reshape(taps.shape[0], -1).T
    delays = {linear_phase_delay(p) for p in paths if np.any(p)}
    if len(delays) != 1 or None in delays:
        return None
    return delays.pop()
