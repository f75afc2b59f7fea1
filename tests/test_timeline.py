"""Detections on the input's timeline: the service and `match` agree on where a pattern starts."""

import json
import subprocess

import numpy as np
import soundfile as sf
from scipy import signal
from service_proc import CLI, Service

RATE = 8000
ONSETS = [3000, 11111, 20017]


def _chirp():
    t = np.arange(400) / RATE
    return np.sin(2 * np.pi * (1000 * t + 2500 * t * t)) * np.hanning(len(t))


def _recording(rng):
    x = 0.2 * rng.normal(size=4 * RATE)
    x += 0.5 * np.sin(2 * np.pi * 60 * np.arange(len(x)) / RATE)  # hum the chain removes
    for s in ONSETS:
        x[s : s + 400] += _chirp()
    return x


def _service(tmp_path, taps, x):
    sf.write(tmp_path / "in.wav", x, RATE, subtype="DOUBLE")
    np.save(tmp_path / "chirp.npy", _chirp())
    joined = ", ".join(repr(float(v)) for v in taps)
    (tmp_path / "run.toml").write_text(
        '[source]\nuri = "in.wav"\n[sink]\nuri = "out.raw"\nformat = "f64le"\n'
        f'[[filters]]\ntype = "taps"\nvalues = [{joined}]\n'
        '[[templates]]\nname = "chirp"\npath = "chirp.npy"\nthreshold = 0.5\n'
        '[detections]\npath = "det.jsonl"\n'
    )
    svc = Service(tmp_path / "run.toml")
    assert svc.finish() == 0, svc.log
    return [json.loads(line) for line in (tmp_path / "det.jsonl").read_text().splitlines()]


def _match(path, *raw):
    out = subprocess.run(
        [*CLI, "match", str(path), *raw, "-t", f"chirp={path.parent / 'chirp.npy'}",
         "--threshold", "0.5", "-q"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return [json.loads(line) for line in out.stdout.splitlines()]


def test_service_and_match_agree_through_a_linear_phase_chain(tmp_path, rng):
    x = _recording(rng)
    h = signal.firwin(101, 300, fs=RATE, pass_zero=False)  # 50 samples of delay
    logged = _service(tmp_path, h, x)
    matched = _match(tmp_path / "in.wav")
    assert [d["sample"] for d in matched] == ONSETS
    assert [d["sample"] for d in logged] == ONSETS
    assert [d["time"] for d in logged] == [d["time"] for d in matched]
    assert all(d["timeline"] == "input" and d["chain_delay"] == 50.0 for d in logged)
    assert all("timeline" not in d for d in matched)
    # On the filtered output the chirps sit the chain's delay later.
    raw = ["--format", "f64le", "--rate", str(RATE), "--channels", "1"]
    filtered = _match(tmp_path / "out.raw", *raw)
    assert [d["sample"] for d in filtered] == [s + 50 for s in ONSETS]


def test_other_chains_keep_the_filtered_timeline_and_say_so(tmp_path, rng):
    x = _recording(rng)
    h = signal.minimum_phase(signal.firwin(101, 300, fs=RATE, pass_zero=False))
    logged = _service(tmp_path, h, x)
    raw = ["--format", "f64le", "--rate", str(RATE), "--channels", "1"]
    filtered = _match(tmp_path / "out.raw", *raw)
    assert len(logged) == 3
    assert [d["sample"] for d in logged] == [d["sample"] for d in filtered]
    assert all(d["timeline"] == "filtered" and d["chain_delay"] is None for d in logged)


def test_a_window_at_the_start_is_not_placed_before_the_input():
    """A periodicity window starts at filtered sample 0, in the chain's start-up: on the input's
    timeline it starts at 0 (docs/contract.md: samples count from 0), not at -delay; the later
    windows are moved back by the whole delay, as detections are."""
    from streamconv.detect import PeriodicitySpec
    from streamconv.pipeline import Pipeline

    rate, delay = 200, 50
    h = signal.firwin(2 * delay + 1, 5, fs=rate)
    x = np.sin(2 * np.pi * np.arange(20 * rate) / rate)  # a 1 s period, from the first sample
    spec = PeriodicitySpec("walking", 0.5, 2.0, threshold=0.6, window_s=6, hop_s=1)
    pipe = Pipeline(h, rate, 1, block_size=20, periodicity=[spec])
    found = []
    for i in range(0, len(x), 20):
        found += pipe.process(x[i : i + 20])[1]
    found += pipe.flush()
    samples = [d.sample for d in found]
    assert samples[0] == 0 and found[0].time == 0.0, samples
    assert samples[1:] == [k * rate - delay for k in range(1, len(samples))], samples
    assert all(d.timeline == "input" and d.chain_delay == delay for d in found)
