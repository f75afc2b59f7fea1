"""Progress bars of long jobs: on a terminal's stderr only (tested on a pty), never mixed with
the data on stdout, off with -q and when stderr is not a terminal."""

from __future__ import annotations

import os
import pty
import re
import select
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

STREAMCONV = [sys.executable, "-m", "streamconv.cli"]
ANSI = re.compile(rb"\x1b\[[0-9;]*[A-Za-z]")


def _run_on_pty(argv, cwd, stdout_on_pty: bool) -> tuple[int, bytes, bytes]:
    """Run with stderr on a pseudo-terminal (and stdout too, or on a pipe); what each got."""
    master, slave = pty.openpty()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), "COLUMNS": "100"}
    proc = subprocess.Popen(
        argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stderr=slave,
        stdout=slave if stdout_on_pty else subprocess.PIPE,
    )  # fmt: skip
    os.close(slave)
    got, out = bytearray(), bytearray()
    streams = [master] + ([] if stdout_on_pty else [proc.stdout.fileno()])
    while master in streams:  # both at once: a full stdout pipe would stop the child
        ready, _, _ = select.select(streams, [], [], 60)
        if not ready:
            proc.kill()
            raise AssertionError("no output for 60 s")
        for fd in ready:
            try:
                chunk = os.read(fd, 1 << 16)
            except OSError:  # EIO: the child closed the terminal
                chunk = b""
            if not chunk:
                streams.remove(fd)
            (got if fd == master else out).extend(chunk)
    if not stdout_on_pty:
        out += proc.stdout.read()
    out = bytes(out)
    code = proc.wait(timeout=60)
    os.close(master)
    return code, bytes(got), out


@pytest.fixture(scope="module")
def recording(tmp_path_factory):
    """20 s of noise with a chirp at 3 s and 15 s, and the chirp as a template."""
    d = tmp_path_factory.mktemp("progress")
    rng = np.random.default_rng(3)
    rate = 8000
    t = np.arange(int(0.2 * rate)) / rate
    chirp = np.sin(2 * np.pi * (300 + 2000 * t) * t)
    x = 0.05 * rng.normal(size=20 * rate)
    for at in (3, 15):
        x[at * rate : at * rate + len(chirp)] += chirp
    sf.write(d / "rec.wav", x, rate)
    sf.write(d / "chirp.wav", chirp, rate)
    return d


MATCH = ["match", "rec.wav", "-t", "chirp.wav", "--block", "4000"]


def test_match_progress_on_the_terminal_data_on_stdout(recording):
    code, tty, out = _run_on_pty([*STREAMCONV, *MATCH], recording, stdout_on_pty=False)
    assert code == 0, tty
    assert b"rec.wav:" in tty and b"%|" in tty  # the bar was drawn on stderr
    lines = out.decode().splitlines()
    assert len(lines) == 2 and all(line.startswith("{") and line.endswith("}") for line in lines)


def test_match_results_never_share_a_line_with_the_bar(recording):
    code, tty, _ = _run_on_pty([*STREAMCONV, *MATCH], recording, stdout_on_pty=True)
    assert code == 0, tty
    # What the terminal shows: each detection line, after the bar's clearing, is whole.
    shown = ANSI.sub(b"", tty).replace(b"\r\n", b"\n")
    records = [
        seg for line in shown.split(b"\n") for seg in line.split(b"\r") if b'"template"' in seg
    ]
    assert len(records) == 2
    for record in records:
        assert record.strip().startswith(b"{") and record.strip().endswith(b"}"), record


@pytest.mark.parametrize("argv", [[*MATCH, "-q"]])
def test_quiet_means_no_bar(recording, argv):
    code, tty, out = _run_on_pty([*STREAMCONV, *argv], recording, stdout_on_pty=False)
    assert code == 0 and b"%|" not in tty and tty.strip() == b""
    assert len(out.decode().splitlines()) == 2


def test_no_bar_when_stderr_is_not_a_terminal(recording):
    run = subprocess.run([*STREAMCONV, *MATCH], cwd=recording, capture_output=True)
    assert run.returncode == 0 and run.stderr == b""


@pytest.fixture(scope="module")
def song(tmp_path_factory):
    d = tmp_path_factory.mktemp("filter_progress")
    x = np.random.default_rng(4).uniform(-0.5, 0.5, (60 * 8000, 2)).astype(np.float32)
    sf.write(d / "in.wav", x, 8000, subtype="FLOAT")
    np.savetxt(d / "h.txt", [0.5])
    return d, x


def test_filter_progress_on_the_terminal_data_on_stdout(song):
    d, x = song
    argv = [*STREAMCONV, "filter", "-i", "in.wav", "-o", "-", "--out-type", "raw",
            "--out-format", "f32le", "--fir", "h.txt", "--block", "4000"]  # fmt: skip
    code, tty, out = _run_on_pty(argv, d, stdout_on_pty=False)
    assert code == 0, tty
    assert b"in.wav:" in tty and b"%|" in tty and b"s of audio" in tty
    np.testing.assert_array_equal(np.frombuffer(out, "<f4").reshape(-1, 2), x * 0.5)


@pytest.mark.parametrize(("flag", "bar"), [([], True), (["-q"], False)])
def test_filter_file_job_bar_and_quiet(song, flag, bar):
    d, _ = song
    argv = [*STREAMCONV, "filter", "-i", "in.wav", "-o", "out.wav", "--fir", "h.txt", *flag]
    code, tty, _ = _run_on_pty(argv, d, stdout_on_pty=True)
    assert code == 0, tty
    assert (b"%|" in tty) is bar
    assert ANSI.sub(b"", tty).strip(b"\r\n ") == b"" or bar  # -q: nothing at all


def test_filter_no_bar_when_stderr_is_not_a_terminal(song):
    d, _ = song
    run = subprocess.run([*STREAMCONV, "filter", "-i", "in.wav", "-o", "o2.wav", "--fir",
                          "h.txt"], cwd=d, capture_output=True)  # fmt: skip
    assert run.returncode == 0 and run.stderr == b""


def test_the_bar_ends_at_its_total_exactly(monkeypatch, capsys):
    """A whole file's frames in steps whose seconds do not add up exactly (16384 frames at
    48 kHz) end the bar at its total, with no TqdmWarning ("clamping frac") on the terminal."""
    import warnings

    from streamconv import progress

    monkeypatch.setattr(progress, "wanted", lambda quiet, stream=None: True)
    total, rate = 28_800_000, 48000
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        bar = progress.Progress("long.wav", total, rate)
        for done in range(16384, total + 16384, 16384):
            bar.update(min(done, total))
        assert bar._bar is not None and bar._bar.n == bar._bar.total == 600.0
        bar._bar.refresh()  # the last draw, as tqdm makes it when its interval has passed
        bar.close()
    assert [str(w.message) for w in caught] == []
    assert "100%|" in capsys.readouterr().err
