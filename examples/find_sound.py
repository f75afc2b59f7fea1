"""Find a recorded sound in a long recording, reading the file in blocks.

    python examples/find_sound.py [RECORDING.wav TEMPLATE.wav]

Without arguments it uses the example recording of `make run` (examples/data/example.wav,
made by examples/make_example.py: a sweep on the left, tones on the right, noise, and a "bell"
rung at 1.5, 4.25 and 7.0 s) and a separate recording of the bell as the template
(examples/data/bell.wav). Both channels are scored together (``combine="mean"``): the sweep
passes through the bell's pitch near 5 s and fools the left channel alone, not both.
The same search from the command line:

    streamconv match examples/data/example.wav -t examples/data/bell.wav --combine \
        --threshold 0.5 --plot examples/data
"""

import sys
from pathlib import Path

import soundfile

import streamconv as sc

HERE = Path(__file__).parent
DATA = HERE / "data"


def example_files() -> tuple[Path, Path]:
    sys.path.insert(0, str(HERE))
    import make_example

    recording, template = DATA / "example.wav", DATA / "bell.wav"
    DATA.mkdir(exist_ok=True)
    if not recording.exists():
        soundfile.write(recording, make_example.example_signal(), make_example.SAMPLE_RATE)
    if not template.exists():
        soundfile.write(template, make_example.bell(), make_example.SAMPLE_RATE, subtype="FLOAT")
    return recording, template


def main() -> None:
    if len(sys.argv) == 3:
        recording, template_path = Path(sys.argv[1]), Path(sys.argv[2])
    else:
        recording, template_path = example_files()
    template, template_rate = soundfile.read(template_path, dtype="float64")
    with soundfile.SoundFile(recording) as f:
        if f.samplerate != template_rate:
            sys.exit(f"error: {template_path} is at {template_rate} Hz, {recording} at "
                     f"{f.samplerate} Hz (streamconv match resamples it for you)")  # fmt: skip
        matcher = sc.Matcher(
            {template_path.stem: template}, f.samplerate, threshold=0.5, combine="mean"
        )
        detections = []
        for block in f.blocks(blocksize=65536, dtype="float64", always_2d=True):
            detections += matcher.process(block)
        detections += matcher.flush()
    for d in detections:
        print(f"{d.template}: {d.time:8.4f} s (sample {d.sample}), channel {d.channel}, "
              f"score {d.score:.3f}")  # fmt: skip
    if not detections:
        print("nothing found above 0.5")
    print(f"{len(detections)} detections")


if __name__ == "__main__":
    main()
