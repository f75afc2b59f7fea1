"""Per-channel signal levels (peak and RMS in dBFS) over an interval, and score peaks.

Both run on the audio thread, a few vectorized numpy calls per block, and hand a finished
interval to whoever asked as a plain dict.
"""

from __future__ import annotations

import numpy as np


def dbfs(value: np.ndarray) -> list[float]:
    """``20 log10(value)`` per channel (full scale = 1.0); digital silence is ``-inf``."""
    with np.errstate(divide="ignore"):
        return (20.0 * np.log10(value)).tolist()


class LevelMeter:
    """Peak and RMS of each channel since the last `take`.

    Parameters
    ----------
    channels : int
        Channels of the blocks `add` gets.
    """

    def __init__(self, channels: int):
        self.channels = int(channels)
        self._peak = np.zeros(self.channels)
        self._sumsq = np.zeros(self.channels)
        self._frames = 0

    def add(self, block: np.ndarray) -> None:
        """Account one ``(frames, channels)`` block."""
        if not len(block):
            return
        block = block.reshape(len(block), -1)
        np.maximum(self._peak, np.max(np.abs(block), axis=0), out=self._peak)
        self._sumsq += np.einsum("ij,ij->j", block, block)
        self._frames += len(block)

    def take(self) -> dict:
        """``{"peak_dbfs": [...], "rms_dbfs": [...]}`` since the last call; then start over."""
        rms = np.sqrt(self._sumsq / max(self._frames, 1))
        out = {"peak_dbfs": dbfs(self._peak), "rms_dbfs": dbfs(rms)}
        self._peak[:] = 0.0
        self._sumsq[:] = 0.0
        self._frames = 0
        return out


class ScorePeaks:
    """The highest score of each template since the last `take`, with its threshold."""

    def __init__(self):
        self._best: dict[str, tuple[float, float, int]] = {}

    def add(self, template: str, channel, start: int, scores, thresholds, step: int = 1) -> None:
        """A stretch of a score trace, as `streamconv.dsp.matcher.Matcher` reports it: score
        ``i`` at sample ``start + i * step`` (never before sample 0, as a detection)."""
        scores = np.asarray(scores)
        if not scores.size:
            return
        i = int(np.argmax(scores))
        value = float(scores.flat[i])
        best = self._best.get(template)
        if best is None or value > best[0]:
            threshold = np.broadcast_to(np.asarray(thresholds, dtype=float), scores.shape)
            self._best[template] = (value, float(threshold.flat[i]), max(start + i * step, 0))

    def take(self) -> dict:
        """``{template: {"score", "threshold", "sample"}}``; then start over."""
        out = {
            name: {"score": s, "threshold": t, "sample": n}
            for name, (s, t, n) in self._best.items()
        }
        self._best = {}
        return out
