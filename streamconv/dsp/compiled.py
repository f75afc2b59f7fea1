"""The compiled engines: the loops of :mod:`streamconv.dsp.engines` in C, one call per block.

The extension ``streamconv.dsp._fastconv`` (C source beside this file, built at install by
setup.py) runs a whole :meth:`process` call: copy-in, the overlap-save head's FFTs through
FFTW, the delay line's multiply-accumulate, the later partitions, copy-out; and the direct
form. Its plans and partitions are exactly those of the numpy engines, so it computes the same
output (to rounding). :func:`available` says whether it can run here; when it cannot (not
built, no compiler at install, or ``STREAMCONV_ENGINE=numpy`` in the environment), the numpy
engines run instead.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from types import ModuleType
from typing import TYPE_CHECKING

import numpy as np

from streamconv.dsp import fftw
from streamconv.dsp.engines import Kernel, Segment, check_plan

if TYPE_CHECKING:
    from streamconv.dsp._fastconv import Engine

_fastconv: ModuleType | None
try:  # FFTW must be loaded first: the extension finds its functions in the process
    from streamconv.dsp import _fastconv
except ImportError as exc:  # not built: the numpy engines run
    _fastconv = None
    IMPORT_ERROR: str | None = str(exc)
else:
    IMPORT_ERROR = None

# FFTW planner flags (fftw3.h): the compiled plans measure when pyFFTW's would.
_FFTW_MEASURE = 0
_FFTW_ESTIMATE = 1 << 6


def available() -> bool:
    """True if the compiled engines run in this process (built, and not switched off by
    ``STREAMCONV_ENGINE=numpy``)."""
    return _fastconv is not None and os.environ.get("STREAMCONV_ENGINE", "") != "numpy"


def _extension() -> ModuleType:
    """The extension module; `RuntimeError` where it is not built (see `available`)."""
    if _fastconv is None:
        raise RuntimeError(f"the compiled engines are not built here: {IMPORT_ERROR}")
    return _fastconv


def _paths(kernel: Kernel) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Input channel, output channel and taps ``(L, paths)`` of every filter path."""
    taps = kernel.taps
    pin, pout, cols = [], [], []
    if kernel.kind == "diagonal":
        groups, shared = taps.shape[1], taps.shape[2] == 1
        for c in range(kernel.out_channels):
            for p in range(groups):
                pin.append(p * kernel.out_channels + c)
                pout.append(c)
                cols.append(taps[:, p, 0 if shared else c])
    else:
        for o in range(kernel.out_channels):
            for i in range(kernel.in_channels):
                pin.append(i)
                pout.append(o)
                cols.append(taps[:, i, o])
    return (
        np.asarray(pin, np.int32),
        np.asarray(pout, np.int32),
        np.stack(cols, axis=1),
    )


class _Compiled:
    """What both compiled engines share: ``process(x)`` and ``reset()`` are the C engine's own
    methods (no Python function in between: at 32-frame blocks that is 10% of a call)."""

    kernel: Kernel
    dtype: np.dtype
    backend = "compiled"
    _engine: Engine
    process: Callable[[np.ndarray], np.ndarray]
    reset: Callable[[], None]

    def _bind(self, engine: Engine) -> None:
        self._engine = engine
        self.process = engine.process  # (n, Cin) -> new (n, Cout) array
        self.reset = engine.reset


class CompiledDirectEngine(_Compiled):
    """:class:`streamconv.dsp.engines.DirectEngine` in C."""

    name = "direct"

    def __init__(self, kernel: Kernel, dtype: np.dtype):
        self.kernel = kernel
        self.dtype = np.dtype(dtype)
        pin, pout, taps = _paths(kernel)
        taps = np.ascontiguousarray(taps.T, dtype=self.dtype)  # (paths, L)
        double = self.dtype == np.float64
        self._bind(
            _extension().direct(
                double, kernel.in_channels, kernel.out_channels, pin, pout, taps, *_alloc(dtype)
            )
        )


class CompiledPartitionedEngine(_Compiled):
    """:class:`streamconv.dsp.engines.PartitionedEngine` in C (same plans, same checks)."""

    def __init__(self, kernel: Kernel, plan: tuple[Segment, ...], dtype: np.dtype, name: str):
        check_plan(plan)
        self.name = name
        self.kernel = kernel
        self.plan = plan
        self.dtype = np.dtype(dtype)
        pin, pout, taps = _paths(kernel)
        cdtype = np.complex128 if self.dtype == np.float64 else np.complex64
        segments = []
        for seg in plan:
            k, size = seg.count, seg.fft_size
            piece = np.zeros((k * seg.length, taps.shape[1]))
            part = taps[seg.offset : seg.offset + k * seg.length]
            piece[: part.shape[0]] = part
            parts = piece.reshape(k, seg.length, -1)
            spectra = np.fft.rfft(parts, n=size, axis=1) / size  # the inverse is unnormalized
            spectra = np.ascontiguousarray(np.transpose(spectra, (2, 0, 1)), dtype=cdtype)
            segments.append((seg.offset, seg.block, seg.length, k, size, spectra))
        flags = _FFTW_MEASURE if fftw.measuring() else _FFTW_ESTIMATE
        with fftw.PLAN_LOCK:
            engine = _extension().partitioned(
                self.dtype == np.float64,
                kernel.in_channels,
                kernel.out_channels,
                pin,
                pout,
                segments,
                flags,
                *_alloc(dtype),
            )
        self._bind(engine)


def _alloc(dtype: np.dtype) -> tuple[object, np.dtype]:
    """What the C engine makes its outputs with: ``numpy.empty(shape, dtype)``."""
    return np.empty, np.dtype(dtype)
