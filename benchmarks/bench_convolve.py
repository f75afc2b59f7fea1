"""Streaming convolution throughput against pedalboard and scipy, measured in one run.

48 kHz stereo float32 noise through random decaying filters, for every filter length L and
block size B, streamed block by block:

- streamconv: ``Convolver(taps, block_size=B).process(block)``
- pedalboard: ``Convolution(ir).process(block, sr, buffer_size=B, reset=False)``
- lfilter: ``scipy.signal.lfilter(taps, 1, block, zi=zi)`` (skipped where it would take
  minutes: its cost is L per sample)
- oaconvolve: ``scipy.signal.oaconvolve`` on the whole signal at once (the offline bound)

Throughput is "x real time" (seconds of audio per second of wall time); ratios are streamconv
over the others (> 1: streamconv is faster). Usage: ``python benchmarks/bench_convolve.py
[--seconds S] [--lengths 255,4096,65536] [--blocks 64,256,1024]``.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import scipy.signal

import streamconv as sc

SAMPLE_RATE = 48000
CHANNELS = 2
LFILTER_MAX_LENGTH = 4096


def best_of(repeats: int, fn) -> float:
    """Smallest wall time of ``repeats`` runs of ``fn()`` (the least disturbed one)."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def stream_streamconv(x, taps, block):
    conv = sc.Convolver(taps, block_size=block, channels=CHANNELS)

    def run():
        conv.reset()
        for i in range(0, x.shape[0], block):
            conv.process(x[i : i + block])

    return run, conv


def stream_pedalboard(x, taps, block):
    import pedalboard

    ir = np.ascontiguousarray(np.stack([taps, taps]))
    plugin = pedalboard.Convolution(ir, sample_rate=SAMPLE_RATE)
    xt = np.ascontiguousarray(x.T)  # pedalboard takes (channels, frames)

    def run():
        plugin.reset()
        for i in range(0, xt.shape[1], block):
            plugin.process(xt[:, i : i + block], SAMPLE_RATE, buffer_size=block, reset=False)

    return run


def stream_lfilter(x, taps, block):
    def run():
        zi = np.zeros((taps.shape[0] - 1, CHANNELS), np.float32)
        for i in range(0, x.shape[0], block):
            _, zi = scipy.signal.lfilter(taps, [1.0], x[i : i + block], axis=0, zi=zi)

    return run


def rt(audio_seconds: float, wall: float | None) -> str:
    return f"{audio_seconds / wall:.1f}" if wall else "-"


def ratio(other: float | None, ours: float) -> str:
    return f"{other / ours:.2f}" if other else "-"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="audio per run")
    parser.add_argument("--lengths", default="255,4096,65536")
    parser.add_argument("--blocks", default="64,256,1024")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    lengths = [int(v) for v in args.lengths.split(",")]
    blocks = [int(v) for v in args.blocks.split(",")]

    rng = np.random.default_rng(0)
    frames = int(args.seconds * SAMPLE_RATE)
    x = (0.1 * rng.standard_normal((frames, CHANNELS))).astype(np.float32)
    try:
        import pedalboard  # noqa: F401

        have_pedalboard = True
    except ImportError:
        have_pedalboard = False
        print("pedalboard is not installed: its column is empty (pip install pedalboard)")

    header = (
        f"{'L':>6} {'B':>5} {'method':>11} {'streamconv':>10} {'pedalbrd':>9} {'lfilter':>8} "
        f"{'oaconv':>8} {'vs pb':>6} {'vs lfilt':>8} {'oa/sc':>6}"
    )
    print(
        f"x real time, 48 kHz stereo float32, {args.seconds:g} s of audio, best of {args.repeats}"
    )
    print(header)
    for length in lengths:
        decay = np.exp(-np.arange(length) / (length / 5))
        taps = (0.1 * rng.standard_normal(length) * decay).astype(np.float32)
        offline = best_of(
            args.repeats, lambda t=taps: scipy.signal.oaconvolve(x, t[:, None], axes=0)
        )
        for block in blocks:
            run, conv = stream_streamconv(x, taps, block)
            ours = best_of(args.repeats, run)
            pb = (
                best_of(args.repeats, stream_pedalboard(x, taps, block))
                if have_pedalboard
                else None
            )
            lf = None
            if length <= LFILTER_MAX_LENGTH:
                lf = best_of(1, stream_lfilter(x, taps, block))

            print(
                f"{length:>6} {block:>5} {conv.method:>11} {rt(args.seconds, ours):>10} "
                f"{rt(args.seconds, pb):>9} {rt(args.seconds, lf):>8} "
                f"{rt(args.seconds, offline):>8} {ratio(pb, ours):>6} {ratio(lf, ours):>8} "
                f"{ours / offline:>6.2f}"
            )


if __name__ == "__main__":
    main()
