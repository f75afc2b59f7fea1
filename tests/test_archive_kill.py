"""Kill a real ``streamconv match --jobs 2 --resume`` run midway (SIGKILL to its whole process
group, dask workers included); the same command again finishes the rest, and its output is the
single-process run's, detection for detection."""

import os
import signal
import subprocess
import sys
import time
import uuid

import numpy as np
import pytest
import soundfile as sf

from streamconv.cli import main

pytest.importorskip("dask.distributed")

RATE = 8000
SECONDS = 80
CHUNK_S = 0.5
TASKS = int(SECONDS / CHUNK_S)  # 160 chunks: a few seconds of work for two workers
KILL_AFTER = 5  # finished chunks


def marked_processes(marker: str) -> list[int]:
    """Live (not zombie) processes whose environment holds `marker`: the run and its workers."""
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/environ", "rb") as f:
                env = f.read()
            with open(f"/proc/{pid}/stat") as f:
                state = f.read().rsplit(")", 1)[1].split()[0]
        except OSError:  # gone meanwhile
            continue
        if marker.encode() in env.split(b"\0") and state not in "ZX":
            found.append(int(pid))
    return found


def wait_gone(marker: str, timeout: float = 60.0) -> list[int]:
    """Poll until no marked process is left; return (and kill) the ones still alive then."""
    deadline = time.monotonic() + timeout
    while (left := marked_processes(marker)) and time.monotonic() < deadline:
        time.sleep(0.1)
    for pid in left:
        os.kill(pid, signal.SIGKILL)
    return left


@pytest.fixture
def marker():
    """An environment entry every process of a run inherits, so that none can leak unseen."""
    mark = f"STREAMCONV_TEST_RUN={uuid.uuid4().hex}"
    yield mark
    wait_gone(mark, timeout=0)


@pytest.fixture
def long_file(tmp_path):
    rng = np.random.default_rng(11)
    k = np.arange(300)
    chirp = np.sin(2 * np.pi * (0.02 + 0.2 * k / 300) * k) * np.hanning(300)
    sf.write(tmp_path / "chirp.wav", chirp, RATE, subtype="DOUBLE")
    x = 0.3 * rng.normal(size=(SECONDS * RATE, 2))
    for start in rng.integers(0, len(x) - 300, size=SECONDS * 2):
        x[start : start + 300, rng.integers(2)] += chirp
    sf.write(tmp_path / "long.wav", x, RATE, subtype="FLOAT")
    return tmp_path / "long.wav", tmp_path / "chirp.wav"


def test_killed_run_resumes_to_the_single_process_detections(tmp_path, long_file, marker):
    recording, chirp = long_file
    state, out = tmp_path / "state", tmp_path / "dets.jsonl"
    argv = [recording, "-t", chirp, "--threshold", "0.3"]
    cmd = [sys.executable, "-m", "streamconv.cli", "match", *map(str, argv), "--chunk",
           str(CHUNK_S), "--jobs", "2", "--resume", str(state), "-o", str(out)]  # fmt: skip
    key, value = marker.split("=")
    env = {**os.environ, key: value}

    with open(tmp_path / "first.err", "w") as err:
        first = subprocess.Popen(cmd, env=env, start_new_session=True, stderr=err)
        try:
            deadline = time.monotonic() + 300
            while len(list(state.glob("*.json"))) < KILL_AFTER:
                assert first.poll() is None, "the run ended before it could be killed"
                assert time.monotonic() < deadline, "no chunk finished in 300 s"
                time.sleep(0.01)
            running = marked_processes(marker)
        finally:
            os.killpg(first.pid, signal.SIGKILL)  # the client and every worker of the group
            first.wait(timeout=60)
    assert first.returncode == -signal.SIGKILL
    assert len(running) >= 3  # the client and two worker processes (at least)
    assert wait_gone(marker) == []
    kept = {p: p.stat().st_mtime_ns for p in state.glob("*.json")}
    assert KILL_AFTER <= len(kept) < TASKS
    assert not out.exists()

    second = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert second.returncode == 0, second.stderr
    assert wait_gone(marker) == []
    # The finished chunks were taken from the state, not run (nor rewritten) again.
    assert f"note: {len(kept)} tasks taken from the resume state" in second.stderr
    assert {p: p.stat().st_mtime_ns for p in kept} == kept
    assert len(list(state.glob("*.json"))) == TASKS

    single = tmp_path / "single.jsonl"
    assert main(["match", *map(str, argv), "-q", "-o", str(single)]) == 0
    expected = single.read_text().splitlines()
    assert len(expected) > 100
    assert out.read_text().splitlines() == expected
