"""Streaming convolution throughput against pedalboard and scipy, measured in one run.

48 kHz stereo float32 noise through random decaying filters, for every filter length L and
block size B, streamed block by block:

- streamconv: ``Convolver(taps, block_size=B).process(block)`` (the compiled engine when it is
  built; ``--numpy`` adds a column for the numpy fallback)
- pedalboard: ``Convolution(ir).process(block, sr, buffer_size=B, reset=False)``
- oaconvolve: ``scipy.signal.oaconvolve`` on the whole signal at once (the offline bound)

Throughput is "x real time" (seconds of audio per second of wall time). The machine is shared,
so timings are *interleaved* (streamconv, pedalboard, streamconv, ... for each point) and the
best of ``--repeats`` counts: a burst of load elsewhere spoils one repetition of both rather
than all of one. The CPU time other programs took during the run is printed with the results.
The offline bound is timed in the same interleaved rounds as every point, so each ratio
compares runs made under the same load. Then an 8x8 MIMO matrix of 4096-tap filters at B=256
(wall clock, and per CPU second of this process, which load elsewhere does not inflate), and
``streamconv filter --block 64`` on a 10-minute WAV against the engine alone, and the
goals (the GOAL_* constants below), each with PASS/FAIL (judged on the wall clock; the
command's also in CPU time).

Usage: ``python benchmarks/bench_convolve.py [--seconds S] [--repeats N] [--lengths
255,4096,65536] [--blocks 32,64,256,1024] [--numpy] [--command-minutes M]``. Linux
(``/proc/stat``).
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import scipy.signal

import streamconv as sc

SAMPLE_RATE = 48000
CHANNELS = 2
GOAL_PEDALBOARD = 2.0  # streamconv throughput / pedalboard's, every point
GOAL_OFFLINE = 1.5  # streamconv time / oaconvolve's at B=1024
GOAL_MIMO = 100.0  # x real time, 8x8 x 4096 taps at B=256
GOAL_COMMAND = 1.3  # `streamconv filter --block 64` time / the engine's alone


def busy_seconds() -> float:
    """CPU seconds all programs have used since boot (from /proc/stat)."""
    with open("/proc/stat") as f:
        fields = [int(v) for v in f.readline().split()[1:9]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def timed(fn, clock=time.perf_counter) -> float:
    start = clock()
    fn()
    return clock() - start


def interleaved_best(repeats: int, *fns, clock=time.perf_counter) -> list[float]:
    """Best time of each of ``fns`` (wall, or ``clock``), run in turn ``repeats`` times."""
    best = [float("inf")] * len(fns)
    for _ in range(repeats):
        for i, fn in enumerate(fns):
            best[i] = min(best[i], timed(fn, clock))
    return best


def stream_streamconv(x, taps, block):
    conv = sc.Convolver(taps, block_size=block, channels=x.shape[1])
    blocks = [x[i : i + block] for i in range(0, x.shape[0], block)]

    def run():
        conv.reset()
        process = conv.process
        for b in blocks:
            process(b)

    return run, conv


def stream_pedalboard(x, taps, block):
    import pedalboard

    ir = np.ascontiguousarray(np.stack([taps, taps]))
    plugin = pedalboard.Convolution(ir, sample_rate=SAMPLE_RATE)
    xt = np.ascontiguousarray(x.T)  # pedalboard takes (channels, frames)
    blocks = [xt[:, i : i + block] for i in range(0, xt.shape[1], block)]

    def run():
        plugin.reset()
        for b in blocks:
            plugin.process(b, SAMPLE_RATE, buffer_size=block, reset=False)

    return run


def command_vs_engine(minutes: float, repeats: int, block: int = 64, length: int = 4096):
    """``streamconv filter --block B`` on a WAV file (a whole process: start-up, reading,
    converting, writing) against the engine alone (``Convolver.process`` per B-frame block over
    the same samples in memory), interleaved; best (wall, CPU) seconds of each."""
    import resource
    import subprocess
    import sys
    import tempfile

    import soundfile as sf

    rng = np.random.default_rng(1)
    x = (0.1 * rng.standard_normal((int(minutes * 60 * SAMPLE_RATE), CHANNELS))).astype(np.float32)
    taps = (0.01 * rng.standard_normal(length)).astype(np.float32)
    blocks = [x[i : i + block] for i in range(0, x.shape[0], block)]
    best = {"engine": [np.inf, np.inf], "command": [np.inf, np.inf]}
    with tempfile.TemporaryDirectory() as tmp:
        src, fir = os.path.join(tmp, "in.wav"), os.path.join(tmp, "h.txt")
        sf.write(src, x, SAMPLE_RATE, subtype="FLOAT")
        np.savetxt(fir, taps, fmt="%.9g")
        out = os.path.join(tmp, "out.wav")
        cmd = [sys.executable, "-m", "streamconv.cli", "filter", "-i", src, "-o", out,
               "--fir", fir, "--block", str(block), "-q"]  # fmt: skip
        env = {**os.environ, "STREAMCONV_FFTW_WISDOM": os.path.join(tmp, "wisdom.json")}
        for _ in range(repeats):
            conv = sc.Convolver(taps, block_size=block, channels=CHANNELS)
            wall, cpu = time.perf_counter(), time.process_time()
            for b in blocks:
                conv.process(b)
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            best["engine"] = [min(best["engine"][0], wall), min(best["engine"][1], cpu)]
            os.sync()  # the last run's output is not flushed on this run's time
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            wall = time.perf_counter()
            subprocess.run(cmd, env=env, check=True)
            wall = time.perf_counter() - wall
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
            best["command"] = [min(best["command"][0], wall), min(best["command"][1], cpu)]
    return best["engine"], best["command"]


def rt(audio_seconds: float, wall: float | None) -> str:
    return f"{audio_seconds / wall:.1f}" if wall else "-"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="audio per run")
    parser.add_argument("--lengths", default="255,4096,65536")
    parser.add_argument("--blocks", default="32,64,256,1024")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--numpy", action="store_true", help="also time the numpy fallback")
    parser.add_argument(
        "--command-minutes",
        type=float,
        default=10.0,
        help="audio for `streamconv filter --block 64` against the engine alone (0: skip)",
    )
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

    probe = sc.Convolver(np.ones(300, np.float32), block_size=64, channels=CHANNELS)
    print(
        f"x real time, 48 kHz stereo float32, {args.seconds:g} s of audio, interleaved best "
        f"of {args.repeats}; streamconv backend: {probe.backend}"
    )
    print(
        f"{'L':>6} {'B':>5} {'method':>11} {'streamconv':>10} {'pedalbrd':>9} {'oaconv':>8} "
        f"{'vs pb':>6} {'sc/oa':>6}" + (f" {'numpy':>8} {'c/np':>5}" if args.numpy else "")
    )
    cpu0, wall0, own0 = busy_seconds(), time.perf_counter(), time.process_time()
    failures, worst_pb, worst_oa = [], float("inf"), 0.0
    for length in lengths:
        decay = np.exp(-np.arange(length) / (length / 5))
        taps = (0.1 * rng.standard_normal(length) * decay).astype(np.float32)

        def offline_run(t=taps):
            scipy.signal.oaconvolve(x, t[:, None], axes=0)

        for block in blocks:
            run, conv = stream_streamconv(x, taps, block)
            fns = [run, offline_run]  # the offline bound is timed beside every point too
            if have_pedalboard:
                fns.append(stream_pedalboard(x, taps, block))
            if args.numpy:
                os.environ["STREAMCONV_ENGINE"] = "numpy"
                fns.append(stream_streamconv(x, taps, block)[0])
                del os.environ["STREAMCONV_ENGINE"]
            times = interleaved_best(args.repeats, *fns)
            ours, offline = times[0], times[1]
            pb = times[2] if have_pedalboard else None
            line = (
                f"{length:>6} {block:>5} {conv.method:>11} {rt(args.seconds, ours):>10} "
                f"{rt(args.seconds, pb):>9} {rt(args.seconds, offline):>8} "
                f"{pb / ours if pb else float('nan'):>6.2f} {ours / offline:>6.2f}"
            )
            if args.numpy:
                line += f" {rt(args.seconds, times[-1]):>8} {times[-1] / ours:>5.1f}"
            print(line, flush=True)
            if pb:
                worst_pb = min(worst_pb, pb / ours)
                if pb / ours < GOAL_PEDALBOARD:
                    failures.append(f"L={length} B={block}: {pb / ours:.2f}x pedalboard")
            if block == 1024:
                worst_oa = max(worst_oa, ours / offline)
                if ours / offline > GOAL_OFFLINE:
                    failures.append(f"L={length} B=1024: {ours / offline:.2f}x oaconvolve's time")

    # 8x8 MIMO, 4096 taps per path, B=256
    mimo_taps = (0.05 * rng.standard_normal((4096, 8, 8))).astype(np.float32)
    xm = (0.1 * rng.standard_normal((frames, 8))).astype(np.float32)
    run, conv = stream_streamconv(xm, mimo_taps, 256)
    (mimo,) = interleaved_best(args.repeats, run)
    (mimo_cpu,) = interleaved_best(args.repeats, run, clock=time.process_time)
    mimo_rt = args.seconds / mimo
    segments = ", ".join(f"{s.count} x {s.block}" for s in conv.plan)
    print(
        f"8x8 MIMO, 4096 taps per path, B=256 ({segments}): {mimo_rt:.1f}x real time by the "
        f"wall clock, {args.seconds / mimo_cpu:.1f}x per CPU second of this process"
    )

    command = None
    if args.command_minutes > 0:
        engine, command = command_vs_engine(args.command_minutes, args.repeats)
        print(
            f"streamconv filter --block 64, {args.command_minutes:g} min stereo WAV, L=4096: "
            f"wall {command[0]:.2f} s, CPU {command[1]:.2f} s; the engine alone (Convolver per "
            f"64-frame block, samples in memory): wall {engine[0]:.2f} s, CPU {engine[1]:.2f} s"
        )

    wall = time.perf_counter() - wall0
    others = (busy_seconds() - cpu0) - (time.process_time() - own0)
    print(
        f"load: other programs used {max(others, 0) / wall:.2f} of {os.cpu_count()} cores "
        f"during the {wall:.0f} s run (load average {os.getloadavg()[0]:.2f})"
    )
    print("goals:")
    if have_pedalboard:
        ok = worst_pb >= GOAL_PEDALBOARD
        print(f"  {'PASS' if ok else 'FAIL'} >= {GOAL_PEDALBOARD}x pedalboard everywhere "
              f"(worst {worst_pb:.2f}x)")  # fmt: skip
    if 1024 in blocks:
        ok = worst_oa <= GOAL_OFFLINE
        print(f"  {'PASS' if ok else 'FAIL'} B=1024 within {GOAL_OFFLINE}x of oaconvolve "
              f"(worst {worst_oa:.2f}x)")  # fmt: skip
    ok = mimo_rt >= GOAL_MIMO
    per_cpu = args.seconds / mimo_cpu
    print(f"  {'PASS' if ok else 'FAIL'} 8x8 MIMO 4096 taps B=256 >= {GOAL_MIMO:g}x real time "
          f"({mimo_rt:.0f}x wall clock; {per_cpu:.0f}x per CPU second)")  # fmt: skip
    if command is not None:
        by_wall, by_cpu = command[0] / engine[0], command[1] / engine[1]
        print(f"  {'PASS' if by_wall <= GOAL_COMMAND else 'FAIL'} filter --block 64 costs <= "
              f"{GOAL_COMMAND}x the engine alone by the wall clock ({by_wall:.2f}x)")  # fmt: skip
        print(f"  {'PASS' if by_cpu <= GOAL_COMMAND else 'FAIL'} filter --block 64 costs <= "
              f"{GOAL_COMMAND}x the engine alone in CPU time ({by_cpu:.2f}x)")  # fmt: skip
    for failure in failures:
        print(f"    missed: {failure}")


if __name__ == "__main__":
    main()
