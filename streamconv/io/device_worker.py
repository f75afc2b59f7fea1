"""The device worker: one sound device stream in a process of its own.

``python -m streamconv.io.device_worker CONFIG_JSON`` opens a `DeviceSource` (``"kind":
"input"``) or `DeviceSink` (``"output"``) and moves float32 frames over its standard streams.
`streamconv.io.reopen` starts one to reopen a lost device, and kills it when that is lost too:
PortAudio can neither be shut down nor started again in a process whose JACK server went away
(see `streamconv.io.devices`), so from then on a lost device costs a process, not the service.

Protocol (all little-endian). The worker writes messages to stdout, each a `HEADER` of
``(tag, payload bytes, counter)`` and the payload:

========  ===========================================================================
``OPEN``  JSON ``{"name", "device_name", "sample_rate", "channels"}``: the stream runs
``DATA``  input: float32 frames, interleaved; counter = overflows so far
``STAT``  output: counter = underflows so far (sent when it changes)
``DONE``  output: stdin ended and the queue was played; counter = underflows
``FAIL``  JSON ``{"message", "usage", "unplayed"}``: could not open, or lost the device (an
          output's ``unplayed`` frames were queued for it); the worker exits
========  ===========================================================================

An input worker starts its stream at the first byte on stdin; an output worker reads float32
interleaved frames on stdin. End of stdin ends either worker (the parent closed it, or died).
Stop signals are ignored: a Ctrl-C at the terminal or systemd's SIGTERM to the whole cgroup
must not cut the stream before the parent closes it.
"""

from __future__ import annotations

import json
import os
import signal
import struct
import sys
import threading

HEADER = struct.Struct("<4sIQ")


def _send(tag: bytes, payload: bytes = b"", counter: int = 0) -> None:
    data = HEADER.pack(tag, len(payload), counter) + payload
    view = memoryview(data)
    while view:
        view = view[os.write(1, view) :]


def _fail(message: str, usage: bool, code: int, unplayed: int = 0) -> None:
    try:
        fail = {"message": message, "usage": usage, "unplayed": unplayed}
        _send(b"FAIL", json.dumps(fail).encode())
    finally:
        os._exit(code)  # no atexit: PortAudio's shutdown hangs or aborts on a lost JACK stream


def _input(cfg: dict) -> None:
    import numpy as np

    from streamconv.io.devices import DeviceSource

    src = DeviceSource(
        cfg["spec"], cfg["sample_rate"], cfg["channels"], cfg["block_size"],
        backend=cfg["backend"], queue_s=cfg.get("queue_s", 2.0), dtype=np.float32,
    )  # fmt: skip
    _opened(src)
    go, done = threading.Event(), threading.Event()

    def watch_stdin() -> None:  # a byte: start; end of stdin: the parent closed us, or died
        while os.read(0, 4096):
            go.set()
        done.set()
        go.set()

    threading.Thread(target=watch_stdin, daemon=True).start()
    # Capture starts when the parent first reads, as an in-process source's would: audio
    # queued before that (while the parent opens its sink, say) would be latency for good.
    go.wait()
    while not done.is_set():
        block = src.read(cfg["block_size"])
        _send(b"DATA", np.ascontiguousarray(block, np.float32).tobytes(), src.overflows)
    src.close()


def _output(cfg: dict) -> None:
    import numpy as np

    from streamconv.errors import RuntimeFailure
    from streamconv.io.devices import DeviceSink
    from streamconv.io.rechunk import FrameBuffer

    sink = DeviceSink(
        cfg["spec"], cfg["sample_rate"], cfg["channels"], cfg["block_size"],
        backend=cfg["backend"], prefill=cfg.get("prefill"),
    )  # fmt: skip
    _opened(sink)
    frames = FrameBuffer(sink.channels, np.float32)  # a pipe read may stop inside a frame
    reported = 0
    try:
        while chunk := os.read(0, 1 << 16):
            frames.push_bytes(chunk)
            if len(frames):
                sink.write(frames.pop(len(frames)))
            if sink.underflows != reported:
                reported = sink.underflows
                _send(b"STAT", counter=reported)
        sink.close()
    except RuntimeFailure as exc:  # lost: what it held will never be played
        _fail(str(exc), False, exc.exit_code, unplayed=sink.queued_frames)
    _send(b"DONE", counter=sink.underflows)


def _opened(stream) -> None:
    info = {
        "name": stream.name,
        "device_name": stream.device_name,
        "sample_rate": stream.sample_rate,
        "channels": stream.channels,
    }
    _send(b"OPEN", json.dumps(info).encode())


def main(argv: list[str]) -> None:
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, signal.SIG_IGN)
    cfg = json.loads(argv[0])
    try:
        from streamconv.errors import StreamconvError, UsageError

        (_input if cfg["kind"] == "input" else _output)(cfg)
        if cfg["backend"] == "sounddevice":
            import sounddevice

            sounddevice._terminate()  # the stream is closed: let go of the server cleanly
    except StreamconvError as exc:
        _fail(str(exc), isinstance(exc, UsageError), exc.exit_code)
    except BrokenPipeError:
        os._exit(0)  # the parent went away
    except BaseException as exc:  # a bug: say what it was, the parent logs it
        _fail(f"device worker: {type(exc).__name__}: {exc}", False, 1)
    os._exit(0)


if __name__ == "__main__":
    main(sys.argv[1:])
