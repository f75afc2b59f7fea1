"""`streamconv match` on dask: a 20-file archive and one long chunked file, 1 vs 2 workers.

Goal: 2 workers at least 1.7x faster than 1 on a 2-core machine, for both. Each run
gets a fresh cluster as ``--jobs`` starts it (`archive.make_client`: worker processes of one
thread each), whose every worker is warmed up first (imports, FFT set-up), so times exclude
starting the cluster; the detections must equal the 1-worker run's. Runs of 1 and 2 workers
alternate, ``--reps`` times, so that load from other programs falls on both alike: the speed-up
is given as the median of the 1/2-worker pairs and for the best times (the least disturbed
runs), with the CPU time the workers used (equal for 1 and 2 workers when splitting the work
costs nothing) and the CPU time other programs took during each 2-worker run (a 2-worker run
much slower than half the 1-worker one means the cores were busy with something else), and the
median speed-up of the pairs during which other programs took less than a tenth of a core.
Linux only (``/proc/stat``).

    .venv/bin/python benchmarks/bench_archive.py [--minutes 2] [--long-minutes 40] [--reps 3]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

from streamconv import archive
from streamconv.cli import build_parser
from streamconv.commands import match
from streamconv.detect import load_templates

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


def warm_up(template: str) -> int:
    """On a worker: import and run everything a task uses once (a small match)."""
    import streamconv.archive  # noqa: F401
    from streamconv.detect import Template
    from streamconv.dsp.matcher import Matcher

    t = Template("t", template)
    x = np.random.default_rng(0).normal(size=(5 * RATE, 1))
    Matcher({"t": t.samples}, RATE, channels=1).process(x)
    return os.getpid()


def cpu_seconds() -> float:
    """CPU time of this process so far (user + system)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def busy_seconds() -> float:
    """CPU time the whole machine has spent busy (or stolen by the hypervisor) so far."""
    with open("/proc/stat") as f:
        fields = [int(v) for v in f.readline().split()[1:9]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def timed(client, paths, template, chunk_s):
    argv = ["match", *map(str, paths), "-t", str(template), "-q"]
    args = build_parser("match").parse_args(argv)
    out = ListWriter()
    t0 = time.perf_counter()
    templates, options = load_templates(args.template), match.options(args)
    code = archive.run_archive(args.files, templates, options, out.write, client, chunk_s,
                               quiet=True)  # fmt: skip
    assert code == 0
    return time.perf_counter() - t0, out.records


def run(workers: int, paths, template, chunk_s):
    """Time one run on a fresh ``--jobs workers`` cluster (the one the command starts)."""
    client = archive.make_client(jobs=workers)
    try:
        pids = client.run(warm_up, str(template))
        assert len(set(pids.values()) - {os.getpid()}) == workers  # one process each
        assert set(client.nthreads().values()) == {1}
        before = sum(client.run(cpu_seconds).values()), cpu_seconds(), busy_seconds()
        seconds, records = timed(client, paths, template, chunk_s)
        after = sum(client.run(cpu_seconds).values()), cpu_seconds(), busy_seconds()
        workers_cpu, ours, busy = (b - a for a, b in zip(before, after, strict=True))
        return seconds, workers_cpu, busy - workers_cpu - ours, records
    finally:
        client.close()
        client.close_cluster()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--minutes", type=float, default=2.0, help="length of each archive file")
    p.add_argument("--long-minutes", type=float, default=40.0, help="length of the long file")
    p.add_argument("--chunk", type=float, default=60.0, help="chunk of the long file, seconds")
    p.add_argument("--reps", type=int, default=3, help="runs of each worker count")
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
            (f"1 long file, {opts.chunk:g} s chunks", [root / "b" / "rec000.wav"], opts.chunk),
        ]
        for name, paths, chunk_s in cases:
            hours = sum(sf.info(str(p)).duration for p in paths) / 3600
            times, cpu, others, results = {1: [], 2: []}, {1: [], 2: []}, [], {}
            for _ in range(opts.reps):
                for workers in (1, 2):
                    seconds, used, other, results[workers] = run(workers, paths, template, chunk_s)
                    times[workers].append(seconds)
                    cpu[workers].append(used)
                others.append(other)
                assert results[1] == results[2], "the detections differ between 1 and 2 workers"
            pairs = [a / b for a, b in zip(times[1], times[2], strict=True)]
            # Undisturbed: other programs took less than a tenth of a core meanwhile.
            quiet = [r for r, b, c in zip(pairs, times[2], others, strict=True) if c < 0.1 * b]
            quiet_text = f"{statistics.median(quiet):.2f}x" if quiet else "none"
            runs = ", ".join(
                f"{a:.2f}/{b:.2f} s ({c:.1f})"
                for a, b, c in zip(times[1], times[2], others, strict=True)
            )
            print(
                f"{name}: {hours:.2f} h of audio, {len(results[1])} detections, 1 worker "
                f"{hours * 3600 / statistics.median(times[1]):.0f}x real time\n"
                f"  1/2 workers {runs}\n"
                f"  (in brackets: CPU seconds other programs took during the 2-worker run)\n"
                f"  workers' CPU {statistics.median(cpu[1]):.2f}/{statistics.median(cpu[2]):.2f} s"
                f"; speed-up {statistics.median(pairs):.2f}x (median of the pairs), "
                f"{min(times[1]) / min(times[2]):.2f}x (best times), {quiet_text} (median of "
                f"the {len(quiet)} undisturbed pairs)"
            )


if __name__ == "__main__":
    main()
