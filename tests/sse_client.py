"""A real Server-Sent-Events client for the tests: sseclient-py over http.client, read in a
thread, each event kept with the time it arrived."""

from __future__ import annotations

import http.client
import json
import queue
import threading
import time

import sseclient


class EventReader:
    """``GET /events`` from ``http://HOST:PORT`` or ``unix:PATH``; events land in `events` as
    they arrive."""

    def __init__(self, base: str, path: str = "/events", timeout: float = 30):
        if base.startswith("unix:"):
            from service_proc import _UnixConnection

            self.conn = _UnixConnection(base[len("unix:") :], timeout)
        else:
            self.conn = http.client.HTTPConnection(base.removeprefix("http://"), timeout=timeout)
        self.conn.request("GET", path, headers={"Accept": "text/event-stream"})
        self.response = self.conn.getresponse()
        assert self.response.status == 200, self.response.status
        assert self.response.getheader("Content-Type") == "text/event-stream"
        self.events: list[tuple[str, dict, float, str]] = []  # kind, data, arrival, id
        self.ended = threading.Event()
        self._new: queue.Queue = queue.Queue()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        try:
            for ev in sseclient.SSEClient(self.response).events():
                item = (ev.event, json.loads(ev.data), time.monotonic(), ev.id)
                self.events.append(item)
                self._new.put(item)
        except (OSError, ValueError, AttributeError, http.client.HTTPException):
            pass  # closed under the reader (http.client drops its file: AttributeError)
        finally:
            self.ended.set()

    def of(self, kind: str) -> list[dict]:
        return [data for k, data, _, _ in list(self.events) if k == kind]

    def wait(self, kind: str, until=lambda data: True, timeout: float = 20):
        """The next `kind` event (from now on or already read) for which `until` holds."""
        deadline = time.monotonic() + timeout
        for item in list(self.events):
            if item[0] == kind and until(item[1]):
                return item
        while time.monotonic() < deadline:
            try:
                item = self._new.get(timeout=0.1)
            except queue.Empty:
                assert not self.ended.is_set(), f"stream ended: {self.events[-5:]}"
                continue
            if item[0] == kind and until(item[1]):
                return item
        raise AssertionError(f"no {kind} event within {timeout} s: {self.events[-5:]}")

    def close(self) -> None:
        self.conn.close()
        self._thread.join(5)
