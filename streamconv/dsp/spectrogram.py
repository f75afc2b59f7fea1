"""Spectrogram features for template matching in the time-frequency domain.

A signal is cut into frames of ``N`` samples every ``H`` samples counted from sample 0 (frame
``j`` covers ``x[j H : j H + N]``), each frame is windowed and its power spectrum taken; a
template becomes a patch of ``M`` frames by ``B`` frequency bins (its band), the stream the
same bins frame by frame. The matcher (:mod:`streamconv.dsp.spectro_matcher`) scores the
Pearson correlation of the template's patch with the stream's patch starting at each frame.

Everything here is a pure function of its arguments: the streaming matcher calls them on
fixed segments of the stream, the tests call them on a whole signal.

Magnitude scale
    ``"db"`` (default): ``10 log10(power)`` with a floor ``floor_db`` (50 dB) below the peak of
    the template's patch, applied to the template and to the stream alike. Without a floor the
    template's near-silent bins (a digital fade, quiet bins far from its energy) would weigh as
    much as its loud ones in the correlation, and a stream's silence would be ``-inf``. The
    floor is also where the template stops being observable in a noisy recording: cells 50-60
    dB below the peak are under any real noise, and a deeper floor makes the correlation fit
    their pattern (a fade-in, a decay) to the noise, which pulls the peak off the onset.
    ``"linear"``: the magnitude ``sqrt(power)`` (loud bins dominate; no floor).
Band
    ``low_hz``/``high_hz`` choose the bins ``low_hz <= f <= high_hz`` (bin ``k`` is at
    ``k * sample_rate / N``). By default the band is the template's own, widened: from the
    lowest bin ``lo`` to the highest bin ``hi`` whose power, averaged over the template's frames
    and channels, is within ``band_db`` of the strongest bin's, then ``floor(lo / (1 + m))`` to
    ``ceil(hi (1 + m))`` for ``band_margin = m`` (0.5: half an octave below, 0.58 octave above).
    The margin puts the template's quiet surroundings in the patch: a pure tone is then a
    loud bin *between quiet ones*, and a broadband sound (a word, a noise burst) that has energy
    at the tone's frequency no longer matches it as well as the tone does.
Tolerance
    ``tolerance = r > 0`` (default 0.03) max-filters the *stream's* features (never the
    template's) over ``+-round(r * k)`` bins around bin ``k`` (``+-r`` relative frequency, a
    pitch change of ``1200 log2(1 + r)`` cents) and over +-1 frame: a template a little higher
    or lower, faster or slower than its occurrence still finds its peaks. It also widens the
    stream's peaks, so an exact copy no longer scores 1 (typically 0.75-0.98) and unrelated sound
    scores a little higher: choose the threshold with the tolerance on; ``tolerance = 0`` for
    exact copies to score 1.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from scipy import fft as sp_fft
from scipy import signal

__all__ = ["SpectrogramParams", "TemplatePatch", "dilate", "frame_power", "template_patch"]

#: Power below this counts as this (log of zero).
_TINY = 1e-30


@dataclass(frozen=True)
class SpectrogramParams:
    """How the time-frequency features are made (one set per matcher).

    Parameters
    ----------
    frame_s, hop_s : float
        Frame length and hop in seconds, rounded to samples (default 0.032 / 0.008 s: 512 /
        128 samples at 16 kHz). Detections have a resolution of one hop before refinement.
    window : str
        A `scipy.signal.get_window` name (periodic), default ``"hann"``.
    scale : {"db", "linear"}
        Magnitude scale (see the module notes).
    floor_db : float
        With ``scale="db"``: values below the template's peak minus this are raised to it.
    low_hz, high_hz : float, optional
        The band; default the template's own (``band_db``) widened by ``band_margin``.
    band_db : float
        Default band: bins within this many dB of the template's strongest bin.
    band_margin : float
        Default band: its edges are moved out by this relative frequency (in [0, 4]): the low
        edge divided by ``1 + band_margin``, the high edge multiplied by it. Not applied to an
        edge given by ``low_hz``/``high_hz``.
    tolerance : float
        Relative frequency tolerance ``r`` in [0, 0.2]; > 0 also tolerates +-1 frame.
    """

    frame_s: float = 0.032
    hop_s: float = 0.008
    window: str = "hann"
    scale: str = "db"
    floor_db: float = 50.0
    low_hz: float | None = None
    high_hz: float | None = None
    band_db: float = 30.0
    band_margin: float = 0.5
    tolerance: float = 0.03

    def __post_init__(self):
        for name in ("frame_s", "hop_s", "floor_db", "band_db"):
            v = getattr(self, name)
            if not (isinstance(v, int | float) and math.isfinite(v) and v > 0):
                raise ValueError(f"spectrogram {name} must be a positive number, got {v!r}")
        if self.scale not in ("db", "linear"):
            raise ValueError(f"spectrogram scale must be 'db' or 'linear', got {self.scale!r}")
        m = self.band_margin
        if not (isinstance(m, int | float) and math.isfinite(m) and 0 <= m <= 4):
            raise ValueError(f"spectrogram band_margin must be in [0, 4], got {m!r}")
        if not 0 <= self.tolerance <= 0.2:
            raise ValueError(f"spectrogram tolerance must be in [0, 0.2], got {self.tolerance}")
        lo, hi = self.low_hz, self.high_hz
        for name, v in (("low_hz", lo), ("high_hz", hi)):
            if v is not None and not (math.isfinite(v) and v >= 0):
                raise ValueError(f"spectrogram {name} must be >= 0, got {v}")
        if lo is not None and hi is not None and lo >= hi:
            raise ValueError(f"spectrogram low_hz ({lo}) must be below high_hz ({hi})")
        try:
            signal.get_window(self.window, 8)
        except ValueError as e:
            raise ValueError(f"spectrogram window {self.window!r}: {e}") from None

    def sizes(self, sample_rate: float) -> tuple[int, int]:
        """``(frame, hop)`` in samples at `sample_rate`."""
        frame = round(self.frame_s * sample_rate)
        hop = round(self.hop_s * sample_rate)
        if frame < 4 or hop < 1 or hop > frame:
            raise ValueError(
                f"spectrogram frame_s={self.frame_s} and hop_s={self.hop_s} give {frame} and "
                f"{hop} samples at {sample_rate:g} Hz: need frame >= 4 and 1 <= hop <= frame"
            )
        return frame, hop

    @property
    def time_tolerance(self) -> int:
        """Frames of the time max-filter either side (1 with a tolerance, else 0)."""
        return 1 if self.tolerance > 0 else 0


def frame_power(x: np.ndarray, frame: int, hop: int, window: np.ndarray) -> np.ndarray:
    """Power spectra of the frames of `x` that fit: ``(channels, frames, frame // 2 + 1)``.

    Parameters
    ----------
    x : (n, channels) array
        Frame ``j`` is ``x[j * hop : j * hop + frame]``.
    frame, hop : int
        In samples.
    window : (frame,) array
    """
    n, channels = x.shape
    count = (n - frame) // hop + 1 if n >= frame else 0
    out = np.empty((channels, count, frame // 2 + 1))
    if count == 0:
        return out
    for c in range(channels):
        frames = sliding_window_view(x[:, c], frame)[: (count - 1) * hop + 1 : hop]
        spec = sp_fft.rfft(frames * window, axis=-1)
        np.square(spec.real, out=out[c])
        out[c] += np.square(spec.imag)
    return out


def scaled(power: np.ndarray, scale: str) -> np.ndarray:
    """Power to the magnitude scale: dB or linear magnitude (a new array)."""
    if scale == "db":
        out = np.maximum(power, _TINY)
        np.log10(out, out=out)
        out *= 10.0
        return out
    return np.sqrt(power)


def dilate(feat: np.ndarray, tolerance: float, time: int) -> np.ndarray:
    """Max-filter ``(channels, frames, bins)`` features over frequency and time.

    Bin ``k`` takes the maximum over bins ``k +- round(tolerance * k)`` (clipped to the
    spectrum), then frame ``i`` of the result the maximum over input frames ``i .. i + 2 time``:
    the output has ``frames - 2 time`` frames, output frame ``i`` centred on input frame
    ``i + time``. ``-inf`` frames (before the stream starts, after it ends) are ignored.
    """
    out = feat.copy()
    nbins = feat.shape[-1]
    if tolerance > 0:
        for s in range(1, math.ceil(tolerance * nbins) + 1):
            lo = math.ceil((s - 0.5) / tolerance)  # first bin with round(tolerance * k) >= s
            if lo >= nbins:
                break
            np.maximum(out[..., lo:], feat[..., lo - s : nbins - s], out=out[..., lo:])
            if lo < nbins - s:
                np.maximum(out[..., lo : nbins - s], feat[..., lo + s :], out=out[..., lo:-s])
    if time == 0:
        return out
    n = out.shape[1] - 2 * time
    if n <= 0:
        return out[:, :0]
    res = out[:, :n].copy()
    for d in range(1, 2 * time + 1):
        np.maximum(res, out[:, d : d + n], out=res)
    return res


@dataclass(frozen=True)
class TemplatePatch:
    """A template's features, ready to correlate.

    Attributes
    ----------
    bins : slice
        The band, as bins of the ``frame // 2 + 1`` spectrum.
    floor : float
        The value features are raised to (template peak minus ``floor_db``; ``-inf`` for a
        linear scale).
    centred : (channels, M, B) array
        The template's features minus their mean over the patch (per channel).
    norms : (channels,) array
        The Euclidean norms of ``centred``, per channel.
    """

    bins: slice
    floor: float
    centred: np.ndarray
    norms: np.ndarray

    @property
    def frames(self) -> int:
        """``M``, the patch's length in frames."""
        return self.centred.shape[1]


def template_patch(
    name: str, t: np.ndarray, sample_rate: float, params: SpectrogramParams
) -> TemplatePatch:
    """The features of template `t` (``(L, C)``) as the matcher correlates them.

    The template's frames are counted from its first sample, as the stream's from sample 0:
    the patch at stream frame ``j`` is the template placed at sample ``j * hop``. Samples after
    the last whole frame are not used.
    """
    frame, hop = params.sizes(sample_rate)
    if len(t) < frame:
        raise ValueError(
            f"template {name!r} has {len(t)} samples, shorter than one spectrogram frame "
            f"({frame} samples = {params.frame_s} s)"
        )
    window = signal.get_window(params.window, frame)
    power = frame_power(t, frame, hop, window)
    nbins = power.shape[-1]
    freqs = np.arange(nbins) * sample_rate / frame
    if params.low_hz is None or params.high_hz is None:
        mean = power.mean(axis=(0, 1))
        strong = np.flatnonzero(mean >= mean.max() * 10 ** (-params.band_db / 10))
        widen = 1.0 + params.band_margin
        lo_bin = math.floor(int(strong[0]) / widen)
        hi_bin = min(math.ceil(int(strong[-1]) * widen), nbins - 1)
    if params.low_hz is not None:
        lo_bin = int(np.searchsorted(freqs, params.low_hz, side="left"))
    if params.high_hz is not None:
        hi_bin = int(np.searchsorted(freqs, params.high_hz, side="right")) - 1
    if hi_bin - lo_bin < 1 and power.shape[1] < 2:
        raise ValueError(f"template {name!r}: its band and length give fewer than 2 values")
    if hi_bin < lo_bin:
        step = sample_rate / frame
        lo = "low_hz" if params.low_hz is not None else "the template's own band, widened"
        hi = "high_hz" if params.high_hz is not None else "the template's own band, widened"
        lo_hz = params.low_hz if params.low_hz is not None else lo_bin * step
        hi_hz = params.high_hz if params.high_hz is not None else hi_bin * step
        raise ValueError(
            f"template {name!r}: no spectrogram bin between {lo_hz:g} Hz ({lo}) and "
            f"{hi_hz:g} Hz ({hi}); bins are {step:g} Hz apart, from 0 to {freqs[-1]:g} Hz"
        )
    bins = slice(lo_bin, hi_bin + 1)
    feat = scaled(power[..., bins], params.scale)
    floor = float(feat.max()) - params.floor_db if params.scale == "db" else -np.inf
    feat = np.maximum(feat, floor)
    centred = feat - feat.mean(axis=(1, 2), keepdims=True)
    norms = np.sqrt(np.sum(centred**2, axis=(1, 2)))
    if np.any(norms <= 1e-10 * np.sqrt(np.sum(feat**2, axis=(1, 2)))):
        raise ValueError(
            f"template {name!r} has a flat spectrogram in its band (silence?): it cannot be matched"
        )
    return TemplatePatch(bins, floor, centred, norms)
