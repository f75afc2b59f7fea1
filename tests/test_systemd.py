"""The service as deployed: ``systemd/streamconv.service`` exactly as shipped (no drop-ins),
installed as ``systemd/README.md`` says, under a real systemd 252 (PID 1 of a container,
``tests/systemd_container.py``).

Each test writes ``/etc/streamconv/streamconv.toml`` and drives the unit with ``systemctl``
as an operator would; what systemd reports (``systemctl show``, the journal) is the evidence.
Data comes from ``feed.py`` below, run as a transient unit (``systemd-run``) inside: streamconv's
own UDP datagrams, in real time, noise with the example bell in it once a second.
"""

from __future__ import annotations

import json
import re
import time

import pytest
from systemd_container import REPO, readme_commands

pytestmark = pytest.mark.usefixtures("systemd_container")

CONF = "/etc/streamconv/streamconv.toml"
STATE = "/var/lib/streamconv"
PORT = 9000
API = "127.0.0.1:8731"

FEED = '''
"""feed.py PORT SECONDS [--end]: send noise with the bell once a second as udp datagrams."""
import sys, time
import numpy as np, soundfile as sf
from streamconv.io.network import UdpSink

port, seconds = int(sys.argv[1]), float(sys.argv[2])
bell = sf.read("/etc/streamconv/data/bell.wav", dtype="float32")[0]
rate, block = 48000, 4800
second = np.random.default_rng(1).normal(0, 0.01, rate).astype(np.float32)
second[12000 : 12000 + len(bell)] += bell
sink = UdpSink(f"udp://127.0.0.1:{port}", "f32le", rate, 1)
t0 = time.monotonic()
for i in range(int(seconds * rate / block)):
    start = (i * block) % rate
    sink.write(second[start : start + block, None])
    time.sleep(max(0.0, t0 + (i + 1) * block / rate - time.monotonic()))
if "--end" in sys.argv:
    sink.close()  # the end-of-stream datagram: the service drains and exits 0
'''


def config(
    source=f"udp://127.0.0.1:{PORT}",
    sink=f"{STATE}/out.wav",
    filters='[[filters]]\nname = "level"\ntype = "gain"\ngain_db = -6\n',
    control=f'listen = "{API}"',
    detections=f"{STATE}/detections.jsonl",
    processing="block_size = 1024",
) -> str:
    """A service config: by default a silent udp source, a wav sink, the bell template."""
    text = f'[source]\nuri = "{source}"\nformat = "f32le"\nrate = 48000\nchannels = 1\n\n'
    text += f'[sink]\nuri = "{sink}"\n\n[processing]\n{processing}\n\n{filters}\n'
    text += '[[templates]]\nname = "bell"\npath = "data/bell.wav"\nthreshold = 0.5\n\n'
    if detections:
        text += f'[detections]\npath = "{detections}"\n\n'
    if control:
        text += f"[control]\n{control}\n"
    return text


# -- helpers --------------------------------------------------------------------------------


def show(box, *props: str, unit: str = "streamconv") -> dict[str, str]:
    out = box.run(f"systemctl show -p {','.join(props)} {unit}").stdout
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


def wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.1)


def start(box, text: str, check: bool = True):
    """Install ``text`` as the config and (re)start the unit; `systemctl restart`'s result."""
    box.run("systemctl stop streamconv; systemctl reset-failed streamconv", check=False)
    box.run(f"rm -f {STATE}/out.wav {STATE}/detections.jsonl {STATE}/.out.wav.*")
    box.write(CONF, text)
    return box.run("systemctl restart streamconv", check=check, timeout=60)


def cursor(box) -> str:
    out = box.run("journalctl -u streamconv -n 0 --show-cursor --no-pager").stdout
    return out.strip().rsplit("cursor: ", 1)[-1]


def journal(box, after: str) -> str:
    return box.run(f"journalctl -u streamconv -o cat --no-pager --after-cursor='{after}'").stdout


def api(box, path: str):
    out = box.run(f"curl -s --max-time 5 http://{API}{path}").stdout
    return json.loads(out) if path != "/health" else out


def feed(box, seconds: float, name: str = "feeder", end: bool = False) -> None:
    box.run(f"systemctl stop {name}; systemctl reset-failed {name}", check=False)
    box.write("/root/feed.py", FEED)
    box.run(
        f"systemd-run --quiet --unit={name} /opt/streamconv/bin/python /root/feed.py "
        f"{PORT} {seconds}" + (" --end" if end else "")
    )


def stop_feed(box, name: str = "feeder") -> None:
    box.run(f"systemctl stop {name}; systemctl reset-failed {name}", check=False)


# -- install and the README's own config: a sound device ----------------------------------


def test_installed_as_the_readme_says_and_checked_before_the_first_start(systemd_container):
    box = systemd_container
    # `streamconv check` ran in the install (it must exit 0 before any start): it noted the
    # state directory systemd had not made yet
    assert "note: detections.path: /var/lib/streamconv does not exist yet" in box.install_log
    assert box.run("/opt/streamconv/bin/streamconv --version").stdout.startswith("streamconv ")


def test_sound_device_source_and_sink_run_under_the_shipped_unit(systemd_container):
    box = systemd_container  # the README's config, started by its Start section: devices
    state = show(box, "ActiveState", "SubState", "NRestarts")
    assert state == {"ActiveState": "active", "SubState": "running", "NRestarts": "0"}
    assert api(box, "/health") == "ok\n"
    first = api(box, "/status")
    time.sleep(1.0)
    second = api(box, "/status")
    assert first["source"]["uri"] == "device" and first["sink"]["uri"] == "device"
    assert second["source"]["state"] == "running"
    # audio flows in and out (ALSA's null plugin paces neither end: faster than real time)
    assert second["frames_in"] - first["frames_in"] > 10000
    assert second["frames_out"] - first["frames_out"] > 10000


def test_memory_deny_write_execute_would_stop_sound_devices(systemd_container):
    # Why the unit leaves MemoryDenyWriteExecute= off: sounddevice's callback is a cffi
    # trampoline written at run time. Under the same sandbox plus that one setting it fails.
    box = systemd_container
    probe = (
        "/opt/streamconv/bin/python -c 'import cffi; "
        'cffi.FFI().callback("int(int)", lambda x: x); print("callback ok")\''
    )
    base = "systemd-run --quiet --wait --pipe -p DynamicUser=yes"
    assert "callback ok" in box.run(f"{base} {probe}").stdout
    denied = box.run(f"{base} -p MemoryDenyWriteExecute=yes {probe}", check=False)
    assert denied.returncode != 0
    assert "Cannot allocate write+execute memory for ffi.callback()" in denied.stderr


def test_security_exposure_and_verify(systemd_container):
    box = systemd_container
    commands = readme_commands("Hardening")
    security = box.run(commands[0]).stdout
    score = float(
        re.search(r"Overall exposure level for streamconv.service: ([\d.]+)", security)[1]
    )
    assert score <= 2.5, security
    verify = box.run(commands[1], check=False)
    assert (verify.returncode, verify.stdout, verify.stderr) == (0, "", "")
    # the score the unit's comments and the README state is the live one
    for path in ("systemd/README.md", "systemd/streamconv.service"):
        text = (REPO / path).read_text(encoding="utf-8")
        assert f"{score:.1f}" in text, f"{path} does not state the exposure {score:.1f}"


# -- starting, readiness, stopping ------------------------------------------------------------


def test_silent_source_is_ready_within_seconds_and_says_waiting(systemd_container):
    box = systemd_container
    t0 = time.monotonic()
    start(box, config())
    assert time.monotonic() - t0 < 10
    state = show(box, "ActiveState", "SubState", "StatusText")
    assert state["ActiveState"] == "active" and state["SubState"] == "running"
    assert "waiting for input" in state["StatusText"]
    assert api(box, "/health") == "ok\n"


def test_stop_exits_0_and_renames_the_sink_into_place(systemd_container):
    box = systemd_container
    start(box, config())
    feed(box, 2)
    wait_for(lambda: api(box, "/status")["frames_in"] >= 48000, 10, "a second of input")
    assert "running" in show(box, "StatusText")["StatusText"]
    box.run("systemctl stop streamconv")
    state = show(box, "ActiveState", "Result", "ExecMainStatus")
    assert state == {"ActiveState": "inactive", "Result": "success", "ExecMainStatus": "0"}
    info = f"import soundfile; print(soundfile.info('{STATE}/out.wav').frames)"
    frames = box.run(f'/opt/streamconv/bin/python -c "{info}"').stdout
    assert int(frames) >= 48000
    assert box.run(f"ls -A {STATE}").stdout.split() == ["detections.jsonl", "out.wav"]
    detections = box.run(f"cat {STATE}/detections.jsonl").stdout.splitlines()
    assert detections and all(json.loads(d)["template"] == "bell" for d in detections)


def test_sigkill_restarts_and_leaves_no_stale_temporary_file(systemd_container):
    box = systemd_container
    start(box, config())
    old = box.run(f"ls -A {STATE}").stdout.split()
    assert len([n for n in old if n.endswith(".part")]) == 1  # the sink's, while it runs
    box.run("systemctl kill -s KILL streamconv")
    wait_for(lambda: show(box, "NRestarts")["NRestarts"] == "1", 15, "a restart")
    wait_for(lambda: show(box, "SubState")["SubState"] == "running", 15, "running again")
    new = [n for n in box.run(f"ls -A {STATE}").stdout.split() if n.endswith(".part")]
    assert len(new) == 1 and new[0] not in old  # the killed run's is gone, the new run's is there
    assert "out.wav" not in box.run(f"ls -A {STATE}").stdout.split()


# -- failures: the bad config stays failed, the transient one is retried --------------------


def test_bad_config_at_start_fails_once_without_a_restart_loop(systemd_container):
    box = systemd_container
    mark = cursor(box)
    run = start(box, config(filters='[[filters]]\nname = "x"\ntype = "lowpass"\n'), check=False)
    assert run.returncode != 0
    time.sleep(5)  # RestartSec=2: a loop would have restarted twice
    state = show(box, "ActiveState", "NRestarts", "ExecMainStatus")
    assert state == {"ActiveState": "failed", "NRestarts": "0", "ExecMainStatus": "2"}
    log = journal(box, mark)
    assert "error: " in log and "cutoff_hz" in log
    assert "Traceback" not in log


def test_busy_udp_port_exits_1_and_is_retried_until_free(systemd_container):
    box = systemd_container
    box.run(
        "systemd-run --quiet --unit=holder /opt/streamconv/bin/python -c "
        f'"import socket, time; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); '
        f"s.bind(('127.0.0.1', {PORT})); time.sleep(600)\""
    )
    try:
        mark = cursor(box)
        assert start(box, config(), check=False).returncode != 0
        wait_for(lambda: int(show(box, "NRestarts")["NRestarts"]) >= 1, 15, "a retry")
        log = journal(box, mark)
        assert "Main process exited, code=exited, status=1/FAILURE" in log
        assert f"error: udp://127.0.0.1:{PORT}: cannot listen: Address already in use" in log
    finally:
        stop_feed(box, "holder")
    try:
        wait_for(lambda: show(box, "SubState")["SubState"] == "running", 15, "running once free")
    except AssertionError:
        print(journal(box, mark)[-3000:], show(box, "SubState", "ActiveState", "NRestarts"))
        raise


def test_missing_sound_device_exits_1_and_is_retried(systemd_container):
    box = systemd_container
    text = config().replace(
        f'uri = "udp://127.0.0.1:{PORT}"\nformat = "f32le"', 'uri = "device:usb-mic"'
    )
    mark = cursor(box)
    assert start(box, text, check=False).returncode != 0
    wait_for(lambda: int(show(box, "NRestarts")["NRestarts"]) >= 1, 15, "a retry")
    log = journal(box, mark)
    assert "error: device:usb-mic: no such input device" in log
    assert "Main process exited, code=exited, status=1/FAILURE" in log
    box.run("systemctl stop streamconv")


# -- reload ---------------------------------------------------------------------------------


def test_reload_on_an_idle_source_takes_effect_within_2_s(systemd_container):
    box = systemd_container
    start(box, config())
    box.write(CONF, config(filters='[[filters]]\nname = "level"\ntype = "gain"\ngain_db = -12\n'))
    t0 = time.monotonic()
    # systemctl reload streamconv: `streamconv check` (a second or two of Python start-up),
    # then SIGHUP, sent when it returns; the service applies it at its next tick
    box.run(readme_commands("Reload")[0])
    t1 = time.monotonic()
    wait_for(lambda: api(box, "/status")["config_generation"] == 2, 2, "generation 2")
    print(f"reload: systemctl {t1 - t0:.2f} s, applied {time.monotonic() - t1:.2f} s later")
    assert time.monotonic() - t1 < 2
    assert "(generation 2)" in box.run(readme_commands("Reload")[1]).stdout
    assert api(box, "/status")["frames_in"] == 0  # no input came: it was applied while idle


def test_bad_reload_fails_visibly_and_the_old_config_keeps_running(systemd_container):
    box = systemd_container
    start(box, config())
    mark = cursor(box)
    box.write(CONF, config().replace("gain_db = -6", 'gain_db = "loud"'))
    run = box.run("systemctl reload streamconv", check=False)
    assert run.returncode == 1  # `streamconv check` in ExecReload= refused it
    assert "gain_db" in journal(box, mark)
    assert show(box, "ActiveState")["ActiveState"] == "active"
    # one that passes check but the running service cannot take: refused by the service
    box.write(CONF, config(sink=f"{STATE}/other.wav"))
    assert box.run("systemctl reload streamconv", check=False).returncode == 0
    wait_for(lambda: "reload failed" in show(box, "StatusText")["StatusText"], 2, "reload failed")
    status = api(box, "/status")
    assert status["config_generation"] == 1 and status["reloads_failed"] == 1
    assert "[sink] changed" in status["last_reload_error"]


# -- watchdog -------------------------------------------------------------------------------


def test_watchdog_keeps_an_idle_service_up(systemd_container):
    box = systemd_container
    start(box, config())
    first = int(show(box, "WatchdogTimestampMonotonic")["WatchdogTimestampMonotonic"])
    time.sleep(12)  # longer than WatchdogSec=10, with no input at all
    state = show(box, "SubState", "NRestarts", "WatchdogTimestampMonotonic", "WatchdogUSec")
    assert state["WatchdogUSec"] == "10s"
    assert state["SubState"] == "running" and state["NRestarts"] == "0"
    assert int(state["WatchdogTimestampMonotonic"]) > first  # pinged while idle


def test_watchdog_kills_a_stuck_processing_loop(systemd_container):
    # A processing loop that does not come back: a direct-form FIR of 4 M taps makes one block
    # of 64 Ki frames minutes of work. The watchdog is pinged from the loop, so systemd sees
    # it hang and kills it (a ping from a thread of its own would have kept it "healthy").
    box = systemd_container
    heavy = '[[filters]]\nname = "huge"\ntype = "lowpass"\ncutoff_hz = 1000\ntaps = 4194303\n'
    start(box, config(filters=heavy, processing='block_size = 65536\nmethod = "direct"'))
    mark = cursor(box)
    feed(box, 3)
    wait_for(lambda: int(show(box, "NRestarts")["NRestarts"]) >= 1, 30, "a watchdog restart")
    assert "Watchdog timeout (limit 10s)!" in journal(box, mark)
    stop_feed(box)
    box.run("systemctl stop streamconv")


# -- directories and the control socket ------------------------------------------------------


def test_fftw_wisdom_from_the_cache_directory(systemd_container):
    box = systemd_container
    start(box, config())
    commands = readme_commands("FFT plans")
    box.write(CONF, (REPO / "systemd" / "streamconv.toml").read_text(encoding="utf-8"))
    for command in commands[:2]:
        box.run(command, timeout=120)
    log = box.run(commands[2]).stdout
    assert "fftw wisdom: loaded /var/cache/streamconv/fftw-wisdom.json" in log


def test_unix_socket_readable_by_its_group_only(systemd_container):
    box = systemd_container
    box.run("id alice || useradd -m alice; id bob || useradd -m bob")
    sock = 'listen = "unix:/run/streamconv/control.sock"\nsocket_group = "streamconv-control"'
    box.write(CONF, config(control=sock))
    for command in readme_commands("Control socket access"):
        if command.startswith(("usermod", "systemctl")):
            box.run(command)
        else:  # the operator's own commands: alice's
            assert json.loads(box.run(f"runuser -u alice -- {command}").stdout)["state"]
    denied = box.run(
        "runuser -u bob -- curl -sS --unix-socket /run/streamconv/control.sock "
        "http://localhost/health",
        check=False,
    )
    assert denied.returncode == 7  # curl: could not connect (EACCES on the socket)
    mode = box.run("stat -c '%a %G' /run/streamconv/control.sock").stdout.split()
    assert mode == ["660", "streamconv-control"]


def test_logs_section(systemd_container):
    box = systemd_container
    start(box, config())
    log, show_out = (box.run(c).stdout for c in readme_commands("Logs"))
    assert "waiting for input" in show_out and "ActiveState=active" in show_out
    assert "control: listening on http://127.0.0.1:8731" in log


# -- a full disk -----------------------------------------------------------------------------


@pytest.fixture
def full_state_dir(systemd_container):
    """The service's state directory on a 256 KiB tmpfs (inside the container)."""
    box = systemd_container
    box.run("systemctl stop streamconv")
    box.run("mkdir -p /var/lib/private/streamconv")
    box.run("mount -t tmpfs -o size=256k,mode=0755 tmpfs /var/lib/private/streamconv")
    try:
        yield box
    finally:
        stop_feed(box)
        box.run("systemctl stop streamconv; systemctl reset-failed streamconv", check=False)
        box.run("umount /var/lib/private/streamconv")


def test_disk_full_under_the_sink(full_state_dir):
    box = full_state_dir
    start(box, config(detections=None))
    mark = cursor(box)
    feed(box, 5)  # 940 KB of float wav: the disk holds 256 KiB
    wait_for(lambda: int(show(box, "NRestarts")["NRestarts"]) >= 1, 20, "a failure")
    log = journal(box, mark)
    assert f"error: {STATE}/out.wav: No space left on device" in log
    assert "Traceback" not in log
    assert "status=1/FAILURE" in log
    stop_feed(box)
    box.run("systemctl stop streamconv")
    assert box.run(f"ls -A {STATE}").stdout.split() == []  # no out.wav, no temporary file


def test_disk_full_under_the_detection_log(full_state_dir):
    box = full_state_dir
    start(box, config(sink="null"))
    box.run(f"head -c 300000 /dev/zero > {STATE}/filler || true")  # fills the tmpfs
    mark = cursor(box)
    feed(box, 3)  # a bell a second: a detection to log
    wait_for(lambda: int(show(box, "NRestarts")["NRestarts"]) >= 1, 20, "a failure")
    log = journal(box, mark)
    assert f"error: {STATE}/detections.jsonl: No space left on device" in log
    assert "Traceback" not in log
