"""FIR designers: pure functions from a filter spec to taps.

Every designer takes the stream's ``sample_rate`` (Hz) first and its own parameters as keywords,
and returns a 1-D float64 array of taps ``h`` for the causal convolution
``y[n] = sum_k h[k] x[n-k]``. :func:`design` picks the designer by its ``type`` name, the same
name a config's ``[[filters]] type`` uses. Bad parameters raise ``ValueError`` naming the
parameter, as scipy does; the config layer turns them into errors with the config path.
:func:`design_bands` gives a design's nominal pass- and stopbands for
:func:`streamconv.dsp.design.response.analyze`.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence

import numpy as np
from scipy import signal

from streamconv.dsp.design.response import stopband_peak_db

__all__ = [
    "DESIGNERS",
    "WINDOW_TRANSITION",
    "bandpass",
    "bandstop",
    "delay",
    "design",
    "design_bands",
    "differentiator",
    "firls",
    "gain",
    "gaussian",
    "highpass",
    "hilbert",
    "lowpass",
    "moving_average",
    "remez",
    "taps",
]

# Full transition width of a windowed-sinc design in units of sample_rate / numtaps, and the
# stopband attenuation it typically reaches (dB). Standard table (Oppenheim & Schafer 7.2).
WINDOW_TRANSITION: dict[str, tuple[float, float]] = {
    "boxcar": (0.9, 21.0),
    "hann": (3.1, 44.0),
    "hamming": (3.3, 53.0),
    "blackman": (5.5, 74.0),
}

_MAX_KAISER_TAPS = 1 << 20


def _check_window(window: str) -> None:
    if window not in WINDOW_TRANSITION:
        raise ValueError(f"window must be one of {sorted(WINDOW_TRANSITION)}, got {window!r}")


def _check_hz(name: str, value: float, sample_rate: float) -> None:
    nyquist = sample_rate / 2
    if not 0 < value < nyquist:
        raise ValueError(f"{name} must be between 0 and Nyquist ({nyquist:g} Hz), got {value:g}")


def _check_numtaps(numtaps: int, *, odd: bool = False, why: str = "") -> None:
    if isinstance(numtaps, bool) or int(numtaps) != numtaps or numtaps < 1:
        raise ValueError(f"taps must be a positive whole number, got {numtaps!r}")
    if odd and numtaps % 2 == 0:
        raise ValueError(f"taps must be odd{why}, got {numtaps}")


def _windowed_sinc(
    sample_rate: float,
    edges: list[float],
    pass_zero: bool,
    numtaps: int | None,
    window: str,
    transition_hz: float | None,
    attenuation_db: float | None,
) -> np.ndarray:
    for i, edge in enumerate(edges):
        _check_hz("cutoff_hz" if len(edges) == 1 else ("low_hz", "high_hz")[i], edge, sample_rate)
    if len(edges) == 2 and not edges[0] < edges[1]:
        raise ValueError(f"low_hz ({edges[0]:g}) must be below high_hz ({edges[1]:g})")
    # A highpass or bandstop passes Nyquist, which an even-length symmetric FIR cannot.
    needs_odd = pass_zero == (len(edges) == 2)
    kaiser = transition_hz is not None or attenuation_db is not None
    if kaiser == (numtaps is not None):
        raise ValueError("give either taps, or transition_hz and attenuation_db (Kaiser)")
    if numtaps is not None:  # not Kaiser (checked just above)
        _check_window(window)
        _check_numtaps(numtaps, odd=needs_odd, why=" for a filter that passes Nyquist")
        return signal.firwin(
            int(numtaps), edges, window=window, pass_zero=pass_zero, fs=sample_rate
        ).astype(np.float64)
    if transition_hz is None or attenuation_db is None:
        raise ValueError("a Kaiser design needs both transition_hz and attenuation_db")
    if not 0 < transition_hz < sample_rate / 2:
        raise ValueError(f"transition_hz must be between 0 and Nyquist, got {transition_hz:g}")
    if not attenuation_db > 0:
        raise ValueError(f"attenuation_db must be positive, got {attenuation_db:g}")
    stopbands = _kaiser_stopbands(sample_rate, edges, pass_zero, transition_hz)
    if any(lo >= hi for lo, hi in stopbands):
        raise ValueError(f"transition_hz {transition_hz:g} leaves no stopband next to the cutoff")
    if len(edges) == 2 and edges[1] - edges[0] <= transition_hz:
        raise ValueError(f"transition_hz {transition_hz:g} is wider than the band")
    n, beta = signal.kaiserord(attenuation_db, transition_hz / (sample_rate / 2))
    n += 1 - n % 2  # odd: a whole-sample group delay, and allowed for every band shape
    # kaiserord is an empirical formula; lengthen until the asked attenuation is really met.
    while n <= _MAX_KAISER_TAPS:
        h = signal.firwin(n, edges, window=("kaiser", beta), pass_zero=pass_zero, fs=sample_rate)
        if -stopband_peak_db(h, sample_rate, stopbands) >= attenuation_db:
            return h.astype(np.float64)
        n += 2
    raise ValueError(f"cannot reach {attenuation_db:g} dB within {_MAX_KAISER_TAPS} taps")


def _kaiser_stopbands(sample_rate, edges, pass_zero, transition_hz):
    half, nyq = transition_hz / 2, sample_rate / 2
    if len(edges) == 1:
        (fc,) = edges
        return [(fc + half, nyq)] if pass_zero else [(0.0, fc - half)]
    lo, hi = edges
    if pass_zero:  # bandstop
        return [(lo + half, hi - half)]
    return [(0.0, lo - half), (hi + half, nyq)]


def lowpass(
    sample_rate: float,
    *,
    cutoff_hz: float,
    taps: int | None = None,
    window: str = "hamming",
    transition_hz: float | None = None,
    attenuation_db: float | None = None,
) -> np.ndarray:
    """Design a linear-phase lowpass FIR by the window method.

    Parameters
    ----------
    sample_rate : float
        Sample rate in Hz.
    cutoff_hz : float
        Cutoff in Hz, ``0 < cutoff_hz < sample_rate / 2``; the gain there is -6 dB.
    taps : int, optional
        Number of taps for a plain window design with ``window``.
    window : {"hamming", "hann", "blackman", "boxcar"}
        Window of the plain design.
    transition_hz, attenuation_db : float, optional
        Instead of ``taps``: a Kaiser design whose stopband, starting ``transition_hz / 2``
        past the cutoff, is attenuated by at least ``attenuation_db`` (checked, not estimated).

    Returns
    -------
    numpy.ndarray
        The taps, unit gain at DC.

    Notes
    -----
    ``h[n] = w[n] * 2 fc/fs * sinc(2 fc/fs * (n - (L-1)/2))``, scaled to unit DC gain.

    Examples
    --------
    >>> h = lowpass(48000, cutoff_hz=1000, taps=101)
    >>> round(float(h.sum()), 12)
    1.0
    """
    return _windowed_sinc(
        sample_rate, [cutoff_hz], True, taps, window, transition_hz, attenuation_db
    )


def highpass(
    sample_rate: float,
    *,
    cutoff_hz: float,
    taps: int | None = None,
    window: str = "hamming",
    transition_hz: float | None = None,
    attenuation_db: float | None = None,
) -> np.ndarray:
    """Design a linear-phase highpass FIR; as :func:`lowpass`, unit gain at Nyquist.

    ``taps`` must be odd (an even-length symmetric FIR has a zero at Nyquist).
    """
    return _windowed_sinc(
        sample_rate, [cutoff_hz], False, taps, window, transition_hz, attenuation_db
    )


def bandpass(
    sample_rate: float,
    *,
    low_hz: float,
    high_hz: float,
    taps: int | None = None,
    window: str = "hamming",
    transition_hz: float | None = None,
    attenuation_db: float | None = None,
) -> np.ndarray:
    """Design a linear-phase bandpass FIR passing ``low_hz..high_hz``; as :func:`lowpass`.

    Unit gain at the centre of the band; -6 dB at both edges.
    """
    return _windowed_sinc(
        sample_rate, [low_hz, high_hz], False, taps, window, transition_hz, attenuation_db
    )


def bandstop(
    sample_rate: float,
    *,
    low_hz: float,
    high_hz: float,
    taps: int | None = None,
    window: str = "hamming",
    transition_hz: float | None = None,
    attenuation_db: float | None = None,
) -> np.ndarray:
    """Design a linear-phase bandstop FIR rejecting ``low_hz..high_hz``; ``taps`` must be odd."""
    return _windowed_sinc(
        sample_rate, [low_hz, high_hz], True, taps, window, transition_hz, attenuation_db
    )


def _flat_bands(sample_rate, bands_hz, gains, weights):
    bands = np.asarray(bands_hz, dtype=float)
    if bands.ndim != 2 or bands.shape[1] != 2 or len(bands) == 0:
        raise ValueError("bands_hz must be a list of [low, high] pairs in Hz")
    edges = bands.ravel()
    if edges[0] < 0 or edges[-1] > sample_rate / 2 or np.any(np.diff(edges) < 0):
        raise ValueError(
            f"bands_hz must increase from 0 to Nyquist ({sample_rate / 2:g} Hz) without overlap"
        )
    if np.any(bands[:, 0] >= bands[:, 1]):
        raise ValueError("each band in bands_hz must have low < high")
    if len(gains) != len(bands):
        raise ValueError(f"gains needs one value per band ({len(bands)}), got {len(gains)}")
    if weights is not None and len(weights) != len(bands):
        raise ValueError(f"weights needs one value per band ({len(bands)}), got {len(weights)}")
    return bands, edges


def remez(
    sample_rate: float,
    *,
    taps: int,
    bands_hz: Sequence[Sequence[float]],
    gains: Sequence[float],
    weights: Sequence[float] | None = None,
) -> np.ndarray:
    """Design an equiripple (Parks-McClellan) FIR with piecewise-constant band gains.

    Parameters
    ----------
    sample_rate : float
        Sample rate in Hz.
    taps : int
        Number of taps.
    bands_hz : list of [low, high]
        Bands in Hz, increasing, within ``0 .. sample_rate / 2``; gaps are don't-care.
    gains : list of float
        Linear amplitude wanted in each band (0 for a stopband).
    weights : list of float, optional
        Relative weight of each band's error.

    Returns
    -------
    numpy.ndarray
        The taps, minimizing the largest weighted error over the bands.
    """
    _check_numtaps(taps)
    _, edges = _flat_bands(sample_rate, bands_hz, gains, weights)
    return signal.remez(int(taps), edges, list(gains), weight=weights, fs=sample_rate)


def firls(
    sample_rate: float,
    *,
    taps: int,
    bands_hz: Sequence[Sequence[float]],
    gains: Sequence[float],
    weights: Sequence[float] | None = None,
) -> np.ndarray:
    """Design a least-squares FIR with piecewise-constant band gains; as :func:`remez`.

    ``taps`` must be odd. Minimizes the weighted integral squared error over the bands.
    """
    _check_numtaps(taps, odd=True)
    _, edges = _flat_bands(sample_rate, bands_hz, gains, weights)
    desired = np.repeat(np.asarray(gains, dtype=float), 2)
    return signal.firls(int(taps), edges, desired, weight=weights, fs=sample_rate)


def _centered(numtaps: int) -> np.ndarray:
    return np.arange(numtaps) - (numtaps - 1) // 2


def hilbert(sample_rate: float, *, taps: int, window: str = "blackman") -> np.ndarray:
    """Design a Hilbert transformer (a -90 degree phase shift) by the window method.

    Notes
    -----
    ``h[n] = w[n] * 2 / (pi m)`` for odd ``m = n - (L-1)/2``, else 0; ``taps`` must be odd.
    The gain is 1 at ``sample_rate / 4`` and falls off towards DC and Nyquist.
    """
    _check_numtaps(taps, odd=True)
    _check_window(window)
    m = _centered(int(taps))
    h = np.zeros(len(m))
    odd = m % 2 != 0
    h[odd] = 2.0 / (np.pi * m[odd])
    return h * signal.get_window(window, len(m), fftbins=False)


def differentiator(sample_rate: float, *, taps: int, window: str = "blackman") -> np.ndarray:
    """Design a differentiator (``H(w) = j w``, derivative per sample) by the window method.

    Notes
    -----
    ``h[n] = w[n] * cos(pi m) / m`` for ``m = n - (L-1)/2 != 0``, ``h = 0`` at the centre;
    ``taps`` must be odd. Multiply by ``sample_rate`` (a ``gain`` filter) for per-second units.
    The default Blackman window keeps the relative gain error near 1e-5 over most of the band
    (a Hamming window's sidelobes leave percent-level errors at low frequencies).
    """
    _check_numtaps(taps, odd=True)
    _check_window(window)
    m = _centered(int(taps))
    h = np.zeros(len(m))
    nz = m != 0
    h[nz] = np.cos(np.pi * m[nz]) / m[nz]
    return h * signal.get_window(window, len(m), fftbins=False)


def moving_average(sample_rate: float, *, taps: int) -> np.ndarray:
    """The mean of the last ``taps`` samples: ``h[n] = 1 / taps``."""
    _check_numtaps(taps)
    return np.full(int(taps), 1.0 / int(taps))


def gaussian(sample_rate: float, *, sigma_samples: float, taps: int | None = None) -> np.ndarray:
    """A Gaussian smoother with standard deviation ``sigma_samples``, unit DC gain.

    ``taps`` defaults to ``2 * ceil(4 sigma) + 1`` (the kernel is cut at +-4 sigma).
    """
    if not sigma_samples > 0:
        raise ValueError(f"sigma_samples must be positive, got {sigma_samples!r}")
    if taps is None:
        taps = 2 * math.ceil(4 * sigma_samples) + 1
    _check_numtaps(taps)
    h = signal.windows.gaussian(int(taps), sigma_samples, sym=True)
    return h / h.sum()


def gain(sample_rate: float, *, gain_db: float) -> np.ndarray:
    """A single tap scaling by ``gain_db`` decibels: ``h = [10 ** (gain_db / 20)]``."""
    if not math.isfinite(gain_db):
        raise ValueError(f"gain_db must be finite, got {gain_db!r}")
    return np.array([10.0 ** (gain_db / 20.0)])


def delay(
    sample_rate: float, *, samples: int | None = None, seconds: float | None = None
) -> np.ndarray:
    """Delay by a whole number of samples, given as ``samples`` or ``seconds``.

    ``seconds * sample_rate`` must be a whole number (within 1e-6 samples): a fractional
    delay is a different filter, not a rounding.
    """
    if seconds is not None:
        if samples is not None:
            raise ValueError("give exactly one of samples and seconds")
        exact = seconds * sample_rate
        if seconds < 0 or abs(exact - round(exact)) > 1e-6:
            raise ValueError(
                f"seconds {seconds:g} is {exact:g} samples at {sample_rate:g} Hz; "
                "a delay must be a whole, non-negative number of samples"
            )
        samples = round(exact)
    elif samples is None:
        raise ValueError("give exactly one of samples and seconds")
    if isinstance(samples, bool) or int(samples) != samples or samples < 0:
        raise ValueError(f"samples must be a whole number >= 0, got {samples!r}")
    h = np.zeros(int(samples) + 1)
    h[-1] = 1.0
    return h


def taps(sample_rate: float, *, values: Sequence[float]) -> np.ndarray:
    """Taps given inline, used as they are."""
    h = np.asarray(values, dtype=np.float64)
    if h.ndim != 1 or len(h) == 0:
        raise ValueError("values must be a non-empty list of numbers")
    if not np.all(np.isfinite(h)):
        raise ValueError("values must be finite (no NaN or Inf)")
    return h


DESIGNERS: dict[str, Callable[..., np.ndarray]] = {
    "lowpass": lowpass,
    "highpass": highpass,
    "bandpass": bandpass,
    "bandstop": bandstop,
    "remez": remez,
    "firls": firls,
    "hilbert": hilbert,
    "differentiator": differentiator,
    "moving_average": moving_average,
    "gaussian": gaussian,
    "gain": gain,
    "delay": delay,
    "taps": taps,
}


def design(type: str, sample_rate: float, **params) -> np.ndarray:
    """Design the filter named ``type`` (a key of :data:`DESIGNERS`) with ``params``.

    Examples
    --------
    >>> design("delay", 8000, samples=2).tolist()
    [0.0, 0.0, 1.0]
    """
    if type not in DESIGNERS:
        raise ValueError(f"unknown filter type {type!r}; known: {', '.join(sorted(DESIGNERS))}")
    if not sample_rate > 0:
        raise ValueError(f"sample_rate must be positive, got {sample_rate!r}")
    return DESIGNERS[type](sample_rate, **params)


def design_bands(
    type: str, sample_rate: float, **params
) -> tuple[list[tuple[float, float]], list[tuple[float, float]]]:
    """Nominal ``(passbands, stopbands)`` in Hz of a design, for :func:`analyze`.

    Kaiser designs: the stopband starts ``transition_hz / 2`` past each cutoff. Window designs:
    half the window's standard transition width (:data:`WINDOW_TRANSITION`). Filters without a
    stopband (gain, delay, smoothers, ...) give empty lists.
    """
    nyq = sample_rate / 2
    if type in ("lowpass", "highpass", "bandpass", "bandstop"):
        if type in ("lowpass", "highpass"):
            edges = [params["cutoff_hz"]]
        else:
            edges = [params["low_hz"], params["high_hz"]]
        pass_zero = type in ("lowpass", "bandstop")
        width = params.get("transition_hz")
        if width is None:
            factor, _ = WINDOW_TRANSITION[params.get("window", "hamming")]
            width = factor * sample_rate / params["taps"]
        stop = [
            (max(lo, 0.0), min(hi, nyq))
            for lo, hi in _kaiser_stopbands(sample_rate, edges, pass_zero, width)
        ]
        stop = [(lo, hi) for lo, hi in stop if lo < hi]
        cut = [0.0, *edges, nyq]
        bands = list(itertools.pairwise(cut))
        passes = [b for i, b in enumerate(bands) if (i % 2 == 0) == pass_zero]
        return passes, stop
    if type in ("remez", "firls"):
        bands = [(float(lo), float(hi)) for lo, hi in params["bands_hz"]]
        passes = [b for b, g in zip(bands, params["gains"], strict=True) if g != 0]
        stops = [b for b, g in zip(bands, params["gains"], strict=True) if g == 0]
        return passes, stops
    return [], []
