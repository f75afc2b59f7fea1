"""I/O benchmarks for ``streamconv filter``. Run: ``python benchmarks/bench_io.py``.

1. File to file, 48 kHz stereo float WAV, taps 255 and 65536: ``streamconv filter`` against
   ``sox in.wav out.wav fir taps.txt``, both timed as whole processes.
2. Peak memory (max RSS) of the same job on a 1-minute and a 10-minute file.
3. Live: ``streamconv filter -i device:loopback -o device:loopback --block 256`` for 60 s on a
   JACK dummy server (tests/audio_server.py), with its overflow/underflow counts, and the
   device-to-device latency measured from the echoes of a click (gain 0.5 per trip).

Options: ``--minutes M`` (default 10), ``--runs N`` (default 3), ``--soak S`` (default 60),
``--skip-files``, ``--skip-live``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests"))
STREAMCONV = [sys.executable, "-m", "streamconv.cli"]


def timed(cmd, env=None) -> tuple[float, float, int]:
    """Wall time, CPU time (user + sys) and max RSS (kB) of one process, through a wrapper.

    ``sync`` first: the previous run's output is still being written back, and a process that
    starts while the kernel flushes 230 MB is slowed by it, whichever program it is.
    """
    wrapper = (
        "import os, resource, subprocess, sys, time; os.sync(); t = time.perf_counter(); "
        "subprocess.run(sys.argv[1:], check=True); wall = time.perf_counter() - t; "
        "r = resource.getrusage(resource.RUSAGE_CHILDREN); "
        "print(wall, r.ru_utime + r.ru_stime, r.ru_maxrss)"
    )
    cmd = [sys.executable, "-c", wrapper, *cmd]
    out = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, **(env or {})})
    if out.returncode:
        raise SystemExit(f"failed: {' '.join(cmd)}\n{out.stderr}")
    wall, cpu, rss = out.stdout.split()
    return float(wall), float(cpu), int(rss)


def best_of(runs: int, commands: dict) -> dict:
    """Run the (command, env) pairs interleaved `runs` times; the best wall and CPU time."""
    best = {}
    for _ in range(runs):
        for name, (cmd, env) in commands.items():
            wall, cpu, rss = timed(cmd, env)
            old = best.get(name, (wall, cpu, rss))
            best[name] = (min(wall, old[0]), min(cpu, old[1]), max(rss, old[2]))
    return best


def byte_compile() -> str:
    """Byte-compile the streamconv that the runs import, as ``pip install`` does for an
    installed package. An editable install (``make``) has no ``.pyc`` files until Python
    writes them, and with ``PYTHONDONTWRITEBYTECODE=1`` in the environment it never does:
    every run would compile its ~40 modules from source first, ~0.035 s of start-up that an
    installed streamconv does not have."""
    code = "import os, streamconv; print(os.path.dirname(streamconv.__file__))"
    found = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    where = found.stdout.strip()
    subprocess.run([sys.executable, "-m", "compileall", "-q", where], check=True)
    return where


def file_benchmarks(tmp: str, minutes: float, runs: int) -> None:
    """sox against streamconv without FFTW wisdom (a first run on a machine) and with the
    wisdom of one ``--fft-measure`` run (every later run); the speed-up is the latter's."""
    print(f"byte-compiled {byte_compile()} (as an installed package is)")
    print(f"load average before: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    rng = np.random.default_rng(0)
    taps = {
        255: np.hanning(257)[1:-1],
        65536: rng.normal(size=65536) * np.exp(-np.arange(65536) / 8000),
    }
    for n, h in taps.items():
        np.savetxt(os.path.join(tmp, f"h{n}.txt"), h / np.abs(h).sum(), fmt="%.9g")
    for m in sorted({1.0, minutes}):
        path = os.path.join(tmp, f"in{m:g}.wav")
        subprocess.run(["sox", "-n", "-r", "48000", "-c", "2", "-e", "float", "-b", "32", path,
                        "synth", str(m * 60), "whitenoise", "vol", "0.3"], check=True)  # fmt: skip
    np.savetxt(os.path.join(tmp, "h1.txt"), [1.0])
    no_wisdom = {"STREAMCONV_FFTW_WISDOM": os.path.join(tmp, "none.json")}
    wisdom = {"STREAMCONV_FFTW_WISDOM": os.path.join(tmp, "wisdom.json")}
    print(f"best of {runs} interleaved runs, whole processes, wall s (CPU s); 48 kHz stereo float")
    print("| taps | file | sox | streamconv, no wisdom | streamconv | speed-up wall (CPU) "
          "| RSS MB sox/sc |")  # fmt: skip
    print("|---|---|---|---|---|---|---|")
    for n in taps:
        fir = os.path.join(tmp, f"h{n}.txt")
        for m in sorted({1.0, minutes}):
            src = os.path.join(tmp, f"in{m:g}.wav")
            sc = [*STREAMCONV, "filter", "-i", src, "-o", os.path.join(tmp, "sc.wav"), "--fir", fir]
            timed([*sc, "--fft-measure", "--duration", "1"], wisdom)  # measure this job's FFTs
            best = best_of(runs, {
                "sox": (["sox", src, os.path.join(tmp, "sox.wav"), "fir", fir], None),
                "plain": (sc, no_wisdom),
                "sc": (sc, wisdom),
            })  # fmt: skip
            (t_sox, c_sox, rss_sox), (t_sc, c_sc, rss_sc) = best["sox"], best["sc"]
            t_plain, c_plain, _ = best["plain"]
            row = [f"{t_sox:.2f} ({c_sox:.2f})", f"{t_plain:.2f} ({c_plain:.2f})",
                   f"{t_sc:.2f} ({c_sc:.2f})", f"{t_sox / t_sc:.2f}x ({c_sox / c_sc:.2f}x)",
                   f"{rss_sox / 1024:.0f}/{rss_sc / 1024:.0f}"]  # fmt: skip
            print(f"| {n} | {m:g} min | " + " | ".join(row) + " |")
    print(f"load average after: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    print()
    print("floor: the same file copied without filtering (read + write, whole processes)")
    print(
        "| file | MB in + out | sox in.wav out.wav | streamconv, 1 tap | sox fir 255 taps, 2.0x |"
    )
    print("|---|---|---|---|---|")
    for m in sorted({1.0, minutes}):
        src = os.path.join(tmp, f"in{m:g}.wav")
        mb = 2 * os.path.getsize(src) / 1e6
        sc = [*STREAMCONV, "filter", "-i", src, "-o", os.path.join(tmp, "sc.wav"),
              "--fir", os.path.join(tmp, "h1.txt")]  # fmt: skip
        best = best_of(runs, {
            "sox": (["sox", src, os.path.join(tmp, "sox.wav")], None),
            "sc": (sc, no_wisdom),
            "fir": (["sox", src, os.path.join(tmp, "sox.wav"), "fir",
                     os.path.join(tmp, "h255.txt")], None),
        })  # fmt: skip
        (t_sox, c_sox, _), (t_sc, c_sc, _), (t_fir, _, _) = best["sox"], best["sc"], best["fir"]
        print(f"| {m:g} min | {mb:.0f} | {t_sox:.2f} ({c_sox:.2f}) | {t_sc:.2f} ({c_sc:.2f}) "
              f"| {t_fir / 2:.2f} |")  # fmt: skip


def live_benchmark(seconds: float) -> None:
    from audio_server import JackServer

    if not JackServer.available():
        print("live: jackd not installed, skipped")
        return
    server = JackServer().start()
    try:
        tmp = tempfile.mkdtemp()
        h = np.zeros(255)
        h[0] = 0.5  # gain 0.5: the loop through the loopback device decays
        np.savetxt(os.path.join(tmp, "h.txt"), h)
        cmd = [*STREAMCONV, "filter", "-i", "device:loopback", "-o", "device:loopback",
               "--fir", os.path.join(tmp, "h.txt"), "--block", "256", "--rate", "48000",
               "--channels", "1", "--duration", str(seconds), "--stats"]  # fmt: skip
        proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True, env={**os.environ})
        time.sleep(3)
        from streamconv.io.devices import DeviceSink, DeviceSource

        with DeviceSource("loopback", 48000, 1, 1024, dtype=np.float32) as rec:
            rec.read(1024)
            with DeviceSink("loopback", 48000, 1, 1024) as play:
                click = np.zeros((48000, 1), np.float32)
                click[0] = 1.0
                play.write(np.zeros((4096, 1), np.float32))
                play.write(click)
            y = np.concatenate([rec.read(1024) for _ in range(60)])[:, 0]
        _, err = proc.communicate(timeout=seconds + 60)
        peaks = np.flatnonzero(np.abs(y) > 0.01)
        print(f"live {seconds:g} s at block 256: {err.strip()}")
        if len(peaks) > 1:
            spacing = np.diff(peaks)
            print(f"click echoes at {peaks[:5].tolist()} (amplitudes "
                  f"{np.round(y[peaks[:5]], 4).tolist()}); loop latency (filter in -> out plus "
                  f"the loopback's own delay) {spacing[0]} frames = "
                  f"{1000 * spacing[0] / 48000:.1f} ms")  # fmt: skip
    finally:
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--soak", type=float, default=60.0)
    parser.add_argument("--runs", type=int, default=3, help="interleaved runs per file job")
    parser.add_argument("--skip-files", action="store_true")
    parser.add_argument("--skip-live", action="store_true")
    args = parser.parse_args()
    if not args.skip_files:
        if shutil.which("sox") is None:
            raise SystemExit("sox is needed (Debian: sox)")
        with tempfile.TemporaryDirectory() as tmp:
            file_benchmarks(tmp, args.minutes, args.runs)
    if not args.skip_live:
        live_benchmark(args.soak)


if __name__ == "__main__":
    main()
