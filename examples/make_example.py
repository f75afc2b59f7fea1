"""Write the example recording used by `make run`: 10 s of 48 kHz stereo, made on the fly.

A chirp on the left, two tones plus noise on the right, and a short "bell" (a decaying 880 Hz
burst) planted at known times in both, so filters and templates have something to find.

Usage: python examples/make_example.py OUT.wav
"""

import sys
from pathlib import Path

import numpy as np
import scipy.signal
import soundfile

SAMPLE_RATE = 48000
SECONDS = 10.0
BELL_TIMES_S = (1.5, 4.25, 7.0)


def bell(sample_rate: int = SAMPLE_RATE, seconds: float = 0.15) -> np.ndarray:
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    return np.sin(2 * np.pi * 880 * t) * np.exp(-t / 0.04)


def example_signal(sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    rng = np.random.default_rng(2026)
    t = np.arange(int(SECONDS * sample_rate)) / sample_rate
    left = 0.3 * scipy.signal.chirp(t, f0=50, t1=SECONDS, f1=15000, method="logarithmic")
    right = 0.2 * np.sin(2 * np.pi * 440 * t) + 0.1 * np.sin(2 * np.pi * 6000 * t)
    x = np.stack([left, right], axis=1) + 0.02 * rng.standard_normal((t.size, 2))
    b = bell(sample_rate)
    for at in BELL_TIMES_S:
        start = int(at * sample_rate)
        x[start : start + b.size] += 0.5 * b[:, None]
    return (x / np.abs(x).max() * 0.9).astype(np.float32)


if __name__ == "__main__":
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "examples/data/example.wav")
    out.parent.mkdir(parents=True, exist_ok=True)
    soundfile.write(out, example_signal(), SAMPLE_RATE, subtype="FLOAT")
    print(f"wrote {out}: {SECONDS:g} s, {SAMPLE_RATE} Hz, 2 channels")
