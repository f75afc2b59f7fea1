"""Raw interleaved PCM over a byte stream: stdin/stdout pipes and ``.raw``/``.pcm`` files.

A read from a pipe may end anywhere, also in the middle of a frame; the bytes of an incomplete
frame are carried over to the next read, so frames are never dropped or misaligned. A stream
that ends in the middle of a frame is an error (it was truncated).
"""

from __future__ import annotations

import numpy as np

from streamconv.errors import RuntimeFailure, UsageError
from streamconv.io import pcm
from streamconv.io.base import Sink, Source, float_type
from streamconv.io.rechunk import FrameBuffer


class RawSource(Source):
    """Read raw PCM frames from a binary file object.

    Parameters
    ----------
    stream : binary file object
        Anything with ``read(n)`` returning bytes (``sys.stdin.buffer``, an open file).
    fmt : str
        ``s16le``, ``s32le``, ``f32le`` or ``f64le``.
    sample_rate : float
        Frames per second.
    channels : int
        Samples per frame.
    name : str
        For messages.
    dtype : numpy dtype or "auto"
        float32 or float64, the type of the blocks; ``"auto"``: float32 where it is exact.
    close_stream : bool
        Close `stream` in `close` (not for stdin).

    Attributes
    ----------
    partial : bool
        False (default): a read returns `frames` frames until the end. True: it returns the
        whole frames the first read of the stream that brought any holds (up to `frames`), so a
        thread can read a live pipe ahead in large reads without waiting for them to fill
        (`streamconv.runner`: one hand-over per pipe read, not per block).
    """

    partial = False

    def __init__(
        self,
        stream,
        fmt: str,
        sample_rate: float,
        channels: int,
        name: str = "-",
        dtype=np.float64,
        close_stream: bool = False,
    ):
        self._stream = stream
        self._sample_dtype = pcm.pcm_dtype(fmt)
        self.sample_rate = float(sample_rate)
        self.channels = int(channels)
        self.name = name
        self.dtype = float_type(dtype, fmt in ("s16le", "f32le"))
        self.frames_read = 0
        self._frame_bytes = self._sample_dtype.itemsize * self.channels
        self._buffer = FrameBuffer(self.channels, self._sample_dtype)
        self._close_stream = close_stream

    def _read(self, frames: int) -> np.ndarray:
        buf = self._buffer
        while len(buf) < frames:
            chunk = self._stream.read((frames - len(buf)) * self._frame_bytes - buf.partial_bytes)
            if not chunk:
                if buf.partial_bytes:
                    raise UsageError(
                        f"{self.name}: stream ends in the middle of a frame ({buf.partial_bytes} "
                        f"stray bytes after frame {self.frames_read + len(buf)}; "
                        f"frames are {self._frame_bytes} bytes)"
                    )
                break
            buf.push_bytes(chunk)
            if self.partial and len(buf):
                break
        data = buf.pop(min(frames, len(buf)))
        return pcm.decode(data, self._sample_dtype, self.channels, self.dtype)

    def close(self) -> None:
        if self._close_stream:
            self._stream.close()


class RawSink(Sink):
    """Write raw PCM frames to a binary file object.

    Parameters
    ----------
    stream : binary file object
        Anything with ``write(bytes)``.
    fmt : str
        ``s16le``, ``s32le``, ``f32le`` or ``f64le``; integers are clipped and counted.
    sample_rate : float
        Frames per second.
    channels : int
        Samples per frame.
    name : str
        For messages.
    flush : bool
        Flush after every block (pipes: the next program gets each block at once).
    """

    def __init__(self, stream, fmt: str, sample_rate: float, channels: int, name="-", flush=False):
        self._stream = stream
        self._sample_dtype = pcm.pcm_dtype(fmt)
        self.sample_rate = float(sample_rate)
        self.channels = int(channels)
        self.name = name
        self.clipped = 0
        self._flush = flush

    def _write(self, block: np.ndarray) -> None:
        data, clipped = pcm.encode(block, self._sample_dtype)
        self.clipped += clipped
        try:
            self._stream.write(data)
            if self._flush:
                self._stream.flush()
        except OSError as exc:
            raise self._failure(exc) from None

    def _commit(self) -> None:
        try:
            self._stream.flush()
        except OSError as exc:
            raise self._failure(exc) from None

    def _failure(self, exc: OSError) -> RuntimeFailure:
        """A failed write as one line: a closed pipe, or the system's reason (a full disk
        under a redirected stdout: ``stdout: No space left on device``)."""
        if isinstance(exc, BrokenPipeError):
            return RuntimeFailure(f"{self.name}: the reading end of the pipe was closed")
        return RuntimeFailure(f"{'stdout' if self.name == '-' else self.name}: {exc.strerror}")
