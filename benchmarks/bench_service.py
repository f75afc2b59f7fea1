"""Soak `streamconv run`: minutes of audio through stdin, speed and resident memory over time.

    python benchmarks/bench_service.py [--minutes 10] [--rate 48000]

Feeds noise with a planted template as f32le on stdin (the bell band filter and a template of
configs/default.toml's kind, sink null, detection log in a temporary directory), samples the
child's VmRSS from /proc every second, and prints the speed as a multiple of real time and the
RSS at the start, middle and end (flat memory: no growth after the first minute).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time

import numpy as np


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--minutes", type=float, default=10)
    parser.add_argument("--rate", type=int, default=48000)
    args = parser.parse_args()
    rate, total = args.rate, int(args.minutes * 60 * args.rate)
    tmp = tempfile.mkdtemp(prefix="streamconv-soak-")
    bell = np.sin(2 * np.pi * 1000 * np.arange(4800) / rate) * np.hanning(4800)
    np.save(os.path.join(tmp, "bell.npy"), bell)
    config = os.path.join(tmp, "soak.toml")
    with open(config, "w") as f:
        f.write(
            f'[source]\nuri = "-"\nformat = "f32le"\nrate = {rate}\nchannels = 1\n'
            '[sink]\nuri = "null"\n[processing]\nblock_size = 1024\n'
            '[[filters]]\ntype = "bandpass"\nlow_hz = 500\nhigh_hz = 1500\n'
            "transition_hz = 200\nattenuation_db = 60\n"
            '[[templates]]\nname = "bell"\npath = "bell.npy"\nthreshold = 0.6\n'
            '[detections]\npath = "det.jsonl"\n'
        )
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamconv.cli", "run", "-c", config],
        stdin=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    samples: list[tuple[float, int]] = []
    done = threading.Event()

    def watch():
        while not done.wait(1.0):
            try:
                samples.append((time.monotonic(), rss_kib(proc.pid)))
            except OSError:
                return

    threading.Thread(target=watch, daemon=True).start()
    rng = np.random.default_rng(0)
    chunk = rate * 10
    start = time.monotonic()
    sent = 0
    while sent < total:
        n = min(chunk, total - sent)
        x = 0.1 * rng.normal(size=n)
        x[n // 2 : n // 2 + len(bell)] += bell
        proc.stdin.write(x.astype("<f4").tobytes())
        sent += n
    proc.stdin.close()
    rc = proc.wait()
    elapsed = time.monotonic() - start
    done.set()
    with open(os.path.join(tmp, "det.jsonl")) as f:
        detections = sum(1 for _ in f)
    rss = [r for _, r in samples] or [0]
    print(
        f"{args.minutes:g} min at {rate} Hz: exit {rc}, {elapsed:.1f} s, "
        f"{total / rate / elapsed:.1f}x real time, {detections} detections "
        f"(expected {-(-total // chunk)})"
    )
    print(f"VmRSS KiB: first {rss[0]}, at 1/2 {rss[len(rss) // 2]}, last {rss[-1]}, max {max(rss)}")


if __name__ == "__main__":
    main()
