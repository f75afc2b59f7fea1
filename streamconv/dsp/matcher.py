"""Streaming zero-normalized cross-correlation (a matched filter) against several templates.

The score of template ``t`` (length ``L``) at sample ``s`` is the Pearson correlation of ``t``
with the window ``x[s : s + L]``::

    score[s] = sum_k tc[k] x[s + k] / (||tc|| * sqrt(sum_k (x[s + k] - mean_s)^2))

with ``tc = t - mean(t)``. It is 0 where the window has (near) zero variance. This is ObsPy's
``correlate_template(..., normalize="full")`` and OpenCV's ``TM_CCOEFF_NORMED``.

How it runs: the stream is cut into fixed segments counted from sample 0 (``block_size`` window
starts each, plus the ``Lmax - 1`` samples the longest template needs). Per segment one real
FFT of the signal is shared by every template; the numerator of every template is one product
and one inverse FFT. Window sums of ``x`` and ``x**2`` come from float64 block prefix and
suffix sums shared by the templates (:mod:`streamconv.dsp.window_sums`), in which every term
summed lies inside the window: a loud event never spoils the variance of a quiet window after
it. Because the segments are fixed, the scores, and so the detections, are bit-identical for
any way the stream is cut into calls. A detection is reported once it is final and every
template has been decided up to it (stream order), at most ``latency`` frames late.

A chunk of a longer stream (another process, another machine) gives the whole stream's
detections in ``[start, stop)``: ``chunk_bounds`` says which frames to feed, ``start_at`` says
where they start (see :meth:`Matcher.chunk_bounds`).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from scipy import fft as sp_fft

from streamconv.dsp.detection import Detection
from streamconv.dsp.segmented import SegmentedDetector
from streamconv.dsp.thresholds import DEFAULT_THRESHOLD, MadThreshold, Rule, _Track, template_rules
from streamconv.dsp.window_sums import MAX_BLOCKS_PER_WINDOW, BlockSums, block_size_for

__all__ = ["DEFAULT_THRESHOLD", "Detection", "Matcher"]

#: A window whose sum of squared deviations is below this fraction of its sum of squares
#: (std below 1e-5 of its RMS, e.g. a DC level, a clipped stretch, silence) scores 0.
FLAT_RTOL = 1e-10


def _group_blocks(lengths: list[int]) -> list[int]:
    """Block size of the window sums for each template: shared where the lengths allow."""
    out = {}
    group = 0
    for length in sorted(set(lengths)):
        b = block_size_for(length)
        if not group or length > MAX_BLOCKS_PER_WINDOW * group:
            group = b
        out[length] = group
    return [out[length] for length in lengths]


class Matcher(SegmentedDetector):
    """Find templates in a stream by zero-normalized cross-correlation.

    Parameters
    ----------
    templates : mapping of str to array
        Name to template: ``(L,)`` applied to every channel, or ``(L, C)`` one column per
        channel of the stream. Different lengths are fine. ``L >= 2``, finite, not constant.
    sample_rate : float
        Of the stream, in Hz (for ``Detection.time`` and the MAD window).
    threshold : float or mapping, optional
        Absolute score a peak must reach; one value or per template name. Default 0.7 for
        templates that have no ``mad``.
    mad : float or mapping, optional
        Use ``mad * MAD(score)`` over a trailing window instead (see :class:`MadThreshold`).
        A template takes one of the two; a single value applies to the templates that the
        other argument's mapping does not name.
    min_distance : int or mapping, optional
        Samples; default: the template's length. A peak is the largest score within
        ``min_distance - 1`` samples either side; of equal scores the earliest wins.
    combine : {None, "mean"}
        None scores each channel on its own; "mean" averages the channel scores (the
        detections then have ``channel=None``).
    channels : int, optional
        Channels of the stream; by default taken from the first block (1 for a 1-D block).
    block_size : int, optional
        Window starts scored per internal segment; default about three times the longest
        template (at least 4096).
        Detections come out up to ``latency`` frames after the sample they report.
    mad_window_s, mad_hop_s : float
        Trailing window and hop of the MAD threshold, in seconds.
    on_scores : callable, optional
        Called as ``on_scores(template_name, channel, first_sample, scores, thresholds)`` with
        each new stretch of the score trace (for plots and diagnostics); the scores are
        ``score_step`` samples apart.
    domain : {"waveform", "spectrogram"}
        "waveform" (default) correlates samples, as above. "spectrogram" correlates
        time-frequency patches and returns a
        `streamconv.dsp.spectro_matcher.SpectroMatcher` (same methods and detections; see
        its notes for what changes).
    spectrogram : SpectrogramParams or mapping, optional
        The spectrogram domain's parameters; not allowed with "waveform".

    Notes
    -----
    ``process`` returns final detections only, in stream order (by sample, then template
    order, then channel). Concatenating ``process`` results for any split of the stream plus
    ``flush()`` gives the same list.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> x = rng.normal(size=4000); t = x[1000:1100].copy()
    >>> m = Matcher({"bit": t}, sample_rate=1000, threshold=0.9)
    >>> dets = m.process(x[:1500]) + m.process(x[1500:]) + m.flush()
    >>> [(d.sample, round(d.score, 6)) for d in dets]
    [(1000, 1.0)]
    """

    #: Samples between two scores of the trace.
    score_step = 1

    def __new__(cls, *args, domain: str = "waveform", **kwargs):
        # One entry point for both domains: the spectrogram matcher is its own class (a frame
        # rate score trace), built here from the same arguments.
        if cls is Matcher and domain == "spectrogram":
            from streamconv.dsp.spectro_matcher import SpectroMatcher

            return SpectroMatcher(*args, **kwargs)  # its domain is the spectrogram
        return super().__new__(cls)

    def __init__(
        self,
        templates: Mapping[str, np.ndarray],
        sample_rate: float,
        threshold: float | Mapping[str, float] | None = None,
        mad: float | Mapping[str, float] | None = None,
        min_distance: int | Mapping[str, int] | None = None,
        combine: str | None = None,
        channels: int | None = None,
        block_size: int | None = None,
        mad_window_s: float = 10.0,
        mad_hop_s: float = 1.0,
        on_scores=None,
        domain: str = "waveform",
        spectrogram=None,
    ):
        if domain != "waveform":
            raise ValueError(f"domain must be 'waveform' or 'spectrogram', got {domain!r}")
        if spectrogram is not None:
            raise ValueError("spectrogram parameters need domain='spectrogram'")
        if not templates:
            raise ValueError("at least one template is needed")
        if not (np.isfinite(sample_rate) and sample_rate > 0):
            raise ValueError(f"sample_rate must be positive, got {sample_rate}")
        if combine not in (None, "mean"):
            raise ValueError(f"combine must be None or 'mean', got {combine!r}")
        self.sample_rate = float(sample_rate)
        self.combine = combine
        self._on_scores = on_scores
        self.names = [str(n) for n in templates]
        self._templates = [self._check_template(n, t) for n, t in templates.items()]
        self._rules = [
            Rule(fixed, k, len(t) if d is None else d)
            for (fixed, k, d), t in zip(
                template_rules(self.names, threshold, mad, min_distance),
                self._templates,
                strict=True,
            )
        ]
        self._mad_window = max(1, round(mad_window_s * self.sample_rate))
        self._mad_hop = max(1, round(mad_hop_s * self.sample_rate))
        if self._mad_hop > self._mad_window:
            raise ValueError("mad_hop_s must not exceed mad_window_s")
        self._lmax = max(len(t) for t in self._templates)
        self._blocks = _group_blocks([len(t) for t in self._templates])
        if block_size is None:
            # FFT work per sample ~ (1 + Lmax / block) log(block + Lmax): 3 Lmax is past the knee.
            n = sp_fft.next_fast_len(max(4096, 3 * self._lmax) + self._lmax - 1, real=True)
            block_size = n - (self._lmax - 1)
        if int(block_size) < 1:
            raise ValueError(f"block_size must be >= 1, got {block_size}")
        self.block_size = int(block_size)
        self._seg_len = self.block_size + self._lmax - 1
        self._nfft = sp_fft.next_fast_len(self._seg_len, real=True)
        self.channels: int | None = None  # known at the first block, or from `channels`
        self._begin(0)
        if channels is not None:
            self._setup(int(channels))

    # -- setup -------------------------------------------------------------------------------

    @staticmethod
    def _check_template(name: str, t) -> np.ndarray:
        t = np.asarray(t, dtype=np.float64)
        if t.ndim not in (1, 2) or t.shape[0] < 2 or t.size == 0:
            raise ValueError(f"template {name!r} must have shape (L,) or (L, C) with L >= 2")
        if not np.all(np.isfinite(t)):
            raise ValueError(f"template {name!r} contains NaN or Inf")
        centred = t - t.mean(axis=0)
        flat = np.sum(centred**2, axis=0) <= FLAT_RTOL * np.sum(t**2, axis=0)
        if np.any(flat):
            raise ValueError(f"template {name!r} is constant (silence?): it cannot be matched")
        return t

    def _setup(self, channels: int) -> None:
        if channels < 1:
            raise ValueError(f"channels must be >= 1, got {channels}")
        for name, t in zip(self.names, self._templates, strict=True):
            if t.ndim == 2 and t.shape[1] != channels:
                raise ValueError(
                    f"template {name!r} has {t.shape[1]} channels, the stream has {channels}"
                )
        self.channels = channels
        self._spectra, self._norms = [], []
        for t in self._templates:
            tc = t - t.mean(axis=0)
            tc2 = tc if tc.ndim == 2 else tc[:, None]
            self._spectra.append(np.conj(sp_fft.rfft(tc2, self._nfft, axis=0)))
            self._norms.append(np.sqrt(np.sum(tc2**2, axis=0)))
        self._tracks = []
        for i, (fixed, mad, d) in enumerate(self._rules):
            chans = [None] if self.combine == "mean" else list(range(channels))
            for c in chans:
                m = None if mad is None else MadThreshold(mad, self._mad_window, self._mad_hop)
                self._tracks.append(_Track(i, c, fixed, m, d))
        self._buf = np.zeros((self._seg_len, channels))
        self._begin(self._seg_start)

    def rules(self, name: str) -> Rule:
        """The threshold (or MAD multiple) and minimum distance template `name` runs with."""
        return self._rules[self.names.index(name)]

    @property
    def latency(self) -> int:
        """Upper bound, in frames, on how late a detection is reported after its window ends."""
        reach, window, hop = self._context()
        return self.block_size + self._lmax - 1 + reach + (hop if window else 0)

    @property
    def decided(self) -> int:
        """Stream sample before which every detection has been returned by `process`."""
        if self.channels is None:
            return self._origin
        return self._origin + min(tr.peaks.decided for tr in self._tracks)

    def reset(self) -> None:
        """Forget the stream: the next block is sample 0 again."""
        self._begin(0)

    def _begin(self, frame: int) -> None:
        self._fill = 0
        self._seg_start = frame
        # The score traces start on a MAD hop boundary: hops are counted from sample 0.
        hop = self._context()[2]
        self._origin = -(-frame // hop) * hop
        self._pending: list[Detection] = []
        for tr in getattr(self, "_tracks", []):
            tr.reset(skip=self._origin - frame)

    # -- chunks of a longer stream -------------------------------------------------------------

    def chunk_bounds(self, start: int, stop: int, frames: int | None = None) -> tuple[int, int]:
        """The frames to feed for the whole stream's detections in ``[start, stop)``.

        Parameters
        ----------
        start, stop : int
            The chunk, in samples of the whole stream; ``0 <= start < stop``.
        frames : int, optional
            Length of the whole stream, if known (the result is clipped to it).

        Returns
        -------
        first, end : int
            Call ``start_at(first)``, then `process` frames ``[first, end)`` of the stream (and
            `flush` if ``end`` is its last frame): every detection with a sample in
            ``[start, stop)`` has then been returned, with the whole stream's score and
            threshold; drop the others.

        Notes
        -----
        A peak at ``i`` depends on the scores within the peak reach ``w = min_distance - 1``
        either side; with ``mad`` those scores' thresholds depend on a trailing window of
        ``W`` scores ending at the end of their hop ``h`` (hops counted from sample 0). So the
        chunk starts scoring on a segment boundary (``block_size`` multiple, where the
        segments and so the scores are the same floats) at or before the hop boundary at or
        before ``start - w - W``, and feeds the frames of the segments that hold every score
        up to the end of the hop holding ``stop - 1 + w``, plus ``Lmax - 1`` samples.
        """
        start, stop = int(start), int(stop)
        if not 0 <= start < stop:
            raise ValueError(f"need 0 <= start < stop, got {start}, {stop}")
        reach, window, hop = self._context()
        base = max(start - reach - window, 0) // hop * hop
        first = base // self.block_size * self.block_size
        scores = -(-(stop + reach) // hop) * hop  # every score up to here, with thresholds
        end = -(-scores // self.block_size) * self.block_size + self._lmax - 1
        if frames is not None:
            end = min(end, int(frames))
        return first, end

    def start_at(self, frame: int) -> None:
        """Forget the stream; the next block is frame `frame` of a longer stream.

        Parameters
        ----------
        frame : int
            A multiple of ``block_size`` (a segment boundary), as `chunk_bounds` gives.

        Notes
        -----
        Detections then carry the longer stream's sample numbers. They equal the whole
        stream's from the sample `chunk_bounds` was asked for on: before it, the score traces
        miss their history (the peak reach and the MAD window).
        """
        frame = int(frame)
        if frame < 0 or frame % self.block_size:
            raise ValueError(
                f"start_at needs a multiple of block_size ({self.block_size}), got {frame}"
            )
        self._begin(frame)

    # -- streaming (process, flush: SegmentedDetector) ----------------------------------------

    def _advance_segment(self) -> None:
        self._seg_start += self.block_size

    def _run_segment(self, m: int, final: bool) -> None:
        seg = self._buf[:m]
        spectrum = sp_fft.rfft(seg, self._nfft, axis=0) if m else None
        # Window sums of x and x**2 for every template from one set of block sums per group.
        c = seg.shape[1]
        rows = np.empty((2 * c, m))
        rows[:c] = seg.T
        np.square(rows[:c], out=rows[c:])
        sums = {b: BlockSums(rows, b, m + self._lmax) for b in set(self._blocks)}
        for i, t in enumerate(self._templates):
            length = len(t)
            count = max(m - length + 1, 0) if final else self.block_size
            scores = self._score(sums[self._blocks[i]], spectrum, i, length, count)
            tracks = [tr for tr in self._tracks if tr.template == i]
            for tr in tracks:
                col = scores[:, 0] if tr.channel is None else scores[:, tr.channel]
                idx, sc, th = tr.push(col, final, self._on_scores and self._report_scores)
                for s, v, h in zip((idx + self._origin).tolist(), sc.tolist(), th.tolist(),
                                   strict=True):  # fmt: skip
                    self._pending.append(
                        Detection(self.names[i], s, s / self.sample_rate, v, tr.channel, h)
                    )

    def _score(self, sums, spectrum, i, length, count) -> np.ndarray:
        c = self._buf.shape[1]  # the stream's channels (the buffer is set up with them)
        if count == 0:
            return np.zeros((0, 1 if self.combine else c))
        num = sp_fft.irfft(spectrum * self._spectra[i], self._nfft, axis=0)[:count]
        both = sums.sums(length, count)
        s1, s2 = both[:c], both[c:]
        # var = sum((x - mean)^2) = s2 - s1^2 / L, in place: this runs on every sample.
        var = np.square(s1, out=s1)
        var *= -1.0 / length
        var += s2
        flat = var <= FLAT_RTOL * s2
        var[flat] = 1.0
        den = np.sqrt(var, out=var)
        den *= self._norms[i][:, None]
        scores = np.divide(num.T, den, out=den).T
        np.clip(scores, -1.0, 1.0, out=scores)
        scores[flat.T] = 0.0
        if self.combine == "mean":
            scores = scores.mean(axis=1, keepdims=True)
        return scores

    def _report_scores(self, template: int, channel, start: int, scores, thresholds) -> None:
        if self._on_scores is not None:
            self._on_scores(self.names[template], channel, self._origin + start, scores, thresholds)
