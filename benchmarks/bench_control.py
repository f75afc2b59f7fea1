"""Load the control plane while the service filters 48 kHz stereo in real time.

    python benchmarks/bench_control.py [--seconds 20] [--skip-device]

1. **Pipe**: a feeder process writes 48 kHz stereo f64 noise with planted bells to the
   service's stdin at real time (10 ms pieces); the service filters it (255-tap lowpass per
   channel), matches a template and writes the output to a file. Meanwhile, from this process:
   a burst of 100 concurrent ``GET /status`` (each its own connection) every second, 20
   ``/events`` readers, 10 stalled connections (5 half-sent requests, re-opened whenever the
   server closes them, and 5 event streams never read), and one ``GET /health`` every 20 ms.
   Printed: /health latency p50/p99/max, the slowest /status burst, how far the service fell
   behind real time (frames written by the feeder minus frames read by the service), its
   overflows/underflows, whether every reader got every detection, and whether the output
   equals ``scipy.signal.lfilter`` of the input (float64: to 1e-9 of the peak).
2. **Device**: a service reading and writing a JACK dummy server's loopback device at 48 kHz
   (tests/audio_server.py), first with only the /health probe (the overflows and underflows the
   machine causes by itself), then under the same load: its overflows and underflows.

/health is probed from a process of its own (a new connection every 20 ms), so its latency is
the server's and the machine's, not the load generator's.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time

import numpy as np
from scipy import signal

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests"))
STREAMCONV = [sys.executable, "-m", "streamconv.cli"]
RATE = 48000
PROBE = """
import http.client, json, sys, time
host, port = sys.argv[1].removeprefix("http://").rsplit(":", 1)
end = time.monotonic() + float(sys.argv[2])
took = []
while time.monotonic() < end:
    t0 = time.perf_counter()
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    conn.request("GET", "/health")
    assert conn.getresponse().read() == b"ok\\n"
    conn.close()
    took.append(time.perf_counter() - t0)
    time.sleep(0.02)
print(json.dumps(took))
"""
FEEDER = """
import os, sys, time
import numpy as np
x = np.load(sys.argv[1])
while not os.path.exists(sys.argv[3] + ".go"):  # the service is up and the load starts
    time.sleep(0.01)
rate, step = int(sys.argv[2]), int(sys.argv[2]) // 100
out = sys.stdout.buffer
t0 = time.monotonic()
open(sys.argv[3], "w").write(repr(t0))
for i in range(0, len(x), step):
    out.write(x[i : i + step].tobytes())
    out.flush()
    time.sleep(max(0.0, t0 + (i + step) / rate - time.monotonic()))
"""


def _bell(rate: int) -> np.ndarray:
    n = rate // 20
    return np.sin(2 * np.pi * 1000 * np.arange(n) / rate) * np.hanning(n)


def _config(tmp: str, source: str, sink: str, taps: np.ndarray) -> str:
    np.save(os.path.join(tmp, "bell.npy"), signal.lfilter(taps, 1, _bell(RATE)))
    path = os.path.join(tmp, "run.toml")
    with open(path, "w") as f:
        f.write(
            f"{source}\n{sink}\n[processing]\nblock_size = 1024\n"
            f'[[filters]]\ntype = "taps"\nvalues = {taps.tolist()}\n'
            '[[templates]]\nname = "bell"\npath = "bell.npy"\nthreshold = 0.8\n'
            '[detections]\npath = "det.jsonl"\n'
            '[control]\nlisten = "127.0.0.1:0"\n'
        )
    return path


LOG: list[str] = []


def _start(config: str, **kwargs) -> tuple[subprocess.Popen, str]:
    """The service, its log read by a thread into `LOG` (a full pipe would stop it)."""
    proc = subprocess.Popen(
        [*STREAMCONV, "run", "-c", config], stderr=subprocess.PIPE, text=True, **kwargs
    )
    for line in proc.stderr:
        LOG.append(line.rstrip("\n"))
        if line.startswith("control: listening on "):
            threading.Thread(target=lambda: LOG.extend(proc.stderr), daemon=True).start()
            return proc, line.split()[-1]
    raise RuntimeError(f"the service exited with {proc.wait()}: {LOG[-5:]}")


class Load:
    """The clients; `run` returns what they measured."""

    def __init__(self, url: str, seconds: float, lag=None, clients: bool = True):
        import aiohttp

        self.aiohttp = aiohttp
        self.url = url
        self.host, port = url.removeprefix("http://").rsplit(":", 1)
        self.port = int(port)
        self.seconds = seconds
        self.clients = clients  # False: only the /health probe (a baseline)
        self.lag = lag  # callable: frames_in -> frames behind the feeder, or None
        self.health: list[float] = []
        self.bursts: list[float] = []
        self.lags: list[float] = []
        self.readers: list[list[dict]] = []
        self.loris_reopened = 0
        self.status: dict = {}

    async def run(self) -> Load:
        self.end = time.monotonic() + self.seconds
        connector = self.aiohttp.TCPConnector(limit=0, force_close=True)
        async with self.aiohttp.ClientSession(connector=connector) as session:
            self.session = session
            n = 20 if self.clients else 0
            readers = [asyncio.create_task(self.reader(i)) for i in range(n)]
            stalled = [asyncio.create_task(self.loris()) for _ in range(n // 4)]
            stalled += [asyncio.create_task(self.unread_stream()) for _ in range(n // 4)]
            # /health is probed from a process of its own, one new connection per request,
            # as a monitoring system would: its latency is the server's, not this process's.
            probe = await asyncio.create_subprocess_exec(
                sys.executable, "-c", PROBE, self.url, str(self.seconds),
                stdout=asyncio.subprocess.PIPE,
            )  # fmt: skip
            if self.clients:
                await asyncio.gather(self.status_bursts(), self.status_probe())
            else:
                await self.status_probe()
            self.health = json.loads((await probe.communicate())[0])
            for t in stalled:
                t.cancel()
            self.end_readers = readers
        return self

    async def finish_readers(self, timeout: float) -> None:
        if self.end_readers:
            await asyncio.wait(self.end_readers, timeout=timeout)

    async def status_bursts(self) -> None:
        async def one():
            t0 = time.perf_counter()
            async with self.session.get(self.url + "/status") as r:
                assert r.status == 200
                await r.json()
            return time.perf_counter() - t0

        while time.monotonic() < self.end:
            t0 = time.monotonic()
            self.bursts.append(max(await asyncio.gather(*(one() for _ in range(100)))))
            await asyncio.sleep(max(0.0, t0 + 1.0 - time.monotonic()))

    async def status_probe(self) -> None:
        while time.monotonic() < self.end:
            async with self.session.get(self.url + "/status") as r:
                self.status = await r.json()
            if self.lag is not None and self.status["state"] == "running":
                self.lags.append(self.lag(self.status["frames_in"]))
            await asyncio.sleep(0.2)

    async def reader(self, i: int) -> None:
        """An /events reader in its own session (the stream outlives the load's)."""
        got: list[dict] = []
        self.readers.append(got)
        timeout = self.aiohttp.ClientTimeout(total=None, sock_read=None)
        async with self.aiohttp.ClientSession(timeout=timeout) as session:
            try:
                async with session.get(self.url + "/events") as r:
                    kind = None
                    async for raw in r.content:
                        line = raw.decode().rstrip("\n")
                        if line.startswith("event: "):
                            kind = line[7:]
                        elif line.startswith("data: ") and kind == "detection":
                            got.append(json.loads(line[6:]))
            except self.aiohttp.ClientPayloadError:
                pass  # the decoy server is killed, not stopped

    async def loris(self) -> None:
        """Half a request, then nothing; when the server closes it, again."""
        while True:
            reader, writer = await asyncio.open_connection(self.host, self.port)
            writer.write(b"GET /status HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            await writer.drain()
            await reader.read()  # returns when the server closes it (idle_timeout_s)
            writer.close()
            self.loris_reopened += 1

    async def unread_stream(self) -> None:
        """An event stream whose reader never reads."""
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, (self.host, self.port))
        await asyncio.get_running_loop().sock_sendall(
            sock, b"GET /events HTTP/1.1\r\nHost: x\r\n\r\n"
        )
        try:
            await asyncio.sleep(3600)
        finally:
            sock.close()


def _ms(values) -> str:
    v = np.asarray(values) * 1e3
    p50, p99 = np.percentile(v, [50, 99])
    return f"p50 {p50:.1f} ms, p99 {p99:.1f} ms, max {v.max():.1f} ms"


def _report(load: Load, detections: list[dict]) -> None:
    print(f"  GET /health ({len(load.health)} requests): {_ms(load.health)}")
    if not load.clients:
        s = load.status
        print(f"  status: overflows {s.get('overflows')}, underflows {s.get('underflows')}")
        return
    print(f"  100 concurrent GET /status, slowest answer per burst: {_ms(load.bursts)} "
          f"({len(load.bursts)} bursts)")  # fmt: skip
    print(
        f"  stalled: 5 half-sent requests (closed and re-opened {load.loris_reopened} times), "
        "5 unread event streams"
    )
    complete = sum(1 for got in load.readers if got == detections)
    print(f"  /events readers with every detection, in order: {complete} of {len(load.readers)} "
          f"({len(detections)} detections)")  # fmt: skip
    s = load.status
    print(f"  status: overflows {s.get('overflows')}, underflows {s.get('underflows')}, "
          f"dropped_frames {s.get('dropped_frames')}, load {s.get('load', 0):.3f}")  # fmt: skip


def pipe_benchmark(seconds: float) -> bool:
    tmp = tempfile.mkdtemp(prefix="streamconv-bench-control-")
    rng = np.random.default_rng(1)
    taps = signal.firwin(255, 8000, fs=RATE)
    n = int((seconds + 2) * RATE)  # the stream outlasts the load
    x = 0.05 * rng.normal(size=(n, 2))
    bells = np.arange(RATE, n - RATE, 2 * RATE)
    for s in bells:
        x[s : s + len(_bell(RATE)), 1] += _bell(RATE)
    np.save(os.path.join(tmp, "x.npy"), x.astype("<f8"))
    config = _config(
        tmp,
        f'[source]\nuri = "-"\nformat = "f64le"\nrate = {RATE}\nchannels = 2\n',
        '[sink]\nuri = "out.raw"\nformat = "f64le"\n',
        taps,
    )
    started = os.path.join(tmp, "t0")
    feeder = subprocess.Popen(
        [sys.executable, "-c", FEEDER, os.path.join(tmp, "x.npy"), str(RATE), started],
        stdout=subprocess.PIPE,
    )
    proc, url = _start(config, stdin=feeder.stdout)
    feeder.stdout.close()
    open(started + ".go", "w").close()

    def lag(frames_in: int) -> float:
        if not os.path.exists(started) or not os.path.getsize(started):
            return 0.0
        t0 = float(open(started).read())
        written = min(n, (time.monotonic() - t0) * RATE)
        return (written - frames_in) / RATE

    async def go():
        load = await Load(url, seconds, lag).run()
        feeder.wait()
        await asyncio.get_running_loop().run_in_executor(None, proc.wait)
        await load.finish_readers(10)
        return load

    print(f"pipe: {seconds:g} s of 48 kHz stereo f64 through a 255-tap filter and a template")
    load = asyncio.run(go())
    detections = [json.loads(line) for line in open(os.path.join(tmp, "det.jsonl"))]
    _report(load, detections)
    lags = np.asarray(load.lags)
    print(f"  behind real time (feeder minus service): median {1e3 * np.median(lags):.0f} ms, "
          f"max {1e3 * lags.max():.0f} ms")  # fmt: skip
    y = np.fromfile(os.path.join(tmp, "out.raw"), dtype="<f8").reshape(-1, 2)
    expected = signal.lfilter(taps, 1, x, axis=0)
    exact = len(y) == n and np.allclose(y, expected, rtol=0, atol=1e-9 * np.abs(expected).max())
    print(f"  output: {len(y)} of {n} frames, equal to lfilter of the input: {exact}")
    print(f"  exit code {proc.returncode}; {len(detections)} detections "
          f"(planted {len(bells)})")  # fmt: skip
    return exact and proc.returncode == 0


DECOY = """
import sys, time
from streamconv.control import ControlServer, EventHub
status = {"state": "running", "frames_in": 0, "overflows": 0, "underflows": 0,
          "dropped_frames": 0, "load": 0.0}
server = ControlServer("127.0.0.1:0", lambda: status, list, hub=EventHub()).start()
print(server.address, flush=True)
sys.stdin.read()
"""


def device_benchmark(seconds: float, mode: str) -> None:
    """`mode`: "baseline" (only the /health probe), "service" (the clients on the service) or
    "decoy" (the clients on a control server in another process: the CPU they take, without
    the service serving them)."""
    from audio_server import JackServer

    if not JackServer.available():
        print("device: jackd not installed, skipped")
        return
    server = JackServer(sample_rate=RATE, period=1024, make_default=False).start()
    decoy = None
    try:
        tmp = tempfile.mkdtemp(prefix="streamconv-bench-control-")
        taps = np.zeros(255)
        taps[0] = 0.5
        config = _config(
            tmp,
            f'[source]\nuri = "device:loopback"\nrate = {RATE}\nchannels = 2\n',
            '[sink]\nuri = "device:loopback"\n',
            taps,
        )
        proc, url = _start(config, env={**os.environ, **server.env()})
        target = url
        if mode == "decoy":
            decoy = subprocess.Popen(
                [sys.executable, "-c", DECOY], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                text=True,
            )  # fmt: skip
            target = decoy.stdout.readline().strip()
        what = {
            "baseline": "no clients but /health",
            "service": "with the clients",
            "decoy": "the same clients on a control server in another process",
        }[mode]
        print(f"device: {seconds:g} s on a JACK dummy server's loopback at 48 kHz stereo, "
              f"period 1024, {what}")  # fmt: skip

        async def go():
            load = await Load(target, seconds, clients=mode != "baseline").run()
            async with load.aiohttp.ClientSession() as session:
                async with session.get(url + "/status") as r:
                    load.status = await r.json()  # the service's, also in decoy mode
            proc.terminate()
            await asyncio.get_running_loop().run_in_executor(None, proc.wait)
            if decoy is not None:
                decoy.stdin.close()
            await load.finish_readers(10)
            return load

        load = asyncio.run(go())
        _report(load, [json.loads(line) for line in open(os.path.join(tmp, "det.jsonl"))])
        print(f"  exit code {proc.returncode}")
    finally:
        if decoy is not None:
            decoy.kill()
            decoy.wait()
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--skip-device", action="store_true")
    args = parser.parse_args()
    ok = pipe_benchmark(args.seconds)
    if not args.skip_device:
        for mode in ("baseline", "service", "decoy"):
            device_benchmark(args.seconds, mode)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
