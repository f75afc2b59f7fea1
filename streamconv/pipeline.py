"""The service's signal path: source -> filter chain -> sink, detectors on the filtered stream.

A `Pipeline` holds the streaming state and nothing else: ``process(block)`` returns the
filtered block (what the sink gets, as many frames as came in) and the detections that became
final; ``flush()`` returns the rest at the end of the stream. It opens no file, device or
socket; `streamconv.runner` moves blocks from a source through it to a sink.

Detections of all its detectors come out in stream order (`streamconv.detect.Detectors`), as
``streamconv match`` prints them, whatever the blocks. The detectors (and with them scipy, a
quarter of a second of start-up) are imported only by a pipeline that has some, so a
filter-only run does not pay for them.

Sample indices are global: a pipeline built by `Pipeline.successor` on reload continues the
stream of the one it replaces, so detections keep counting from sample 0 of the service.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from streamconv.dsp.convolve import Convolver
from streamconv.dsp.detection import Detection
from streamconv.dsp.group_delay import chain_delay, whole_delay

__all__ = ["Pipeline"]


class Pipeline:
    """A filter chain and its detectors, run block by block.

    Parameters
    ----------
    taps : array_like
        The whole chain as one FIR: ``(L,)``, ``(L, C)`` or ``(L, Cin, Cout)``
        (docs/contract.md, "Python API").
    sample_rate : float
        Of the stream, in Hz.
    channels : int
        Channels of the input stream.
    block_size : int
        Frames per block the source delivers; sizes the FFT engines.
    method : str
        Convolution engine, see `streamconv.Convolver`.
    templates : sequence, optional
        Objects with the fields of `streamconv.config.TemplateInfo` (name, samples, threshold,
        mad, min_distance, combine, mad_window_s, mad_hop_s).
    periodicity : sequence, optional
        Objects with the fields of a ``[[periodicity]]`` entry (name, min_period_s, ...).
    start : int
        Global index of the first sample this pipeline sees (non-zero after a reload).
    on_scores : callable, optional
        Passed to every template `Matcher` (its score traces, for the live dashboard); a
        `successor` keeps it.
    dtype : numpy dtype
        float32 or float64: the precision the filter runs in and the type of its output
        (`streamconv.runner` chooses it from the source and the sink).

    Notes
    -----
    Output frames equal input frames: the sink gets ``y[n] = sum_k h[k] x[n - k]`` for every
    input frame, and the templates are matched on exactly that ``y``.

    Detections are reported on the input's timeline: a chain whose every path is a linear-phase
    FIR with one delay ``D`` (`streamconv.dsp.group_delay.chain_delay`; symmetric or
    antisymmetric taps, ``D = (L - 1) / 2``) puts a pattern that starts at input sample ``n`` at
    ``n + D`` in ``y``, so ``D`` (rounded half up) is subtracted and the detection says
    ``timeline="input"``, ``chain_delay=D``; a record whose window starts in the chain's first
    ``D`` samples (a periodicity window at 0) is placed at input sample 0, never before it. Any
    other chain (minimum phase, a measured
    response, paths with different delays) delays each frequency differently: the detection
    keeps its sample in ``y`` and says ``timeline="filtered"``.
    """

    def __init__(
        self,
        taps,
        sample_rate: float,
        channels: int,
        block_size: int = 1024,
        method: str = "auto",
        templates=(),
        periodicity=(),
        start: int = 0,
        on_scores=None,
        dtype=np.float64,
    ):
        self.taps = np.asarray(taps, dtype=np.float64)
        self.dtype = np.dtype(dtype)
        if self.dtype not in (np.float32, np.float64):
            raise ValueError(f"dtype must be float32 or float64, got {self.dtype}")
        self.sample_rate = float(sample_rate)
        self.channels = int(channels)
        self.block_size = int(block_size)
        self.method = method
        self.templates = list(templates)
        self.periodicity = list(periodicity)
        self.convolver = Convolver(
            self.taps.astype(self.dtype),
            block_size=block_size,
            method=method,
            channels=self.channels,
        )
        self.out_channels = int(self.convolver.out_channels)
        # The detectors (`streamconv.detect`, as ``match`` builds them) on the filtered stream;
        # `Detectors` gives their detections in stream order across blocks and detectors.
        self._detectors = None
        if self.templates or self.periodicity:
            from streamconv.detect import Detectors, build_detectors

            self._detectors = Detectors(
                build_detectors(
                    self.templates,
                    self.periodicity,
                    sample_rate=self.sample_rate,
                    channels=self.out_channels,
                    on_scores=on_scores,
                )
            )
        self.on_scores = on_scores
        self.detector_start = start  # global index of the detectors' sample 0
        self.chain_delay = chain_delay(self.taps)  # None: not one linear-phase delay
        self.frames = start  # global index of the next input frame
        # The last L - 1 input frames (what a successor is primed with), as a ring: the oldest
        # at _history_at. Shifting the whole history every block cost O(L) per call, 43 us of
        # a 64-frame block at L=4096, seven times the filtering itself.
        self._history = np.zeros((max(self.taps.shape[0] - 1, 0), self.channels), self.dtype)
        self._history_at = 0

    @property
    def names(self) -> list[str]:
        """Template and periodicity names, in config order."""
        return [t.name for t in self.templates] + [p.name for p in self.periodicity]

    def process(self, x: np.ndarray) -> tuple[np.ndarray, list[Detection]]:
        """Filter one ``(frames, channels)`` block; return it and the detections now final.

        The block is converted to `dtype` if it is not already; the output has `dtype` and
        `out_channels` columns. Detections are in stream order, with global sample numbers.
        """
        x = np.asarray(x, dtype=self.dtype)
        if x.ndim == 1:
            x = x[:, None]
        y = self.convolver.process(x)
        if y.ndim == 1:
            y = y[:, None]
        self._remember(x)
        self.frames += len(x)
        if self._detectors is None:
            return y, []
        return y, self._global(self._detectors.process(y))

    def tail(self) -> tuple[np.ndarray, list[Detection]]:
        """End of stream, with the filter's tail: its last ``L - 1`` output frames (what a full
        convolution adds after the input), matched like any block, and the detections of them.

        Call `flush` after it for the detections still pending. The pipeline is then spent.
        """
        y = self.convolver.flush()
        if y.ndim == 1:
            y = y[:, None]
        if self._detectors is None or not len(y):
            return y, []
        return y, self._global(self._detectors.process(y))

    def flush(self) -> list[Detection]:
        """End of stream: the detections still pending. The filter tail is not output."""
        if self._detectors is None:
            return []
        return self._global(self._detectors.flush())

    def successor(self, taps, templates=(), periodicity=(), **kwargs) -> tuple[Pipeline, list]:
        """A pipeline with new taps and detectors that continues this one's stream.

        The new filter is primed with this pipeline's input history, so its first output is
        what it would have given had it always run (exactly, when it is no longer than the old
        one; otherwise the missing history counts as zeros). Detectors whose configuration is
        unchanged are kept with their state; the others are flushed here and returned.

        Returns
        -------
        (Pipeline, list of Detection)
            The new pipeline and the detections of the detectors it let go.
        """
        kwargs.setdefault("block_size", self.block_size)
        kwargs.setdefault("method", self.method)
        kwargs.setdefault("on_scores", self.on_scores)
        kwargs.setdefault("dtype", self.dtype)
        same_detectors = _same(self.templates, templates) and _same(self.periodicity, periodicity)
        new = Pipeline(
            taps,
            self.sample_rate,
            self.channels,
            templates=templates,
            periodicity=periodicity,
            start=self.frames,
            **kwargs,
        )
        if new.out_channels != self.out_channels:
            raise ValueError(
                f"the new filter chain gives {new.out_channels} channels, "
                f"the running one {self.out_channels}: restart the service to change that"
            )
        need = new._history.shape[0]
        ordered = np.roll(self._history, -self._history_at, axis=0)  # oldest first
        have = ordered[max(0, len(ordered) - need) :]
        if len(have):
            new.convolver.process(have)
            new._remember(have)
        left: list = []
        if same_detectors:
            new._detectors = self._detectors
            new.detector_start = self.detector_start
        else:
            left = self.flush()
        return new, left

    def score_position(self, name: str) -> tuple[int, int]:
        """``(offset, step)``: score ``i`` of a stretch of template `name`'s trace that starts
        at detector sample ``start`` (``on_scores``'s ``start``) is the template placed at
        ``offset + start + i * step`` on the detections' timeline (see the class notes).

        ``step`` is the matcher's ``score_step``: 1 in the waveform domain, the hop in the
        spectrogram domain.
        """
        step = 1
        for detector in self._detectors.detectors if self._detectors is not None else ():
            if name in getattr(detector, "names", ()):
                step = int(detector.score_step)
        return self._timeline()[0], step

    def _remember(self, x: np.ndarray) -> None:
        n, m, at = len(self._history), len(x), self._history_at
        if n == 0:
            return
        if m >= n:
            self._history[:] = x[-n:]
            self._history_at = 0
            return
        first = min(m, n - at)  # up to the end of the ring, then from its start
        self._history[at : at + first] = x[:first]
        self._history[: m - first] = x[first:]
        self._history_at = (at + m) % n

    def _timeline(self) -> tuple[int, str]:
        """``(offset, timeline)``: detector sample ``s`` is sample ``s + offset`` of the
        detections' timeline, ``"input"`` when the chain's delay is compensated, else
        ``"filtered"`` (see the class notes)."""
        if self.chain_delay is None:
            return self.detector_start, "filtered"
        return self.detector_start - whole_delay(self.chain_delay), "input"

    def _global(self, found: list[Detection]) -> list[Detection]:
        """Detector samples -> the service's input timeline (see the class notes)."""
        s0, timeline = self._timeline()
        # Samples count from the input's first (docs/contract.md): a window that starts in the
        # chain's start-up (its first D filtered samples, the filter's ramp over the zeros
        # before the input) starts at input sample 0, not before it.
        return [
            dataclasses.replace(
                d,
                sample=max(d.sample + s0, 0),
                time=max(d.sample + s0, 0) / self.sample_rate,
                timeline=timeline,
                chain_delay=self.chain_delay,
            )
            for d in found
        ]


def _same(old: list, new) -> bool:
    new = list(new)
    if len(old) != len(new):
        return False
    for a, b in zip(old, new, strict=True):
        for f in dataclasses.fields(a) if dataclasses.is_dataclass(a) else ():
            va, vb = getattr(a, f.name), getattr(b, f.name, None)
            if isinstance(va, np.ndarray):
                if not (isinstance(vb, np.ndarray) and np.array_equal(va, vb)):
                    return False
            elif va != vb:
                return False
        if not dataclasses.is_dataclass(a) and a != b:
            return False
    return True
