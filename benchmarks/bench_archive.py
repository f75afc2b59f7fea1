"""`streamconv match` on dask: a 20-file archive and one long chunked file, 1 vs 2 workers.

Goal (issue 7): 2 workers at least 1.7x faster than 1 on a 2-core machine, for both. Times
exclude starting the cluster (the workers are warmed up with one small run first) and check
that the detections equal the 1-worker run.

    .venv/bin/python benchmarks/bench_archive.py [--minutes 2] [--long-minutes 40]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf
from dask.distributed import Client, LocalCluster

from streamconv import archive
from streamconv.cli import build_parser
from streamconv.commands import match

RATE = 16000


class ListWriter:
    def __init__(self):
        self.records = []

    def write(self, record):
        self.records.append(record)


def make_archive(root: Path, t: np.ndarray, files: int, minutes: float, rng) -> None:
    for i in range(files):
        x = 0.5 * rng.normal(size=int(minutes * 60 * RATE)).astype(np.float32)
        for s in rng.integers(0, len(x) - len(t), size=20):
            x[s : s + len(t)] += t
        sf.write(root / f"rec{i:03d}.wav", x, RATE, subtype="FLOAT")


def timed(client, paths, template, chunk_s):
    argv = ["match", *map(str, paths), "-t", str(template), "-q"]
    args = build_parser("match").parse_args(argv)
    out = ListWriter()
    t0 = time.perf_counter()
    code = archive.run_archive(args, match.load_templates(args), out, client, chunk_s)
    assert code == 0
    return time.perf_counter() - t0, out.records


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--minutes", type=float, default=2.0, help="length of each archive file")
    p.add_argument("--long-minutes", type=float, default=40.0, help="length of the long file")
    opts = p.parse_args()
    rng = np.random.default_rng(1)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "a").mkdir()
        (root / "b").mkdir()
        t = rng.normal(size=1600) * np.hanning(1600)  # 0.1 s of shaped noise
        template = root / "template.wav"
        sf.write(template, t, RATE, subtype="FLOAT")
        make_archive(root / "a", t, 20, opts.minutes, rng)
        make_archive(root / "b", t, 1, opts.long_minutes, rng)
        cases = [
            ("20 files", sorted((root / "a").glob("rec*.wav")), 1e9),
            ("1 long file, 60 s chunks", [root / "b" / "rec000.wav"], 60.0),
        ]
        for name, paths, chunk_s in cases:
            hours = sum(sf.info(str(p)).duration for p in paths) / 3600
            times, results = {}, {}
            for workers in (1, 2):
                with LocalCluster(
                    n_workers=workers, threads_per_worker=1, dashboard_address=":0"
                ) as cluster, Client(cluster) as client:  # fmt: skip
                    timed(client, paths[:1], template, 1e9)  # warm up the workers
                    times[workers], results[workers] = timed(client, paths, template, chunk_s)
            assert results[1] == results[2], "the detections differ between 1 and 2 workers"
            print(
                f"{name}: {hours:.2f} h of audio, {len(results[1])} detections; "
                f"1 worker {times[1]:.2f} s ({hours * 3600 / times[1]:.0f}x real time), "
                f"2 workers {times[2]:.2f} s: speed-up {times[1] / times[2]:.2f}x"
            )


if __name__ == "__main__":
    main()
