"""Filter a recording through an example FIR with the streaming engine, and say how fast.

The FIR is a 1023-tap Kaiser-window lowpass at 2 kHz (scipy.signal.firwin). The file is read
and filtered in 256-frame blocks, as a live stream would be, and the result is checked against
scipy.signal.oaconvolve on the whole signal.

Usage: python examples/filter_example.py IN.wav [OUT.wav]
"""

import sys
import time
from pathlib import Path

import numpy as np
import scipy.signal
import soundfile

import streamconv as sc

BLOCK = 256


def main(path: str, out_path: str | None = None) -> None:
    info = soundfile.info(path)
    taps = scipy.signal.firwin(1023, 2000, window=("kaiser", 8.0), fs=info.samplerate)
    taps = taps.astype(np.float32)
    conv = sc.Convolver(taps, block_size=BLOCK, channels=info.channels)
    outputs, inputs = [], []
    start = time.perf_counter()
    for block in soundfile.blocks(path, blocksize=BLOCK, dtype="float32", always_2d=True):
        inputs.append(block)
        outputs.append(conv.process(block))
    elapsed = time.perf_counter() - start
    y = np.concatenate(outputs)
    x = np.concatenate(inputs)
    reference = scipy.signal.oaconvolve(x, taps[:, None], axes=0)[: x.shape[0]]
    error = np.abs(y - reference).max() / np.abs(reference).max()
    seconds = info.frames / info.samplerate
    print(f"input     {path}: {seconds:g} s, {info.samplerate} Hz, {info.channels} channels")
    print(
        f"filter    {taps.size}-tap lowpass at 2 kHz, engine {conv.method!r}, "
        f"plan {[(s.offset, s.block, s.count) for s in conv.plan]}"
    )
    print(
        f"streamed  {len(outputs)} blocks of {BLOCK} frames in {elapsed * 1e3:.1f} ms: "
        f"{seconds / elapsed:.0f}x real time, {elapsed / len(outputs) * 1e6:.1f} us per block"
    )
    print(f"exact     max error vs scipy.signal.oaconvolve: {error:.1e} of peak")
    energy_in = 10 * np.log10(np.mean(x**2))
    energy_out = 10 * np.log10(np.mean(y**2))
    print(f"levels    {energy_in:.1f} dBFS in, {energy_out:.1f} dBFS out")
    if out_path:
        Path(out_path).parent.mkdir(parents=True, exist_ok=True)
        soundfile.write(out_path, y, info.samplerate, subtype="FLOAT")
        print(f"wrote     {out_path}")


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit("usage: filter_example.py IN.wav [OUT.wav]")
    main(*sys.argv[1:3])
