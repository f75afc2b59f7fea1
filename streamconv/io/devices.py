"""Live sound devices through PortAudio: sounddevice (``device:``) or PyAudio (``pyaudio:``).

The audio callback only copies: an input callback puts a copy of each block into a bounded
queue, an output callback takes the next block out of one; both count overflows and
underflows. The caller's thread (the worker) does everything else. The PortAudio binding
(sounddevice or PyAudio) is a `streamconv.io.backends.Backend`; nothing here depends on which.

An output stream starts once `prefill` frames are queued, so a producer that runs in step with
the device does not underflow on its first blocks; `close` plays what is queued, then stops.

A stream that stops by itself (its server or device went away) is noticed within `POLL_S`
and raises `RuntimeFailure`. After that, PortAudio 19.6 is of no more use in this process on
JACK: stopping the stream waits up to ten minutes for a server that is gone, and
``Pa_Terminate`` aborts the process (an assertion in ``pa_jack.c``), so it cannot be
re-initialised to see the device again either. So a lost stream is left alone, `portaudio_lost`
becomes true, sounddevice's exit handler (``Pa_Terminate``) is dropped, and the locators
``device:``/``pyaudio:`` reopen the device in a worker process instead (`streamconv.io.reopen`).
"""

from __future__ import annotations

import queue
import threading
import time

import numpy as np

from streamconv.errors import RuntimeFailure, UsageError
from streamconv.io.backends import Stream, get_backend, lose_portaudio, portaudio_lost
from streamconv.io.base import Sink, Source, float_type
from streamconv.io.rechunk import FrameBuffer

__all__ = [
    "POLL_S",
    "STALL_TIMEOUT_S",
    "DeviceSink",
    "DeviceSource",
    "list_devices",
    "portaudio_lost",
    "resolve_device",
]

#: How long a read or write waits for the device before calling it lost, in seconds.
STALL_TIMEOUT_S = 5.0
#: How often a waiting read or write checks that the stream still runs, in seconds.
POLL_S = 0.05
STOPPED = "the device stopped (disconnected, or its sound server ended)"


def _lost(stream, why: str) -> RuntimeFailure:
    """Mark a device source or sink lost, give PortAudio up, and return the error to raise."""
    stream._lost = True
    lose_portaudio()
    return RuntimeFailure(f"{stream.name}: {why}")


def resolve_device(backend: str, spec: str | None, kind: str) -> dict:
    """Return ``{"index", "name", "channels", "sample_rate", "latency_s"}`` of a device.

    Parameters
    ----------
    backend : {"sounddevice", "pyaudio"}
    spec : str or None
        Index, name (or unique part of it), or None for the default device.
    kind : {"input", "output"}

    Raises
    ------
    UsageError
        No such device, or it has no channels of that kind.
    """
    impl = get_backend(backend)
    info = impl.query(spec, kind)
    channels = info[f"max_{kind}_channels"]
    if channels < 1:
        raise UsageError(f"{impl.locator(spec)}: device {info['name']!r} has no {kind} channels")
    return {
        "index": info["index"],
        "name": info["name"],
        "channels": channels,
        "sample_rate": float(info["default_samplerate"]),
        "latency_s": float(info[f"default_high_{kind}_latency"]),
    }


def _describe(stream, backend, spec, kind, sample_rate, channels) -> dict:
    """Resolve the device and set ``name``, ``device_name``, ``sample_rate`` and ``channels``
    on ``stream`` (a source or sink); return the device's description."""
    stream.name = get_backend(backend).locator(spec)
    info = resolve_device(backend, spec, kind)
    stream.device_name = info["name"]
    stream.sample_rate = float(sample_rate or info["sample_rate"])
    stream.channels = int(channels or min(2, info["channels"]))
    if stream.channels > info["channels"]:
        raise UsageError(
            f"{stream.name}: {stream.channels} channels asked, the device has {info['channels']}"
        )
    return info


class _Device:
    """What a device source and sink share: a PortAudio stream fed or drained by a callback."""

    name: str
    sample_rate: float
    channels: int
    _stream: Stream
    _started = False
    _lost = False  # the stream stopped by itself: no PortAudio call on it any more

    def _open_stream(self, backend: str, info: dict, kind: str, block_size: int) -> None:
        """Open `_stream` (not started); the last step of ``__init__``, once `_callback` has
        what it needs."""
        self._stream = get_backend(backend).open_stream(
            info["index"], kind, self.sample_rate, self.channels, block_size, self._callback,
            self.name,
        )  # fmt: skip

    def _callback(self, block: np.ndarray, xrun: bool) -> None:
        raise NotImplementedError


class DeviceSource(_Device, Source):
    """Record from a sound device; blocks arrive through a bounded queue.

    Parameters
    ----------
    spec : str or None
        Device index or name (None: the default input device).
    sample_rate : float, optional
        Default: the device's default rate.
    channels : int, optional
        Default: ``min(2, the device's input channels)``.
    block_size : int
        Frames per callback.
    backend : {"sounddevice", "pyaudio"}
    queue_s : float
        How much audio the queue holds before the callback must drop blocks (overflow).
    dtype : numpy dtype or "auto"
        float32 or float64, the type of the blocks returned by `read`.

    Attributes
    ----------
    overflows : int
        Callbacks that reported an input overflow, plus blocks dropped on a full queue.
    """

    def __init__(
        self,
        spec=None,
        sample_rate=None,
        channels=None,
        block_size: int = 1024,
        backend: str = "sounddevice",
        queue_s: float = 2.0,
        dtype=np.float64,
    ):
        info = _describe(self, backend, spec, "input", sample_rate, channels)
        self.dtype = float_type(dtype, True)  # devices deliver float32
        self.frames_read = 0
        self.overflows = 0
        self._queue: queue.Queue = queue.Queue(max(2, int(queue_s * self.sample_rate / block_size)))
        self._buffer = FrameBuffer(self.channels, self.dtype, capacity=2 * block_size)
        self._released = False
        self._open_stream(backend, info, "input", block_size)

    def _callback(self, indata, overflow: bool) -> None:
        if overflow:
            self.overflows += 1
        try:
            self._queue.put_nowait(indata.copy())
        except queue.Full:
            self.overflows += 1

    def _read(self, frames: int) -> np.ndarray:
        if not self._started:
            self._stream.start()
            self._started = True
        while len(self._buffer) < frames:
            self._buffer.push(self._next())
        return self._buffer.pop(frames)

    def _next(self) -> np.ndarray:
        """The next queued block; raise `RuntimeFailure` if the stream stopped or stalled."""
        deadline = time.monotonic() + STALL_TIMEOUT_S
        while True:
            try:
                return self._queue.get(timeout=POLL_S)
            except queue.Empty:
                pass
            if not self._stream.active:
                raise _lost(self, STOPPED)
            if time.monotonic() > deadline:
                raise _lost(self, f"no audio from the device for {STALL_TIMEOUT_S:g} s")

    def stats(self) -> dict[str, int]:
        return {"overflows": self.overflows}

    def abandon(self) -> None:
        """Let go of the stream without a PortAudio call (`portaudio_lost`: it may hang)."""
        self._lost = True
        self._released = True

    def close(self) -> None:
        if not self._released:
            self._released = True
            if not self._lost:  # a lost stream hangs or aborts in close: leave it (see above)
                self._stream.close()


class DeviceSink(_Device, Sink):
    """Play to a sound device; blocks leave through a bounded queue.

    Parameters
    ----------
    spec : str or None
        Device index or name (None: the default output device).
    sample_rate : float
        Frames per second.
    channels : int
        Samples per frame.
    block_size : int
        Frames per callback.
    backend : {"sounddevice", "pyaudio"}
    prefill : int, optional
        Frames queued before the stream starts. Default: the larger of two blocks and the
        device's default high output latency.
    queue_s : float
        How far ahead of the device `write` may get before it waits.

    Attributes
    ----------
    underflows : int
        Callbacks that found no block ready while the stream ran, or reported an underflow.
    """

    def __init__(
        self,
        spec=None,
        sample_rate=None,
        channels=None,
        block_size: int = 1024,
        backend: str = "sounddevice",
        prefill: int | None = None,
        queue_s: float = 0.5,
    ):
        info = _describe(self, backend, spec, "output", sample_rate, channels)
        self.block_size = block_size
        if prefill is None:
            prefill = max(2 * block_size, round(info["latency_s"] * self.sample_rate))
        self._prefill_blocks = -(-prefill // block_size)
        size = max(self._prefill_blocks + 2, int(queue_s * self.sample_rate / block_size))
        self._queue: queue.Queue = queue.Queue(size)
        self._buffer = FrameBuffer(self.channels, np.float32, capacity=2 * block_size)
        self.underflows = 0
        self.clipped = 0
        self._draining = False
        self._idle = threading.Event()
        self._open_stream(backend, info, "output", block_size)

    def _callback(self, outdata, underflow: bool) -> None:
        if underflow:
            self.underflows += 1
        try:
            outdata[:] = self._queue.get_nowait()
        except queue.Empty:
            outdata.fill(0)
            if self._draining:
                self._idle.set()
            else:
                self.underflows += 1

    def _put(self, block: np.ndarray) -> None:
        deadline = time.monotonic() + STALL_TIMEOUT_S
        while True:
            try:
                self._queue.put(block, timeout=POLL_S)
                break
            except queue.Full:
                pass
            self._check(deadline, f"the device took no audio for {STALL_TIMEOUT_S:g} s")
        if not self._started and self._queue.qsize() >= self._prefill_blocks:
            self._stream.start()
            self._started = True

    def _write(self, block: np.ndarray) -> None:
        self.clipped += int(np.count_nonzero(np.abs(block) > 1.0))  # the device clips these
        self._buffer.push(block)
        while len(self._buffer) >= self.block_size:
            self._put(self._buffer.pop(self.block_size))

    def stats(self) -> dict[str, int]:
        return {"underflows": self.underflows, "clipped": self.clipped}

    @property
    def queued_frames(self) -> int:
        """Frames written but not yet handed to the device."""
        return self._queue.qsize() * self.block_size + len(self._buffer)

    def _commit(self) -> None:
        if len(self._buffer):  # the last block, padded with silence
            self._buffer.push(np.zeros((self.block_size - len(self._buffer), self.channels)))
            self._put(self._buffer.pop(self.block_size))
        self._draining = True
        if not self._started and self._queue.qsize():
            self._stream.start()
            self._started = True
        if self._started:
            wait_s = self._queue.qsize() * self.block_size / self.sample_rate + STALL_TIMEOUT_S
            deadline = time.monotonic() + wait_s
            while not self._idle.wait(POLL_S):
                self._check(deadline, f"the device did not play its queue in {wait_s:.1f} s")
        self._stream.close()

    def _check(self, deadline: float, stalled: str) -> None:
        """Raise `RuntimeFailure` if the running stream stopped by itself or `deadline` passed."""
        if self._started and not self._stream.active:
            raise _lost(self, STOPPED)
        if time.monotonic() > deadline:
            raise _lost(self, stalled)

    def abandon(self) -> None:
        """Let go of the stream without a PortAudio call (`portaudio_lost`: it may hang)."""
        self._lost = True
        self._closed = True

    def _discard(self) -> None:
        self._draining = True
        if not self._lost:  # a lost stream hangs or aborts in close: leave it (module docstring)
            self._stream.close()


def list_devices(backend: str = "sounddevice") -> list[dict]:
    """Return every device as ``{"index", "name", "hostapi", "inputs", "outputs", "sample_rate"}``.

    Parameters
    ----------
    backend : {"sounddevice", "pyaudio"}
    """
    return get_backend(backend).list_devices()
