"""Per-template score thresholds of the matchers: the rule, the MAD threshold, the score track.

A template's peaks are decided either by an absolute ``threshold`` or by ``k`` times the
median absolute deviation (MAD) of its own score trace over a trailing window
(:class:`MadThreshold`). Both are computed on fixed hops counted from score 0, so the
thresholds, like the scores, do not depend on how the stream is cut into calls.
:class:`streamconv.dsp.matcher.Matcher` and :class:`streamconv.dsp.spectro_matcher.SpectroMatcher`
keep one ``_Track`` per template and channel (or combined trace): its threshold and its
peak tracker.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import NamedTuple

import numpy as np

from streamconv.dsp.peaks import PeakTracker

__all__ = ["DEFAULT_THRESHOLD", "MIN_MAD_THRESHOLD", "MadThreshold", "Rule", "template_rules"]

DEFAULT_THRESHOLD = 0.7

#: The lowest threshold a MAD rule gives. Where the scores have no spread (digital silence, a
#: constant signal: every score 0, MAD 0), ``k * MAD`` is 0 and every flat window would "reach"
#: it; with this floor nothing is detected there, while a lone event in silence still is.
MIN_MAD_THRESHOLD = 1e-3


class Rule(NamedTuple):
    """How a `Matcher` decides on one template's peaks (`Matcher.rules`).

    Attributes
    ----------
    threshold : float or None
        The absolute threshold; None where ``mad`` decides.
    mad : float or None
        The multiple of the score's MAD; None where ``threshold`` decides.
    min_distance : int
        Samples between two detections.
    """

    threshold: float | None
    mad: float | None
    min_distance: int


def _per_template(value, names: list[str], what: str) -> dict:
    if value is None or isinstance(value, Mapping):
        value = dict(value or {})
        unknown = sorted(set(value) - set(names))
        if unknown:
            raise ValueError(f"{what} names unknown templates: {', '.join(unknown)}")
        return value
    return dict.fromkeys(names, value)


def template_rules(
    names: list[str], threshold, mad, min_distance
) -> list[tuple[float | None, float | None, int | None]]:
    """Each template's ``(threshold, mad, min_distance)`` from a matcher's arguments.

    Each argument is one value for every template or a mapping of name to value. A single
    value is the default for the templates the other mapping does not name; a template gets
    ``DEFAULT_THRESHOLD`` when neither names it. ``min_distance`` is None where not given (the
    matcher's own default applies), in the caller's units.
    """
    if not (threshold is None or mad is None or isinstance(threshold, Mapping)
            or isinstance(mad, Mapping)):  # fmt: skip
        raise ValueError("give threshold or mad, not both")
    thr = _per_template(threshold, names, "threshold")
    mads = _per_template(mad, names, "mad")
    if not isinstance(threshold, Mapping):
        thr = {n: v for n, v in thr.items() if n not in mads}
    if not isinstance(mad, Mapping):
        mads = {n: v for n, v in mads.items() if n not in thr}
    dist = _per_template(min_distance, names, "min_distance")
    rules: list[tuple[float | None, float | None, int | None]] = []
    for name in names:
        if name in thr and name in mads:
            raise ValueError(f"template {name!r}: give threshold or mad, not both")
        if name in thr and not np.isfinite(thr[name]):
            raise ValueError(f"template {name!r}: threshold must be finite")
        d = dist.get(name)
        if d is not None and int(d) < 1:
            raise ValueError(f"template {name!r}: min_distance must be >= 1, got {int(d)}")
        fixed = None if name in mads else float(thr.get(name, DEFAULT_THRESHOLD))
        rules.append((fixed, mads.get(name), None if d is None else int(d)))
    return rules


def _mad(x: np.ndarray) -> float:
    med = np.median(x)
    return float(np.median(np.abs(x - med)))


class MadThreshold:
    """A threshold of ``k`` times the median absolute deviation of a score trace.

    The trace is cut into hops of ``hop`` scores counted from score 0. Every score of hop ``j``
    gets the threshold ``max(k * MAD(scores[e - window : e]), MIN_MAD_THRESHOLD)`` with
    ``e = (j + 1) * hop`` (``e`` is the end of the trace when it ends inside the hop; the window
    is clipped at score 0), so the threshold does not depend on how the trace arrives.

    Parameters
    ----------
    k : float
        Multiple of the MAD, > 0.
    window, hop : int
        Trailing window and hop, in scores; ``window >= hop >= 1``.
    """

    def __init__(self, k: float, window: int, hop: int):
        if not np.isfinite(k) or k <= 0:
            raise ValueError(f"mad must be a positive number, got {k}")
        if not 1 <= int(hop) <= int(window):
            raise ValueError(f"need 1 <= mad hop <= mad window, got hop={hop}, window={window}")
        self.k, self.window, self.hop = float(k), int(window), int(hop)
        self.reset()

    def reset(self) -> None:
        self._buf = np.zeros(0)
        self._base = 0  # index of self._buf[0]
        self._next = 0  # first score without a threshold (a multiple of hop)

    def push(self, scores: np.ndarray, final: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """Append scores; return ``(scores, thresholds)`` for those whose threshold is known."""
        self._buf = np.concatenate([self._buf, np.asarray(scores, dtype=np.float64)])
        end = self._base + len(self._buf)
        out_s, out_t = [], []
        while self._next + self.hop <= end or (final and self._next < end):
            hop_end = min(self._next + self.hop, end)
            lo = max(hop_end - self.window, 0)
            thr = max(
                self.k * _mad(self._buf[lo - self._base : hop_end - self._base]),
                MIN_MAD_THRESHOLD,
            )
            seg = self._buf[self._next - self._base : hop_end - self._base]
            out_s.append(seg)
            out_t.append(np.full(len(seg), thr))
            self._next = hop_end
        # The next hop may end early (end of trace): its window can start at next + 1 - window.
        keep = max(min(self._next, self._next + 1 - self.window), self._base)
        self._buf = self._buf[keep - self._base :]
        self._base = keep
        if not out_s:
            return np.zeros(0), np.zeros(0)
        return np.concatenate(out_s), np.concatenate(out_t)


class _Track:
    """The score trace of one template on one channel (or combined): threshold and peaks."""

    def __init__(self, template: int, channel: int | None, thr: float | None, mad, distance):
        self.template, self.channel = template, channel
        self.fixed = thr
        self.mad = mad
        self.peaks = PeakTracker(distance)
        self.skip = 0

    def reset(self, skip: int = 0) -> None:
        """Start a new trace; drop the first `skip` scores pushed (they precede the trace)."""
        self.peaks.reset()
        if self.mad is not None:
            self.mad.reset()
        self.skip = skip

    def push(
        self, scores: np.ndarray, final: bool, on_scores=None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Return (sample indices, scores, thresholds) of new final peaks."""
        if self.skip:
            drop = min(self.skip, len(scores))
            scores, self.skip = scores[drop:], self.skip - drop
        if self.mad is None:
            thr = np.full(len(scores), self.fixed)
        else:
            scores, thr = self.mad.push(scores, final)
        if on_scores is not None and len(scores):
            on_scores(self.template, self.channel, self.peaks.end, scores, thr)
        return self.peaks.push(scores, thr, final)
