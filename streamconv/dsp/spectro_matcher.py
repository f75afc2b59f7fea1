"""Streaming template matching on spectrograms: Pearson over a time-frequency patch.

The same operation as the waveform matcher, in STFT space. Template ``t`` is a patch ``T`` of
``M`` frames by ``B`` bins (:func:`streamconv.dsp.spectrogram.template_patch`); the stream's
features ``X`` are the same bins frame by frame. The score at frame ``j`` is the Pearson
correlation over the patch::

    score[j] = sum_{m,b} Tc[m, b] X[j + m, b]
               / (||Tc|| * sqrt(sum_{m,b} (X[j + m, b] - mean_j)^2))

a multichannel kernel (``B`` frequency channels by ``M`` frames) slid along time, the
per-channel products summed, normalized. It is 0 where the stream's patch is flat (silence
below the floor). Stream channels are scored on their own or averaged (``combine="mean"``),
as in the waveform path.

Time: stream frame ``j`` covers samples ``[j H, j H + N)``, so score ``j`` is the template
placed at sample ``j H``. Thresholds, ``min_distance`` and the MAD threshold work on the
frame-rate score trace (``min_distance`` and the MAD window and hop are given in
samples/seconds and rounded to frames): they decide which peaks are detections and their
scores. Where a detection starts is then refined at a finer time resolution, because at the
matching resolution an onset is blurred over a whole frame (32 ms): in noise the correlation
prefers to put a decaying sound's quieter tail on the louder part of the stream's sound, which
costs little at the blurred onset, and so placed tonal sounds about half a frame early. The
*onset score* is the same exact (untolerant) Pearson correlation on features with a quarter
of the frame and of the hop (8 ms / 2 ms by default; ``ONSET_DIVISOR``): the template's own
onset patch (its band chosen at that resolution as above) against the stream's, at lags
``j H + i h`` for the fine hop ``h`` and ``|i h| <= ONSET_FRAMES H``. A peak at frame ``j`` is
moved to the lag where the onset score is largest (the nearer to ``j H`` on a tie), and between
lags by a parabola through the onset scores there and at the lags either side (offset clipped
to +-1/2 fine hop, not refined at the ends of the stream): ``sample = j H + i h + round(delta
h)``. The search is wide enough for the tolerance's max-filter too, which widens the stream's
sound by a frame each way and moved the tolerant score's peak off the onset (an exact copy of
a decaying bell 29 ms late at 48 kHz). The onset score is computed only around each
detection, from the stream's samples kept for that.

How it runs: frames are grouped in fixed segments of ``F`` frames counted from frame 0; each
segment's features and scores are computed from the same samples however the stream arrives,
so scores and detections are bit-identical for any chunking.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

import numpy as np
from numpy.lib.stride_tricks import as_strided
from scipy import signal

from streamconv.dsp.matcher import FLAT_RTOL, Detection
from streamconv.dsp.peaks import parabola_offset
from streamconv.dsp.segmented import SegmentedDetector
from streamconv.dsp.spectrogram import (
    SpectrogramParams,
    TemplatePatch,
    dilate,
    frame_power,
    scaled,
    template_patch,
)
from streamconv.dsp.thresholds import MadThreshold, Rule, _Track, template_rules

__all__ = ["ONSET_DIVISOR", "ONSET_FRAMES", "SpectroMatcher"]

#: A detection's onset is where the onset score peaks within this many hops of the score's
#: peak (the tolerance's max-filter moves that peak by up to ~4 frames on a decaying sound, the
#: matching resolution's blur by ~2.5; a wider search could land on a neighbouring occurrence).
ONSET_FRAMES = 4

#: The onset score's frame and hop are the matching frame and hop divided by this.
ONSET_DIVISOR = 4


class SpectroMatcher(SegmentedDetector):
    """Find templates in a stream by correlating spectrograms.

    Takes the arguments of `streamconv.Matcher` (which returns one of these for
    ``domain="spectrogram"``), with these differences:

    Parameters
    ----------
    spectrogram : SpectrogramParams or mapping, optional
        Frame, hop, window, scale, band, tolerance (default ``SpectrogramParams()``); a mapping
        is passed to ``SpectrogramParams(**mapping)``.
    min_distance : int or mapping, optional
        In samples, rounded to hops (at least one); default the template's length in frames.
    block_size : int, optional
        Samples per internal segment, rounded up to whole hops; default ``max(256, 4 M)``
        frames for the longest template's ``M`` frames.
    templates
        Every template must be at least one frame long.

    Notes
    -----
    ``Detection.sample`` is the template's onset in the stream (see the module notes on its
    refinement); the score trace passed to ``on_scores`` has one score per hop
    (``score_step`` samples apart).
    """

    def __init__(
        self,
        templates: Mapping[str, np.ndarray],
        sample_rate: float,
        threshold=None,
        mad=None,
        min_distance=None,
        combine: str | None = None,
        channels: int | None = None,
        block_size: int | None = None,
        mad_window_s: float = 10.0,
        mad_hop_s: float = 1.0,
        on_scores=None,
        domain: str = "spectrogram",
        spectrogram: SpectrogramParams | Mapping | None = None,
    ):
        if domain != "spectrogram":
            raise ValueError(f"SpectroMatcher works in the spectrogram domain, not {domain!r}")
        if not templates:
            raise ValueError("at least one template is needed")
        if not (np.isfinite(sample_rate) and sample_rate > 0):
            raise ValueError(f"sample_rate must be positive, got {sample_rate}")
        if combine not in (None, "mean"):
            raise ValueError(f"combine must be None or 'mean', got {combine!r}")
        if spectrogram is None:
            spectrogram = SpectrogramParams()
        elif isinstance(spectrogram, Mapping):
            spectrogram = SpectrogramParams(**spectrogram)
        self.params = spectrogram
        self.sample_rate = float(sample_rate)
        self.combine = combine
        self._on_scores = on_scores
        self.frame, self.hop = spectrogram.sizes(self.sample_rate)
        self.score_step = self.hop
        self._window = signal.get_window(spectrogram.window, self.frame)
        self._time = spectrogram.time_tolerance
        self._shift = ONSET_FRAMES
        # The onset score's frame and hop (module notes), and its params at that resolution.
        self._oframe = max(4, self.frame // ONSET_DIVISOR)
        self._ohop = max(1, self.hop // ONSET_DIVISOR)
        self._owindow = signal.get_window(spectrogram.window, self._oframe)
        fine = replace(
            spectrogram,
            frame_s=self._oframe / self.sample_rate,
            hop_s=self._ohop / self.sample_rate,
            tolerance=0.0,
        )
        self.names = [str(n) for n in templates]
        raw = []
        for name, t in templates.items():
            t = np.asarray(t, dtype=np.float64)
            if t.ndim not in (1, 2) or t.size == 0:
                raise ValueError(f"template {name!r} must have shape (L,) or (L, C)")
            if not np.all(np.isfinite(t)):
                raise ValueError(f"template {name!r} contains NaN or Inf")
            raw.append(t)
        self._shapes = [t.shape for t in raw]
        raw = [t if t.ndim == 2 else t[:, None] for t in raw]
        self._patches = [
            template_patch(n, t, self.sample_rate, spectrogram)
            for n, t in zip(self.names, raw, strict=True)
        ]
        self._onset_patches = [
            template_patch(n, t, self.sample_rate, fine)
            for n, t in zip(self.names, raw, strict=True)
        ]
        self._rules = self._threshold_rules(threshold, mad, min_distance)
        self._mad_window = max(1, round(mad_window_s * self.sample_rate / self.hop))
        self._mad_hop = max(1, round(mad_hop_s * self.sample_rate / self.hop))
        if self._mad_hop > self._mad_window:
            raise ValueError("mad_hop_s must not exceed mad_window_s")
        self._mmax = max(p.frames for p in self._patches)
        if block_size is None:
            seg_frames = max(256, 4 * self._mmax)
        else:
            if int(block_size) < 1:
                raise ValueError(f"block_size must be >= 1, got {block_size}")
            seg_frames = -(-int(block_size) // self.hop)
        self._seg_frames = seg_frames
        self.block_size = seg_frames * self.hop
        # Raw frames of a segment: its F frames, the M - 1 after them, +-time for the max-filter.
        self._raw_frames = seg_frames + self._mmax - 1 + 2 * self._time
        self._seg_len = (self._raw_frames - 1) * self.hop + self.frame
        self.channels: int | None = None
        self._begin(0)
        if channels is not None:
            self._setup(int(channels))

    # -- setup -------------------------------------------------------------------------------

    def _threshold_rules(self, threshold, mad, min_distance) -> list[tuple]:
        """`template_rules`, with min_distance in whole hops (default: the patch's frames)."""
        return [
            (fixed, k, patch.frames if d is None else max(1, round(d / self.hop)))
            for (fixed, k, d), patch in zip(
                template_rules(self.names, threshold, mad, min_distance),
                self._patches,
                strict=True,
            )
        ]

    def _setup(self, channels: int) -> None:
        if channels < 1:
            raise ValueError(f"channels must be >= 1, got {channels}")
        for name, shape in zip(self.names, self._shapes, strict=True):
            if len(shape) == 2 and shape[1] != channels:
                raise ValueError(
                    f"template {name!r} has {shape[1]} channels, the stream has {channels}"
                )
        self.channels = channels
        self._tracks = []
        for i, (fixed, mad, d) in enumerate(self._rules):
            for c in [None] if self.combine == "mean" else list(range(channels)):
                m = None if mad is None else MadThreshold(mad, self._mad_window, self._mad_hop)
                self._tracks.append(_Track(i, c, fixed, m, d))
        self._buf = np.zeros((self._seg_len, channels))
        self._begin(self._seg_frame)

    def rules(self, name: str) -> Rule:
        """The threshold (or MAD multiple) and minimum distance (in samples: whole hops)
        template `name` runs with."""
        fixed, mad, frames = self._rules[self.names.index(name)]
        return Rule(fixed, mad, frames * self.hop)

    @property
    def latency(self) -> int:
        """Upper bound, in frames (samples), on how late a detection is reported."""
        reach, window, hop = self._context()
        return self._seg_len + (reach + 2 + self._shift + (hop if window else 0)) * self.hop

    @property
    def decided(self) -> int:
        """Stream sample before which every detection has been returned by `process`."""
        # A peak at frame j reports a sample of at least (j - shift) H - ceil(h / 2).
        back = self._shift * self.hop + (self._ohop + 1) // 2
        if self.channels is None:
            return max(self._origin * self.hop - back, 0)
        frames = []
        for k, tr in enumerate(self._tracks):
            frames.append(tr.peaks.decided)
            if self._waiting[k]:
                frames.append(self._waiting[k][0][0])
        return max((self._origin + min(frames)) * self.hop - back, 0)

    def reset(self) -> None:
        """Forget the stream: the next block is sample 0 again."""
        self._begin(0)

    def _begin(self, seg_frame: int) -> None:
        """Start a stream whose first segment scores frames from `seg_frame` on."""
        self._seg_frame = seg_frame
        # The buffer starts `time` frames before the segment; at the stream's start those frames
        # do not exist: zeros in the buffer, -inf features (the max-filter ignores them).
        self._fill = self._time * self.hop if seg_frame == 0 else 0
        if getattr(self, "_buf", None) is not None:
            self._buf[: self._fill] = 0.0
        hop = self._context()[2]
        self._origin = -(-seg_frame // hop) * hop  # the score traces start on a MAD hop
        self._pending: list[Detection] = []
        for tr in getattr(self, "_tracks", []):
            tr.reset(skip=self._origin - seg_frame)
        # Peaks that wait for their onset search: (trace index, score, threshold).
        self._waiting: list[list[tuple]] = [[] for _ in getattr(self, "_tracks", [])]
        # The stream's samples from `_xbase` on, kept for the onset search.
        self._xraw = np.zeros((0, self.channels or 0))
        self._xbase = 0

    # -- chunks of a longer stream -------------------------------------------------------------

    def chunk_bounds(self, start: int, stop: int, frames: int | None = None) -> tuple[int, int]:
        """The samples to feed for the whole stream's detections in ``[start, stop)``.

        As `streamconv.Matcher.chunk_bounds`: call ``start_at(first)``, `process` samples
        ``[first, end)`` (and `flush` if ``end`` is the stream's end), keep the detections in
        ``[start, stop)``. A detection's sample lies within the onset search's
        ``ONSET_FRAMES`` hops and half a fine hop of its peak's frame, so that many frames and
        one more are scored on each side, and one more score for the peak's decision.
        """
        start, stop = int(start), int(stop)
        if not 0 <= start < stop:
            raise ValueError(f"need 0 <= start < stop, got {start}, {stop}")
        reach, window, hop = self._context()
        j0 = max(start // self.hop - 1 - self._shift, 0)
        j1 = stop // self.hop + 2 + self._shift
        base = max(j0 - 1 - reach - window, 0) // hop * hop
        first_frame = base // self._seg_frames * self._seg_frames
        scores = -(-(j1 + reach + 2 + self._shift) // hop) * hop
        end_frame = -(-scores // self._seg_frames) * self._seg_frames
        first = self._first_sample(first_frame)
        # The last segment's samples end at its first sample plus the segment length.
        end = (end_frame - self._seg_frames - self._time) * self.hop + self._seg_len
        if frames is not None:
            end = min(end, int(frames))
        return first, end

    def _first_sample(self, seg_frame: int) -> int:
        return 0 if seg_frame == 0 else (seg_frame - self._time) * self.hop

    def start_at(self, frame: int) -> None:
        """Forget the stream; the next block is sample `frame` of a longer stream.

        Parameters
        ----------
        frame : int
            A `chunk_bounds` first sample: 0, or a segment boundary less the max-filter's
            frames.
        """
        frame = int(frame)
        seg = (frame + self._time * self.hop) // self.block_size if frame else 0
        if frame < 0 or self._first_sample(seg * self._seg_frames) != frame:
            raise ValueError(f"start_at needs a first sample that chunk_bounds gave, got {frame}")
        self._begin(seg * self._seg_frames)

    # -- streaming (process, flush: SegmentedDetector) ----------------------------------------

    def _advance_segment(self) -> None:
        self._seg_frame += self._seg_frames

    def _features(self, seg: np.ndarray, final: bool) -> np.ndarray:
        """Max-filtered features of a segment's samples: ``(channels, frames, bins)``; frame 0
        is the segment's first scored frame."""
        feat = scaled(frame_power(seg, self.frame, self.hop, self._window), self.params.scale)
        t = self._time
        if t:
            # Frames before the stream's start and after its end do not exist: -inf, which
            # the time max-filter ignores.
            if self._seg_frame == 0:
                feat[:, :t] = -np.inf
            if final:
                pad = np.full((feat.shape[0], t, feat.shape[2]), -np.inf)
                feat = np.concatenate([feat, pad], axis=1)
        return dilate(feat, self.params.tolerance, t)

    def _keep_samples(self, seg: np.ndarray) -> None:
        """Append a segment's samples not kept yet to those kept for the onset search."""
        first = (self._seg_frame - self._time) * self.hop  # of seg[0]; < 0 at the start: zeros
        have = self._xbase + len(self._xraw)
        new = seg[max(have - first, 0) :]
        if len(self._xraw) == 0:
            self._xraw, self._xbase = new.copy(), max(have, first)
        elif len(new):
            self._xraw = np.concatenate([self._xraw, new])

    def _run_segment(self, m: int, final: bool) -> None:
        self._keep_samples(self._buf[:m])
        feat = self._features(self._buf[:m], final)
        for i, patch in enumerate(self._patches):
            count = max(feat.shape[1] - patch.frames + 1, 0) if final else self._seg_frames
            scores = self._score(feat, patch, count)
            for k, tr in enumerate(self._tracks):
                if tr.template != i:
                    continue
                col = scores[:, 0] if tr.channel is None else scores[:, tr.channel]
                self._push(k, tr, col, final)
        if self._tracks:
            # Keep the samples a later onset search may need: from the earliest undecided
            # peak's frame less the search and the parabola's neighbour.
            need = min(
                min([tr.peaks.decided] + [w[0] for w in self._waiting[k]])
                for k, tr in enumerate(self._tracks)
            )
            first = (self._origin + need - self._shift) * self.hop - self._ohop
            drop = min(max(first - self._xbase, 0), len(self._xraw))
            if drop:
                self._xraw = self._xraw[drop:]
                self._xbase += drop

    def _onset(self, tr: _Track, frame: int, final: bool) -> int | None:
        """The onset of track `tr`'s peak at stream frame `frame`, in samples (module notes);
        None while the samples it needs are not all kept."""
        patch = self._onset_patches[tr.template]
        h = self._ohop
        span = (patch.frames - 1) * h + self._oframe  # the samples one onset patch covers
        reach = self._shift * self.hop // h  # candidates: lags centre + i h for |i| <= reach
        centre = frame * self.hop
        kept = self._xbase + len(self._xraw)
        if not final and centre + (reach + 1) * h + span > kept:
            return None
        # Lags i_lo..i_hi: the candidates and their neighbours, where the stream has the patch.
        i_lo = max(-reach - 1, -((centre - self._xbase) // h))
        i_hi = min(reach + 1, (kept - span - centre) // h)
        if i_hi < max(i_lo, -reach):
            return centre
        x = self._xraw[centre + i_lo * h - self._xbase : centre + i_hi * h + span - self._xbase]
        feat = scaled(frame_power(x, self._oframe, h, self._owindow), self.params.scale)
        col = self._score(feat, patch, i_hi - i_lo + 1)[:, 0 if tr.channel is None else tr.channel]
        # The best candidate, the nearer one to `centre` on a tie.
        cand = sorted(range(max(i_lo, -reach), min(i_hi, reach) + 1), key=abs)
        p = max(cand, key=lambda i: col[i - i_lo])
        delta = parabola_offset(*col[p - 1 - i_lo : p + 2 - i_lo]) if i_lo < p < i_hi else 0.0
        return centre + p * h + round(delta * h)

    def _score(self, feat: np.ndarray, patch: TemplatePatch, count: int) -> np.ndarray:
        """Pearson scores of `patch` at the first `count` frames of `feat`: ``(count, 1)``
        with ``combine="mean"``, else ``(count, channels)``."""
        channels = feat.shape[0]
        nchan = 1 if self.combine else channels
        if count == 0:
            return np.zeros((0, nchan))
        m = patch.frames
        x = feat[:, : count + m - 1, patch.bins]
        # Features relative to the floor: exact zeros where floored, so a floored patch is flat.
        x = np.maximum(x, patch.floor) - (patch.floor if np.isfinite(patch.floor) else 0.0)
        nf, nb = x.shape[1], x.shape[2]
        tc = patch.centred
        if tc.shape[0] == 1:
            g = (x.reshape(-1, nb) @ tc[0].T).reshape(channels, nf, m)
        else:
            g = np.einsum("cfb,cmb->cfm", x, tc)
        g = np.ascontiguousarray(g)
        # num[c, j] = sum_m g[c, j + m, m]: a strided view along the diagonals.
        s = g.strides
        num = as_strided(g, (channels, count, m), (s[0], s[1], s[1] + s[2])).sum(axis=2)
        rows = np.empty((2, channels, nf + 1))
        rows[:, :, 0] = 0.0
        np.cumsum(x.sum(axis=2), axis=1, out=rows[0, :, 1:])
        np.cumsum(np.square(x).sum(axis=2), axis=1, out=rows[1, :, 1:])
        s1 = rows[0, :, m : m + count] - rows[0, :, :count]
        s2 = rows[1, :, m : m + count] - rows[1, :, :count]
        var = s2 - s1 * s1 / (m * nb)
        flat = var <= FLAT_RTOL * s2
        var[flat] = 1.0
        scores = num / (np.sqrt(var) * patch.norms[:, None])
        np.clip(scores, -1.0, 1.0, out=scores)
        scores[flat] = 0.0
        scores = scores.T
        if self.combine == "mean":
            scores = scores.mean(axis=1, keepdims=True)
        return scores

    def _push(self, k: int, tr: _Track, scores: np.ndarray, final: bool) -> None:
        """Feed track `k`'s new scores; turn its peaks into detections once their onset is
        found."""
        report = self._on_scores and self._report_scores
        idx, sc, th = tr.push(scores, final, report)
        self._waiting[k] += zip(idx.tolist(), sc.tolist(), th.tolist(), strict=True)
        name = self.names[tr.template]
        while self._waiting[k]:
            j, v, h = self._waiting[k][0]
            s = self._onset(tr, self._origin + j, final)
            if s is None:
                break
            self._waiting[k].pop(0)
            self._pending.append(Detection(name, s, s / self.sample_rate, v, tr.channel, h))

    def _report_scores(self, template: int, channel, start: int, scores, thresholds) -> None:
        if self._on_scores is not None:
            first = (self._origin + start) * self.hop
            self._on_scores(self.names[template], channel, first, scores, thresholds)
