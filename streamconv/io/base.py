"""The I/O protocol: a `Source` yields ``(frames, channels)`` float blocks, a `Sink` takes them.

Every source and sink of streamconv (memory, files, pipes, devices, network) is one of these::

    src.read(frames) -> block    # (n, channels), 0 < n <= frames; n == 0 only at the end
    sink.write(block)            # (n, channels), any n >= 0
    close()                      # a sink commits here: flushes, renames its temporary file
    sink.abort()                 # a sink discards what it wrote (used when the job failed)

Both are context managers; a sink leaving a ``with`` block by an exception aborts instead of
committing, so a failed job never leaves a half file that looks whole.
"""

from __future__ import annotations

import numpy as np

from streamconv.errors import UsageError


def float_type(dtype, lossless32: bool) -> np.dtype:
    """Resolve a source's ``dtype`` argument; ``"auto"`` is float32 where that holds every
    sample exactly (`lossless32`: 16-bit integers, float32 data), else float64."""
    if isinstance(dtype, str) and dtype == "auto":
        return np.dtype(np.float32 if lossless32 else np.float64)
    dtype = np.dtype(dtype)
    if dtype not in (np.float32, np.float64):
        raise ValueError(f"dtype must be float32, float64 or 'auto', got {dtype}")
    return dtype


class Source:
    """A stream of float blocks shaped ``(frames, channels)`` at `sample_rate` Hz.

    Subclasses implement ``_read(frames)``; `read` adds the checks every source shares.

    Attributes
    ----------
    name : str
        The locator, for messages.
    sample_rate : float
        Frames per second.
    channels : int
        Samples per frame.
    dtype : numpy.dtype
        float32 or float64, the type of every block.
    frames_read : int
        Frames delivered so far; the next block starts at this sample index.
    """

    name: str = "source"
    sample_rate: float
    channels: int
    dtype: np.dtype = np.dtype(np.float64)
    frames_read: int = 0

    def read(self, frames: int) -> np.ndarray:
        """Return the next block of at most `frames` frames; an empty block means the end.

        Parameters
        ----------
        frames : int
            The most frames wanted (> 0). Finite sources return exactly `frames` until the last
            block; live ones may return fewer.

        Returns
        -------
        numpy.ndarray
            Shape ``(n, channels)``, dtype `dtype`.

        Raises
        ------
        UsageError
            A NaN or Inf sample, with its frame index.
        """
        if frames <= 0:
            raise ValueError(f"frames must be positive, got {frames}")
        block = self._read(frames)
        finite = np.isfinite(block)
        if not finite.all():
            frame = int(np.argmin(finite.all(axis=1)))
            raise UsageError(f"{self.name}: NaN or Inf sample at frame {self.frames_read + frame}")
        self.frames_read += len(block)
        return block

    def blocks(self, frames: int):
        """Yield blocks of at most `frames` frames until the end of the stream."""
        while True:
            block = self.read(frames)
            if not len(block):
                return
            yield block

    def stats(self) -> dict[str, int]:
        """Counters worth reporting (overflows, lost datagrams, ...); empty if none."""
        return {}

    def _read(self, frames: int) -> np.ndarray:
        raise NotImplementedError

    def close(self) -> None:
        """Release the stream; reading after this is an error."""

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class Sink:
    """Takes float blocks shaped ``(frames, channels)`` at `sample_rate` Hz.

    Subclasses implement ``_write(block)`` and, where it matters, ``_commit()`` / ``_discard()``.

    Attributes
    ----------
    name : str
        The locator, for messages.
    sample_rate : float
        Frames per second.
    channels : int
        Samples per frame.
    frames_written : int
        Frames taken so far.
    clipped : int
        Samples clipped on the way to an integer format.
    """

    name: str = "sink"
    sample_rate: float
    channels: int
    frames_written: int = 0
    clipped: int = 0
    _closed: bool = False

    def write(self, block: np.ndarray) -> None:
        """Write a ``(frames, channels)`` block (1-D is taken as mono).

        Raises
        ------
        ValueError
            The block's channel count is not `channels`.
        """
        block = np.asarray(block)
        if block.ndim == 1 and self.channels == 1:
            block = block[:, None]
        if block.ndim != 2 or block.shape[1] != self.channels:
            raise ValueError(
                f"{self.name}: block of shape {block.shape} for a sink of {self.channels} channels"
            )
        if len(block):
            self._write(block)
            self.frames_written += len(block)

    def stats(self) -> dict[str, int]:
        """Counters worth reporting (clipped samples, underflows, ...); zeros included."""
        return {"clipped": self.clipped}

    def close(self) -> None:
        """Finish the stream: flush, and make an output file appear under its name."""
        if not self._closed:
            self._closed = True
            self._commit()

    def abort(self) -> None:
        """Stop without committing: an output file is removed, not left half written."""
        if not self._closed:
            self._closed = True
            self._discard()

    def _write(self, block: np.ndarray) -> None:
        raise NotImplementedError

    def _commit(self) -> None:
        pass

    def _discard(self) -> None:
        self._commit()

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()
