"""What a set of FIR taps does: frequency response, group delay, gains and attenuation.

Measurements only; the designers in :mod:`streamconv.dsp.design.designers` use
:func:`stopband_peak_db` to check that a Kaiser design really meets its attenuation.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy import signal

__all__ = ["analyze", "frequency_response", "stopband_peak_db"]


def _grid_size(length: int, minimum: int = 8192) -> int:
    return 1 << math.ceil(math.log2(max(minimum, 16 * length)))


def frequency_response(
    h: np.ndarray, sample_rate: float, n_fft: int | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Frequency response and group delay of a 1-D FIR on a uniform grid from 0 to Nyquist.

    Parameters
    ----------
    h : numpy.ndarray
        Taps.
    sample_rate : float
        Sample rate in Hz.
    n_fft : int, optional
        FFT size; default a power of two of at least ``max(8192, 16 L)`` (16x oversampled).

    Returns
    -------
    freqs, response, group_delay : numpy.ndarray
        Frequencies in Hz, complex ``H(f)``, and group delay in samples (NaN where
        ``|H|`` is below 1e-12 of its peak, where the phase is undefined).

    Notes
    -----
    ``H(w) = sum_n h[n] e^{-jwn}`` and ``tau(w) = Re(sum_n n h[n] e^{-jwn} / H(w))``.
    """
    h = np.asarray(h, dtype=np.float64)
    n_fft = n_fft or _grid_size(len(h))
    resp = np.fft.rfft(h, n_fft)
    ramp = np.fft.rfft(np.arange(len(h)) * h, n_fft)
    mag = np.abs(resp)
    valid = mag > 1e-12 * max(float(mag.max()), 1e-300)
    delay = np.full(len(resp), np.nan)
    delay[valid] = np.real(ramp[valid] / resp[valid])
    freqs = np.arange(len(resp)) * sample_rate / n_fft
    return freqs, resp, delay


def stopband_peak_db(h: np.ndarray, sample_rate: float, stopbands) -> float:
    """Largest magnitude (dB re 1) of ``h`` over the stopbands.

    A 16x oversampled FFT grid finds the candidate peaks; the largest local maxima and the band
    edges are then evaluated exactly on a fine grid around them, so a sidelobe peak that falls
    between grid points is not missed.
    """
    freqs, resp, _ = frequency_response(h, sample_rate)
    mag = np.abs(resp)
    step = freqs[1]
    worst = 0.0
    for lo, hi in stopbands:
        idx = np.flatnonzero((freqs >= lo) & (freqs <= hi))
        probes = [lo, hi]
        if len(idx):
            m = mag[idx]
            peaks = idx[1:-1][(m[1:-1] >= m[:-2]) & (m[1:-1] >= m[2:])]
            peaks = np.concatenate([peaks, idx[[0, -1]]])
            probes += list(freqs[peaks[np.argsort(mag[peaks])[-16:]]])
        fine = np.concatenate([np.linspace(f - step, f + step, 65) for f in probes])
        fine = fine[(fine >= lo) & (fine <= hi)]
        _, exact = signal.freqz(h, worN=fine, fs=sample_rate)
        worst = max(worst, float(np.abs(exact).max()))
    return float(20 * np.log10(worst)) if worst > 0 else float("-inf")


def analyze(
    h: np.ndarray,
    sample_rate: float,
    stopbands: Sequence[tuple[float, float]] = (),
    passbands: Sequence[tuple[float, float]] = (),
) -> dict:
    """Measure a 1-D FIR: length, group delay, gains and the stopband attenuation achieved.

    Returns
    -------
    dict
        ``length``; ``linear_phase`` (symmetric or antisymmetric taps); ``group_delay_samples``
        (exact ``(L-1)/2`` for linear phase, else the median over the passbands, or over all
        frequencies with at least -3 dB of the peak); ``gain_dc_db``, ``gain_nyquist_db``;
        ``attenuation_db``: ``-max |H|`` in dB over the stopbands, or None without any.
    """
    h = np.asarray(h, dtype=np.float64)
    length = len(h)
    scale = max(float(np.max(np.abs(h))), 1e-300)
    linear = bool(
        np.allclose(h, h[::-1], rtol=0, atol=1e-12 * scale)
        or np.allclose(h, -h[::-1], rtol=0, atol=1e-12 * scale)
    )
    freqs, resp, delays = frequency_response(h, sample_rate)
    mag = np.abs(resp)
    if linear:
        delay_samples = (length - 1) / 2
    else:
        if passbands:
            mask = np.zeros(len(freqs), bool)
            for lo, hi in passbands:
                mask |= (freqs >= lo) & (freqs <= hi)
        else:
            mask = mag >= mag.max() / math.sqrt(2)
        gd = delays[mask]
        gd = gd[np.isfinite(gd)]
        delay_samples = float(np.median(gd)) if len(gd) else float("nan")
    total = float(np.sum(h))
    alternating = float(np.sum(h * (-1.0) ** np.arange(length)))

    def to_db(x: float) -> float:
        return float(20 * np.log10(abs(x))) if x != 0 else float("-inf")

    attenuation = -stopband_peak_db(h, sample_rate, stopbands) if stopbands else None
    return {
        "length": length,
        "linear_phase": linear,
        "group_delay_samples": float(delay_samples),
        "gain_dc_db": to_db(total),
        "gain_nyquist_db": to_db(alternating),
        "attenuation_db": attenuation,
    }
