"""The service's HTTP control API: ``/health``, ``/status``, ``/metrics``, ``/detections``.

It listens on ``HOST:PORT`` (the config allows loopback only unless told otherwise; port 0
picks a free one) or on a unix socket ``unix:PATH``, in a thread of its own, and only reads
what the service publishes through a `status()` callable and a `detections()` callable.
"""

from __future__ import annotations

import json
import os
import socket
import socketserver
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from streamconv.config.locators import parse_host_port

PROMETHEUS_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class _StatusCollector:
    """Prometheus metrics made from one `status()` snapshot at scrape time."""

    def __init__(self, status: Callable[[], dict]):
        self._status = status

    def collect(self):
        s = self._status()
        counters = {
            "frames_in": "Frames read from the source",
            "frames_out": "Frames written to the sink",
            "overflows": "Source overflows (frames the capture side had to drop)",
            "underflows": "Sink underflows",
            "dropped_frames": "Source frames lost (overflowed, or estimated while a device was "
            "away)",
            "reloads_failed": "SIGHUP reloads rejected (the old config kept running)",
        }
        for key, text in counters.items():
            yield CounterMetricFamily(f"streamconv_{key}", text, value=s.get(key, 0))
        reopens = CounterMetricFamily(
            "streamconv_device_reopens", "Times a lost sound device was opened again",
            labels=["stream"],
        )  # fmt: skip
        up = GaugeMetricFamily(
            "streamconv_device_up", "1 while a sound device runs, 0 while it is being reopened",
            labels=["stream"],
        )  # fmt: skip
        for stream in ("source", "sink"):
            if "state" in s[stream]:  # a live device
                reopens.add_metric([stream], s[stream]["reopens"])
                up.add_metric([stream], 1 if s[stream]["state"] == "running" else 0)
        yield reopens
        yield up
        det = CounterMetricFamily(
            "streamconv_detections", "Detections reported", labels=["template"]
        )
        for name, count in s["detections"].items():
            det.add_metric([name], count)
        yield det
        gauges = {
            "load": ("Processing time as a fraction of real time", s["load"]),
            "uptime_seconds": ("Seconds since the service started", s["uptime_s"]),
            "config_generation": ("Config generation (1 at start, +1 per reload)",
                                  s["config_generation"]),
            "sample_rate_hz": ("Sample rate of the stream", s["sample_rate"]),
        }  # fmt: skip
        for key, (text, value) in gauges.items():
            yield GaugeMetricFamily(f"streamconv_{key}", text, value=value)


class _Handler(BaseHTTPRequestHandler):
    server_version = "streamconv"

    def do_GET(self):
        url = urlparse(self.path)
        app = self.server.app
        if url.path == "/health":
            self._send(200, "text/plain; charset=utf-8", b"ok\n")
        elif url.path == "/status":
            self._json(app.status())
        elif url.path == "/metrics":
            self._send(200, PROMETHEUS_TYPE, generate_latest(app.registry))
        elif url.path == "/detections":
            query = parse_qs(url.query)
            try:
                since = int(query.get("since", ["-1"])[0])
            except ValueError:
                self._send(400, "text/plain; charset=utf-8", b"since: not an integer\n")
                return
            self._json([d for d in app.detections() if d["sample"] > since])
        else:
            self._send(404, "text/plain; charset=utf-8", b"not found\n")

    def _json(self, value) -> None:
        self._send(200, "application/json", (json.dumps(value) + "\n").encode())

    def _send(self, code: int, ctype: str, body: bytes) -> None:
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def address_string(self) -> str:
        return str(self.client_address[0]) if self.client_address else "unix"

    def log_message(self, format, *args) -> None:  # the service logs what matters itself
        pass


class _UnixHTTPServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True

    def get_request(self):
        conn, _ = super().get_request()
        return conn, ("unix", 0)


class ControlServer:
    """Serve the control API in a background thread.

    Parameters
    ----------
    listen : str
        ``HOST:PORT`` or ``unix:PATH``.
    status : callable
        Returns the `/status` dict (also the source of `/metrics`).
    detections : callable
        Returns the recent detections as dicts, oldest first.
    """

    def __init__(self, listen: str, status: Callable[[], dict], detections: Callable[[], list]):
        self.status = status
        self.detections = detections
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(_StatusCollector(status))
        self._unix_path = None
        if listen.startswith("unix:"):
            self._unix_path = listen[len("unix:") :]
            if os.path.exists(self._unix_path):
                os.unlink(self._unix_path)  # a stale socket of an earlier run
            self._server = _UnixHTTPServer(self._unix_path, _Handler)
            self.address = f"unix:{self._unix_path}"
        else:
            host, port = parse_host_port(listen)
            server_class = ThreadingHTTPServer
            if ":" in host:
                server_class = type("V6Server", (ThreadingHTTPServer,), {})
                server_class.address_family = socket.AF_INET6
            self._server = server_class((host, port), _Handler)
            self._server.daemon_threads = True
            bound = self._server.server_address
            self.address = f"http://{listen.rpartition(':')[0]}:{bound[1]}"
        self._server.app = self
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="streamconv-control", daemon=True
        )

    def start(self) -> ControlServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread.is_alive():  # shutdown() waits for serve_forever, so only if it runs
            self._server.shutdown()
        self._server.server_close()
        if self._unix_path and os.path.exists(self._unix_path):
            os.unlink(self._unix_path)
