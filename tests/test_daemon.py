"""`streamconv run` as a real process: real signals, real HTTP on 127.0.0.1, real files."""

import json
import os
import signal
import subprocess
import time

import numpy as np
import pytest
import soundfile as sf
from prometheus_client.parser import text_string_to_metric_families
from scipy import signal as sps
from service_proc import CLI, Service, get, poll, request

RATE = 8000
BLOCK = 64


def _taps(values) -> str:
    joined = ", ".join(repr(float(v)) for v in values)
    return f'[[filters]]\ntype = "taps"\nvalues = [{joined}]\n'


def _config(tmp_path, source, sink, taps, extra="", name="run.toml"):
    text = f"{source}\n{sink}\n[processing]\nblock_size = {BLOCK}\n\n{_taps(taps)}\n{extra}"
    path = tmp_path / name
    path.write_text(text)
    return path


RAW_IN = f'[source]\nuri = "-"\nformat = "f64le"\nrate = {RATE}\nchannels = 1\n'
RAW_OUT = '[sink]\nuri = "out.raw"\nformat = "f64le"\n'
CONTROL = '[control]\nlisten = "127.0.0.1:0"\n'


def _bells(rng, frames=24000):
    bell = np.sin(2 * np.pi * 500 * np.arange(300) / RATE) * np.hanning(300)
    x = 0.05 * rng.normal(size=frames)
    for start in (2000, 9000, 17777):
        x[start : start + 300] += bell
    return x, bell


def test_file_job_sink_is_filtered_input_and_detections_equal_match(tmp_path, rng):
    x, bell = _bells(rng)
    sf.write(tmp_path / "in.wav", x, RATE, subtype="DOUBLE")
    h = sps.firwin(31, [300, 800], fs=RATE, pass_zero=False)
    np.save(tmp_path / "bell.npy", sps.lfilter(h, 1, bell))
    extra = (
        '[[templates]]\nname = "bell"\npath = "bell.npy"\nthreshold = 0.8\n\n'
        '[detections]\npath = "det.jsonl"\n'
    )
    cfg = _config(tmp_path, '[source]\nuri = "in.wav"\n', RAW_OUT, h, extra)
    svc = Service(cfg)
    assert svc.finish() == 0, svc.log
    y = np.fromfile(tmp_path / "out.raw", dtype="<f8")
    expected = sps.lfilter(h, 1, x)
    np.testing.assert_allclose(y, expected, atol=1e-10 * np.abs(expected).max())
    logged = [json.loads(line) for line in (tmp_path / "det.jsonl").read_text().splitlines()]
    # The input's timeline: the 31-tap linear-phase chain's 15 samples are taken off (the
    # template is the bell through the causal filter, so on the filtered stream it already
    # sits at the onset, and the service says 15 early).
    assert [d["sample"] for d in logged] == [1985, 8985, 17762]
    assert all(d["timeline"] == "input" and d["chain_delay"] == 15 for d in logged)
    match = subprocess.run(
        [*CLI, "match", str(tmp_path / "out.raw"), "--format", "f64le", "--rate", str(RATE),
         "--channels", "1", "-t", f"bell={tmp_path / 'bell.npy'}", "--threshold", "0.8", "-q"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    matched = [json.loads(line) for line in match.stdout.splitlines()]
    # match on the filtered output: the same records on the filtered stream's timeline.
    on_input = [
        {**d, "sample": d["sample"] - 15, "time": (d["sample"] - 15) / RATE} for d in matched
    ]
    assert [{k: v for k, v in d.items() if k != "file"} for d in on_input] == [
        {k: v for k, v in d.items() if k not in ("timeline", "chain_delay")} for d in logged
    ]


def test_quiet_service_logs_no_detection_lines_but_records_them(tmp_path, rng):
    """``run -q``: detections stay out of stderr (journald) and still reach the detection log."""
    x, bell = _bells(rng)
    sf.write(tmp_path / "in.wav", x, RATE, subtype="DOUBLE")
    np.save(tmp_path / "bell.npy", bell)
    extra = (
        '[[templates]]\nname = "bell"\npath = "bell.npy"\nthreshold = 0.8\n\n'
        '[detections]\npath = "det.jsonl"\n'
    )
    cfg = _config(tmp_path, '[source]\nuri = "in.wav"\n', RAW_OUT, [1.0], extra)
    loud = Service(cfg)
    assert loud.finish() == 0, loud.log
    logged = (tmp_path / "det.jsonl").read_text().splitlines()
    assert len(logged) == 3
    assert sum(line.startswith("detection: ") for line in loud.log) == 3
    (tmp_path / "det.jsonl").unlink()
    quiet = Service(cfg, "-q")
    assert quiet.finish() == 0, quiet.log
    assert (tmp_path / "det.jsonl").read_text().splitlines() == logged
    assert not [line for line in quiet.log if line.startswith("detection: ")]


def test_quiet_service_logs_no_notes_but_warnings(tmp_path, rng):
    """``run -q`` leaves out notes, as -q does for every command: the ``ready:`` and
    ``running:`` lines and the summary (it printed them all); a warning still shows."""
    x, _ = _bells(rng)
    sf.write(tmp_path / "in.wav", x, RATE, subtype="DOUBLE")
    sink = '[sink]\nuri = "out.raw"\nformat = "s16le"\n'  # x 40 clips in 16 bits
    cfg = _config(tmp_path, '[source]\nuri = "in.wav"\n', sink, [40.0])
    loud = Service(cfg)
    assert loud.finish() == 0, loud.log
    starts = ("ready: ", "running: ", "streamconv run: ")
    assert [line.split(":")[0] for line in loud.log if line.startswith(starts)] == [
        "ready", "running", "streamconv run"
    ]  # fmt: skip
    warning = [line for line in loud.log if line.startswith("warning: ")]
    assert len(warning) == 1 and warning[0].endswith("samples clipped"), loud.log
    quiet = Service(cfg, "-q")
    assert quiet.finish() == 0, quiet.log
    assert quiet.log == warning


def test_stdin_stream_control_api_metrics_and_reloads(tmp_path, rng):
    h1, h2 = rng.normal(size=17), rng.normal(size=9)
    cfg = _config(tmp_path, RAW_IN, RAW_OUT, h1, CONTROL)
    svc = Service(cfg, stdin=subprocess.PIPE)
    url = svc.base_url()
    x = rng.normal(size=40 * BLOCK)
    a, b, c = 10 * BLOCK, 20 * BLOCK, 40 * BLOCK
    svc.proc.stdin.write(x[:a].astype("<f8").tobytes())
    svc.proc.stdin.flush()
    status = poll(url, lambda s: s["frames_in"] == a)
    assert status["frames_out"] == a and status["config_generation"] == 1
    assert get(url, "/health") == "ok\n"
    metrics = {m.name: m for m in text_string_to_metric_families(get(url, "/metrics"))}
    assert metrics["streamconv_frames_in"].samples[0].value == a
    assert metrics["streamconv_config_generation"].samples[0].value == 1

    # A bad config: logged, reported, the old filter goes on.
    good = cfg.read_text()
    cfg.write_text(good.replace("[processing]", "[processing]\nbolck_size = 3"))
    svc.proc.send_signal(signal.SIGHUP)
    svc.proc.stdin.write(x[a:b].astype("<f8").tobytes())
    svc.proc.stdin.flush()
    status = poll(url, lambda s: s["frames_in"] == b)
    assert status["config_generation"] == 1
    assert "bolck_size" in status["last_reload_error"]
    assert "unknown key" in status["last_reload_error"]

    # A good one: the new filter from the next block on, no sample lost or repeated.
    cfg.write_text(good.replace(_taps(h1), _taps(h2)))
    svc.proc.send_signal(signal.SIGHUP)
    svc.proc.stdin.write(x[b:c].astype("<f8").tobytes())
    svc.proc.stdin.close()
    assert svc.finish() == 0, svc.log
    assert any(line == f"reload: generation 2 runs from frame {b}" for line in svc.log), svc.log
    y = np.fromfile(tmp_path / "out.raw", dtype="<f8")
    assert len(y) == c
    np.testing.assert_allclose(y[:b], np.convolve(x, h1)[:b], atol=1e-12)
    np.testing.assert_allclose(y[b:], np.convolve(x, h2)[b:c], atol=1e-12)


def test_sighup_on_a_silent_source_takes_effect_within_two_seconds(tmp_path, rng):
    """The loop gets control back while nothing arrives (the runner's idle tick), so a reload
    does not wait for the next block of a silent pipe."""
    h1, h2 = rng.normal(size=11), rng.normal(size=5)
    cfg = _config(tmp_path, RAW_IN, RAW_OUT, h1, CONTROL)
    svc = Service(cfg, stdin=subprocess.PIPE)
    try:
        url = svc.base_url()
        x = rng.normal(size=8 * BLOCK)
        svc.proc.stdin.write(x[: 4 * BLOCK].astype("<f8").tobytes())
        svc.proc.stdin.flush()
        poll(url, lambda s: s["frames_in"] == 4 * BLOCK)
        cfg.write_text(cfg.read_text().replace(_taps(h1), _taps(h2)))
        t0 = time.monotonic()
        svc.proc.send_signal(signal.SIGHUP)
        poll(url, lambda s: s["config_generation"] == 2, timeout=2)
        assert time.monotonic() - t0 < 2
        svc.proc.stdin.write(x[4 * BLOCK :].astype("<f8").tobytes())
        svc.proc.stdin.close()
        assert svc.finish() == 0, svc.log
    finally:
        svc.kill()
    y = np.fromfile(tmp_path / "out.raw", dtype="<f8")
    np.testing.assert_allclose(y[: 4 * BLOCK], np.convolve(x, h1)[: 4 * BLOCK], atol=1e-12)
    np.testing.assert_allclose(y[4 * BLOCK :], np.convolve(x, h2)[4 * BLOCK : 8 * BLOCK],
                               atol=1e-12)  # fmt: skip


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_stop_signal_mid_stream_flushes_an_exact_prefix(tmp_path, rng, signum):
    h = rng.normal(size=25)
    cfg = _config(tmp_path, RAW_IN, RAW_OUT, h, CONTROL)
    svc = Service(cfg, stdin=subprocess.PIPE)
    url = svc.base_url()
    x = rng.normal(size=30 * BLOCK + 17)  # the stop comes while a read waits for more
    svc.proc.stdin.write(x.astype("<f8").tobytes())
    svc.proc.stdin.flush()
    poll(url, lambda s: s["frames_in"] == 30 * BLOCK)
    t0 = time.monotonic()
    svc.proc.send_signal(signum)
    assert svc.finish() == 0, svc.log
    assert time.monotonic() - t0 < 5
    y = np.fromfile(tmp_path / "out.raw", dtype="<f8")
    assert len(y) == 30 * BLOCK
    np.testing.assert_allclose(y, np.convolve(x, h)[: len(y)], atol=1e-12)
    svc.proc.stdin.close()


def test_bad_config_exits_2_with_one_error_line(tmp_path):
    cfg = tmp_path / "bad.toml"
    cfg.write_text('[source]\nuri = "missing.wav"\n[sink]\nuri = "null"\n')
    proc = subprocess.run([*CLI, "run", "-c", str(cfg)], capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: ") and "missing.wav" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_sd_notify_speaks_the_notify_socket_protocol(tmp_path, monkeypatch):
    import socket

    from streamconv.daemon import sd_notify

    path = str(tmp_path / "notify")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as server:
        server.bind(path)
        monkeypatch.setenv("NOTIFY_SOCKET", path)
        assert sd_notify("READY=1\nSTATUS=running")
        assert server.recv(4096) == b"READY=1\nSTATUS=running"
    monkeypatch.delenv("NOTIFY_SOCKET")
    assert not sd_notify("READY=1")


def test_ready_reaches_systemd_when_open_then_running_once_audio_flows(tmp_path, rng):
    import socket

    x = rng.normal(size=5 * BLOCK)
    sf.write(tmp_path / "in.wav", x, RATE, subtype="DOUBLE")
    cfg = _config(tmp_path, '[source]\nuri = "in.wav"\n', RAW_OUT, [1.0])
    path = str(tmp_path / "notify")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as server:
        server.bind(path)
        server.settimeout(20)
        svc = Service(cfg, env={**os.environ, "NOTIFY_SOCKET": path})
        assert svc.finish() == 0
        messages = [server.recv(4096).decode() for _ in range(3)]
    assert messages[0] == f"READY=1\nSTATUS=waiting for input from {tmp_path / 'in.wav'}"
    assert messages[1].startswith("STATUS=running")
    assert messages[2] == "STOPPING=1"


def test_watchdog_is_pinged_from_the_loop_while_the_source_is_silent(tmp_path, rng):
    """READY=1 before any input, WATCHDOG=1 every quarter period from the loop's idle tick, and
    STATUS= back to "waiting for input" once the input has stopped for IDLE_STATUS_S."""
    import socket

    from streamconv.daemon import IDLE_STATUS_S

    cfg = _config(tmp_path, RAW_IN, RAW_OUT, [1.0])
    path = str(tmp_path / "notify")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as server:
        server.bind(path)
        server.settimeout(20)
        env = {**os.environ, "NOTIFY_SOCKET": path, "WATCHDOG_USEC": "400000"}
        svc = Service(cfg, stdin=subprocess.PIPE, env=env)
        try:
            assert server.recv(4096).decode() == "READY=1\nSTATUS=waiting for input from -"
            t0 = time.monotonic()
            pings = [server.recv(4096).decode() for _ in range(8)]
            elapsed = time.monotonic() - t0
            assert pings == ["WATCHDOG=1"] * 8
            assert 0.5 < elapsed < 2.5  # every 0.1 s (a quarter of 0.4 s), or the tick's 0.25 s
            svc.proc.stdin.write(rng.normal(size=BLOCK).astype("<f8").tobytes())
            svc.proc.stdin.flush()
            messages = []
            while not messages or not messages[-1].startswith("STATUS=waiting"):
                messages.append(server.recv(4096).decode())
            statuses = [m for m in messages if m != "WATCHDOG=1"]
            assert statuses[0].startswith("STATUS=running")
            assert statuses[1] == (
                f"STATUS=waiting for input from - (none for {IDLE_STATUS_S:g} s)"
            )
            svc.proc.stdin.close()
            assert svc.finish() == 0, svc.log
        finally:
            svc.kill()


def test_control_api_on_a_unix_socket(tmp_path, rng):
    """Real HTTP over AF_UNIX: /health, /status, /metrics (prometheus_client's parser),
    /detections; the socket goes away with the service."""
    sock = tmp_path / "ctl.sock"
    h = rng.normal(size=5)
    x, bell = _bells(rng)
    np.save(tmp_path / "bell.npy", sps.lfilter(h, 1, bell))  # matched on the filtered stream
    extra = (
        f'[control]\nlisten = "unix:{sock}"\n\n'
        '[[templates]]\nname = "bell"\npath = "bell.npy"\nthreshold = 0.8\n'
    )
    svc = Service(_config(tmp_path, RAW_IN, RAW_OUT, h, extra), stdin=subprocess.PIPE)
    try:
        url = svc.base_url()
        assert url == f"unix:{sock}" and sock.is_socket()
        svc.proc.stdin.write(x.astype("<f8").tobytes())
        svc.proc.stdin.flush()
        status = poll(url, lambda s: s["frames_in"] == len(x) and s["detections"]["bell"] == 3)
        assert get(url, "/health") == "ok\n"
        assert status["frames_out"] == len(x) and status["state"] == "running"
        assert status["config_generation"] == 1 and status["last_reload_error"] is None
        assert status["dropped_frames"] == status["overflows"] == 0
        assert 0 < status["load"] < 1  # 24000 frames filtered much faster than real time

        families = {m.name: m for m in text_string_to_metric_families(get(url, "/metrics"))}
        assert families["streamconv_frames_in"].samples[0].value == len(x)
        assert families["streamconv_frames_out"].samples[0].value == len(x)
        [bells] = families["streamconv_detections"].samples
        assert bells.labels == {"template": "bell"} and bells.value == 3
        assert families["streamconv_dropped_frames"].samples[0].value == 0
        assert families["streamconv_config_generation"].samples[0].value == 1
        assert not families["streamconv_device_up"].samples  # no sound device here

        assert [d["sample"] for d in get(url, "/detections")] == [2000, 9000, 17777]
        assert [d["sample"] for d in get(url, "/detections?since=9000")] == [17777]
        assert request(url, "/nope")[0] == 404
        assert request(url, "/detections?since=x")[0] == 400
        svc.proc.stdin.close()
        assert svc.finish() == 0, svc.log
        assert not sock.exists()
    finally:
        svc.kill()


def test_periodicity_detections_carry_the_period_as_match_prints_it(tmp_path, rng):
    period = 100  # samples: 12.5 ms at 8000 Hz
    x = 0.3 * rng.normal(size=3 * RATE)
    pulses = np.arange(RATE, 2 * RATE, period)  # one second of a pulse train in the middle
    x[pulses] += 4.0
    sf.write(tmp_path / "in.wav", x, RATE, subtype="DOUBLE")
    extra = (
        '[[periodicity]]\nname = "hum"\nmin_period_s = 0.005\nmax_period_s = 0.02\n'
        'threshold = 0.5\n\n[detections]\npath = "det.jsonl"\n'
    )
    h = [1.0, 0.5]
    svc = Service(_config(tmp_path, '[source]\nuri = "in.wav"\n', RAW_OUT, h, extra))
    assert svc.finish() == 0, svc.log
    logged = [json.loads(line) for line in (tmp_path / "det.jsonl").read_text().splitlines()]
    assert logged and all(d["template"] == "hum" for d in logged)
    assert all(d["period"] == pytest.approx(period / RATE, abs=1 / RATE) for d in logged)
    match = subprocess.run(
        [*CLI, "match", str(tmp_path / "out.raw"), "--format", "f64le", "--rate", str(RATE),
         "--channels", "1", "--periodicity", "0.005:0.02", "--periodicity-threshold", "0.5",
         "-q"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    matched = [json.loads(line) for line in match.stdout.splitlines()]
    # The same records field for field; match names the file and calls the detector
    # "periodicity" where the service uses the config's name. The chain [1, 0.5] is not
    # linear phase: the service says its samples are on the filtered stream's timeline.
    assert all(d["timeline"] == "filtered" and d["chain_delay"] is None for d in logged)
    service = ("template", "timeline", "chain_delay")
    assert [{k: v for k, v in d.items() if k not in ("file", "template")} for d in matched] == [
        {k: v for k, v in d.items() if k not in service} for d in logged
    ]


def test_service_log_lines_stay_whole_across_threads(tmp_path, monkeypatch):
    """The loop, the control server and each output log from their own threads: every line
    must reach stderr in one write, never `...: connectedcontrol: listening on ...`."""
    import sys
    import threading

    from streamconv.daemon import Service as InProcess

    writes: list[str] = []

    class Recorder:
        def write(self, text):
            writes.append(text)
            return len(text)

        def flush(self):
            pass

    cfg = _config(tmp_path, RAW_IN, '[sink]\nuri = "null"\n', [1.0])
    svc = InProcess(str(cfg))
    monkeypatch.setattr(sys, "stderr", Recorder())

    def burst(name):
        for i in range(200):
            svc.log(f"{name}: line {i}")

    threads = [threading.Thread(target=burst, args=(f"t{k}",)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    monkeypatch.undo()
    assert all(w.endswith("\n") and w.count("\n") == 1 for w in writes), writes[:4]
    assert sorted(writes) == sorted(f"t{k}: line {i}\n" for k in range(4) for i in range(200))


def test_a_reload_refuses_control_changes_it_could_not_apply(tmp_path):
    """The control server keeps the idle timeout, allow_remote and socket group it started
    with: a reload changing them was "generation 2" and changed nothing."""
    from streamconv.config import load_config
    from streamconv.daemon import _same_streams

    a = load_config(str(_config(tmp_path, RAW_IN, RAW_OUT, [1.0], CONTROL, name="a.toml")))
    b = load_config(
        str(_config(tmp_path, RAW_IN, RAW_OUT, [0.5], CONTROL + "idle_timeout_s = 2\n", "b.toml"))
    )
    c = load_config(str(_config(tmp_path, RAW_IN, RAW_OUT, [0.5], CONTROL, name="c.toml")))
    assert _same_streams(a, b) == ["[control] changed"]
    assert _same_streams(a, c) == []  # a new filter is what a reload is for
