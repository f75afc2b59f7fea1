"""``GET /events``: a hub that fans service events out to Server-Sent-Events clients.

Any thread may `EventHub.publish`; the hub hands the event to the control thread's event loop
with ``call_soon_threadsafe`` (a deque append and a byte on a pipe), so the audio thread never
waits for a client. On the loop each client has a bounded queue:

- *periodic* events (``status``, ``levels``, ``scores``) are sent only while a client's queue
  is less than half full: a slow reader skips them (counted in its ``skipped``);
- every other event (``detection``, ``reload``, ``device``) must be delivered: a client whose
  queue is full is dropped (its stream ends; an `EventSource` reconnects by itself).

Wire format (one event)::

    id: 42
    event: detection
    data: {"template": "bell", "sample": 2000, ...}

"""

from __future__ import annotations

import asyncio
import json
import math
import threading
from collections.abc import Callable

PERIODIC = frozenset({"status", "levels", "scores"})


def encode(event_id: int, kind: str, data) -> bytes:
    """One SSE frame: ``id``, ``event`` and a single-line JSON ``data`` field."""
    text = json.dumps(data, separators=(",", ":"), allow_nan=False)
    return f"id: {event_id}\nevent: {kind}\ndata: {text}\n\n".encode()


class Client:
    """One ``/events`` reader: a bounded queue of encoded frames; None ends the stream."""

    def __init__(self, size: int):
        self.size = size
        self.queue: asyncio.Queue = asyncio.Queue()
        self.skipped = 0
        self.dropped = False
        #: Called when the hub drops the client: closes its connection, since its handler may
        #: be waiting in a write that a stalled reader never lets finish.
        self.on_drop: Callable[[], None] = lambda: None

    def offer(self, frame: bytes, periodic: bool) -> bool:
        """Queue `frame`; False when the client cannot keep up and must be dropped."""
        n = self.queue.qsize()
        if periodic and n >= self.size // 2:
            self.skipped += 1
            return True
        if n >= self.size:
            return False
        self.queue.put_nowait(frame)
        return True

    def end(self) -> None:
        self.queue.put_nowait(None)


class EventHub:
    """Fan events out to `Client` queues on one event loop.

    Parameters
    ----------
    queue_size : int
        Frames a client may have waiting before it is dropped (periodic events stop at half).
    log : callable, optional
        One line of text per dropped client.
    """

    def __init__(self, queue_size: int = 256, log: Callable[[str], None] | None = None):
        self.queue_size = int(queue_size)
        self._log = log or (lambda line: None)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._clients: set[Client] = set()
        self._next_id = 1
        self._lock = threading.Lock()  # only for attach/detach of the loop
        self.dropped_clients = 0

    # -- any thread ------------------------------------------------------------------------

    def attach(self, loop: asyncio.AbstractEventLoop | None) -> None:
        """Deliver on `loop` from now on (None: publish becomes a no-op)."""
        with self._lock:
            self._loop = loop

    @property
    def has_clients(self) -> bool:
        return bool(self._clients)

    def publish(self, kind: str, data) -> None:
        """Send one event to every client; safe from any thread, never blocks on a client."""
        loop = self._loop
        if loop is None or not self._clients:
            return
        try:
            loop.call_soon_threadsafe(self._fanout, kind, data)
        except RuntimeError:  # the loop closed meanwhile: the service is stopping
            pass

    # -- the loop's thread -----------------------------------------------------------------

    def subscribe(self) -> Client:
        client = Client(self.queue_size)
        self._clients.add(client)
        return client

    def unsubscribe(self, client: Client) -> None:
        self._clients.discard(client)

    def send_to(self, client: Client, kind: str, data) -> None:
        """One event to one client (its first ``status``), numbered like the rest."""
        client.offer(encode(self._take_id(), kind, _finite(data)), periodic=False)

    def close(self) -> None:
        """End every stream (the server is stopping)."""
        for client in list(self._clients):
            client.end()
        self._clients.clear()

    def _take_id(self) -> int:
        event_id = self._next_id
        self._next_id += 1
        return event_id

    def _fanout(self, kind: str, data) -> None:
        if not self._clients:
            return
        frame = encode(self._take_id(), kind, _finite(data))
        periodic = kind in PERIODIC
        for client in list(self._clients):
            if not client.offer(frame, periodic):
                self._clients.discard(client)
                client.dropped = True
                client.end()
                client.on_drop()
                self.dropped_clients += 1
                self._log(
                    f"control: /events client dropped: {self.queue_size} events unread "
                    f"({client.skipped} status events skipped before)"
                )


def _finite(value):
    """JSON has no inf/nan: they become None (a silent channel's level is -inf dBFS)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value
