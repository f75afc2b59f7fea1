"""Track the period of a sensor-like signal: a heartbeat whose rate changes, with drift and noise.

    python examples/periodicity.py

A 100 Hz "pulse sensor": beats that speed up from 60 to 100 per minute over two minutes, on a
wandering baseline, with a noisy stretch in the middle where the sensor slipped. The detector
reports the period every second; the slipped stretch is not periodic and is not detected.
"""

import numpy as np

import streamconv as sc

RATE = 100


def pulse_sensor(rng) -> np.ndarray:
    seconds = 120
    t = np.arange(seconds * RATE) / RATE
    bpm = 60 + 40 * t / seconds
    phase = np.cumsum(bpm / 60 / RATE) % 1.0
    beat = np.exp(-(((phase - 0.2) / 0.04) ** 2)) - 0.25 * np.exp(-(((phase - 0.4) / 0.08) ** 2))
    x = 512 + 40 * beat + 8 * np.sin(2 * np.pi * t / 17) + 2 * rng.normal(size=len(t))
    slipped = (t > 55) & (t < 65)
    x[slipped] = 512 + 30 * rng.normal(size=slipped.sum())
    return x


def main() -> None:
    x = pulse_sensor(np.random.default_rng(3))
    detector = sc.Periodicity(RATE, min_period_s=0.4, max_period_s=1.5, threshold=0.6,
                              window_s=4.0, hop_s=1.0)  # fmt: skip
    for block in np.array_split(x, 60):  # the sensor delivers 2 s at a time
        for e in detector.process(block):
            if e.detected:
                print(f"{e.time:6.1f} s  period {e.period:.3f} s = {60 / e.period:5.1f} bpm  "
                      f"(score {e.score:.2f})")  # fmt: skip
            else:
                print(f"{e.time:6.1f} s  no clear period (best score {e.score:.2f})")


if __name__ == "__main__":
    main()
