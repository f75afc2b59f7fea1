"""The control API's HTTP server: aiohttp on an event loop in a thread of its own.

The service only hands it callables (`status`, `detections`) and an `EventHub`; the server
never calls into the audio loop, and the audio loop never waits for the server. What it
serves is in ``docs/control-api.md``.

Why aiohttp: one well-kept library gives the server, a real listen backlog, TCP and unix
sockets, streaming responses for Server-Sent Events, and a client (the webhook output and the
tests use it too), on a single event loop thread with no worker pool to size.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import logging
import os
import re
import socket
import threading
import time
from collections.abc import Callable
from importlib import resources

from aiohttp import web

from streamconv.control.events import EventHub
from streamconv.control.metrics import PROMETHEUS_TYPE, registry_for, render
from streamconv.errors import RuntimeFailure
from streamconv.locator import parse_host_port

BACKLOG = 1024
SSE_SNDBUF = 32768
STATUS_CACHE_S = 0.02  # 100 clients asking at once share one status() call
SNIPPET_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]*\.wav$")
TEXT = "text/plain"
_LOGGERS = ("aiohttp", "asyncio")


class _OneLine(logging.Handler):
    """aiohttp's and asyncio's log records as one line of the service log, never a traceback."""

    def __init__(self, log: Callable[[str], None]):
        super().__init__(logging.WARNING)
        self._log = log

    def emit(self, record: logging.LogRecord) -> None:
        text = record.getMessage().splitlines()[0] if record.getMessage() else record.name
        if record.exc_info and record.exc_info[1] is not None:
            exc = record.exc_info[1]
            # aiohttp's parse errors span lines (the bad header, a caret under it): joined.
            words = " ".join(part.strip() for part in str(exc).splitlines() if part.strip())
            text += f": {type(exc).__name__}: {words}"
        self._log(f"control: {text}")


def _answers(path: str) -> bool:
    """Whether a process accepts connections on the unix socket at `path` (a live service,
    whose socket must not be unlinked), not a stale file a killed run left."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.settimeout(1.0)
        try:
            probe.connect(path)
        except OSError:
            return False
        return True


class ControlServer:
    """Serve the control API from a background thread's event loop.

    Parameters
    ----------
    listen : str
        ``HOST:PORT`` (port 0 picks a free one) or ``unix:PATH``.
    status : callable
        Returns the ``/status`` dict (also the source of ``/metrics`` and ``status`` events).
    detections : callable
        Returns the recent detections as dicts, oldest first.
    hub : EventHub, optional
        Source of ``GET /events``; without one that path is 404.
    snippets_dir : str, optional
        Directory served at ``GET /snippets/NAME``.
    idle_timeout_s : float
        A connection that has not sent a whole request within this time, on connect or after
        its last answer, is closed (slow or half-sent requests included).
    status_interval_s : float
        Period of the ``status`` event on ``/events``.
    log : callable, optional
        Takes one line of text for the service log.
    """

    def __init__(
        self,
        listen: str,
        status: Callable[[], dict],
        detections: Callable[[], list],
        *,
        hub: EventHub | None = None,
        snippets_dir: str | None = None,
        idle_timeout_s: float = 15.0,
        status_interval_s: float = 1.0,
        dashboard: bool = True,
        log: Callable[[str], None] | None = None,
    ):
        self.listen = listen
        self.status = status
        self.detections = detections
        self.hub = hub
        self.snippets_dir = snippets_dir
        self.idle_timeout_s = float(idle_timeout_s)
        self.status_interval_s = float(status_interval_s)
        self.dashboard = dashboard
        self.log = log or (lambda line: None)
        self.registry = registry_for(self._cached_status)
        self.address: str | None = None
        self._cache: tuple[float, dict] | None = None
        self._cache_lock = threading.Lock()
        self._unix_path = listen[len("unix:") :] if listen.startswith("unix:") else None
        self._loop = asyncio.new_event_loop()
        self._runner: web.AppRunner | None = None
        self._ticker: asyncio.Task | None = None
        self._thread = threading.Thread(target=self._run, name="streamconv-control", daemon=True)
        self._handler = _OneLine(self.log)

    # -- lifecycle (the service's thread) --------------------------------------------------

    def start(self) -> ControlServer:
        """Bind and serve; raise `RuntimeFailure` when the address cannot be listened on."""
        self._propagate = {}
        for name in _LOGGERS:
            logger = logging.getLogger(name)
            self._propagate[name] = logger.propagate
            logger.addHandler(self._handler)
            logger.propagate = False  # Python's last-resort handler would print tracebacks
        self._thread.start()
        try:
            asyncio.run_coroutine_threadsafe(self._serve(), self._loop).result(30)
        except OSError as exc:
            self._halt()
            # asyncio's strerror repeats the address ("error while attempting to bind on
            # address ('127.0.0.1', 8731): address already in use"): the errno says it alone,
            # in the words of the udp:// source's "cannot listen: Address already in use".
            reason = os.strerror(exc.errno) if exc.errno else exc.strerror or str(exc)
            raise RuntimeFailure(
                f"[control] listen {self.listen}: cannot listen: {reason}"
            ) from None
        return self

    def stop(self) -> None:
        """End every ``/events`` stream, close the listener and the loop; remove the socket."""
        if self._thread.is_alive():
            with contextlib.suppress(Exception):
                asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop).result(10)
        self._halt()
        # Only a socket this server bound: one that failed to start leaves the other's alone.
        if self._unix_path and self.address is not None and os.path.exists(self._unix_path):
            os.unlink(self._unix_path)

    def _halt(self) -> None:
        if self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
        if not self._loop.is_running():
            self._loop.close()
        for name, propagate in getattr(self, "_propagate", {}).items():
            logging.getLogger(name).removeHandler(self._handler)
            logging.getLogger(name).propagate = propagate

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.set_exception_handler(self._loop_error)
        self._loop.run_forever()

    def _loop_error(self, loop, context: dict) -> None:
        exc = context.get("exception")
        text = context.get("message", "error")
        self.log(f"control: {text}" + (f": {type(exc).__name__}: {exc}" if exc else ""))

    # -- the loop's thread -----------------------------------------------------------------

    async def _serve(self) -> None:
        app = web.Application(middlewares=[self._plain_errors])
        get = [
            web.get("/health", self._health),
            web.get("/status", self._status),
            web.get("/metrics", self._metrics),
            web.get("/detections", self._detections),
        ]
        if self.hub is not None:
            get.append(web.get("/events", self._events))
        if self.snippets_dir is not None:
            get.append(web.get("/snippets/{name}", self._snippet))
        if self.dashboard:
            get.append(web.get("/", self._index))
            get.append(web.get("/static/{name}", self._static))
        app.add_routes(get)
        self._runner = web.AppRunner(
            app,
            handle_signals=False,
            access_log=None,
            keepalive_timeout=self.idle_timeout_s,
            shutdown_timeout=2.0,
        )
        await self._runner.setup()
        if self._unix_path is not None:
            if os.path.exists(self._unix_path):
                if _answers(self._unix_path):  # another service listens there: not ours
                    raise OSError(errno.EADDRINUSE, os.strerror(errno.EADDRINUSE))
                os.unlink(self._unix_path)  # a stale socket of an earlier run
            unix = web.UnixSite(self._runner, self._unix_path, backlog=BACKLOG)
            await unix.start()
            self.address = f"unix:{self._unix_path}"
        else:
            host, port = parse_host_port(self.listen)
            host = host.strip("[]")
            tcp = web.TCPSite(self._runner, host, port, backlog=BACKLOG, reuse_address=True)
            await tcp.start()
            bound = self._runner.addresses[0][1]  # (host, port, ...): the port given by the OS
            self.address = f"http://{self.listen.rpartition(':')[0]}:{bound}"
        if self.hub is not None:
            self.hub.attach(self._loop)
            self._ticker = asyncio.ensure_future(self._tick(self.hub))

    async def _shutdown(self) -> None:
        if self.hub is not None:
            self.hub.attach(None)
            self.hub.close()
        if self._ticker is not None:
            self._ticker.cancel()
        if self._runner is not None:
            await self._runner.cleanup()

    async def _tick(self, hub: EventHub) -> None:
        """The ``status`` event, once per interval, while anyone listens."""
        while True:
            await asyncio.sleep(self.status_interval_s)
            if hub.has_clients:
                try:
                    hub.publish("status", self._cached_status())
                except Exception as exc:  # a status() bug must not end the ticker
                    self.log(f"control: status failed: {type(exc).__name__}: {exc}")

    def _cached_status(self) -> dict:
        now = time.monotonic()
        with self._cache_lock:
            if self._cache is not None and now - self._cache[0] < STATUS_CACHE_S:
                return self._cache[1]
        value = self.status()
        with self._cache_lock:
            self._cache = (now, value)
        return value

    @web.middleware
    async def _plain_errors(self, request: web.Request, handler):
        """Errors as one short line of text, the way the API always answered them."""
        try:
            return await handler(request)
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            text = exc.text
            if not text or text.startswith(f"{exc.status}:"):  # aiohttp's default body
                text = exc.reason.lower()
            headers = {k: v for k, v in exc.headers.items() if k in ("Allow",)}
            return web.Response(
                status=exc.status, text=text.rstrip("\n") + "\n", content_type=TEXT,
                headers=headers,
            )  # fmt: skip

    async def _health(self, request: web.Request) -> web.Response:
        return web.Response(text="ok\n", content_type=TEXT)

    async def _status(self, request: web.Request) -> web.Response:
        return _json(self._cached_status())

    async def _metrics(self, request: web.Request) -> web.Response:
        return web.Response(body=render(self.registry), headers={"Content-Type": PROMETHEUS_TYPE})

    async def _detections(self, request: web.Request) -> web.Response:
        try:
            since = int(request.query.get("since", "-1"))
        except ValueError:
            raise web.HTTPBadRequest(text="since: not an integer") from None
        return _json([d for d in self.detections() if d["sample"] > since])

    async def _events(self, request: web.Request) -> web.StreamResponse:
        hub = self.hub
        if hub is None:  # the route exists only with a hub
            raise web.HTTPNotFound()
        response = web.StreamResponse(
            headers={
                "Content-Type": "text/event-stream",
                "Cache-Control": "no-cache",
                "X-Accel-Buffering": "no",
            }
        )
        sock = request.transport.get_extra_info("socket") if request.transport else None
        if sock is not None:
            # Bounded per reader: a stalled one holds at most this much in the kernel beside
            # its queue, and its queue fills soon enough for the hub to drop it.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SSE_SNDBUF)
        await response.prepare(request)
        client = hub.subscribe()
        if request.transport is not None:
            client.on_drop = request.transport.abort
        try:
            await response.write(b"retry: 1000\n\n")
            hub.send_to(client, "status", self._cached_status())
            while True:
                frame = await client.queue.get()
                if frame is None:
                    break
                # A reader that stops reading fills its socket; the write then waits, which
                # holds only this handler: its queue fills and the hub drops it.
                await response.write(frame)
        except (ConnectionError, asyncio.CancelledError):
            pass  # the client went away, or the server stops
        finally:
            hub.unsubscribe(client)
        return response

    async def _snippet(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        if self.snippets_dir is None or not SNIPPET_NAME.match(name):
            raise web.HTTPNotFound()
        path = os.path.join(self.snippets_dir, name)
        if not os.path.isfile(path):
            raise web.HTTPNotFound()
        return web.FileResponse(path, headers={"Content-Type": "audio/wav"})

    async def _index(self, request: web.Request) -> web.Response:
        return _static_response("index.html")

    async def _static(self, request: web.Request) -> web.Response:
        return _static_response(request.match_info["name"])


STATIC_TYPES = {".html": "text/html", ".js": "text/javascript", ".css": "text/css"}


def _static_response(name: str) -> web.Response:
    ext = os.path.splitext(name)[1]
    if ext not in STATIC_TYPES or "/" in name or name.startswith("."):
        raise web.HTTPNotFound()
    item = resources.files("streamconv.control") / "static" / name
    if not item.is_file():
        raise web.HTTPNotFound()
    return web.Response(
        body=item.read_bytes(),
        content_type=STATIC_TYPES[ext],
        charset="utf-8",
        headers={"Cache-Control": "no-cache"},
    )


def _json(value) -> web.Response:
    body = (json.dumps(value) + "\n").encode()
    return web.Response(body=body, headers={"Content-Type": "application/json"})
