"""Periodicity: the lag of the strongest normalized autocorrelation peak, per hop of a stream.

Every ``hop`` samples (counted from sample 0) the trailing ``window`` samples ``w`` are
analysed. The normalized autocorrelation at lag ``tau`` is the Pearson correlation of the
window with itself shifted by ``tau``::

    r[tau] = corr(w[0 : W - tau], w[tau : W])        (0 where either part is flat)

so a signal that repeats exactly every ``tau`` samples scores 1 there whatever its level or
offset. The estimate is the largest local maximum of ``r`` with ``min_lag <= tau <= max_lag``
(or a shorter-lag peak within ``tolerance`` of it, against octave errors); it is a detection
when it reaches the threshold.

The analyses sit at fixed places of the stream, so a chunk of a longer stream gives the whole
stream's estimates: see :meth:`Periodicity.chunk_bounds`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from scipy import fft as sp_fft

from streamconv.dsp.peaks import parabola_offset

__all__ = ["PeriodEstimate", "Periodicity", "normalized_autocorrelation"]

FLAT_RTOL = 1e-10


@dataclass(frozen=True)
class PeriodEstimate:
    """The periodicity of one analysis window.

    Attributes
    ----------
    sample : int
        First frame of the analysed window; ``time`` is it in seconds.
    time : float
    lag : int or None
        Lag of the strongest autocorrelation peak in the range, in samples (None: no peak).
    period : float or None
        The period in seconds, refined between samples by a parabola through the peak.
    score : float
        The normalized autocorrelation at ``lag`` (0 when there is no peak).
    channel : int or None
        The channel, or None where channels are combined.
    threshold : float
    detected : bool
        ``score >= threshold``.
    """

    sample: int
    time: float
    lag: int | None
    period: float | None
    score: float
    channel: int | None
    threshold: float
    detected: bool

    def to_dict(self) -> dict:
        """The fields as a plain dict (JSON-ready)."""
        return asdict(self)


def normalized_autocorrelation(w: np.ndarray, max_lag: int) -> np.ndarray:
    """Pearson correlation of ``w`` with itself shifted by ``0 .. max_lag`` samples.

    Parameters
    ----------
    w : (W, C) array, ``W >= max_lag + 2``
    max_lag : int

    Returns
    -------
    (max_lag + 1, C) float64 array; 0 where either overlapping part has (near) zero variance.

    Examples
    --------
    >>> x = np.tile([0.0, 1.0, 0.0, -1.0], 8)[:, None]
    >>> np.round(normalized_autocorrelation(x, 4)[:, 0], 6).tolist()
    [1.0, 0.0, -1.0, 0.0, 1.0]
    """
    w = np.asarray(w, dtype=np.float64)
    length = len(w)
    y = w - w.mean(axis=0)  # centred: the sums below do not cancel an offset
    nfft = sp_fft.next_fast_len(2 * length, real=True)
    spec = sp_fft.rfft(y, nfft, axis=0)
    raw = sp_fft.irfft(spec * np.conj(spec), nfft, axis=0)[: max_lag + 1]
    zero = np.zeros((1, y.shape[1]))
    p1 = np.concatenate([zero, np.cumsum(y, axis=0)])
    p2 = np.concatenate([zero, np.cumsum(y * y, axis=0)])
    lags = np.arange(max_lag + 1)
    n = (length - lags)[:, None].astype(np.float64)
    sa, sa2 = p1[length - lags], p2[length - lags]  # w[0 : W - tau]
    sb, sb2 = p1[-1] - p1[lags], p2[-1] - p2[lags]  # w[tau : W]
    cov = raw - sa * sb / n
    va = np.maximum(sa2 - sa * sa / n, 0.0)
    vb = np.maximum(sb2 - sb * sb / n, 0.0)
    flat = (va <= FLAT_RTOL * sa2) | (vb <= FLAT_RTOL * sb2)
    den = np.sqrt(np.where(flat, 1.0, va * vb))
    return np.where(flat, 0.0, np.clip(cov / den, -1.0, 1.0))


class Periodicity:
    """Streaming periodicity detector.

    Parameters
    ----------
    sample_rate : float
        Hz.
    min_period_s, max_period_s : float
        The period range searched, in seconds (at least 1 and 2 samples).
    threshold : float
        Score a peak must reach to be a detection.
    window_s : float, optional
        Analysis window; default three times ``max_period_s``.
    hop_s : float, optional
        Time between analyses; default a quarter of the window.
    combine : {None, "mean"}
        Per channel, or the mean of the channels' autocorrelations.
    tolerance : float
        A peak at a shorter lag wins over the strongest one when it scores at most this much
        less (multiples of a period score almost as high as the period); 0: the strongest.
    channels : int, optional
        Channels of the stream; by default from the first block.

    Notes
    -----
    Analyses happen at every multiple of the hop once a whole window has arrived, so the
    estimates do not depend on how the stream is cut.

    Examples
    --------
    >>> p = Periodicity(100, 0.05, 0.5, threshold=0.9)
    >>> est = p.process(np.sin(2 * np.pi * 5 * np.arange(300) / 100))
    >>> [(e.lag, round(e.period, 3), e.detected) for e in est][:2]
    [(20, 0.2, True), (20, 0.2, True)]
    """

    def __init__(
        self,
        sample_rate: float,
        min_period_s: float,
        max_period_s: float,
        threshold: float = 0.5,
        window_s: float | None = None,
        hop_s: float | None = None,
        combine: str | None = None,
        channels: int | None = None,
        tolerance: float = 0.1,
    ):
        if not (np.isfinite(sample_rate) and sample_rate > 0):
            raise ValueError(f"sample_rate must be positive, got {sample_rate}")
        if combine not in (None, "mean"):
            raise ValueError(f"combine must be None or 'mean', got {combine!r}")
        if not np.isfinite(threshold):
            raise ValueError(f"threshold must be finite, got {threshold}")
        self.sample_rate = float(sample_rate)
        self.min_lag = max(1, round(min_period_s * sample_rate))
        self.max_lag = round(max_period_s * sample_rate)
        if not self.min_lag < self.max_lag:
            raise ValueError(
                f"period range {min_period_s}:{max_period_s} s must span at least two samples "
                f"at {sample_rate:g} Hz"
            )
        self.window = round(window_s * sample_rate) if window_s else 3 * self.max_lag
        if self.window < self.max_lag + 2:
            raise ValueError(
                f"window_s must exceed the longest period by two samples (> {self.max_lag + 1})"
            )
        self.hop = max(1, round(hop_s * sample_rate) if hop_s else self.window // 4)
        self.threshold = float(threshold)
        if not 0 <= tolerance < 2:
            raise ValueError(f"tolerance must be in [0, 2), got {tolerance}")
        self.tolerance = float(tolerance)
        self.combine = combine
        self.channels = channels
        self.reset()

    @property
    def latency(self) -> int:
        """Frames from a window's first sample to its estimate, at most."""
        return self.window + self.hop - 1

    @property
    def decided(self) -> int:
        """Stream sample before which every estimate has been returned by `process`."""
        return self._next - self.window

    def reset(self) -> None:
        """Forget the stream."""
        self._begin(0)

    def _begin(self, frame: int) -> None:
        # (0, 0) until the first block says how many channels the stream has
        self._buf = np.zeros((0, self.channels or 0))
        self._seen = frame  # stream index of the next frame
        # Analyses end at every multiple of the hop from the first whole window on; the next
        # one is the first whose window lies after `frame`.
        first = self.hop * max(1, -(-self.window // self.hop))
        self._next = first + max(0, -(-(frame + self.window - first) // self.hop)) * self.hop

    def chunk_bounds(self, start: int, stop: int, frames: int | None = None) -> tuple[int, int]:
        """The frames to feed for the whole stream's estimates of samples ``[start, stop)``.

        Parameters
        ----------
        start, stop : int
            The chunk, in samples of the whole stream; ``0 <= start < stop``.
        frames : int, optional
            Length of the whole stream, if known (the result is clipped to it).

        Returns
        -------
        first, end : int
            Call ``start_at(first)`` and `process` frames ``[first, end)``: every estimate
            whose window starts in ``[start, stop)`` has then been returned, the same as in
            the whole stream; drop the others. An estimate needs its own window only, so
            ``first`` is `start` and ``end`` is ``stop - 1 + window``.
        """
        start, stop = int(start), int(stop)
        if not 0 <= start < stop:
            raise ValueError(f"need 0 <= start < stop, got {start}, {stop}")
        end = stop - 1 + self.window
        return start, end if frames is None else min(end, int(frames))

    def start_at(self, frame: int) -> None:
        """Forget the stream; the next block is frame `frame` (>= 0) of a longer stream.

        The estimates then carry the longer stream's sample numbers.
        """
        frame = int(frame)
        if frame < 0:
            raise ValueError(f"start_at needs a frame >= 0, got {frame}")
        self._begin(frame)

    def process(self, x) -> list[PeriodEstimate]:
        """Feed a block; return the estimates of every analysis it completed (in order)."""
        x = np.asarray(x, dtype=np.float64)
        if x.ndim == 1:
            x = x[:, None]
        if x.ndim != 2:
            raise ValueError(f"a block must be (frames,) or (frames, channels), got {x.shape}")
        if self.channels is None:
            self.channels = x.shape[1]
            self._buf = np.zeros((0, self.channels))
        if x.shape[1] != self.channels:
            raise ValueError(f"block has {x.shape[1]} channels, the stream has {self.channels}")
        if not np.all(np.isfinite(x)):
            raise ValueError("block contains NaN or Inf samples")
        start = self._seen - len(self._buf)  # stream index of self._buf[0]
        buf = np.concatenate([self._buf, x])
        self._seen += len(x)
        out = []
        while self._next <= self._seen:
            lo = self._next - self.window - start
            out += self._analyse(buf[lo : lo + self.window], self._next - self.window)
            self._next += self.hop
        self._buf = buf[max(len(buf) - self.window, 0) :]
        return out

    def flush(self) -> list[PeriodEstimate]:
        """End of stream (a partial hop is not analysed); resets."""
        self.reset()
        return []

    def _analyse(self, w: np.ndarray, sample: int) -> list[PeriodEstimate]:
        r = normalized_autocorrelation(w, min(self.max_lag + 1, self.window - 2))
        if self.combine == "mean":
            r = r.mean(axis=1, keepdims=True)
        chans = [None] if self.combine == "mean" else range(r.shape[1])
        return [self._estimate(r[:, i], sample, c) for i, c in enumerate(chans)]

    def _estimate(self, r: np.ndarray, sample: int, channel) -> PeriodEstimate:
        lo, hi = self.min_lag, self.max_lag
        tau = np.arange(lo, hi + 1)
        right = r[np.minimum(tau + 1, len(r) - 1)]
        peak = (r[tau] > r[tau - 1]) & ((r[tau] >= right) | (tau + 1 >= len(r)))
        time = sample / self.sample_rate
        if not peak.any():
            return PeriodEstimate(sample, time, None, None, 0.0, channel, self.threshold, False)
        lags, heights = tau[peak], r[tau][peak]
        # Multiples of the period correlate almost as well as the period itself: take the
        # shortest lag whose peak is within the tolerance of the strongest.
        best = int(lags[np.argmax(heights >= heights.max() - self.tolerance)])
        score = float(r[best])
        # `best` is a local maximum: the clipping to +-1/2 never acts.
        shift = parabola_offset(*r[best - 1 : best + 2]) if best + 1 < len(r) else 0.0
        period = float((best + shift) / self.sample_rate)
        return PeriodEstimate(
            sample, time, best, period, score, channel, self.threshold, score >= self.threshold
        )
