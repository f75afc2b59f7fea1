"""The planner's cost model: a few constants per backend, measured on the machine.

The partition planner (:mod:`streamconv.dsp.engines`) and ``method="auto"`` pick the plan of
least predicted CPU time, and ``streamconv check`` reports that time as the expected load. The
prediction is linear in five constants (seconds)::

    FFT segment, per block:  fft * (Cin + Cout) * F * log2(F) + mac * K * (F/2 + 1) * paths + run
    direct form, per block:  direct * L * paths * B + call * paths

The numpy engines and the compiled ones have very different constants (a numpy call costs
~1 us, which is most of ``run``; in C ``run`` is ~0.1 us), so each backend has its own.
:func:`calibrate` measures them: it times the real engines on a handful of plans (about two
seconds) and fits the constants by non-negative least squares. ``streamconv check --calibrate``
runs it and keeps the result beside the FFTW wisdom (:mod:`streamconv.wisdom`), which loads it
with the wisdom; without one, the defaults below (measured on a 2-core x86-64 machine) apply.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np

BACKENDS = ("compiled", "numpy")


@dataclass(frozen=True)
class CostModel:
    """Seconds per unit of work (see the module docstring)."""

    fft: float  # per real sample * log2(size) of one FFT
    mac: float  # per complex multiply-accumulate
    run: float  # per segment block: calls, copies, loop overhead
    direct: float  # per real multiply-accumulate of the direct form
    call: float  # per process() call and path of the direct form
    source: str = "default"  # "default" or "calibrated <date>"

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> CostModel:
        values = {k: float(data[k]) for k in ("fft", "mac", "run", "direct", "call")}
        if not all(np.isfinite(v) and v >= 0 for v in values.values()):
            raise ValueError(f"bad cost model constants {values}")
        return cls(**values, source=str(data.get("source", "calibrated")))


DEFAULTS = {
    # streamconv check --calibrate on the 2-core x86-64 development machine
    "compiled": CostModel(fft=0.15e-9, mac=0.32e-9, run=0.66e-6, direct=0.037e-9, call=0.31e-6),
    "numpy": CostModel(fft=0.15e-9, mac=1.5e-9, run=15e-6, direct=0.4e-9, call=3e-6),
}
_measured: dict[str, CostModel] = {}


def current(backend: str) -> CostModel:
    """The model the planner uses for ``backend``: the calibrated one if loaded, else default."""
    return _measured.get(backend, DEFAULTS[backend])


def use(models: dict[str, CostModel]) -> None:
    """Make ``models`` (backend -> model, e.g. loaded from a calibration file) current."""
    _measured.update({k: v for k, v in models.items() if k in BACKENDS})


# Plans timed by `calibrate`: (filter length, block N, partitions K) of one uniformly
# partitioned segment, and (length, block) of the direct form; chosen to span the FFT sizes
# and MAC counts the planner trades off.
_FFT_CASES = ((16, 16, 1), (1024, 64, 16), (256, 256, 1), (2048, 32, 64), (2048, 1024, 2),
              (4096, 4096, 1), (512, 128, 4))  # fmt: skip
_DIRECT_CASES = ((32, 64), (256, 64), (256, 16), (64, 256))


def calibrate(backend: str, seconds: float = 2.0, channels: int = 2) -> CostModel:
    """Measure ``backend``'s constants on this machine (about ``seconds`` of wall time).

    Every case is timed a few times, interleaved with the others so a burst of load elsewhere
    hits one repetition, not one case; the fastest repetition counts.
    """
    from scipy.optimize import nnls  # only here: filter runs must not import scipy

    from streamconv.dsp import compiled, engines

    if backend == "compiled" and not compiled.available():
        raise RuntimeError(f"the compiled engine is not available: {compiled.IMPORT_ERROR}")
    direct_cls = compiled.CompiledDirectEngine if backend == "compiled" else engines.DirectEngine
    part_cls = (
        compiled.CompiledPartitionedEngine if backend == "compiled" else engines.PartitionedEngine
    )
    rng = np.random.default_rng(0)
    f32 = np.dtype(np.float32)
    x = rng.standard_normal((16384, channels)).astype(f32)

    def kernel(length: int) -> engines.Kernel:
        taps = rng.standard_normal((length, 1, 1)).astype(np.float32)
        return engines.Kernel(taps, "diagonal", channels, channels)

    cases: list[tuple[list[float], Any, int]] = []  # (features per frame, engine, block)
    for length, block, count in _FFT_CASES:
        k = kernel(length)
        seg = engines.Segment(0, block, block, count)
        size = seg.fft_size
        features = [
            2 * channels * size * np.log2(size) / block,
            count * (size // 2 + 1) * k.paths / block,
            1 / block,
            0.0,
            0.0,
        ]
        cases.append((features, part_cls(k, (seg,), f32, "uniform"), block))
    for length, block in _DIRECT_CASES:
        k = kernel(length)
        features = [0.0, 0.0, 0.0, length * k.paths, k.paths / block]
        cases.append((features, direct_cls(k, f32), block))

    best = [np.inf] * len(cases)
    deadline = time.perf_counter() + seconds
    rounds = 0
    while rounds < 3 or (time.perf_counter() < deadline and rounds < 20):
        for i, (_, engine, block) in enumerate(cases):
            blocks = [x[j : j + block] for j in range(0, x.shape[0] - block + 1, block)]
            blocks = blocks[: max(8, 4096 // block)]
            start = time.perf_counter()
            for b in blocks:
                engine.process(b)
            per_frame = (time.perf_counter() - start) / (len(blocks) * block)
            best[i] = min(best[i], per_frame)
        rounds += 1
    rows = np.array([c[0] for c in cases])
    times = np.array(best)
    # Relative error matters (cheap and dear cases alike): weight each row by 1 / its time.
    fft_rows, direct_rows = slice(0, len(_FFT_CASES)), slice(len(_FFT_CASES), None)
    w = 1 / times
    fft_coef, _ = nnls(rows[fft_rows, :3] * w[fft_rows, None], np.ones(len(_FFT_CASES)))
    dir_coef, _ = nnls(rows[direct_rows, 3:] * w[direct_rows, None], np.ones(len(_DIRECT_CASES)))
    fft, mac, run = (float(v) for v in fft_coef)
    direct, call = (float(v) for v in dir_coef)
    source = "calibrated " + time.strftime("%Y-%m-%d %H:%M")
    model = CostModel(fft=fft, mac=mac, run=run, direct=direct, call=call, source=source)
    # A constant the fit zeroed (its effect below the noise) keeps a tenth of its default, so
    # the planner never thinks some work is free.
    floor = DEFAULTS[backend]
    return replace(
        model,
        **{
            name: max(getattr(model, name), getattr(floor, name) / 10)
            for name in ("fft", "mac", "run", "direct", "call")
        },
    )
