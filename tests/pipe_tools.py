"""Helpers of the pipe tests (sox, ffmpeg, flac on the other end): the shell that runs a
pipeline with this tree's streamconv, and the exact oracle of the dyadic filter they use."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np

# Dyadic taps: with 16-bit input every product and sum is exact in float32, so the direct
# engine's output is exact and its rounding to 16 bits is known exactly (np.rint of eighths).
TAPS_8THS = np.array([4, 2, 1])
STREAMCONV = [sys.executable, "-m", "streamconv.cli"]


def shell(cmd: str, cwd) -> subprocess.CompletedProcess:
    """Run `cmd` in bash with pipefail; ``streamconv `` in it is this tree's."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    sc = " ".join(STREAMCONV)
    return subprocess.run(
        ["bash", "-o", "pipefail", "-c", cmd.replace("streamconv ", sc + " ")],
        cwd=cwd, capture_output=True, env=env, timeout=120,
    )  # fmt: skip


def filtered(x: np.ndarray) -> np.ndarray:
    """The dyadic filter's output of `x` (frames x channels, integers), in eighths: exact."""
    x = x.astype(np.int64)
    return np.stack([np.convolve(x[:, c], TAPS_8THS)[: len(x)] for c in range(x.shape[1])], 1)


def oracle16(x: np.ndarray) -> np.ndarray:
    """The filter's output rounded to 16 bits, in integers (exact: eighths of an LSB)."""
    return np.clip(np.rint(filtered(x) / 8), -32768, 32767).astype(np.int16)
