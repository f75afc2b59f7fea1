"""A full disk: every sink type says so in one line, exits 1 and leaves nothing under the name.

The outputs go to a small tmpfs each test mounts (root only: elsewhere the tests skip with the
reason). The service's sink and detection log on a full disk are tested under systemd
(``tests/test_systemd.py``).
"""

import os
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from streamconv.io.files import AtomicFile, remove_stale_temps

CLI = [sys.executable, "-m", "streamconv.cli"]


@pytest.fixture
def small_disk(tmp_path):
    """A 256 KiB tmpfs, unmounted after the test."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    disk = tmp_path / "disk"
    disk.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(disk)], check=True)
    try:
        yield disk
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=True)


@pytest.fixture
def big_input(tmp_path, rng):
    """2 s of stereo float at 48 kHz: 768 KB of output, three times the disk."""
    path = tmp_path / "in.wav"
    sf.write(path, rng.uniform(-0.5, 0.5, (96000, 2)), 48000, subtype="FLOAT")
    return path


def _filter(inp, out, *extra, capture=True, **kwargs):
    fir = os.path.join(os.path.dirname(inp), "h.txt")
    with open(fir, "w") as f:
        f.write("0.5\n0.25\n")
    argv = [*CLI, "filter", "-i", str(inp), "-o", str(out), "--fir", fir, *extra]
    if capture:
        kwargs["stdout"] = subprocess.PIPE
    return subprocess.run(argv, stderr=subprocess.PIPE, text=True, timeout=60, **kwargs)


@pytest.mark.parametrize("name", ["out.wav", "out.flac", "out.raw", "out.csv"])
def test_file_sink_on_a_full_disk(small_disk, big_input, name):
    extra = ["--format", "f32le"] if name.endswith(".raw") else []
    run = _filter(big_input, name, *extra, cwd=small_disk)
    assert run.returncode == 1, run.stderr
    assert run.stderr == f"error: {name}: No space left on device\n"
    assert os.listdir(small_disk) == []  # neither the output nor its temporary file


def test_pipe_sink_on_a_full_disk(small_disk, big_input):
    with open(small_disk / "out.raw", "wb") as stdout:
        run = _filter(big_input, "-", "--format", "f32le", stdout=stdout, capture=False)
    assert run.returncode == 1
    assert run.stderr == "error: stdout: No space left on device\n"


def test_disk_full_before_the_first_byte(small_disk, big_input):
    (small_disk / "filler").write_bytes(b"\0" * 256 * 1024)
    run = _filter(big_input, "out.wav", cwd=small_disk)
    assert run.returncode == 1
    assert run.stderr == "error: out.wav: No space left on device\n"
    assert os.listdir(small_disk) == ["filler"]


def test_stale_temporary_files_are_removed_by_the_next_writer(tmp_path):
    # what a SIGKILLed writer leaves: a process that has ended, its PID in the name
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True).stdout.strip()  # fmt: skip
    stale = tmp_path / f".out.wav.{dead}.abcd1234.part"
    stale.write_bytes(b"half")
    alive = tmp_path / f".out.wav.{os.getppid()}.abcd1234.part"  # a live writer's: kept
    alive.write_bytes(b"busy")
    other = tmp_path / f".other.wav.{dead}.abcd1234.part"  # another output's: not ours to take
    other.write_bytes(b"x")
    atomic = AtomicFile(str(tmp_path / "out.wav"))
    assert atomic.stale_removed == [str(stale)]
    assert not stale.exists() and alive.exists() and other.exists()
    # this process's own open temporary file is live, not stale
    assert remove_stale_temps(str(tmp_path / "out.wav")) == []
    assert os.path.exists(atomic.tmp_path)
    atomic.discard()


def test_temporary_name_is_hidden_and_marked(tmp_path):
    atomic = AtomicFile(str(tmp_path / "out.wav"))
    name = os.path.basename(atomic.tmp_path)
    assert name.startswith(f".out.wav.{os.getpid()}.") and name.endswith(".part")
    atomic.commit()
    assert os.listdir(tmp_path) == ["out.wav"]
    np.testing.assert_equal(os.path.getsize(tmp_path / "out.wav"), 0)
