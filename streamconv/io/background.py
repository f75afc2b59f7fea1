"""Read ahead and write behind in threads, so file I/O overlaps the filtering.

libsndfile and the OS release the GIL while they copy, convert and checksum, so on a machine
with two cores a file job reads block ``k + 1`` and writes block ``k - 1`` while it filters
block ``k``. Both wrappers keep the `Source` / `Sink` protocol and its error behaviour: an error
in the thread is raised in the caller at its next ``read`` / ``write`` / ``close``, and a sink
that failed or was aborted is discarded, never committed.

`ReadAhead` also lets a live source (a pipe, a socket, a device) be waited on with a timeout
(`ReadAhead.read_within`): the thread blocks in the source's read, the caller only on a queue,
so `streamconv.runner` gets control back while the source is silent.
"""

from __future__ import annotations

import queue
import threading
import time

import numpy as np

from streamconv.io.base import Sink, Source

DEPTH = 4  # blocks queued each way: enough to ride out one slow read or write
#: `WriteBehind` gathers smaller blocks into one of at least this many frames before handing
#: it to the thread: a file job at 64-frame blocks otherwise spends ~30 us per block on the
#: queue hand-over and libsndfile's per-call cost, five times what filtering the block costs.
GATHER_FRAMES = 16384
#: How long `ReadAhead.close` waits for a read in progress; a source still inside a read then
#: (a silent pipe) is closed by the thread when that read returns.
CLOSE_WAIT_S = 0.5


class _End:
    """Queue marker: the stream ended (``error`` is None) or failed with ``error``."""

    def __init__(self, error: BaseException | None = None):
        self.error = error


class ReadAhead(Source):
    """Read `source` in blocks of `frames` frames in a thread, `DEPTH` blocks ahead.

    ``read(n)`` returns at most ``n`` frames, cutting a read-ahead block where it must;
    ``read_within(n, timeout)`` the same, or None when nothing came within `timeout` seconds.

    Parameters
    ----------
    source : Source
        Read only by the thread from now on; closed by `close`.
    frames : int
        Frames per read of the thread (a live source returns what it has, up to that).
    """

    def __init__(self, source: Source, frames: int):
        self.source = source
        self.name = source.name
        self.sample_rate = source.sample_rate
        self.channels = source.channels
        self.dtype = source.dtype
        self.frames_read = 0
        self._frames = frames
        self._queue: queue.Queue = queue.Queue(DEPTH)
        self._pending = np.empty((0, self.channels), self.dtype)
        self._ended: _End | None = None
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._reading = True  # the thread may be inside source.read
        self._close_source = False  # close() left the source to the thread
        self._thread = threading.Thread(target=self._pump, name="streamconv-read", daemon=True)
        self._thread.start()

    def _pump(self) -> None:
        try:
            while not self._stop.is_set():
                block = self.source.read(self._frames)
                if not len(block):
                    break
                self._put(block)
        except BaseException as exc:  # handed to the reader, raised there
            self._put(_End(exc))
        else:
            self._put(_End())
        finally:
            with self._lock:
                self._reading = False
                close = self._close_source
            if close:
                self.source.close()

    def _put(self, item) -> None:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def _take(self, frames: int, timeout: float | None) -> np.ndarray | None:
        if not len(self._pending) and self._ended is None:
            try:
                item = self._queue.get(timeout=timeout)
            except queue.Empty:
                return None
            if isinstance(item, _End):
                self._ended = item
            else:
                self._pending = item
        if not len(self._pending) and self._ended is not None:
            if self._ended.error is not None:
                raise self._ended.error
            return self._pending
        block, self._pending = self._pending[:frames], self._pending[frames:]
        return block

    def read(self, frames: int) -> np.ndarray:
        # The thread already checked the samples (Source.read); only count them here.
        block = self.read_within(frames, None)
        if block is None:  # without a timeout the queue is waited on: cannot happen
            raise RuntimeError(f"{self.name}: read ahead returned nothing without a timeout")
        return block

    def read_within(
        self, frames: int, timeout: float | None, fill: bool = False
    ) -> np.ndarray | None:
        """Like `read`, but None if no frame arrived within `timeout` seconds (None: wait).

        With `fill`, the block has `frames` frames, joined across the thread's reads, unless
        the stream ends first; frames gathered when the timeout comes are kept for the next
        call. So the blocks do not depend on how the source's reads happened to arrive (a
        pipe read in partial reads), and neither do the bits of what is computed from them.

        Raises
        ------
        Exception
            What the source raised in the thread, once the blocks before it are read.
        """
        if frames <= 0:
            raise ValueError(f"frames must be positive, got {frames}")
        if fill and not self._gather(frames, timeout):
            return None
        block = self._take(frames, timeout)
        if block is not None:
            self.frames_read += len(block)
        return block

    def _gather(self, frames: int, timeout: float | None) -> bool:
        """Queue items into the pending frames until `frames` or the end; False on timeout."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while len(self._pending) < frames and self._ended is None:
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                return False
            try:
                item = self._queue.get(timeout=left)
            except queue.Empty:
                return False
            if isinstance(item, _End):
                self._ended = item
            elif len(self._pending):
                self._pending = np.concatenate([self._pending, item])
            else:
                self._pending = item
        return True

    def stats(self) -> dict[str, int]:
        return self.source.stats()

    def close(self) -> None:
        """Stop the thread and close the source.

        A read in progress is waited for up to `CLOSE_WAIT_S` (a device delivers its next
        block well within it); a source still inside a read after that (a silent pipe or
        socket) is closed by the thread once the read returns, never under its feet.
        """
        self._stop.set()
        self._thread.join(CLOSE_WAIT_S)  # a thread waiting on a full queue leaves in 0.1 s
        with self._lock:
            if self._reading:
                self._close_source = True
                return
        self.source.close()


class WriteBehind(Sink):
    """Write to `sink` from a thread, up to `DEPTH` blocks behind the caller.

    The blocks passed to ``write`` must not be modified afterwards (they are written later).
    """

    def __init__(self, sink: Sink):
        self.sink = sink
        self.name = sink.name
        self.sample_rate = sink.sample_rate
        self.channels = sink.channels
        self.frames_written = 0
        self._queue: queue.Queue = queue.Queue(DEPTH)
        self._error: BaseException | None = None
        self._gathered: list[np.ndarray] = []  # small blocks not yet handed over
        self._gathered_frames = 0
        self._thread = threading.Thread(target=self._pump, name="streamconv-write", daemon=True)
        self._thread.start()

    @property
    def clipped(self) -> int:
        return self.sink.clipped

    @clipped.setter
    def clipped(self, value: int) -> None:
        self.sink.clipped = value

    def _pump(self) -> None:
        while (block := self._queue.get()) is not None:
            if self._error is None:
                try:
                    self.sink.write(block)
                except BaseException as exc:  # raised in the caller at its next call
                    self._error = exc

    def _write(self, block: np.ndarray) -> None:
        if self._error is not None:
            raise self._error  # the caller's ``with`` then aborts, discarding the output
        if not self._gathered and len(block) >= GATHER_FRAMES:
            self._queue.put(block)
            return
        self._gathered.append(block)
        self._gathered_frames += len(block)
        if self._gathered_frames >= GATHER_FRAMES:
            self._hand_over()

    def _hand_over(self) -> None:
        if self._gathered:
            blocks, self._gathered, self._gathered_frames = self._gathered, [], 0
            self._queue.put(blocks[0] if len(blocks) == 1 else np.concatenate(blocks))

    def _join(self) -> None:
        if self._thread.is_alive():
            self._hand_over()
            self._queue.put(None)
            self._thread.join()

    def _commit(self) -> None:
        self._join()
        if self._error is not None:
            self.sink.abort()
            raise self._error
        self.sink.close()

    def _discard(self) -> None:
        self._gathered.clear()  # nothing more is written to an output being discarded
        self._join()
        self.sink.abort()

    def stats(self) -> dict[str, int]:
        return self.sink.stats()
