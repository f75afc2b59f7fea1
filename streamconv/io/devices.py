"""Live sound devices through PortAudio: sounddevice (``device:``) or PyAudio (``pyaudio:``).

The audio callback only copies: an input callback puts a copy of each block into a bounded
queue, an output callback takes the next block out of one; both count overflows and
underflows. The caller's thread (the worker) does everything else. Only callback streams are
used, because blocking reads and writes crash PortAudio 19.6 on the JACK host API.

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

import atexit
import queue
import sys
import threading
import time

import numpy as np

from streamconv.errors import RuntimeFailure, UsageError
from streamconv.io.base import Sink, Source, float_type

#: How long a read or write waits for the device before calling it lost, in seconds.
STALL_TIMEOUT_S = 5.0
#: How often a waiting read or write checks that the stream still runs, in seconds.
POLL_S = 0.05
STOPPED = "the device stopped (disconnected, or its sound server ended)"

_portaudio_lost = False


def portaudio_lost() -> bool:
    """True once a stream of this process was lost: PortAudio must not be called here again."""
    return _portaudio_lost


def _lose_portaudio() -> None:
    global _portaudio_lost
    _portaudio_lost = True
    sd = sys.modules.get("sounddevice")
    if sd is not None:  # its exit handler calls Pa_Terminate, which would abort the process
        atexit.unregister(sd._exit_handler)


def _lost(stream, why: str) -> RuntimeFailure:
    """Mark a device source or sink lost, give PortAudio up, and return the error to raise."""
    stream._lost = True
    _lose_portaudio()
    return RuntimeFailure(f"{stream.name}: {why}")


def _sounddevice():
    try:
        import sounddevice
    except ImportError:
        raise UsageError(
            "device: needs the sounddevice package (pip install 'streamconv[device]')"
        ) from None
    except OSError as exc:  # PortAudio library missing
        raise RuntimeFailure(f"device: PortAudio is not available ({exc})") from None
    return sounddevice


def _pyaudio():
    try:
        import pyaudio
    except ImportError:
        raise UsageError(
            "pyaudio: needs the PyAudio package (pip install 'streamconv[pyaudio]')"
        ) from None
    return pyaudio


def _device_spec(spec: str | None):
    """``""``/None -> default device, ``"3"`` -> index 3, else a name (substring)."""
    if not spec:
        return None
    return int(spec) if spec.isdigit() else spec


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
    label = f"{'device' if backend == 'sounddevice' else 'pyaudio'}:{spec or ''}".rstrip(":")
    if backend == "sounddevice":
        sd = _sounddevice()
        try:
            info = sd.query_devices(_device_spec(spec), kind=kind)
        except (ValueError, sd.PortAudioError) as exc:
            raise UsageError(
                f"{label}: no such {kind} device ({exc}; see `streamconv devices`)"
            ) from None
        index = info["index"] if "index" in info else sd.query_devices().index(info)
    else:
        pa = _pyaudio().PyAudio()
        try:
            if spec is None or not str(spec).isdigit():
                raise UsageError(f"{label}: pyaudio devices are given by index (pyaudio:INDEX)")
            try:
                info = pa.get_device_info_by_index(int(spec))
            except (OSError, ValueError) as exc:
                raise UsageError(
                    f"{label}: no such device ({exc}; see `streamconv devices`)"
                ) from None
        finally:
            pa.terminate()
        info = {
            "name": info["name"],
            "index": info["index"],
            "max_input_channels": info["maxInputChannels"],
            "max_output_channels": info["maxOutputChannels"],
            "default_samplerate": info["defaultSampleRate"],
            "default_high_output_latency": info["defaultHighOutputLatency"],
            "default_high_input_latency": info["defaultHighInputLatency"],
        }
        index = info["index"]
    channels = info[f"max_{kind}_channels"]
    if channels < 1:
        raise UsageError(f"{label}: device {info['name']!r} has no {kind} channels")
    return {
        "index": index,
        "name": info["name"],
        "channels": channels,
        "sample_rate": float(info["default_samplerate"]),
        "latency_s": float(info[f"default_high_{kind}_latency"]),
    }


class _Stream:
    """A started/stopped PortAudio callback stream of float32 frames, backend-neutral."""

    def __init__(self, backend, index, kind, sample_rate, channels, block_size, callback, label):
        self._pa = None
        self._started = False
        try:
            if backend == "sounddevice":
                sd = _sounddevice()
                cls = sd.InputStream if kind == "input" else sd.OutputStream
                if kind == "input":

                    def cb(indata, frames, time, status):
                        callback(indata, bool(status.input_overflow))
                else:

                    def cb(outdata, frames, time, status):
                        callback(outdata, bool(status.output_underflow))

                self._stream = cls(
                    device=index,
                    samplerate=sample_rate,
                    channels=channels,
                    dtype="float32",
                    blocksize=block_size,
                    callback=cb,
                )
            else:
                pyaudio = _pyaudio()
                self._pa = pyaudio.PyAudio()
                flag = pyaudio.paInputOverflow if kind == "input" else pyaudio.paOutputUnderflow
                out = np.zeros((block_size, channels), np.float32)

                def cb(in_data, frame_count, time_info, status):
                    if kind == "input":
                        block = np.frombuffer(in_data, np.float32).reshape(-1, channels)
                        callback(block, bool(status & flag))
                        return None, pyaudio.paContinue
                    callback(out, bool(status & flag))
                    return out.tobytes(), pyaudio.paContinue

                self._stream = self._pa.open(
                    rate=int(sample_rate),
                    channels=channels,
                    format=pyaudio.paFloat32,
                    input=kind == "input",
                    output=kind == "output",
                    input_device_index=index if kind == "input" else None,
                    output_device_index=index if kind == "output" else None,
                    frames_per_buffer=block_size,
                    stream_callback=cb,
                    start=False,
                )
        except Exception as exc:  # PortAudioError, OSError, ValueError: all mean "cannot open"
            if self._pa is not None:
                self._pa.terminate()
            raise UsageError(f"{label}: cannot open {kind} stream: {exc}") from None

    def start(self) -> None:
        if self._pa is None:
            self._stream.start()
        else:
            self._stream.start_stream()
        self._started = True

    @property
    def active(self) -> bool:
        """False once a started stream has stopped by itself (its device or server is gone)."""
        return bool(self._stream.active if self._pa is None else self._stream.is_active())

    def close(self) -> None:
        """Stop and close; a started stream that stopped by itself is left alone (it would hang
        or abort, see the module docstring) and PortAudio is given up in this process."""
        if self._started and not self.active:
            _lose_portaudio()
            return
        if self._pa is None:
            self._stream.stop()
            self._stream.close()
        else:
            self._stream.stop_stream()
            self._stream.close()
            self._pa.terminate()


def _describe(stream, backend, spec, kind, sample_rate, channels) -> dict:
    """Resolve the device and set ``name``, ``device_name``, ``sample_rate`` and ``channels``
    on ``stream`` (a source or sink); return the device's description."""
    prefix = "device" if backend == "sounddevice" else "pyaudio"
    stream.name = f"{prefix}:{spec}" if spec else prefix
    info = resolve_device(backend, spec, kind)
    stream.device_name = info["name"]
    stream.sample_rate = float(sample_rate or info["sample_rate"])
    stream.channels = int(channels or min(2, info["channels"]))
    if stream.channels > info["channels"]:
        raise UsageError(
            f"{stream.name}: {stream.channels} channels asked, the device has {info['channels']}"
        )
    return info


class DeviceSource(Source):
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
        self._carry = np.zeros((0, self.channels), self.dtype)
        self._started = False
        self._lost = False
        self._stream = _Stream(
            backend, info["index"], "input", self.sample_rate, self.channels, block_size,
            self._callback, self.name,
        )  # fmt: skip

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
        parts = [self._carry]
        have = len(self._carry)
        while have < frames:
            block = self._next()
            parts.append(block)
            have += len(block)
        data = np.concatenate(parts).astype(self.dtype, copy=False)
        self._carry = data[frames:]
        return data[:frames]

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
        self._stream = None

    def close(self) -> None:
        if self._stream is not None:
            if not self._lost:  # a lost stream hangs or aborts in close: leave it (see above)
                self._stream.close()
            self._stream = None


class DeviceSink(Sink):
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
        self._carry = np.zeros((0, self.channels), np.float32)
        self.underflows = 0
        self.clipped = 0
        self._started = False
        self._lost = False
        self._draining = False
        self._idle = threading.Event()
        self._stream = _Stream(
            backend, info["index"], "output", self.sample_rate, self.channels, block_size,
            self._callback, self.name,
        )  # fmt: skip

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
        data = np.concatenate([self._carry, block.astype(np.float32, copy=False)])
        whole = len(data) - len(data) % self.block_size
        for start in range(0, whole, self.block_size):
            self._put(data[start : start + self.block_size])
        self._carry = data[whole:].copy()

    def stats(self) -> dict[str, int]:
        return {"underflows": self.underflows, "clipped": self.clipped}

    @property
    def queued_frames(self) -> int:
        """Frames written but not yet handed to the device."""
        return self._queue.qsize() * self.block_size + len(self._carry)

    def _commit(self) -> None:
        if len(self._carry):
            pad = np.zeros((self.block_size - len(self._carry), self.channels), np.float32)
            self._put(np.concatenate([self._carry, pad]))
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
    if backend == "sounddevice":
        sd = _sounddevice()
        hostapis = sd.query_hostapis()
        return [
            {
                "index": i,
                "name": d["name"],
                "hostapi": hostapis[d["hostapi"]]["name"],
                "inputs": d["max_input_channels"],
                "outputs": d["max_output_channels"],
                "sample_rate": d["default_samplerate"],
            }
            for i, d in enumerate(sd.query_devices())
        ]
    pa = _pyaudio().PyAudio()
    try:
        devices = []
        for i in range(pa.get_device_count()):
            d = pa.get_device_info_by_index(i)
            devices.append(
                {
                    "index": i,
                    "name": d["name"],
                    "hostapi": pa.get_host_api_info_by_index(d["hostApi"])["name"],
                    "inputs": d["maxInputChannels"],
                    "outputs": d["maxOutputChannels"],
                    "sample_rate": d["defaultSampleRate"],
                }
            )
        return devices
    finally:
        pa.terminate()
