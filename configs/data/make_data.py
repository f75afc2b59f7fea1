"""Write the small data files the example configs in ``configs/`` refer to.

The outputs are committed next to this script; rerun it to regenerate them exactly:

    python configs/data/make_data.py

- ``bell.wav``: the bell template of ``examples/make_example.py`` (48 kHz, mono).
- ``room_correction.wav``: a stereo correction impulse response (48 kHz, 1023 taps) that cuts a
  room mode at 60-90 Hz by 6 dB; the right channel also arrives one sample later.
- ``knock.csv``: a knock template of a 1 kHz vibration sensor (a decaying 120 Hz burst).
- ``vibration.csv``: 5 s of that sensor: noise with a knock at 1.0 s, 2.5 s and 4.2 s.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import soundfile
from scipy import signal

HERE = Path(__file__).resolve().parent
SENSOR_RATE = 1000
KNOCK_TIMES_S = (1.0, 2.5, 4.2)


def _make_example():
    path = HERE.parent.parent / "examples" / "make_example.py"
    spec = importlib.util.spec_from_file_location("make_example", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def knock() -> np.ndarray:
    t = np.arange(100) / SENSOR_RATE
    return np.sin(2 * np.pi * 120 * t) * np.exp(-t / 0.02)


def main() -> None:
    example = _make_example()
    soundfile.write(HERE / "bell.wav", example.bell(), example.SAMPLE_RATE, subtype="FLOAT")

    h = signal.firls(1023, [0, 50, 60, 90, 100, 24000], [1, 1, 0.5, 0.5, 1, 1], fs=48000)
    ir = np.zeros((1024, 2))
    ir[:1023, 0] = h
    ir[1:, 1] = h
    soundfile.write(HERE / "room_correction.wav", ir, 48000, subtype="FLOAT")

    np.savetxt(HERE / "knock.csv", knock(), fmt="%.6f", header="knock", comments="")
    rng = np.random.default_rng(7)
    x = 0.05 * rng.standard_normal(5 * SENSOR_RATE)
    for at in KNOCK_TIMES_S:
        start = int(at * SENSOR_RATE)
        x[start : start + 100] += knock()
    np.savetxt(HERE / "vibration.csv", x, fmt="%.5f", header="vibration", comments="")


if __name__ == "__main__":
    main()
