"""``type = "webhook"``: each detection POSTed as JSON, retried with backoff until accepted."""

from __future__ import annotations

import json
import os
import socket
import ssl
import urllib.error
import urllib.request
from collections.abc import Callable

from streamconv.outputs.base import MAX_BACKOFF_S, MIN_BACKOFF_S, QueuedOutput, shown_url

RETRY_STATUS = frozenset({408, 425, 429})  # and every 5xx


def _reason(cause, timeout_s: float) -> str:
    """A failed request in the words of the other log lines: ``cannot connect (Connection
    refused)``, ``no answer in 5 s``; not the exception's class name and errno."""
    if isinstance(cause, TimeoutError):  # socket.timeout too
        return f"no answer in {timeout_s:g} s"
    if isinstance(cause, ssl.SSLError):
        return f"TLS: {cause.reason or cause}"
    if isinstance(cause, socket.gaierror):
        return f"cannot resolve the host ({cause.strerror})"
    if isinstance(cause, OSError) and cause.errno:
        return f"cannot connect ({os.strerror(cause.errno)})"
    return f"{type(cause).__name__}: {cause}" if isinstance(cause, Exception) else str(cause)


class WebhookOutput(QueuedOutput):
    """POST each detection record as ``application/json`` to `url`, in order.

    A 2xx answer delivers it. A connection error, a timeout, 408, 425, 429 or any 5xx is retried
    with backoff (0.25 s, doubling, at most 30 s) for as long as it takes, holding the records
    after it in the queue. Any other answer (400, 404, ...) rejects that record: one log line,
    and the next one is sent.

    Parameters
    ----------
    url : str
        ``http://`` or ``https://`` URL.
    headers : dict, optional
        Extra request headers (``Authorization``, ...).
    timeout_s : float
        Per request.
    queue_size : int
        See `QueuedOutput`.
    """

    def __init__(
        self,
        url: str,
        headers: dict | None = None,
        timeout_s: float = 5.0,
        queue_size: int = 10000,
        log: Callable[[str], None] | None = None,
    ):
        super().__init__(f"webhook {shown_url(url)}", queue_size, log)
        self.url = url
        self.headers = {"Content-Type": "application/json", "User-Agent": "streamconv"}
        self.headers.update(headers or {})
        self.timeout_s = float(timeout_s)
        self.retries = 0

    def _post(self, record: dict) -> int:
        body = json.dumps(record).encode()
        request = urllib.request.Request(self.url, data=body, headers=self.headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                response.read()
                return response.status
        except urllib.error.HTTPError as exc:
            exc.close()
            return exc.code

    def _deliver(self, record: dict) -> bool | None:
        delay = MIN_BACKOFF_S
        failing = None
        while True:
            try:
                status = self._post(record)
                reason = f"HTTP {status}"
            except (OSError, ValueError) as exc:  # refused, reset, timeout, DNS
                status = None
                reason = _reason(getattr(exc, "reason", None) or exc, self.timeout_s)
            if status is not None and 200 <= status < 300:
                if failing is not None:
                    self.log(f"output {self.name}: delivering again after {failing}")
                return True
            if status is not None and status < 500 and status not in RETRY_STATUS:
                self.log(f"output {self.name}: {reason} for detection at sample "
                         f"{record.get('sample')}: not sent again")  # fmt: skip
                return False
            if failing is None:
                failing = reason
                self.log(f"output {self.name}: {reason}; retrying with backoff")
            self.retries += 1
            if not self._wait(delay):
                return None
            delay = min(2 * delay, MAX_BACKOFF_S)
