"""What the stream runner costs: `streamconv.runner.Runner` against a bare loop doing the same work.

Two cases, each timed in interleaved rounds (median), wall and CPU time of this process (its
threads included):

- a file job: 10 minutes of 48 kHz stereo (16-bit and float WAV) through a 255-tap lowpass, as
  ``streamconv filter`` runs it; the bare loop is the pre-runner ``filter`` loop (read ahead,
  ``Convolver.process``, write behind);
- per-block overhead on a live-sized block (64 frames, memory to memory): the runner's reader
  thread, hooks and counters against ``Pipeline.process`` in a for loop.

Run: ``python benchmarks/bench_runner.py [--minutes M] [--rounds N]``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

import numpy as np
import soundfile as sf
from scipy import signal

from streamconv.dsp.convolve import Convolver
from streamconv.io import MemorySink, MemorySource, open_sink, open_source
from streamconv.io.background import ReadAhead, WriteBehind
from streamconv.pipeline import Pipeline
from streamconv.runner import FILE_BLOCK, READ_AHEAD_FRAMES, Runner

RATE = 48000


def _bare_file_job(inp: str, out: str, taps: np.ndarray) -> None:
    """The loop `streamconv filter` ran before the runner (commands/filter.py ``_run``)."""
    src = open_source(inp, dtype="auto")
    subtype = src.subtype
    conv = Convolver(taps.astype(src.dtype), block_size=FILE_BLOCK, channels=src.channels)
    sink = WriteBehind(open_sink(out, sample_rate=RATE, channels=src.channels, subtype=subtype))
    reader = ReadAhead(src, READ_AHEAD_FRAMES)
    with reader, sink:
        while len(x := reader.read(FILE_BLOCK)):
            sink.write(conv.process(x))


def _runner_file_job(inp: str, out: str, taps: np.ndarray) -> None:
    Runner(inp, out, taps=taps).run()


def _bare_blocks(x: np.ndarray, taps: np.ndarray, block: int) -> None:
    p = Pipeline(taps, RATE, x.shape[1], block_size=block, dtype=x.dtype)
    sink = MemorySink(RATE, x.shape[1])
    for i in range(0, len(x), block):
        y, _ = p.process(x[i : i + block])
        sink.write(y)


def _runner_blocks(x: np.ndarray, taps: np.ndarray, block: int) -> None:
    sink = MemorySink(RATE, x.shape[1])
    Runner(MemorySource(x, RATE), sink, taps=taps, block_size=block).run()


def _time(fn, *args) -> tuple[float, float]:
    w0, c0 = time.perf_counter(), time.process_time()
    fn(*args)
    return time.perf_counter() - w0, time.process_time() - c0


def _rounds(pairs: dict, rounds: int) -> dict:
    times: dict = {name: [] for name in pairs}
    for _ in range(rounds):
        for name, (fn, args) in pairs.items():  # interleaved: the machine's load hits both
            times[name].append(_time(fn, *args))
    return {
        name: (statistics.median(t[0] for t in ts), statistics.median(t[1] for t in ts))
        for name, ts in times.items()
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    taps = signal.firwin(255, 0.2)
    rng = np.random.default_rng(1)
    x = (0.3 * rng.standard_normal((round(args.minutes * 60 * RATE), 2))).astype(np.float32)
    print(f"load average at start: {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
    with tempfile.TemporaryDirectory() as tmp:
        for subtype in ("PCM_16", "FLOAT"):
            inp = os.path.join(tmp, f"in_{subtype}.wav")
            sf.write(inp, x, RATE, subtype=subtype)
            out_a, out_b = os.path.join(tmp, "a.wav"), os.path.join(tmp, "b.wav")
            result = _rounds(
                {
                    "bare loop": (_bare_file_job, (inp, out_a, taps)),
                    "runner": (_runner_file_job, (inp, out_b, taps)),
                },
                args.rounds,
            )
            same = (
                sf.read(out_a, dtype="float32")[0].tobytes()
                == sf.read(out_b, dtype="float32")[0].tobytes()
            )
            print(f"{args.minutes:g} min stereo {subtype} WAV, 255 taps, file to file "
                  f"(outputs identical: {same}):")  # fmt: skip
            for name, (wall, cpu) in result.items():
                print(f"  {name:10s} wall {wall:6.3f} s   cpu {cpu:6.3f} s")
    short = x[: 20 * RATE]
    block = 64
    result = _rounds(
        {
            "bare loop": (_bare_blocks, (short, taps, block)),
            "runner": (_runner_blocks, (short, taps, block)),
        },
        args.rounds,
    )
    blocks = len(short) / block
    print(f"20 s stereo float32 in blocks of {block} frames, memory to memory:")
    for name, (wall, cpu) in result.items():
        print(f"  {name:10s} wall {wall:6.3f} s   cpu {cpu:6.3f} s   "
              f"{1e6 * wall / blocks:6.1f} us per block")  # fmt: skip


if __name__ == "__main__":
    main()
