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

import sys
import threading
import time

import numpy as np

from streamconv.errors import RuntimeFailure, UsageError
from streamconv.io import devices
from streamconv.io.backends import get_backend
from streamconv.io.base import Sink, Source, float_type
from streamconv.io.rechunk import FrameBuffer
from streamconv.io.worker_client import OPEN_TIMEOUT_S, STALL_S, WorkerClient, WorkerLost

#: First wait before reopening, in seconds; it doubles on every failed attempt ...
BACKOFF_FIRST_S = 0.1
#: ... up to this.
BACKOFF_MAX_S = 5.0


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


def _stderr(line: str) -> None:
    print(f"warning: {line}", file=sys.stderr, flush=True)


class _Reopening:
    """What a reopening source and sink share: the stream (in this process or a worker's),
    the state, the log."""

    def _setup(self, kind, spec, sample_rate, channels, block_size, backend, give_up_s, log):
        self.name = get_backend(backend).locator(spec)
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
        self._worker: WorkerClient | None = None
        if devices.portaudio_lost():  # another device of this process was lost before
            try:
                self._worker = WorkerClient(self._cfg)
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

    def _reopen(self, stop: threading.Event | None = None) -> WorkerClient | None:
        """Start workers with backoff until one opens; None if `stop` was set.

        Raises
        ------
        RuntimeFailure
            No device for `give_up_s` seconds.
        """
        backoff = Backoff()
        attempt = 0
        lost_at = self._lost_at if self._lost_at is not None else time.monotonic()
        while True:
            delay = backoff.next()
            away = time.monotonic() + delay - lost_at
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
                worker = WorkerClient(self._cfg)
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

    def _let_go(self, finish: bool) -> None:
        """Close the stream: `finish` plays (a sink) what is queued and waits for a worker to
        end; else it is cut short (a sink's queue is dropped, a worker killed)."""
        if self._device is not None:
            if devices.portaudio_lost():  # another stream was lost: this one may hang too
                self._device.abandon()
            elif finish:
                self._device.close()
            else:
                self._device.abort()
            self._device = None
        if self._worker is not None:
            if finish:
                self._worker.finish(timeout=2.0)
            else:
                self._worker.kill()
            self._worker = None

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
    spec, sample_rate, channels, block_size, backend
        As for `streamconv.io.devices.DeviceSource`; the rate and channels are kept across
        reopens.
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
        self._buffer = FrameBuffer(self.channels, self.dtype, capacity=2 * block_size)
        self._last_data: float | None = None

    def _open_here(self, spec, sample_rate, channels, block_size, backend):
        return devices.DeviceSource(
            spec, sample_rate, channels, block_size, backend=backend, dtype=np.float32
        )

    @property
    def overflows(self) -> int:
        return self._overflows_done + self._overflows_now

    def _read(self, frames: int) -> np.ndarray:
        while len(self._buffer) < frames:
            self._buffer.push(self._receive())
        return self._buffer.pop(frames)

    def _receive(self) -> np.ndarray:
        """The next block of the running stream, reopening it first if it was lost."""
        while True:
            device, worker = self._device, self._worker
            if device is None and worker is None:
                worker = self._worker = self._reopen()  # no `stop`: a worker, or it raises
                self.reopens += 1
                self.state = "running"
            try:
                if device is not None:
                    block = device.read(self._cfg["block_size"])
                    self._overflows_now = device.overflows
                else:
                    block = self._from_worker(worker)
            except (RuntimeFailure, WorkerLost) as exc:
                self._overflows_done += self._overflows_now
                self._overflows_now = 0
                self._lose(self._reason(exc), self._last_data or time.monotonic())
                continue
            now = time.monotonic()
            if self._lost_at is not None:
                self._back(self._lost_at, now - len(block) / self.sample_rate)
            self._last_data = now
            return block  # the buffer casts it to `dtype`

    def _from_worker(self, worker: WorkerClient | None) -> np.ndarray:
        if worker is None:  # _reopen returns None only when told to stop, which a source never is
            raise WorkerLost("no device worker")
        while True:
            worker.start()
            msg = worker.recv(STALL_S)
            if msg is None:
                raise WorkerLost(f"no audio from the device for {STALL_S:g} s")
            tag, payload, counter = msg
            if tag == b"DATA":
                self._overflows_now = counter
                return np.frombuffer(payload, np.float32).reshape(-1, self.channels)

    def _back(self, lost_at: float, first_frame_at: float) -> None:
        gap = max(0.0, first_frame_at - lost_at)
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
        self._let_go(finish=True)


class ReopeningSink(_Reopening, Sink):
    """Play to a sound device; reopen it, in a worker process, when it is lost.

    Writes never wait for a lost device: while it is away, blocks are dropped and counted in
    ``dropped_frames``, and a thread tries to reopen it with backoff.

    Parameters
    ----------
    spec, sample_rate, channels, block_size, backend
        As for `streamconv.io.devices.DeviceSink`; the rate and channels are kept across
        reopens.
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
            elif worker is not None:
                worker.send(np.ascontiguousarray(block, np.float32).tobytes(), STALL_S)
                while (msg := worker.recv(0)) is not None:  # STAT: underflows so far
                    self._underflows_now = msg[2]
        except (RuntimeFailure, WorkerLost) as exc:
            if device is not None:
                queued = device.queued_frames
            else:
                queued = exc.unplayed if isinstance(exc, WorkerLost) else 0
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
                worker.close_input()  # the worker plays what it has, then says DONE
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
        self._let_go(finish=False)
