"""Matcher throughput and memory against a whole-signal scipy baseline, side by side.

10 min of 16 kHz mono, four templates of 0.15, 0.5, 1 and 2 s. The streaming Matcher is fed
1 s blocks; the baseline runs ``scipy.signal.correlate(x, t, "valid")`` plus cumulative-sum
normalization per template on the whole signal in memory. Prints times, the speed-up, the
largest score difference between the two, and the peak memory each one allocated (tracemalloc;
the Matcher's also on a quarter of the signal: it must not grow with the signal).

    python benchmarks/bench_match.py [--minutes 10]
"""

from __future__ import annotations

import argparse
import time
import tracemalloc

import numpy as np
from scipy import signal

from streamconv import Matcher

RATE = 16000
LENGTHS_S = (0.15, 0.5, 1.0, 2.0)


def baseline_ncc(x: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Whole-signal NCC: scipy correlate for the numerator, cumulative sums for the variance."""
    length = len(t)
    tc = t - t.mean()
    num = signal.correlate(x, tc, "valid")
    c1 = np.concatenate([[0.0], np.cumsum(x)])
    c2 = np.concatenate([[0.0], np.cumsum(x * x)])
    s1 = c1[length:] - c1[:-length]
    s2 = c2[length:] - c2[:-length]
    var = np.maximum(s2 - s1 * s1 / length, 0.0)
    den = np.sqrt(np.sum(tc * tc) * var)
    return np.where(var > 1e-10 * s2, num / np.where(den > 0, den, 1.0), 0.0)


def make_signal(minutes: float, rng) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    x = rng.normal(size=int(minutes * 60 * RATE))
    templates = {}
    for k, seconds in enumerate(LENGTHS_S):
        t = rng.normal(size=int(seconds * RATE))
        templates[f"t{seconds:g}s"] = t
        for start in rng.integers(0, len(x) - len(t), 3) if k else []:
            x[start : start + len(t)] += t
    return x, templates


def run_matcher(x, templates):
    m = Matcher(templates, RATE, threshold=0.5)
    dets = []
    for a in range(0, len(x), RATE):
        dets += m.process(x[a : a + RATE])
    return dets + m.flush()


def run_baseline(x, templates):
    return {name: baseline_ncc(x, t) for name, t in templates.items()}


def measure(fn, *args):
    tracemalloc.start()
    t0 = time.perf_counter()
    out = fn(*args)
    seconds = time.perf_counter() - t0
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return out, seconds, peak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    args = parser.parse_args()
    x, templates = make_signal(args.minutes, np.random.default_rng(0))
    _, _, mem_quarter = measure(run_matcher, x[: len(x) // 4], templates)
    dets, t_match, mem_match = measure(run_matcher, x, templates)
    scores, t_base, mem_base = measure(run_baseline, x, templates)
    worst = max(abs(d.score - scores[d.template][d.sample]) for d in dets) if dets else 0.0
    mib = 2**20
    print(f"signal: {args.minutes:g} min at {RATE} Hz ({len(x)} samples), templates {LENGTHS_S} s")
    print(f"Matcher, 1 s blocks : {t_match:7.2f} s  peak alloc {mem_match / mib:8.1f} MiB")
    print(f"Matcher, 1/4 signal :            peak alloc {mem_quarter / mib:8.1f} MiB")
    print(f"scipy whole signal  : {t_base:7.2f} s  peak alloc {mem_base / mib:8.1f} MiB")
    print(f"speed-up            : {t_base / t_match:7.2f} x")
    print(f"detections {len(dets)}, max |score - baseline score| at them: {worst:.2e}")


if __name__ == "__main__":
    main()
