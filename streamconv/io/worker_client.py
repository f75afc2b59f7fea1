"""The parent's side of a device worker process (`streamconv.io.device_worker`).

`WorkerClient` starts ``python -m streamconv.io.device_worker``, waits for its ``OPEN``
message, and then moves framed messages (`streamconv.io.device_worker.HEADER`) and float32
frames over its pipes with timeouts, so a worker that hangs or dies is noticed and can be
killed; `WorkerLost` says why it ended. `streamconv.io.reopen` uses it to reopen lost devices.
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import time
from typing import IO

from streamconv.io.device_worker import HEADER

__all__ = ["OPEN_TIMEOUT_S", "STALL_S", "WorkerClient", "WorkerLost"]

#: A running input worker that sends nothing for this long is taken as lost, in seconds.
STALL_S = 3.0
#: How long a new worker may take to start Python and open the device, in seconds.
OPEN_TIMEOUT_S = 20.0

_PACKAGE_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class WorkerLost(Exception):
    """The worker could not open the device, lost it, or died.

    ``usage``: a user's mistake (no such device); ``unplayed``: frames an output worker held.
    """

    def __init__(self, message: str, usage: bool = False, unplayed: int = 0):
        super().__init__(message)
        self.usage = usage
        self.unplayed = unplayed


class WorkerClient:
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
        assert self.proc.stdin is not None and self.proc.stdout is not None  # both PIPE
        self._stdin: IO[bytes] = self.proc.stdin
        self._stdout: IO[bytes] = self.proc.stdout
        self._out = self._stdout.fileno()
        self._in = self._stdin.fileno()
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

    def close_input(self) -> None:
        """Close its stdin: it stops; an output worker plays its queue first, then says DONE."""
        self._stdin.close()

    def finish(self, timeout: float) -> None:
        """Close its stdin (it stops, an output plays its queue first), wait, kill if need be."""
        try:
            self._stdin.close()
            self.proc.wait(timeout)
        except (OSError, subprocess.TimeoutExpired):
            pass
        self.kill()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        for pipe in (self._stdin, self._stdout):
            try:
                pipe.close()
            except OSError:
                pass
