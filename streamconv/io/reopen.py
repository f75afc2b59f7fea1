"""Live sound devices that come back: a lost device is reopened with exponential backoff.

`ReopeningSource` and `ReopeningSink` are what the ``device:`` and ``pyaudio:`` locators open.
They run a `DeviceSource` / `DeviceSink` in this process, as long as it works. Once a device is
lost, PortAudio is of no more use in this process (`streamconv.io.devices.portaudio_lost`: on
JACK, stopping the stream waits ten minutes and ``Pa_Terminate`` aborts the process, so the
device list cannot be read again), and every reopened device runs in a worker process
(`streamconv.io.device_worker`) that talks over pipes and can be killed and started again.

Devices stay in this process until then because one process is one JACK client: a source and
a sink in two processes are two clients, and a client that is late on a busy machine gets a
period replayed or skipped on its way to the other, with no xrun reported; within one client the
stream is exact.

When the stream stops by itself, stalls, or its worker dies:

1. it is let go (a worker is killed) and the stream is ``reopening`` (`state`, `last_error`);
2. a new worker is tried after 0.1 s, then 0.2, 0.4, ... up to `BACKOFF_MAX_S` between
   attempts; every step is one line on the log (stderr by default);
3. with `give_up_s`, no device for that long raises `RuntimeFailure` ("lost for good");
   without it, it tries for ever (the service does).

A source's frames lost while the device was away cannot be counted by anyone: they are
estimated from the wall clock (the gap between the last block before and the first block after,
times the sample rate) and added to ``dropped_frames``. The stream carries on without a hole,
so sample indices count frames delivered. A sink drops, and counts, what is written while the
device is away (and what was queued for it), so it never holds up the capture side.
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import threading
import time

import numpy as np

from streamconv.errors import RuntimeFailure, UsageError
from streamconv.io import devices
from streamconv.io.base import Sink, Source, float_type
from streamconv.io.device_worker import HEADER

#: First wait before reopening, in seconds; it doubles on every failed attempt ...
BACKOFF_FIRST_S = 0.1
#: ... up to this.
BACKOFF_MAX_S = 5.0
#: A running input worker that sends nothing for this long is taken as lost, in seconds.
STALL_S = 3.0
#: How long a new worker may take to start Python and open the device, in seconds.
OPEN_TIMEOUT_S = 20.0

_PACKAGE_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class Backoff:
    """Delays ``first, 2 first, 4 first, ...`` capped at ``cap`` seconds."""

    def __init__(self, first: float = BACKOFF_FIRST_S, cap: float = BACKOFF_MAX_S):
        self.first, self.cap = first, cap
        self.upcoming = first

    def next(self) -> float:
        """Return the next delay and double the one after it."""
        delay = self.upcoming
        self.upcoming = min(self.cap, 2 * delay)
        return delay


class WorkerLost(Exception):
    """The worker could not open the device, lost it, or died.

    ``usage``: a user's mistake (no such device); ``unplayed``: frames an output worker held.
    """

    def __init__(self, message: str, usage: bool = False, unplayed: int = 0):
        super().__init__(message)
        self.usage = usage
        self.unplayed = unplayed


class _Worker:
    """One device worker process and the framed messages on its stdout."""

    def __init__(self, cfg: dict):
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (_PACKAGE_ROOT, env.get("PYTHONPATH")) if p
        )  # the worker imports the same streamconv as this process, installed or not
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "streamconv.io.device_worker", json.dumps(cfg)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
            bufsize=0, env=env,
        )  # fmt: skip
        self._out = self.proc.stdout.fileno()
        self._in = self.proc.stdin.fileno()
        os.set_blocking(self._out, False)
        os.set_blocking(self._in, False)
        self._buf = bytearray()
        self.info: dict = {}
        self.started = False  # an input worker captures once told to (`start`)
        try:
            msg = self.recv(OPEN_TIMEOUT_S)
            if msg is None:
                raise WorkerLost(f"the device did not open within {OPEN_TIMEOUT_S:g} s")
            if msg[0] != b"OPEN":
                raise WorkerLost(f"device worker: {msg[0]!r} before OPEN")
            self.info = json.loads(msg[1])
        except BaseException:
            self.kill()
            raise

    def recv(self, timeout: float) -> tuple[bytes, bytes, int] | None:
        """The next ``(tag, payload, counter)``, or None after `timeout` seconds.

        Raises
        ------
        WorkerLost
            The worker sent ``FAIL`` or ended.
        """
        deadline = time.monotonic() + timeout
        while True:
            msg = self._parse()
            if msg is not None:
                if msg[0] == b"FAIL":
                    fail = json.loads(msg[1])
                    raise WorkerLost(fail["message"], fail["usage"], fail.get("unplayed", 0))
                return msg
            left = deadline - time.monotonic()
            ready, _, _ = select.select([self._out], [], [], max(0.0, left))
            if not ready:
                if left <= 0:
                    return None
                continue
            try:
                chunk = os.read(self._out, 1 << 16)
            except BlockingIOError:
                continue
            if not chunk:
                raise WorkerLost(self._ended())
            self._buf += chunk

    def start(self) -> None:
        """Tell an input worker to start its stream (the first read)."""
        if not self.started:
            self.send(b"S", STALL_S)
            self.started = True

    def _parse(self):
        if len(self._buf) < HEADER.size:
            return None
        tag, size, counter = HEADER.unpack_from(self._buf)
        end = HEADER.size + size
        if len(self._buf) < end:
            return None
        payload = bytes(self._buf[HEADER.size : end])
        del self._buf[:end]
        return tag, payload, counter

    def send(self, data: bytes, timeout: float) -> None:
        """Write `data` to the worker's stdin; `WorkerLost` if it ended or took nothing."""
        view = memoryview(data)
        deadline = time.monotonic() + timeout
        while view:
            left = deadline - time.monotonic()
            _, ready, _ = select.select([], [self._in], [], max(0.0, left))
            if not ready:
                if left <= 0:
                    raise WorkerLost(f"the device took no audio for {timeout:g} s")
                continue
            try:
                view = view[os.write(self._in, view) :]
            except BlockingIOError:
                continue
            except BrokenPipeError:
                self.recv(1.0)  # its FAIL message says why, if it sent one
                raise WorkerLost(self._ended()) from None

    def _ended(self) -> str:
        try:
            code = self.proc.wait(1.0)
        except subprocess.TimeoutExpired:
            return "the device worker closed its output"
        if code < 0:
            return f"the device worker died of {signal.Signals(-code).name}"
        return f"the device worker exited with code {code}"

    def finish(self, timeout: float) -> None:
        """Close its stdin (it stops, an output plays its queue first), wait, kill if need be."""
        try:
            self.proc.stdin.close()
            self.proc.wait(timeout)
        except (OSError, subprocess.TimeoutExpired):
            pass
        self.kill()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        for pipe in (self.proc.stdin, self.proc.stdout):
            try:
                pipe.close()
            except OSError:
                pass


def _stderr(line: str) -> None:
    print(f"warning: {line}", file=sys.stderr, flush=True)


class _Reopening:
    """What a reopening source and sink share: the stream (in this process or a worker's),
    the state, the log."""

    def _setup(self, kind, spec, sample_rate, channels, block_size, backend, give_up_s, log):
        prefix = "device" if backend == "sounddevice" else "pyaudio"
        self.name = f"{prefix}:{spec}" if spec else prefix
        self._label = f"{self.name} {kind}"  # one device may be both source and sink
        self.give_up_s = give_up_s
        self.log = log or _stderr
        self.reopens = 0
        self.dropped_frames = 0
        self.last_error: str | None = None
        self._cfg = {
            "kind": kind, "backend": backend, "spec": spec, "sample_rate": sample_rate,
            "channels": channels, "block_size": block_size,
        }  # fmt: skip
        self._device = None  # the stream in this process, until it is lost
        self._worker: _Worker | None = None
        if devices.portaudio_lost():  # another device of this process was lost before
            try:
                self._worker = _Worker(self._cfg)
            except WorkerLost as exc:
                raise (UsageError if exc.usage else RuntimeFailure)(str(exc)) from None
            info = self._worker.info
        else:
            d = self._device = self._open_here(spec, sample_rate, channels, block_size, backend)
            info = {
                "device_name": d.device_name,
                "sample_rate": d.sample_rate,
                "channels": d.channels,
            }
        self.device_name = info["device_name"]
        self.sample_rate = float(info["sample_rate"])
        self.channels = int(info["channels"])
        # A reopened device must give the same stream, not its own defaults.
        self._cfg.update(sample_rate=self.sample_rate, channels=self.channels)
        self.state = "running"
        self._lost_at: float | None = None

    def device_state(self) -> dict:
        """``{"state": "running" | "reopening", "device", "reopens", "last_error",
        "worker_pid"}``; ``worker_pid`` is None while the stream runs in this process."""
        worker = self._worker
        return {
            "state": self.state,
            "device": self.device_name,
            "reopens": self.reopens,
            "last_error": self.last_error,
            "worker_pid": worker.proc.pid if worker is not None else None,
        }

    def _reopen(self, stop: threading.Event | None = None) -> _Worker | None:
        """Start workers with backoff until one opens; None if `stop` was set.

        Raises
        ------
        RuntimeFailure
            No device for `give_up_s` seconds.
        """
        backoff = Backoff()
        attempt = 0
        while True:
            delay = backoff.next()
            away = time.monotonic() + delay - self._lost_at
            if self.give_up_s is not None and away > self.give_up_s:
                raise RuntimeFailure(
                    f"{self.name}: lost for good: {self.last_error} "
                    f"(not back within {self.give_up_s:g} s)"
                )
            if stop is None:
                time.sleep(delay)
            elif stop.wait(delay):
                return None
            attempt += 1
            try:
                worker = _Worker(self._cfg)
            except WorkerLost as exc:
                self.last_error = self._reason(exc)
                self.log(
                    f"{self._label}: reopen attempt {attempt} failed: {self.last_error}; "
                    f"next in {backoff.upcoming:g} s"
                )
                continue
            self.log(f"{self._label}: reopened on attempt {attempt} (in a worker process)")
            return worker

    def _reason(self, exc: Exception) -> str:
        """The message without our name in front (the log line starts with it)."""
        text = str(exc)
        return text[len(self.name) + 2 :] if text.startswith(f"{self.name}: ") else text

    def _lose(self, reason: str, lost_at: float) -> None:
        if self._device is not None:
            self._device.abandon()  # no PortAudio call: it could hang (module docstring)
            self._device = None
        if self._worker is not None:
            self._worker.kill()
            self._worker = None
        if self._lost_at is None:
            self._lost_at = lost_at
        self.state = "reopening"
        self.last_error = reason
        self.log(f"{self._label}: lost: {reason}; reopening (backoff {BACKOFF_FIRST_S:g} s "
                 f"doubling to {BACKOFF_MAX_S:g} s)")  # fmt: skip


class ReopeningSource(_Reopening, Source):
    """Record from a sound device; reopen it, in a worker process, when it is lost.

    Parameters
    ----------
    spec : str or None
        Device index or name (None: the default input device).
    sample_rate : float, optional
        Default: the device's default rate; kept across reopens.
    channels : int, optional
        Default: ``min(2, the device's input channels)``; kept across reopens.
    block_size : int
        Frames per device callback.
    backend : {"sounddevice", "pyaudio"}
    dtype : numpy dtype or "auto"
        float32 or float64, the type of the blocks returned by `read`.
    give_up_s : float, optional
        Raise `RuntimeFailure` when the device has been away this long (None: never).
    log : callable, optional
        Takes one line per event (lost, each reopen attempt, back); default stderr.

    Raises
    ------
    UsageError
        No such device (at the first open only; later it is waited for).

    Attributes
    ----------
    state : {"running", "reopening"}
    reopens : int
        Times the device was opened again.
    dropped_frames : int
        Frames estimated lost while the device was away (module docstring).
    overflows : int
        Overflows of every stream of this source so far.
    """

    def __init__(
        self,
        spec=None,
        sample_rate=None,
        channels=None,
        block_size: int = 1024,
        backend: str = "sounddevice",
        dtype=np.float64,
        give_up_s: float | None = None,
        log=None,
    ):
        self.dtype = float_type(dtype, True)  # devices deliver float32
        self.frames_read = 0
        self._overflows_done = 0  # of the streams that were lost
        self._overflows_now = 0
        self._setup("input", spec, sample_rate, channels, block_size, backend, give_up_s, log)
        self._carry = np.zeros((0, self.channels), self.dtype)
        self._last_data: float | None = None

    def _open_here(self, spec, sample_rate, channels, block_size, backend):
        return devices.DeviceSource(
            spec, sample_rate, channels, block_size, backend=backend, dtype=np.float32
        )

    @property
    def overflows(self) -> int:
        return self._overflows_done + self._overflows_now

    def _read(self, frames: int) -> np.ndarray:
        parts = [self._carry]
        have = len(self._carry)
        while have < frames:
            block = self._receive()
            parts.append(block)
            have += len(block)
        data = np.concatenate(parts)
        self._carry = data[frames:]
        return data[:frames]

    def _receive(self) -> np.ndarray:
        """The next block of the running stream, reopening it first if it was lost."""
        while True:
            if self._device is None and self._worker is None:
                self._worker = self._reopen()
                self.reopens += 1
                self.state = "running"
            try:
                if self._device is not None:
                    block = self._device.read(self._cfg["block_size"])
                    self._overflows_now = self._device.overflows
                else:
                    block = self._from_worker()
            except (RuntimeFailure, WorkerLost) as exc:
                self._overflows_done += self._overflows_now
                self._overflows_now = 0
                self._lose(self._reason(exc), self._last_data or time.monotonic())
                continue
            now = time.monotonic()
            if self._lost_at is not None:
                self._back(now - len(block) / self.sample_rate)
            self._last_data = now
            return block.astype(self.dtype, copy=False)

    def _from_worker(self) -> np.ndarray:
        while True:
            self._worker.start()
            msg = self._worker.recv(STALL_S)
            if msg is None:
                raise WorkerLost(f"no audio from the device for {STALL_S:g} s")
            tag, payload, counter = msg
            if tag == b"DATA":
                self._overflows_now = counter
                return np.frombuffer(payload, np.float32).reshape(-1, self.channels)

    def _back(self, first_frame_at: float) -> None:
        gap = max(0.0, first_frame_at - self._lost_at)
        lost = round(gap * self.sample_rate)
        self.dropped_frames += lost
        self._lost_at = None
        self.log(
            f"{self._label}: audio again after {gap:.2f} s away; about {lost} frames lost "
            f"(counted in dropped_frames)"
        )

    def stats(self) -> dict[str, int]:
        return {
            "overflows": self.overflows,
            "dropped_frames": self.dropped_frames,
            "reopens": self.reopens,
        }

    def close(self) -> None:
        if self._device is not None:
            if devices.portaudio_lost():  # another stream was lost: this one may hang too
                self._device.abandon()
            else:
                self._device.close()
            self._device = None
        if self._worker is not None:
            self._worker.finish(timeout=2.0)
            self._worker = None


class ReopeningSink(_Reopening, Sink):
    """Play to a sound device; reopen it, in a worker process, when it is lost.

    Writes never wait for a lost device: while it is away, blocks are dropped and counted in
    ``dropped_frames``, and a thread tries to reopen it with backoff.

    Parameters
    ----------
    spec : str or None
        Device index or name (None: the default output device).
    sample_rate : float
        Frames per second.
    channels : int
        Samples per frame.
    block_size : int
        Frames per device callback.
    backend : {"sounddevice", "pyaudio"}
    give_up_s : float, optional
        The next `write` raises `RuntimeFailure` once the device has been away this long.
    log : callable, optional
        Takes one line per event; default stderr.

    Attributes
    ----------
    state : {"running", "reopening"}
    reopens : int
    dropped_frames : int
        Frames written while the device was away, and those queued for it when it went (not
        the few in the pipe to a worker: at most 64 KiB).
    underflows : int
        Underflows of every stream of this sink so far.
    """

    def __init__(
        self,
        spec=None,
        sample_rate=None,
        channels=None,
        block_size: int = 1024,
        backend: str = "sounddevice",
        give_up_s: float | None = None,
        log=None,
    ):
        self._underflows_done = 0
        self._underflows_now = 0
        self.clipped = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._failure: RuntimeFailure | None = None
        self._setup("output", spec, sample_rate, channels, block_size, backend, give_up_s, log)

    def _open_here(self, spec, sample_rate, channels, block_size, backend):
        return devices.DeviceSink(spec, sample_rate, channels, block_size, backend=backend)

    @property
    def underflows(self) -> int:
        return self._underflows_done + self._underflows_now

    def _write(self, block: np.ndarray) -> None:
        self.clipped += int(np.count_nonzero(np.abs(block) > 1.0))  # the device clips these
        if self._failure is not None:
            raise self._failure
        with self._lock:
            device, worker = self._device, self._worker
        if device is None and worker is None:
            self.dropped_frames += len(block)
            return
        try:
            if device is not None:
                device.write(block)
                self._underflows_now = device.underflows
            else:
                worker.send(np.ascontiguousarray(block, np.float32).tobytes(), STALL_S)
                while (msg := worker.recv(0)) is not None:  # STAT: underflows so far
                    self._underflows_now = msg[2]
        except (RuntimeFailure, WorkerLost) as exc:
            queued = device.queued_frames if device is not None else exc.unplayed
            self.dropped_frames += len(block) + queued
            with self._lock:
                self._underflows_done += self._underflows_now
                self._underflows_now = 0
                self._lose(self._reason(exc), time.monotonic())
            self._thread = threading.Thread(
                target=self._reopen_in_background, name="streamconv-reopen", daemon=True
            )
            self._thread.start()

    def _reopen_in_background(self) -> None:
        try:
            worker = self._reopen(self._stop)
        except RuntimeFailure as exc:
            self._failure = exc
            return
        if worker is None:
            return
        with self._lock:
            self._worker = worker
            self.reopens += 1
            self.state = "running"
            self._lost_at = None
        self.log(f"{self._label}: playing again; {self.dropped_frames} frames dropped in all")

    def stats(self) -> dict[str, int]:
        return {
            "underflows": self.underflows,
            "clipped": self.clipped,
            "dropped_frames": self.dropped_frames,
            "reopens": self.reopens,
        }

    def _end_reopening(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def _commit(self) -> None:
        self._end_reopening()
        device, self._device = self._device, None
        worker, self._worker = self._worker, None
        try:
            if device is not None and devices.portaudio_lost():
                # Another stream of this process was lost: PortAudio calls may hang or abort.
                self.log(f"{self._label}: {device.queued_frames} frames not played")
                device.abandon()
            elif device is not None:
                device.close()  # plays its queue; notices a lost stream instead of hanging
                self._underflows_now = device.underflows
            if worker is not None:
                worker.proc.stdin.close()  # the worker plays what it has, then says DONE
                while (msg := worker.recv(OPEN_TIMEOUT_S)) is not None:
                    self._underflows_now = msg[2]  # STAT or DONE: underflows so far
                    if msg[0] == b"DONE":
                        break
        except (RuntimeFailure, WorkerLost) as exc:  # lost while playing its queue: too late
            self.log(f"{self._label}: {self._reason(exc)} while playing the last blocks")
        finally:
            if worker is not None:
                worker.finish(timeout=2.0)

    def _discard(self) -> None:
        self._end_reopening()
        if self._device is not None:
            if devices.portaudio_lost():
                self._device.abandon()
            else:
                self._device.abort()
            self._device = None
        if self._worker is not None:
            self._worker.kill()
            self._worker = None
