"""`streamconv run` recording a real (virtual) sound device: JACK's ``loopback``.

The test plays a chirp into the loopback device while the service records it, filters it,
matches the filtered chirp, and writes the filtered stream to a file. The loopback returns
exact zeros until the chirp comes back, so where the chirp starts in that file is known
exactly, and so is where the detection must be.
"""

import json
import signal
import subprocess
import time

import numpy as np
from scipy import signal as sps
from service_proc import CLI, Service, get, poll
from test_io_devices import play_and_hear

RATE = 48000


def _chirp() -> np.ndarray:
    t = np.arange(2400) / RATE
    # A window that is not zero at its ends: the first frame of the chirp is not silent.
    return 0.5 * sps.chirp(t, 500, t[-1], 4000) * np.hanning(2402)[1:-1]


def test_service_detects_a_chirp_played_through_the_device(audio_server, tmp_path):
    h = np.array([0.5, 0.3, -0.2])
    chirp = _chirp()
    np.save(tmp_path / "chirp.npy", sps.lfilter(h, 1, chirp))  # as it looks after the filter
    taps = ", ".join(repr(float(v)) for v in h)
    (tmp_path / "run.toml").write_text(
        f'[source]\nuri = "device:{audio_server.device}"\nrate = {RATE}\nchannels = 1\n\n'
        '[sink]\nuri = "out.raw"\nformat = "f64le"\n\n'
        "[processing]\nblock_size = 256\n\n"
        f'[[filters]]\ntype = "taps"\nvalues = [{taps}]\n\n'
        '[[templates]]\nname = "chirp"\npath = "chirp.npy"\nthreshold = 0.9\n\n'
        '[detections]\npath = "det.jsonl"\n\n'
        f'[control]\nlisten = "unix:{tmp_path / "ctl.sock"}"\n'
    )
    svc = Service(tmp_path / "run.toml")  # JACK_DEFAULT_SERVER: the session's server
    try:
        url = svc.base_url()
        svc.wait_line("running: ")
        poll(url, lambda s: s["frames_in"] >= RATE // 5, service=svc)
        heard = play_and_hear(audio_server.device, np.concatenate([np.zeros(4096), chirp]))
        # Half a second more of stream: the chirp is through, its detection final.
        played_at = get(url, "/status")["frames_in"]
        status = poll(url, lambda s: s["frames_in"] >= played_at + RATE // 2, service=svc)
        assert status["state"] == "running" and status["source"]["state"] == "running"
        assert status["source"]["device"] == audio_server.device
        assert 0 < status["frames_out"] <= status["frames_in"]
        assert status["dropped_frames"] == 0 and status["source"]["reopens"] == 0
        assert 0 < status["load"] < 1
        recent = get(url, "/detections")

        t0 = time.monotonic()
        svc.proc.send_signal(signal.SIGTERM)
        assert svc.finish() == 0, svc.log
        assert time.monotonic() - t0 < 5
    finally:
        svc.kill()
    print(f"device run: overflows {status['overflows']}, load {status['load']:.3f}")

    y = np.fromfile(tmp_path / "out.raw", "<f8")
    start = int(np.flatnonzero(y)[0])  # where the chirp came back, in the service's frames
    # The service recorded what the device delivered (as this process heard it), filtered.
    came_back = heard[np.flatnonzero(heard)[0] :]
    expected = sps.lfilter(h, 1, came_back.astype(np.float64))
    np.testing.assert_allclose(y[start : start + len(expected)], expected, atol=1e-12)
    assert not np.any(y[start + len(expected) :])
    summary = svc.log[-1]
    assert summary == f"streamconv run: {len(y)} frames in, {len(y)} frames out, 1 detections"
    assert status["detections"] == {"chirp": 1}
    [det] = [json.loads(line) for line in (tmp_path / "det.jsonl").read_text().splitlines()]
    assert recent == [det]
    assert det["sample"] == start and det["time"] == start / RATE
    assert det["score"] > 0.99 and det["channel"] == 0
    # The daemon's detections are `streamconv match`'s on the same samples.
    match = subprocess.run(
        [*CLI, "match", str(tmp_path / "out.raw"), "--format", "f64le", "--rate", str(RATE),
         "--channels", "1", "-t", f"chirp={tmp_path / 'chirp.npy'}", "--threshold", "0.9", "-q"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    matched = [json.loads(line) for line in match.stdout.splitlines()]
    # The chain [0.5, 0.3, -0.2] is not linear phase: the service says its sample is on the
    # filtered stream's timeline, where match on the sink's samples finds it too.
    assert det.pop("timeline") == "filtered" and det.pop("chain_delay") is None
    assert [{k: v for k, v in d.items() if k != "file"} for d in matched] == [det]
