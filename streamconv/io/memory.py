"""In-memory source and sink: the test doubles of every pipeline."""

from __future__ import annotations

import numpy as np

from streamconv.io.base import Sink, Source


class MemorySource(Source):
    """Serve an array as a stream, in blocks of whatever size is asked for.

    Parameters
    ----------
    data : array_like
        ``(frames, channels)``, or 1-D for mono.
    sample_rate : float
        Frames per second.
    name : str
        For messages.

    Examples
    --------
    >>> src = MemorySource(np.arange(5.0), sample_rate=8000)
    >>> [len(b) for b in src.blocks(2)]
    [2, 2, 1]
    """

    def __init__(self, data, sample_rate: float, name: str = "memory"):
        data = np.asarray(data)
        if data.ndim == 1:
            data = data[:, None]
        if data.ndim != 2:
            raise ValueError(f"data must be (frames, channels) or 1-D, got shape {data.shape}")
        if data.dtype not in (np.float32, np.float64):
            data = data.astype(np.float64)
        self.data = data
        self.dtype = data.dtype
        self.sample_rate = float(sample_rate)
        self.channels = data.shape[1]
        self.name = name
        self.frames_read = 0

    def _read(self, frames: int) -> np.ndarray:
        start = self.frames_read
        return self.data[start : start + frames].copy()


class MemorySink(Sink):
    """Collect every written block; `data` is their concatenation.

    Parameters
    ----------
    sample_rate : float
        Frames per second.
    channels : int
        Samples per frame.
    name : str
        For messages.
    """

    def __init__(self, sample_rate: float, channels: int, name: str = "memory"):
        self.sample_rate = float(sample_rate)
        self.channels = int(channels)
        self.name = name
        self.blocks: list[np.ndarray] = []
        self.committed = False

    def _write(self, block: np.ndarray) -> None:
        self.blocks.append(np.array(block, copy=True))

    def _commit(self) -> None:
        self.committed = True

    def _discard(self) -> None:
        self.blocks.clear()

    @property
    def data(self) -> np.ndarray:
        """All frames written so far, ``(frames, channels)``."""
        if not self.blocks:
            return np.zeros((0, self.channels))
        return np.concatenate(self.blocks)


class NullSink(Sink):
    """Discard every block (the ``null`` locator); counts frames like any sink."""

    def __init__(self, sample_rate: float, channels: int, name: str = "null"):
        self.sample_rate = float(sample_rate)
        self.channels = int(channels)
        self.name = name

    def _write(self, block: np.ndarray) -> None:
        pass
