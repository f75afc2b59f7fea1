"""Planned real FFTs on fixed buffers (FFTW through pyFFTW).

A streaming engine transforms the same shapes thousands of times a second, so the cost that
matters is the per-call overhead: ``scipy.fft.rfft`` on a (2, 128) block spends ~6 us in Python
and planning, a planned FFTW ``execute()`` ~0.5 us. Every transform here is planned once, on
buffers allocated once, and run in place of those buffers.
"""

from __future__ import annotations

import sys
import threading

import numpy as np


def _import_pyfftw():
    """Import pyFFTW without the optional interfaces that cost 0.5 s of start-up.

    ``import pyfftw`` imports its ``interfaces`` package, which imports scipy.fftpack and
    dask.array when they are installed; we only use the ``FFTW`` class. Masking those two modules
    (``None`` in ``sys.modules`` makes their import fail) while pyFFTW loads skips them; the
    masks are removed afterwards, so anyone else can still import them.
    """
    optional = [m for m in ("scipy.fftpack", "dask.array.fft") if m not in sys.modules]
    for name in optional:
        sys.modules[name] = None
    try:
        import pyfftw
    finally:
        for name in optional:
            del sys.modules[name]
    return pyfftw


pyfftw = _import_pyfftw()

# FFTW_ESTIMATE plans in ~1 ms; FFTW_MEASURE takes 1-5 s per size, but its plans run 25-35%
# faster (a (2, 17280) forward + inverse pair: 157 -> 116 us) and a time limit leaves only
# estimates. So measuring is done once per machine: FFTW keeps what it measured as *wisdom*,
# which an ESTIMATE plan of the same problem uses. `measure_plans` switches new plans to
# measuring; streamconv.wisdom saves and loads the wisdom.
_plan_flags = ["FFTW_ESTIMATE"]


# FFTW's planner is not thread-safe. pyFFTW plans under its own (private) lock; the compiled
# engines (streamconv.dsp.compiled) plan through the same FFTW library, so streamconv makes all
# its plans, both kinds, under this lock.
PLAN_LOCK = threading.Lock()


def measure_plans(on: bool = True) -> None:
    """Plan new transforms by measuring them (slow, once) instead of estimating (fast)."""
    _plan_flags[0] = "FFTW_MEASURE" if on else "FFTW_ESTIMATE"


def measuring() -> bool:
    """True if new plans are measured (see :func:`measure_plans`)."""
    return _plan_flags[0] == "FFTW_MEASURE"


def export_wisdom() -> tuple[bytes, bytes, bytes]:
    """FFTW's accumulated measurements (double, single, long double), as text bytes."""
    return pyfftw.export_wisdom()


def import_wisdom(wisdom: tuple[bytes, bytes, bytes]) -> bool:
    """Add measurements from `export_wisdom`; False if FFTW rejected any part."""
    return all(pyfftw.import_wisdom(wisdom))


_COMPLEX = {np.dtype(np.float32): np.complex64, np.dtype(np.float64): np.complex128}


class RealFFTPair:
    """Forward and inverse real FFT of size ``nfft`` over ``channels`` rows.

    ``time`` (channels, nfft) is the forward input, ``spectrum`` (channels, nfft//2 + 1) its
    output; ``inverse_spectrum`` is the inverse input and ``inverse_time`` its output. The
    inverse is *not* normalized: fold ``1/nfft`` into the filter spectra.
    """

    def __init__(self, nfft: int, in_channels: int, out_channels: int, dtype: np.dtype):
        bins = nfft // 2 + 1
        cdtype = _COMPLEX[np.dtype(dtype)]
        self.nfft = nfft
        self.time = pyfftw.zeros_aligned((in_channels, nfft), dtype=dtype)
        self.spectrum = pyfftw.zeros_aligned((in_channels, bins), dtype=cdtype)
        self.inverse_spectrum = pyfftw.zeros_aligned((out_channels, bins), dtype=cdtype)
        self.inverse_time = pyfftw.zeros_aligned((out_channels, nfft), dtype=dtype)
        kwargs = dict(axes=(-1,), flags=tuple(_plan_flags))
        with PLAN_LOCK:
            self._forward = pyfftw.FFTW(self.time, self.spectrum, **kwargs)
            self._inverse = pyfftw.FFTW(
                self.inverse_spectrum, self.inverse_time, direction="FFTW_BACKWARD", **kwargs
            )

    def forward(self) -> np.ndarray:
        """Transform ``time`` into ``spectrum`` and return ``spectrum``."""
        self._forward.execute()
        return self.spectrum

    def inverse(self) -> np.ndarray:
        """Transform ``inverse_spectrum`` into ``inverse_time`` (unnormalized) and return it."""
        self._inverse.execute()
        return self.inverse_time


# Real FFTs whose size has few factors of two are slow in FFTW: 16875 = 3^3 5^4 takes 3x as long
# per sample as 17280 = 2^7 3^3 5. Sizes are kept multiples of this.
_EVEN_FACTOR = 16


def fast_fft_size(n: int) -> int:
    """The smallest 2^a * 3^b * 5^c >= n with 2^a >= 16 (or a power of two below 16)."""
    if n <= _EVEN_FACTOR:
        return 1 << max(0, (n - 1).bit_length())
    return _EVEN_FACTOR * _smooth_size(-(-n // _EVEN_FACTOR))


def _smooth_size(n: int) -> int:
    """The smallest 2^a * 3^b * 5^c >= n."""
    best = 1 << max(0, (n - 1).bit_length())
    power5 = 1
    while power5 < best:
        power35 = power5
        while power35 < best:
            size = power35
            while size < n:
                size *= 2
            best = min(best, size)
            power35 *= 3
        power5 *= 5
    return best
