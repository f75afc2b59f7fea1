"""Find a chirp buried in noise at -3 dB SNR, streaming the signal through a Matcher in blocks.

    python examples/find_chirp.py

Plants a 50 ms chirp at random times in 20 s of white noise twice as strong as the chirp,
feeds the noise in 1024-frame blocks, and prints each detection as it becomes final next to
where the chirp really is.
"""

import numpy as np
import scipy.signal

import streamconv as sc

SAMPLE_RATE = 16000


def main() -> None:
    rng = np.random.default_rng(7)
    t = np.arange(int(0.05 * SAMPLE_RATE)) / SAMPLE_RATE
    chirp = scipy.signal.chirp(t, f0=500, t1=t[-1], f1=4000) * np.hanning(len(t))
    x = rng.normal(size=20 * SAMPLE_RATE) * np.sqrt(2 * np.mean(chirp**2))  # -3 dB SNR
    planted = np.sort(rng.choice(np.arange(0, len(x) - len(chirp), 4 * len(chirp)), 6, False))
    for start in planted:
        x[start : start + len(chirp)] += chirp

    matcher = sc.Matcher({"chirp": chirp}, sample_rate=SAMPLE_RATE, threshold=0.4)
    found = []
    for block in np.array_split(x, len(x) // 1024):
        for d in matcher.process(block):
            found.append(d)
            print(f"{d.template} at sample {d.sample} ({d.time:.4f} s), score {d.score:.3f}")
    found += matcher.flush()

    print(f"planted at {planted.tolist()}")
    print(f"found at   {[d.sample for d in found]}")
    print("all found at the exact sample" if [d.sample for d in found] == planted.tolist() else
          "MISMATCH")  # fmt: skip


if __name__ == "__main__":
    main()
