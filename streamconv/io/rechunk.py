"""One frame re-chunking buffer: blocks of any length in, blocks of the length asked for out.

Sources and sinks get audio in pieces whose size they do not choose (a device callback's
period, a datagram, a pipe read that stops mid-frame, a read-ahead block) and must hand it on in
pieces of another size. `FrameBuffer` is the one FIFO they all use for that: blocks of
``(n, channels)`` samples, or raw bytes that may end inside a frame, go in at the end; exactly
the number of whole frames asked for comes out at the front. It keeps one preallocated byte
array (grown only when more is held than ever before), moves data with whole-array copies, and
never loops over samples.
"""

from __future__ import annotations

import numpy as np

__all__ = ["FrameBuffer"]


class FrameBuffer:
    """A FIFO of interleaved frames in one preallocated array.

    Parameters
    ----------
    channels : int
        Samples per frame.
    dtype : numpy dtype
        The sample type held and returned; pushed blocks are cast to it.
    capacity : int
        Frames of room allocated up front; the buffer grows (doubling) if more must be held.

    Examples
    --------
    >>> buf = FrameBuffer(channels=1, dtype=np.float64, capacity=4)
    >>> buf.push(np.arange(3.0)[:, None])
    >>> buf.push(np.arange(3.0, 5.0)[:, None])
    >>> buf.pop(4)[:, 0].tolist(), len(buf)
    ([0.0, 1.0, 2.0, 3.0], 1)

    Raw bytes may stop inside a frame; the partial frame waits for the rest:

    >>> raw = np.array([1, 2, 3], "<i2").tobytes()
    >>> buf = FrameBuffer(channels=2, dtype="<i2")
    >>> buf.push_bytes(raw)
    >>> len(buf), buf.partial_bytes
    (1, 2)
    """

    def __init__(self, channels: int, dtype, capacity: int = 4096):
        if channels < 1:
            raise ValueError(f"channels must be >= 1, got {channels}")
        self.channels = int(channels)
        self.dtype = np.dtype(dtype)
        self._frame_bytes = self.dtype.itemsize * self.channels
        # Bytes, so that a partial frame of raw input can be held; every frame starts at a
        # multiple of the frame size, so typed views of it stay aligned.
        self._raw = np.empty(max(1, capacity) * self._frame_bytes, np.uint8)
        self._start = 0  # byte offset of the first frame held
        self._end = 0  # byte offset past the last byte held

    def __len__(self) -> int:
        """Whole frames held."""
        return (self._end - self._start) // self._frame_bytes

    @property
    def partial_bytes(self) -> int:
        """Bytes of an incomplete last frame (only `push_bytes` leaves one)."""
        return (self._end - self._start) % self._frame_bytes

    def push(self, block: np.ndarray) -> None:
        """Append a ``(n, channels)`` block (any n >= 0), cast to `dtype`.

        Raises
        ------
        ValueError
            The block is not ``(n, channels)``, or raw bytes left a partial frame.
        """
        block = np.asarray(block)
        if block.ndim != 2 or block.shape[1] != self.channels:
            raise ValueError(f"block of shape {block.shape} for {self.channels} channels")
        if self.partial_bytes:
            raise ValueError("a block cannot follow a partial frame of raw bytes")
        n = len(block)
        self._reserve(n * self._frame_bytes)
        self._frames(self._end, n)[...] = block
        self._end += n * self._frame_bytes

    def push_bytes(self, data: bytes | bytearray | memoryview) -> None:
        """Append raw interleaved samples of `dtype`; they may end inside a frame."""
        raw = np.frombuffer(data, np.uint8)
        self._reserve(len(raw))
        self._raw[self._end : self._end + len(raw)] = raw
        self._end += len(raw)

    def pop(self, frames: int) -> np.ndarray:
        """Remove and return the first `frames` frames as a new ``(frames, channels)`` array.

        Raises
        ------
        ValueError
            Fewer than `frames` whole frames are held.
        """
        if not 0 <= frames <= len(self):
            raise ValueError(f"cannot take {frames} frames from a buffer of {len(self)}")
        out = self._frames(self._start, frames).copy()
        self._start += frames * self._frame_bytes
        if self._start == self._end:  # empty: start again at the front, no copy needed
            self._start = self._end = 0
        return out

    def clear(self) -> None:
        """Drop everything held, a partial frame included."""
        self._start = self._end = 0

    def _frames(self, offset: int, n: int) -> np.ndarray:
        raw = self._raw[offset : offset + n * self._frame_bytes]
        return raw.view(self.dtype).reshape(n, self.channels)

    def _reserve(self, nbytes: int) -> None:
        """Make room for `nbytes` more at the end: move what is held to the front, or grow."""
        if self._end + nbytes <= len(self._raw):
            return
        held = self._end - self._start
        if held + nbytes > len(self._raw):
            size = max(2 * len(self._raw), held + nbytes)
            size += -size % self._frame_bytes
            grown = np.empty(size, np.uint8)
            grown[:held] = self._raw[self._start : self._end]
            self._raw = grown
        else:  # numpy copies overlapping ranges correctly
            self._raw[:held] = self._raw[self._start : self._end]
        self._start, self._end = 0, held
