"""``streamconv match --plot``: a PNG per file with the score traces, thresholds and detections.

The traces are kept as min/max envelopes over bins of samples (4000 to 8000 bins per file), so
memory does not grow with the file, whether its length is known or not.
"""

from __future__ import annotations

import contextlib
import os

import numpy as np

from streamconv.detect import PERIODICITY
from streamconv.errors import UsageError
from streamconv.io.files import AtomicFile

BINS = 4000


class _Envelope:
    """Min/max of a score trace (and max of its threshold) per bin of ``bin`` samples.

    A trace of unknown length starts with 1 s bins and doubles them whenever there are more
    than ``2 * BINS``: memory stays bounded however long the file is.
    """

    def __init__(self, bin_frames: int):
        self.bin = bin_frames
        self.idx = np.zeros(0, dtype=np.int64)  # bin index of each entry
        self.lo, self.hi, self.thr = np.zeros(0), np.zeros(0), np.zeros(0)

    def add(self, start: int, step: int, scores: np.ndarray, thresholds: np.ndarray) -> None:
        if not len(scores):
            return
        idx = (start + step * np.arange(len(scores))) // self.bin
        self._merge(idx, scores, scores, thresholds)
        while len(self.idx) > 2 * BINS:
            self.bin *= 2
            idx, lo, hi, thr = self.idx // 2, self.lo, self.hi, self.thr
            self.idx = np.zeros(0, dtype=np.int64)
            self.lo, self.hi, self.thr = np.zeros(0), np.zeros(0), np.zeros(0)
            self._merge(idx, lo, hi, thr)

    def _merge(self, idx, lo, hi, thr) -> None:
        """Append values at bin indices `idx` (ascending), reducing entries of one bin."""
        idx = np.concatenate([self.idx, idx])
        lo, hi, thr = (np.concatenate(p) for p in ((self.lo, lo), (self.hi, hi), (self.thr, thr)))
        first = np.flatnonzero(np.r_[True, idx[1:] != idx[:-1]])
        self.idx = idx[first]
        self.lo = np.minimum.reduceat(lo, first)
        self.hi = np.maximum.reduceat(hi, first)
        self.thr = np.maximum.reduceat(thr, first)


class ScorePlot:
    """Collects score traces (``Matcher(on_scores=plot.scores)``) and detections of one file.

    `start` (rate and length of the file, once open) comes before the first trace. A file of
    unknown length (CSV, raw from a pipe) is binned as it comes.

    Parameters
    ----------
    path : str
        The file (the plot's title).
    options : MatchOptions, optional
        Say the domain: spectrogram scores are one per hop.
    """

    def __init__(self, path: str, options=None):
        self.path, self.rate, self.bin, self.step = path, 1.0, 1, 1
        self.options = options
        self.traces: dict[tuple, _Envelope] = {}
        self.detections: list[dict] = []

    def start(self, sample_rate: float, frames: int | None) -> None:
        self.rate = sample_rate
        self.bin = max(1, (frames or int(sample_rate)) // BINS)
        if self.options is not None and self.options.domain == "spectrogram":
            from streamconv.dsp.spectrogram import SpectrogramParams

            params = SpectrogramParams(**(self.options.spectrogram or {}))
            self.step = params.sizes(sample_rate)[1]

    def scores(self, template, channel, start, scores, thresholds) -> None:
        key = (template, channel)
        if key not in self.traces:
            self.traces[key] = _Envelope(self.bin)
        self.traces[key].add(start, self.step, scores, thresholds)

    def detection(self, record: dict) -> None:
        self.detections.append(record)

    def save(self, png: str) -> None:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        keys = list(self.traces)
        periodic = [d for d in self.detections if d["template"] == PERIODICITY]
        rows = len(keys) + (1 if periodic or not keys else 0)
        fig, axes = plt.subplots(
            rows, 1, figsize=(10, 1.2 + 1.8 * rows), sharex=True, squeeze=False
        )
        multi = len({k[1] for k in keys}) > 1
        for ax, key in zip(axes[:, 0], keys, strict=False):
            env = self.traces[key]
            lo, hi, thr = env.lo, env.hi, env.thr
            t = env.idx * env.bin / self.rate
            ax.fill_between(t, lo, hi, step="post", color="tab:blue", lw=0.6, label="score")
            ax.step(t, thr, where="post", color="tab:orange", lw=1, label="threshold")
            hits = [d for d in self.detections if (d["template"], d["channel"]) == key]
            ax.plot([d["time"] for d in hits], [d["score"] for d in hits], "rv", label="detection")
            name = key[0] if not multi else f"{key[0]} (channel {key[1]})"
            ax.set_ylabel("NCC")
            ax.set_title(f"{name}: {len(hits)} detections", fontsize=9, loc="left")
            ax.set_ylim(min(-0.2, float(lo.min(initial=0))), 1.05)
            ax.legend(loc="upper right", fontsize=7)
        if rows > len(keys):
            ax = axes[-1, 0]
            ax.plot([d["time"] for d in periodic], [d["score"] for d in periodic], "g.")
            ax.set_ylabel("periodicity")
            ax.set_ylim(0, 1.05)
        axes[-1, 0].set_xlabel("time (s)")
        fig.suptitle(os.path.basename(self.path), fontsize=10)
        fig.tight_layout()
        out = AtomicFile(png, ".png")
        try:
            fig.savefig(out.tmp_path, format="png", dpi=100)
            out.commit()
        except OSError as exc:
            out.discard()
            raise UsageError(f"{png}: cannot write: {exc.strerror}") from None
        finally:
            with contextlib.suppress(Exception):
                plt.close(fig)
