"""What a run reports: a `BlockEvent` per block to observers, a `RunResult` at the end."""

from __future__ import annotations

import dataclasses
import functools

import numpy as np


@dataclasses.dataclass
class BlockEvent:
    """What one block did; the levels are computed (numpy, per channel) on first access.

    Attributes
    ----------
    start : int
        Stream index of the block's first frame.
    input, output : numpy.ndarray
        ``(frames, channels)`` in and out (output: what the sink got). Do not modify them.
    detections : list of Detection
        The detections this block made final, in stream order.
    busy_s : float
        Seconds spent filtering, detecting and writing the block.
    """

    start: int
    input: np.ndarray
    output: np.ndarray
    detections: list
    busy_s: float

    @functools.cached_property
    def input_peak(self) -> np.ndarray:
        """Largest absolute sample per input channel."""
        return _peak(self.input)

    @functools.cached_property
    def input_rms(self) -> np.ndarray:
        """Root mean square per input channel."""
        return _rms(self.input)

    @functools.cached_property
    def output_peak(self) -> np.ndarray:
        """Largest absolute sample per output channel."""
        return _peak(self.output)

    @functools.cached_property
    def output_rms(self) -> np.ndarray:
        """Root mean square per output channel."""
        return _rms(self.output)


def _peak(x: np.ndarray) -> np.ndarray:
    if not len(x):
        return np.zeros(x.shape[1])
    return np.maximum(x.max(axis=0), -x.min(axis=0)).astype(np.float64)


def _rms(x: np.ndarray) -> np.ndarray:
    if not len(x):
        return np.zeros(x.shape[1])
    x64 = x.astype(np.float64, copy=False)
    return np.sqrt(np.einsum("ij,ij->j", x64, x64) / len(x))


@dataclasses.dataclass(frozen=True)
class RunResult:
    """What a run did.

    Attributes
    ----------
    frames_in, frames_out : int
        Frames read from the source and written to the sink (with ``tail``, out > in).
    clipped : int
        Samples the sink clipped on the way to an integer format.
    stopped : bool
        True if `Runner.stop` ended it before the source did.
    detections : int
        Detections reported.
    source, sink : str
        The locators, for messages.
    source_stats, sink_stats : dict
        The source's and sink's counters (overflows, lost datagrams, underflows, ...).
    """

    frames_in: int
    frames_out: int
    clipped: int
    stopped: bool
    detections: int
    source: str
    sink: str
    source_stats: dict
    sink_stats: dict
