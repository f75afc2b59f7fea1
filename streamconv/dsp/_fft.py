"""Planned real FFTs on fixed buffers (FFTW through pyFFTW).

A streaming engine transforms the same shapes thousands of times a second, so the cost that
matters is the per-call overhead: ``scipy.fft.rfft`` on a (2, 128) block spends ~6 us in Python
and planning, a planned FFTW ``execute()`` ~0.5 us. Every transform here is planned once, on
buffers allocated once, and run in place of those buffers.
"""

from __future__ import annotations

import numpy as np
import pyfftw

# FFTW_MEASURE picks faster kernels than FFTW_ESTIMATE for small sizes but can spend seconds on
# large ones; the time limit keeps construction quick, and wisdom makes re-planning free.
_PLAN_FLAGS = ("FFTW_MEASURE",)
_PLAN_TIMELIMIT_S = 0.05

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
        kwargs = dict(axes=(-1,), flags=_PLAN_FLAGS, planning_timelimit=_PLAN_TIMELIMIT_S)
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


def fast_fft_size(n: int) -> int:
    """The smallest 2^a * 3^b * 5^c >= n (sizes FFTW transforms fastest)."""
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
