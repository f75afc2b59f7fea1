"""The PortAudio bindings behind the device locators: one class per backend.

`SoundDeviceBackend` (``device:``, the sounddevice package) and `PyAudioBackend`
(``pyaudio:``) answer the same three questions: what a device is (`Backend.query`), which devices
there are (`Backend.list_devices`), and how to open a callback stream of float32 frames on one
(`Backend.open_stream`). `streamconv.io.devices` builds its sources and sinks on top and never
asks which backend it has.

Only callback streams are used, because blocking reads and writes crash PortAudio 19.6 on the
JACK host API. A stream that stopped by itself (its server or device went away) must not be
stopped or closed: on JACK that waits up to ten minutes, and ``Pa_Terminate`` aborts the process
(an assertion in ``pa_jack.c``). So such a stream is left alone, `portaudio_lost` becomes true,
and sounddevice's exit handler (``Pa_Terminate``) is dropped.
"""

from __future__ import annotations

import atexit
import sys
from collections.abc import Callable
from typing import Any

import numpy as np

from streamconv.errors import RuntimeFailure, UsageError
from streamconv.io.chatter import quiet_stderr

__all__ = [
    "BACKENDS",
    "Backend",
    "PyAudioBackend",
    "SoundDeviceBackend",
    "Stream",
    "get_backend",
    "lose_portaudio",
    "portaudio_lost",
]

#: ``callback(block, xrun)``: an input stream's recorded ``(frames, channels)`` float32 block,
#: or an output stream's buffer to fill; `xrun` is the overflow or underflow flag.
Callback = Callable[[np.ndarray, bool], None]

_portaudio_lost = False


def portaudio_lost() -> bool:
    """True once a stream of this process was lost: PortAudio must not be called here again."""
    return _portaudio_lost


def lose_portaudio() -> None:
    """Give PortAudio up in this process (a stream of it was lost)."""
    global _portaudio_lost
    _portaudio_lost = True
    sd = sys.modules.get("sounddevice")
    if sd is not None:  # its exit handler calls Pa_Terminate, which would abort the process
        atexit.unregister(sd._exit_handler)


def _device_spec(spec: str | None) -> int | str | None:
    """``""``/None -> default device, ``"3"`` -> index 3, else a name (substring)."""
    if not spec:
        return None
    return int(spec) if spec.isdigit() else spec


def _entry(index, name, hostapi, inputs, outputs, sample_rate) -> dict[str, Any]:
    """One row of `Backend.list_devices`."""
    return {
        "index": index,
        "name": name,
        "hostapi": hostapi,
        "inputs": inputs,
        "outputs": outputs,
        "sample_rate": sample_rate,
    }


class Stream:
    """A started/stopped PortAudio callback stream of float32 frames, whatever the backend.

    Subclasses open the stream in ``__init__`` and implement `_start`, `_active` and
    `_stop_and_close`.
    """

    _started = False

    def __init__(
        self,
        index: int,
        kind: str,
        sample_rate: float,
        channels: int,
        block_size: int,
        callback: Callback,
    ) -> None:
        raise NotImplementedError

    def start(self) -> None:
        self._start()
        self._started = True

    @property
    def active(self) -> bool:
        """False once a started stream has stopped by itself (its device or server is gone)."""
        return self._active()

    def close(self) -> None:
        """Stop and close; a started stream that stopped by itself is left alone (it would hang
        or abort, see the module docstring) and PortAudio is given up in this process."""
        if self._started and not self.active:
            lose_portaudio()
            return
        self._stop_and_close()

    def _start(self) -> None:
        raise NotImplementedError

    def _active(self) -> bool:
        raise NotImplementedError

    def _stop_and_close(self) -> None:
        raise NotImplementedError


class Backend:
    """One PortAudio binding.

    Attributes
    ----------
    name : str
        ``"sounddevice"`` or ``"pyaudio"``, the ``backend`` argument of the device classes.
    prefix : str
        The locator prefix: ``device`` or ``pyaudio``.
    """

    name: str
    prefix: str
    _stream_class: type[Stream]

    def locator(self, spec: str | None) -> str:
        """The locator of a device, for messages: ``device:3``, or ``device`` for the default."""
        return f"{self.prefix}:{spec}" if spec else self.prefix

    def query(self, spec: str | None, kind: str) -> dict[str, Any]:
        """The device `spec` as ``{"index", "name", "max_input_channels",
        "max_output_channels", "default_samplerate", "default_high_input_latency",
        "default_high_output_latency"}``; `UsageError` if there is no such device."""
        raise NotImplementedError

    def list_devices(self) -> list[dict[str, Any]]:
        """Every device as ``{"index", "name", "hostapi", "inputs", "outputs", "sample_rate"}``."""
        raise NotImplementedError

    def open_stream(
        self,
        index: int,
        kind: str,
        sample_rate: float,
        channels: int,
        block_size: int,
        callback: Callback,
        label: str,
    ) -> Stream:
        """Open (not start) a callback stream; `UsageError` naming `label` if it cannot."""
        try:
            return self._stream_class(index, kind, sample_rate, channels, block_size, callback)
        except (UsageError, RuntimeFailure):
            raise
        except Exception as exc:  # PortAudioError, OSError, ValueError: all mean "cannot open"
            raise UsageError(f"{label}: cannot open {kind} stream: {exc}") from None


def _sounddevice():
    try:
        with quiet_stderr():  # PortAudio starts at import: ALSA/JACK probe messages
            import sounddevice
    except ImportError:
        raise UsageError(
            "device: needs the sounddevice package (pip install sounddevice)"
        ) from None
    except OSError as exc:  # PortAudio library missing
        raise RuntimeFailure(f"device: PortAudio is not available ({exc})") from None
    return sounddevice


class _SoundDeviceStream(Stream):
    def __init__(self, index, kind, sample_rate, channels, block_size, callback: Callback):
        sd = _sounddevice()
        if kind == "input":

            def cb(indata, frames, time, status):
                callback(indata, bool(status.input_overflow))

            cls = sd.InputStream
        else:

            def cb(outdata, frames, time, status):
                callback(outdata, bool(status.output_underflow))

            cls = sd.OutputStream
        self._stream = cls(
            device=index,
            samplerate=sample_rate,
            channels=channels,
            dtype="float32",
            blocksize=block_size,
            callback=cb,
        )

    def _start(self) -> None:
        self._stream.start()

    def _active(self) -> bool:
        return bool(self._stream.active)

    def _stop_and_close(self) -> None:
        self._stream.stop()
        self._stream.close()


class SoundDeviceBackend(Backend):
    """PortAudio through the sounddevice package: devices by index or (part of a) name."""

    name = "sounddevice"
    prefix = "device"
    _stream_class = _SoundDeviceStream

    def query(self, spec, kind):
        sd = _sounddevice()
        try:
            info = sd.query_devices(_device_spec(spec), kind=kind)
        except (ValueError, sd.PortAudioError) as exc:
            if _device_spec(spec) is None:  # PortAudio says only "Error querying device -1"
                raise UsageError(
                    f"{self.locator(spec)}: no default {kind} device (name one as device:NAME "
                    "or device:INDEX; see `streamconv devices`)"
                ) from None
            raise UsageError(
                f"{self.locator(spec)}: no such {kind} device ({exc}; see `streamconv devices`)"
            ) from None
        info = dict(info)
        if "index" not in info:
            info["index"] = sd.query_devices().index(info)
        return info

    def list_devices(self):
        sd = _sounddevice()
        hostapis = sd.query_hostapis()
        return [
            _entry(
                i,
                d["name"],
                hostapis[d["hostapi"]]["name"],
                d["max_input_channels"],
                d["max_output_channels"],
                d["default_samplerate"],
            )
            for i, d in enumerate(sd.query_devices())
        ]


def _pyaudio():
    try:
        import pyaudio
    except ImportError:
        raise UsageError(
            "pyaudio: needs the PyAudio package (pip install 'streamconv[pyaudio]')"
        ) from None
    return pyaudio


def _pyaudio_open():
    """A started ``pyaudio.PyAudio()``, without PortAudio's ALSA/JACK probe messages."""
    pyaudio = _pyaudio()
    with quiet_stderr():
        return pyaudio.PyAudio()


class _PyAudioStream(Stream):
    def __init__(self, index, kind, sample_rate, channels, block_size, callback: Callback):
        pyaudio = _pyaudio()
        self._pa = _pyaudio_open()
        flag = pyaudio.paInputOverflow if kind == "input" else pyaudio.paOutputUnderflow
        out = np.zeros((block_size, channels), np.float32)

        def cb(in_data, frame_count, time_info, status):
            if kind == "input":
                block = np.frombuffer(in_data, np.float32).reshape(-1, channels)
                callback(block, bool(status & flag))
                return None, pyaudio.paContinue
            callback(out, bool(status & flag))
            return out.tobytes(), pyaudio.paContinue

        try:
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
        except BaseException:
            self._pa.terminate()
            raise

    def _start(self) -> None:
        self._stream.start_stream()

    def _active(self) -> bool:
        return bool(self._stream.is_active())

    def _stop_and_close(self) -> None:
        self._stream.stop_stream()
        self._stream.close()
        self._pa.terminate()


class PyAudioBackend(Backend):
    """PortAudio through PyAudio: devices by index only."""

    name = "pyaudio"
    prefix = "pyaudio"
    _stream_class = _PyAudioStream

    def query(self, spec, kind):
        label = self.locator(spec)
        if spec is None or not str(spec).isdigit():
            raise UsageError(f"{label}: pyaudio devices are given by index (pyaudio:INDEX)")
        pa = _pyaudio_open()
        try:
            info = pa.get_device_info_by_index(int(spec))
        except (OSError, ValueError) as exc:
            raise UsageError(f"{label}: no such device ({exc}; see `streamconv devices`)") from None
        finally:
            pa.terminate()
        return {
            "name": info["name"],
            "index": info["index"],
            "max_input_channels": info["maxInputChannels"],
            "max_output_channels": info["maxOutputChannels"],
            "default_samplerate": info["defaultSampleRate"],
            "default_high_output_latency": info["defaultHighOutputLatency"],
            "default_high_input_latency": info["defaultHighInputLatency"],
        }

    def list_devices(self):
        pa = _pyaudio_open()
        try:
            devices = []
            for i in range(pa.get_device_count()):
                d = pa.get_device_info_by_index(i)
                hostapi = pa.get_host_api_info_by_index(d["hostApi"])["name"]
                devices.append(
                    _entry(
                        i,
                        d["name"],
                        hostapi,
                        d["maxInputChannels"],
                        d["maxOutputChannels"],
                        d["defaultSampleRate"],
                    )
                )
            return devices
        finally:
            pa.terminate()


#: The backends by the name the ``backend`` arguments take.
BACKENDS: dict[str, Backend] = {b.name: b for b in (SoundDeviceBackend(), PyAudioBackend())}


def get_backend(name: str) -> Backend:
    """The backend called `name` (``"sounddevice"`` or ``"pyaudio"``)."""
    try:
        return BACKENDS[name]
    except KeyError:
        raise ValueError(f"backend must be one of {sorted(BACKENDS)}, got {name!r}") from None
