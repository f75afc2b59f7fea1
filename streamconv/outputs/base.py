"""A bounded queue drained by a thread of its own: what every detection output shares."""

from __future__ import annotations

import collections
import threading
import time
import urllib.parse
from collections.abc import Callable

CLOSE_TIMEOUT_S = 5.0  # at stop, how long what is queued may still take to go out
MIN_BACKOFF_S = 0.25
MAX_BACKOFF_S = 30.0


def shown_url(url: str) -> str:
    """`url` for log lines and summaries: a password in it (``user:PASSWORD@host``) as ``***``.

    >>> shown_url("http://bob:s3cret@host/hook"), shown_url("mqtt://host:1883")
    ('http://bob:***@host/hook', 'mqtt://host:1883')
    """
    parts = urllib.parse.urlsplit(url)
    if parts.password is None:
        return url
    return parts._replace(netloc=parts.netloc.replace(f":{parts.password}@", ":***@")).geturl()


class QueuedOutput:
    """Send records from a bounded queue in a thread; subclasses implement `_deliver`.

    Parameters
    ----------
    name : str
        Names the output in log lines (``mqtt://host:1883``, ``webhook http://...``).
    queue_size : int
        Records kept while the far end is away; beyond that the oldest is dropped (counted in
        `dropped`, one log line per run of drops).
    log : callable, optional
        One line of text for the service log.
    """

    def __init__(
        self, name: str, queue_size: int = 10000, log: Callable[[str], None] | None = None
    ):
        self.name = name
        self.queue_size = int(queue_size)
        self.log = log or (lambda line: None)
        self.sent = 0
        self.dropped = 0
        self.rejected = 0
        self._items: collections.deque = collections.deque()
        self._cond = threading.Condition()
        self._closing = False
        self._deadline = float("inf")  # after close(): give up retrying at this time
        self._dropping = False
        self._thread = threading.Thread(target=self._run, name=f"streamconv-{name}", daemon=True)

    # -- any thread ------------------------------------------------------------------------

    def start(self) -> QueuedOutput:
        self._thread.start()
        return self

    def send(self, record: dict) -> None:
        """Queue one detection record; never waits for the far end."""
        with self._cond:
            if len(self._items) >= self.queue_size:
                self._items.popleft()
                self.dropped += 1
                if not self._dropping:
                    self._dropping = True
                    self.log(
                        f"output {self.name}: queue full ({self.queue_size}), dropping the oldest"
                    )
            else:
                self._dropping = False
            self._items.append(record)
            self._cond.notify()

    def close(self, timeout_s: float = CLOSE_TIMEOUT_S) -> None:
        """Send what is queued for up to `timeout_s`, then stop; say what was not sent."""
        self.begin_close(timeout_s)
        self.wait_closed()

    def begin_close(self, timeout_s: float = CLOSE_TIMEOUT_S) -> None:
        """Start the stop without waiting: what is queued has `timeout_s` from now to go out.

        The service begins every output's stop at once and then waits for them
        (`wait_closed`), so several outputs share one 5 s, not 5 s each in turn.
        """
        with self._cond:
            if not self._closing:
                self._closing = True
                self._deadline = time.monotonic() + timeout_s
            self._cond.notify()

    def wait_closed(self) -> None:
        """Wait (past `begin_close`'s deadline by at most 1 s) for the thread, release the
        connection and say in one log line what was not sent."""
        if self._thread.is_alive():
            self._thread.join(max(0.0, self._deadline - time.monotonic()) + 1.0)
        self._finish()
        left = len(self._items)
        if left:
            self.log(f"output {self.name}: {left} detections not delivered at stop")

    @property
    def pending(self) -> int:
        return len(self._items)

    # -- the output's thread ---------------------------------------------------------------

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._items and not self._closing:
                    self._cond.wait()
                if not self._items:
                    return
                record = self._items[0]
            delivered = self._deliver(record)
            if delivered is None:
                return  # stopping, past the deadline: close() reports what is left
            with self._cond:
                if self._items and self._items[0] is record:
                    self._items.popleft()
            if delivered:
                self.sent += 1
            else:
                self.rejected += 1

    def _wait(self, seconds: float) -> bool:
        """Sleep up to `seconds`; False once closing and past the deadline (stop retrying)."""
        end = time.monotonic() + seconds
        with self._cond:
            # The deadline is read again on every wake-up: a close() during a long backoff
            # sets it (and notifies), and the wait must end by it, not by the old backoff.
            while (now := time.monotonic()) < min(end, self._deadline):
                self._cond.wait(min(end, self._deadline) - now)
        return time.monotonic() < self._deadline

    def _deliver(self, record: dict) -> bool | None:
        """Deliver `record`, retrying with backoff (`_wait`): True when delivered, False when
        the far end refused it for good (said in the log), None when stopping gave up."""
        raise NotImplementedError

    def _finish(self) -> None:
        """Release the connection (after the thread stopped)."""
