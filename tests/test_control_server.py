"""The control API's server as a client sees it: a `streamconv run` process streaming audio,
real HTTP over TCP from real clients (aiohttp's, http.client, raw sockets)."""

import asyncio
import http.client
import socket
import struct
import subprocess
import threading
import time

import aiohttp
import numpy as np
from service_proc import CLI, Service, get, poll

RATE = 8000
BLOCK = 64


def _config(tmp_path, idle_timeout_s=1.0):
    path = tmp_path / "run.toml"
    path.write_text(
        f'[source]\nuri = "-"\nformat = "f32le"\nrate = {RATE}\nchannels = 2\n'
        '[sink]\nuri = "out.raw"\nformat = "f32le"\n'
        f"[processing]\nblock_size = {BLOCK}\n"
        '[[filters]]\ntype = "gain"\ngain_db = 0.0\n'
        f'[control]\nlisten = "127.0.0.1:0"\nidle_timeout_s = {idle_timeout_s}\n'
    )
    return path


class _Feeder:
    """Writes stereo noise to the service's stdin at about real time until stopped."""

    def __init__(self, proc, rng):
        self.proc = proc
        self.x = rng.normal(scale=0.1, size=(RATE * 60, 2)).astype("<f4")
        self.sent = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        step = RATE // 20
        t0 = time.monotonic()
        while not self._stop.is_set() and self.sent < len(self.x):
            self.proc.stdin.write(self.x[self.sent : self.sent + step].tobytes())
            self.proc.stdin.flush()
            self.sent += step
            time.sleep(max(0.0, t0 + self.sent / RATE - time.monotonic()))

    def stop(self):
        self._stop.set()
        self._thread.join()
        self.proc.stdin.close()
        return self.x[: self.sent]


def _method(url, method, path):
    conn = http.client.HTTPConnection(url.removeprefix("http://"), timeout=5)
    try:
        conn.request(method, path)
        resp = conn.getresponse()
        return resp.status, dict(resp.getheaders()), resp.read().decode()
    finally:
        conn.close()


async def _concurrent_status(url, n):
    """`n` GET /status at once, each on its own connection; the latency of each."""
    connector = aiohttp.TCPConnector(limit=0, force_close=True)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def one():
            t0 = time.perf_counter()
            async with session.get(url + "/status", timeout=aiohttp.ClientTimeout(10)) as r:
                body = await r.json()
                assert r.status == 200 and body["state"] == "running"
            return time.perf_counter() - t0

        return await asyncio.gather(*(one() for _ in range(n)))


def test_concurrent_clients_wrong_methods_slow_loris_and_hang_ups(tmp_path, rng):
    svc = Service(_config(tmp_path), stdin=subprocess.PIPE)
    feeder = None
    try:
        url = svc.base_url()
        feeder = _Feeder(svc.proc, rng)
        poll(url, lambda s: s["state"] == "running" and s["frames_in"] > 0, service=svc)

        latencies = asyncio.run(_concurrent_status(url, 100))
        print(f"\n100 concurrent GET /status: max {max(latencies) * 1e3:.1f} ms, "
              f"median {np.median(latencies) * 1e3:.1f} ms")  # fmt: skip
        assert len(latencies) == 100
        assert max(latencies) < 1.0  # a SYN retransmit (full backlog) alone takes 1 s

        # A method the resource does not allow: 405 naming the allowed ones (RFC 9110).
        for method in ("POST", "DELETE", "PUT"):
            status, headers, body = _method(url, method, "/status")
            assert status == 405, (method, status, body)
            assert set(headers["Allow"].split(",")) == {"GET", "HEAD"}
        assert _method(url, "HEAD", "/health")[0] == 200
        assert _method(url, "GET", "/nope")[:1] == (404,)

        # Slow loris: half a request, then nothing. Closed after idle_timeout_s (1 s), while
        # others are served meanwhile.
        host, port = url.removeprefix("http://").rsplit(":", 1)
        loris = socket.create_connection((host, int(port)), timeout=10)
        loris.sendall(b"GET /status HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        t0 = time.monotonic()
        assert get(url, "/health") == "ok\n"
        assert loris.recv(100) == b""  # the server closed it
        held = time.monotonic() - t0
        assert 0.8 < held < 3.0, held
        loris.close()

        # An idle connection (nothing sent at all) is closed the same way.
        idle = socket.create_connection((host, int(port)), timeout=10)
        t0 = time.monotonic()
        assert idle.recv(100) == b""
        assert time.monotonic() - t0 < 3.0
        idle.close()

        # Clients that hang up: mid-answer (RST right after the request) and mid-stream.
        for path in ("/metrics", "/status", "/detections"):
            s = socket.create_connection((host, int(port)))
            s.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            s.close()
        assert get(url, "/health") == "ok\n"
        x = feeder.stop()
        feeder = None
        assert svc.finish() == 0, svc.log
    finally:
        if feeder is not None:
            feeder.stop()
        svc.kill()
    assert not any("Traceback" in line for line in svc.log), svc.log
    control_lines = [line for line in svc.log if line.startswith("control:")]
    assert len(control_lines) <= 1 + 3, control_lines  # "listening on", one per hang-up at most
    y = np.fromfile(tmp_path / "out.raw", dtype="<f4").reshape(-1, 2)
    np.testing.assert_array_equal(y, x)  # gain 0 dB: the stream went through untouched


def test_a_busy_port_is_a_one_line_runtime_failure(tmp_path):
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    port = taken.getsockname()[1]
    path = _config(tmp_path)
    path.write_text(path.read_text().replace("127.0.0.1:0", f"127.0.0.1:{port}"))
    try:
        proc = subprocess.run([*CLI, "run", "-c", str(path)], input=b"", capture_output=True)
    finally:
        taken.close()
    stderr = proc.stderr.decode()
    assert proc.returncode == 1, stderr
    assert (
        stderr
        == f"error: [control] listen 127.0.0.1:{port}: cannot listen: Address already in use\n"
    )


def test_a_malformed_request_is_one_log_line(tmp_path):
    """aiohttp's parse errors are several lines (the bad header, a caret under it); the
    service log gets one line for each, and the server goes on answering."""
    from streamconv.control.server import ControlServer

    log: list[str] = []
    server = ControlServer("127.0.0.1:0", lambda: {}, list, log=log.append).start()
    try:
        host, port = server.address.rsplit("/", 1)[-1].rsplit(":", 1)
        for raw in (
            b"GET /health HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n",
            b"GET /" + b"a" * 20000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
        ):
            with socket.create_connection((host, int(port)), timeout=5) as s:
                s.sendall(raw)
                assert s.recv(100).startswith(b"HTTP/1.")
        deadline = time.monotonic() + 5
        while len(log) < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert len(log) == 2, log
        assert all("\n" not in line and line.startswith("control: ") for line in log), log
        assert "Invalid character in Content-Length" in log[0], log
        conn = http.client.HTTPConnection(host, int(port), timeout=5)
        conn.request("GET", "/health")
        assert conn.getresponse().status == 200
    finally:
        server.stop()


def test_a_unix_socket_in_use_is_a_busy_address_not_taken_over(tmp_path):
    """A second service on the same unix: path unlinked the first one's live socket, listened
    in its place and removed it at its stop: the first was left unreachable."""
    sock = tmp_path / "control.sock"
    first_cfg = tmp_path / "first.toml"
    first_cfg.write_text(_config(tmp_path).read_text().replace('"127.0.0.1:0"', f'"unix:{sock}"'))
    first = Service(first_cfg, stdin=subprocess.PIPE)
    try:
        first.wait_line("control: listening on unix:")
        proc = subprocess.run([*CLI, "run", "-c", str(first_cfg)], input=b"", capture_output=True)
        assert proc.returncode == 1, proc.stderr
        assert proc.stderr.decode() == (
            f"error: [control] listen unix:{sock}: cannot listen: Address already in use\n"
        )
        assert get(f"unix:{sock}", "/health").strip() == "ok"  # the first still answers
    finally:
        first.kill()
