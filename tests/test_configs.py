"""Every shipped config in configs/ does what its comment promises.

Configs that read files run as `streamconv run` processes; those on devices or sockets have
their chain and detectors run on the signal the comment describes (a Pipeline built from the
config, as the service builds it). A config without a check here fails the first test.
"""

import importlib.util
import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from scipy import signal
from service_proc import CLI

from streamconv.config import load_config
from streamconv.dsp.group_delay import chain_delay
from streamconv.pipeline import Pipeline

REPO = Path(__file__).resolve().parent.parent
CONFIGS = sorted(p.name for p in (REPO / "configs").iterdir() if p.suffix in (".toml", ".yaml"))
BELLS = [72000, 204000, 336000]  # examples/make_example.py rings the bell at 1.5, 4.25, 7.0 s


def _module(path: Path):
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def repo_copy(tmp_path_factory):
    """configs/ beside examples/data/example.wav, as `make run` leaves them."""
    root = tmp_path_factory.mktemp("repo")
    shutil.copytree(REPO / "configs", root / "configs")
    example = _module(REPO / "examples" / "make_example.py")
    out = root / "examples" / "data" / "example.wav"
    out.parent.mkdir(parents=True)
    sf.write(out, example.example_signal(), example.SAMPLE_RATE)
    return root


def _pipeline(loaded):
    """The service's pipeline for a loaded config (as `streamconv.runner` builds it)."""
    return Pipeline(loaded.compact_taps(), loaded.sample_rate, loaded.channels_in,
                    block_size=loaded.block_size, method=loaded.method,
                    templates=loaded.templates, periodicity=loaded.periodicity)  # fmt: skip


def _run_pipeline(path, x, block=1024):
    pipeline = _pipeline(load_config(str(path)))
    ys, dets = [], []
    for i in range(0, len(x), block):
        y, found = pipeline.process(x[i : i + block])
        ys.append(y)
        dets += found
    return np.concatenate(ys), dets + pipeline.flush()


def _gain_db(y, x, freq, rate):
    """Output over input level of a tone at `freq`, from the steady middle of the signal."""
    n = len(x) // 2
    t = np.arange(n) / rate
    probe = np.exp(-2j * np.pi * freq * t)
    return 20 * np.log10(abs(np.sum(y[n:] * probe)) / abs(np.sum(x[:n] * probe)))


def check_default(root):
    """Finds the bell at 1.5, 4.25 and 7.0 s, writes the filtered audio, exits at the end."""
    cfg = root / "configs" / "default.toml"
    proc = subprocess.run([*CLI, "run", "-c", str(cfg)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    lines = (root / "examples" / "data" / "detections.jsonl").read_text().splitlines()
    dets = [json.loads(line) for line in lines]
    # On the input's timeline: the 897-tap bandpass's 448 samples of delay are taken off. The
    # template is the unfiltered bell and the band cuts some of its partials, so its best
    # match is two of its cycles off the onset (109 samples, 2.3 ms).
    assert [d["template"] for d in dets] == ["bell"] * 3
    assert [d["sample"] for d in dets] == pytest.approx(BELLS, abs=120)
    assert all(d["channel"] is None and d["timeline"] == "input" for d in dets)
    filtered, rate = sf.read(root / "examples" / "data" / "filtered.wav")
    original, _ = sf.read(root / "examples" / "data" / "example.wav")
    assert rate == 48000 and filtered.shape == original.shape
    # The bell's band is kept, the rest goes: 1 kHz passes, 100 Hz and 4 kHz are cut.
    tones = np.stack([np.sin(2 * np.pi * f * np.arange(48000) / 48000) for f in (100, 1000, 4000)])
    y, _ = _run_pipeline(cfg, np.repeat(tones.sum(axis=0)[:, None], 2, axis=1))
    gains = [_gain_db(y[:, 0], tones[k], f, 48000) for k, f in enumerate((100, 1000, 4000))]
    assert gains[1] == pytest.approx(0, abs=0.1) and max(gains[0], gains[2]) < -55


def check_live(root):
    """Device to device: an 80 Hz highpass of 511 samples (10.6 ms) group delay, flat from
    150 Hz, -15 dB at 40 Hz, -25 dB at DC; the bell template is found on the filtered sound."""
    cfg = root / "configs" / "live.toml"
    loaded = load_config(str(cfg))
    assert chain_delay(loaded.taps) == 511
    x, rate = sf.read(root / "examples" / "data" / "example.wav")
    _, dets = _run_pipeline(cfg, x, block=256)
    assert [(d.template, d.sample) for d in dets] == [("bell", s) for s in BELLS]
    _, h = signal.freqz(loaded.taps[:, 0, 0], worN=[80, 150, 40, 0], fs=rate)
    db = 20 * np.log10(abs(h))
    assert db[0] == pytest.approx(-6, abs=0.1) and db[1] > -0.5
    assert db[2] < -14 and db[3] < -24


def check_pipe(root):
    """16 kHz s16le speech in on stdin, band-limited (100 Hz - 3.8 kHz) s16le out on stdout."""
    rate = 16000
    t = np.arange(2 * rate) / rate
    parts = {f: 0.2 * np.sin(2 * np.pi * f * t) for f in (40, 1000, 6000)}
    x = sum(parts.values())
    pcm = np.round(x * 32767).astype("<i2").tobytes()
    cfg = root / "configs" / "pipe.toml"
    proc = subprocess.run([*CLI, "run", "-c", str(cfg)], input=pcm, capture_output=True)
    assert proc.returncode == 0, proc.stderr.decode()
    y = np.frombuffer(proc.stdout, dtype="<i2") / 32767
    assert len(y) == len(x)
    gains = {f: _gain_db(y, p, f, rate) for f, p in parts.items()}
    assert gains[1000] == pytest.approx(0, abs=0.2)
    assert gains[40] < -10 and gains[6000] < -40
    # The two edges where the comments put them: -6 dB at 100 Hz and at 3.8 kHz.
    taps = load_config(str(cfg)).taps[:, 0, 0]
    _, h = signal.freqz(taps, worN=[100, 3800], fs=rate)
    assert 20 * np.log10(abs(h)) == pytest.approx([-6, -6], abs=0.3)


def check_room_correction(root):
    """Each channel convolved with its own column of the correction IR (left on left, right on
    right), then 3 dB of headroom."""
    loaded = load_config(str(root / "configs" / "room_correction.toml"))
    ir, rate = sf.read(root / "configs" / "data" / "room_correction.wav")
    assert rate == loaded.sample_rate == 48000
    rng = np.random.default_rng(5)
    x = rng.normal(size=(4096, 2))
    y, _ = _run_pipeline(root / "configs" / "room_correction.toml", x, block=512)
    want = np.stack([np.convolve(x[:, c], ir[:, c])[: len(x)] for c in (0, 1)], axis=1)
    np.testing.assert_allclose(y, want * 10 ** (-3 / 20), atol=1e-9)
    taps = loaded.taps
    # Not linear phase on every path alike: detections would stay on the filtered timeline.
    assert chain_delay(taps) is None


def check_sensor_match(root):
    """Knocks found at 1.0, 2.5 and 4.2 s of the 1 kHz vibration recording, logged."""
    cfg = root / "configs" / "sensor_match.toml"
    log = root / "knocks.jsonl"
    text = cfg.read_text().replace("/tmp/streamconv-knocks.jsonl", str(log))
    assert text != cfg.read_text()
    cfg.write_text(text)
    proc = subprocess.run([*CLI, "run", "-c", str(cfg)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    dets = [json.loads(line) for line in log.read_text().splitlines()]
    assert [(d["template"], d["sample"]) for d in dets] == [
        ("knock", 1000),
        ("knock", 2500),
        ("knock", 4200),
    ]


def check_udp_sensor(root):
    """3-axis 200 Hz accelerometer: the three axes smoothed, the vertical one kept (below 5 Hz)
    and watched for a 0.5-2 s period such as walking."""
    cfg = root / "configs" / "udp_sensor.yaml"
    rate, rng = 200, np.random.default_rng(4)
    t = np.arange(60 * rate) / rate
    x = rng.normal(scale=0.3, size=(len(t), 3))
    x[:, 0] += np.where(t < 20, np.sin(2 * np.pi * t / 1.5), 0.0)  # sideways sway, first 20 s
    x[:, 2] += np.where(t > 20, np.sin(2 * np.pi * t / 1.1), 0.0)  # a step every 1.1 s
    y, dets = _run_pipeline(cfg, x, block=20)
    assert y.shape == (len(x), 1)
    assert dets and all(d.template == "walking" for d in dets)
    # Only the vertical axis is watched: nothing before its 6 s windows reach the steps.
    assert min(d.time for d in dets) > 20 - 6
    assert np.median([d.period for d in dets]) == pytest.approx(1.1, abs=0.05)


CHECKS = {
    "default.toml": check_default,
    "live.toml": check_live,
    "pipe.toml": check_pipe,
    "room_correction.toml": check_room_correction,
    "sensor_match.toml": check_sensor_match,
    "udp_sensor.yaml": check_udp_sensor,
}


def test_every_config_has_a_check():
    assert set(CHECKS) == set(CONFIGS)


@pytest.mark.parametrize("name", sorted(CHECKS))
def test_config_does_what_its_comment_promises(repo_copy, name):
    CHECKS[name](repo_copy)
