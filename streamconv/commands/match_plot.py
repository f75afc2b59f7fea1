"""``streamconv match --plot``: a PNG per file with the score traces, thresholds and detections.

The traces are kept as min/max envelopes over bins of samples (about 4000 bins per file), so
memory does not grow with the file.
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
    def __init__(self, bin_frames: int):
        self.bin = bin_frames
        self.lo: list[np.ndarray] = []
        self.hi: list[np.ndarray] = []
        self.thr: list[np.ndarray] = []
        self._rest = np.zeros(0)
        self._rest_thr = np.zeros(0)

    def add(self, scores: np.ndarray, thresholds: np.ndarray) -> None:
        s = np.concatenate([self._rest, scores])
        t = np.concatenate([self._rest_thr, thresholds])
        n = len(s) // self.bin * self.bin
        if n:
            self.lo.append(s[:n].reshape(-1, self.bin).min(axis=1))
            self.hi.append(s[:n].reshape(-1, self.bin).max(axis=1))
            self.thr.append(t[:n].reshape(-1, self.bin).max(axis=1))
        self._rest, self._rest_thr = s[n:], t[n:]

    def arrays(self):
        self.add(np.zeros(0), np.zeros(0))
        parts = [np.concatenate(p) if p else np.zeros(0) for p in (self.lo, self.hi, self.thr)]
        if len(self._rest):
            extra = (self._rest.min(), self._rest.max(), self._rest_thr.max())
            parts = [np.append(p, e) for p, e in zip(parts, extra, strict=True)]
        return parts


class ScorePlot:
    """Collects score traces (``Matcher(on_scores=plot.scores)``) and detections of one file.

    `start` (rate and length of the file, once open) comes before the first trace.
    """

    def __init__(self, path: str):
        self.path, self.rate, self.bin = path, 1.0, 1
        self.traces: dict[tuple, _Envelope] = {}
        self.detections: list[dict] = []

    def start(self, sample_rate: float, frames: int | None) -> None:
        self.rate = sample_rate
        self.bin = max(1, (frames or int(3600 * sample_rate)) // BINS)

    def scores(self, template, channel, start, scores, thresholds) -> None:
        key = (template, channel)
        if key not in self.traces:
            self.traces[key] = _Envelope(self.bin)
        self.traces[key].add(scores, thresholds)

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
            lo, hi, thr = self.traces[key].arrays()
            t = np.arange(len(hi)) * self.bin / self.rate
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
