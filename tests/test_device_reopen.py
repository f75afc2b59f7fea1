"""A sound device that disappears mid-stream: its JACK server ends, then starts again.

The service must stay up, say ``reopening`` in ``/status`` while the device is away, and carry
on when it is back; ``filter`` gives up after ``--reopen`` seconds with exit 1. Each test runs
its own JACK server (`private_jack`), which it stops under the running command; the session's
server is not touched.
"""

import os
import signal
import subprocess
import time

import numpy as np
import pytest
import soundfile as sf
from prometheus_client.parser import text_string_to_metric_families
from service_proc import CLI, Service, get, poll
from sse_client import EventReader

from streamconv.io.reopen import BACKOFF_FIRST_S, BACKOFF_MAX_S, Backoff

RATE = 48000


def test_backoff_doubles_from_a_tenth_of_a_second_to_a_cap():
    backoff = Backoff()
    delays = [backoff.next() for _ in range(9)]
    assert delays == [0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 5.0, 5.0, 5.0]
    assert (BACKOFF_FIRST_S, BACKOFF_MAX_S) == (0.1, 5.0)


def _metric(text: str, name: str, stream: str) -> float:
    families = {m.name: m for m in text_string_to_metric_families(text)}
    return next(s.value for s in families[name].samples if s.labels == {"stream": stream})


def test_service_stays_up_while_its_device_is_away_and_reopens_it(private_jack, tmp_path):
    sock = tmp_path / "ctl.sock"
    (tmp_path / "run.toml").write_text(
        f'[source]\nuri = "device:{private_jack.device}"\nrate = {RATE}\nchannels = 1\n\n'
        f'[sink]\nuri = "device:{private_jack.device}"\n\n'
        "[processing]\nblock_size = 256\n\n"
        '[[filters]]\ntype = "gain"\ngain_db = -120\n\n'  # plays near-silence: no feedback loop
        f'[control]\nlisten = "unix:{sock}"\n'
    )
    svc = Service(tmp_path / "run.toml", env={**os.environ, **private_jack.env()})
    events = None
    try:
        url = svc.base_url()
        events = EventReader(url)  # /events over the unix socket: device loss and reopen
        svc.wait_line("running: ")
        before = poll(url, lambda s: s["frames_in"] >= RATE // 2, service=svc)
        assert before["source"]["state"] == "running" and before["source"]["reopens"] == 0

        private_jack.disappear()  # the device goes away under the running service
        away = poll(url, lambda s: s["state"] == "reopening", service=svc)
        assert away["source"]["state"] == "reopening"
        assert "stopped" in away["source"]["last_error"]
        svc.wait_line(f"device:{private_jack.device} input: lost: ")
        # It keeps trying, with backoff, and stays up meanwhile.
        svc.wait_line(f"device:{private_jack.device} input: reopen attempt 2 failed: ")
        frames_away = get(url, "/status")["frames_in"]
        metrics = get(url, "/metrics")
        assert _metric(metrics, "streamconv_device_up", "source") == 0

        private_jack.start()  # the same server name again: the device is back
        back = poll(
            url,
            lambda s: s["state"] == "running" and s["frames_in"] >= frames_away + RATE // 2,
            timeout=30,
            service=svc,
        )
        assert back["source"]["reopens"] == 1
        assert back["reopens"] >= 1
        # The gap was at least the two failed attempts' backoff: 0.1 + 0.2 s.
        assert back["dropped_frames"] >= 0.3 * RATE
        svc.wait_line(f"device:{private_jack.device} input: audio again after ")
        device = f"device:{private_jack.device} input: "
        for what in ("lost: ", "reopen attempt 2 failed: ", "audio again after "):
            events.wait("device", lambda d, w=device + what: d["message"].startswith(w))
        levels = events.wait("levels", lambda d: d["sample"] > frames_away)[1]
        assert len(levels["input"]["peak_dbfs"]) == len(levels["output"]["rms_dbfs"]) == 1
        metrics = get(url, "/metrics")
        assert _metric(metrics, "streamconv_device_reopens", "source") == 1
        assert _metric(metrics, "streamconv_device_up", "source") == 1

        # The sink device went away too; it is reopened on the next write after the source.
        sink = poll(url, lambda s: s["sink"]["reopens"] == 1, service=svc)["sink"]
        assert sink["state"] == "running" and sink["dropped_frames"] > 0

        svc.proc.send_signal(signal.SIGTERM)
        assert svc.finish() == 0, svc.log
    finally:
        if events is not None:
            events.close()
        svc.kill()
    assert not any("Traceback" in line for line in svc.log), svc.log


def test_filter_gives_up_on_a_lost_device_after_reopen_seconds(private_jack, tmp_path):
    np.savetxt(tmp_path / "h.txt", [1.0])
    out = tmp_path / "out.wav"
    proc = subprocess.Popen(
        [*CLI, "filter", "-i", f"device:{private_jack.device}", "-o", str(out), "--fir",
         str(tmp_path / "h.txt"), "--rate", str(RATE), "--channels", "1", "--block", "256",
         "--reopen", "0.5"],
        stderr=subprocess.PIPE, text=True, env={**os.environ, **private_jack.env()},
    )  # fmt: skip
    try:
        time.sleep(1.5)  # recording
        assert proc.poll() is None
        t0 = time.monotonic()
        private_jack.disappear()
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 1, err
    assert time.monotonic() - t0 < 10
    lines = err.strip().splitlines()
    assert lines[-1].startswith(f"error: device:{private_jack.device}: lost for good: ")
    assert lines[-1].endswith("(not back within 0.5 s)")
    assert any("reopen attempt 1 failed" in line for line in lines), err
    assert "Traceback" not in err
    assert not out.exists()  # a failed job leaves no file that looks whole


@pytest.mark.parametrize("kind", ["input", "output"])
def test_a_device_that_does_not_exist_is_a_usage_error_at_once(private_jack, tmp_path, kind):
    """No reopening for a device that never was: exit 2 at start, with the device named."""
    np.savetxt(tmp_path / "h.txt", [1.0])
    sf.write(tmp_path / "in.wav", np.zeros(100), RATE)
    locator = "device:no such device"
    args = ["-i", locator, "-o", "null"] if kind == "input" else ["-i", "in.wav", "-o", locator]
    proc = subprocess.run(
        [*CLI, "filter", *args, "--fir", "h.txt", "--rate", str(RATE), "--channels", "1"],
        capture_output=True, text=True, env={**os.environ, **private_jack.env()}, timeout=60,
        cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith(f"error: {locator}: no such {kind} device")
    assert proc.stderr.count("\n") == 1


def test_the_service_exits_1_for_a_device_that_is_not_there(private_jack, tmp_path):
    """The service, unlike `filter`, takes a missing device for a failure of the machine: exit
    1, which systemd retries (docs/configuration.md), after one error line naming it."""
    (tmp_path / "run.toml").write_text(
        f'[source]\nuri = "device:no such device"\nrate = {RATE}\nchannels = 1\n'
        '[sink]\nuri = "null"\n'
    )
    proc = subprocess.run(
        [*CLI, "run", "-c", "run.toml"], capture_output=True, text=True, cwd=tmp_path,
        env={**os.environ, **private_jack.env()}, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 1, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert errors == [line for line in errors if "no such input device" in line], proc.stderr
    assert len(errors) == 1 and errors[0].startswith("error: device:no such device: "), errors
    assert "Traceback" not in proc.stderr
