"""A `streamconv run` child process for the tests, and HTTP to its control API.

The control API is reached over TCP (``http://127.0.0.1:PORT``) or a unix socket
(``unix:PATH``): the same requests, real HTTP either way.
"""

from __future__ import annotations

import http.client
import json
import queue
import socket
import subprocess
import sys
import threading
import time

CLI = [sys.executable, "-m", "streamconv.cli"]


class Service:
    """A `streamconv run` child with its stderr read line by line in a thread."""

    def __init__(self, config, *options, **kwargs):
        self.proc = subprocess.Popen(
            [*CLI, "run", "-c", str(config), *options], stderr=subprocess.PIPE, **kwargs
        )
        self.lines: queue.Queue = queue.Queue()
        self.log: list[str] = []
        self.arrived: dict[str, float] = {}  # line -> time.monotonic() when it was read
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stderr:
            text = line.decode().rstrip("\n")
            self.arrived.setdefault(text, time.monotonic())
            self.lines.put(text)

    def wait_line(self, prefix: str, timeout: float = 20) -> str:
        """The next line of the log that starts with `prefix` (lines before it are kept)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=0.1)
            except queue.Empty:
                assert self.proc.poll() is None, f"service exited: {self.log}"
                continue
            self.log.append(line)
            if line.startswith(prefix):
                return line
        raise AssertionError(f"no line starting {prefix!r} in {self.log}")

    def base_url(self) -> str:
        """The control address the service logged: ``http://HOST:PORT`` or ``unix:PATH``."""
        return self.wait_line("control: listening on ").rsplit(" ", 1)[1]

    def finish(self, timeout: float = 20) -> int:
        try:
            rc = self.proc.wait(timeout)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
        time.sleep(0.05)  # the reader thread takes the last lines
        while not self.lines.empty():
            self.log.append(self.lines.get())
        return rc

    def kill(self) -> None:
        """Clean up after a failed test: the child must not outlive it."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float):
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self._path)


def request(base: str, path: str, timeout: float = 5) -> tuple[int, str, str]:
    """``GET base + path``; return (status, content type, body)."""
    if base.startswith("unix:"):
        conn = _UnixConnection(base[len("unix:") :], timeout)
    else:
        conn = http.client.HTTPConnection(base.removeprefix("http://"), timeout=timeout)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status, resp.getheader("Content-Type"), resp.read().decode()
    finally:
        conn.close()


def get(base: str, path: str):
    """The body of a 200 answer, parsed when it is JSON."""
    status, ctype, body = request(base, path)
    assert status == 200, (path, status, body)
    return json.loads(body) if ctype == "application/json" else body


def poll(base: str, until, timeout: float = 20, service: Service | None = None) -> dict:
    """``/status`` once `until(status)` holds; fails after `timeout` or if `service` exits."""
    deadline = time.monotonic() + timeout
    status = None
    while time.monotonic() < deadline:
        if service is not None:
            assert service.proc.poll() is None, f"service exited: {service.log}"
        status = get(base, "/status")
        if until(status):
            return status
        time.sleep(0.05)
    raise AssertionError(f"status never satisfied the condition: {status}")
