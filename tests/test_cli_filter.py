"""``streamconv filter`` end to end: against scipy, in any block size, through pipes; bad input."""

import os
import subprocess
import sys

import numpy as np
import pytest
import scipy.signal
import soundfile as sf

from streamconv.cli import main

#: The line after the error of a mistake on filter's command line (not a file's).
HINT = "hint: streamconv filter --help shows the options and examples"


def _filter(tmp_path, inp, out, *args):
    """Run ``streamconv filter -i tmp_path/inp -o tmp_path/out ARGS`` in-process."""
    return main(["filter", "-i", str(tmp_path / inp), "-o", str(tmp_path / out), *args])


def _write_taps(path, h):
    np.savetxt(path, h, fmt="%.17g", delimiter=",")
    return str(path)


def _signal(rng, frames, channels):
    return rng.uniform(-0.4, 0.4, (frames, channels))


@pytest.mark.parametrize("block", [1, 7, 64, 1000, 4096])
@pytest.mark.parametrize("tail", [False, True])
def test_filter_file_matches_scipy_for_any_block(tmp_path, rng, block, tail):
    x = _signal(rng, 3000, 2)
    h = rng.normal(size=101) / 10
    sf.write(tmp_path / "in.wav", x, 8000, subtype="DOUBLE")
    fir = _write_taps(tmp_path / "h.txt", h)
    argv = ["filter", "-i", str(tmp_path / "in.wav"), "-o", str(tmp_path / "out.wav")]
    argv += ["--fir", fir, "--block", str(block)] + (["--tail"] if tail else [])
    assert main(argv) == 0
    y, rate = sf.read(tmp_path / "out.wav")
    assert rate == 8000 and sf.info(tmp_path / "out.wav").subtype == "DOUBLE"
    ref = scipy.signal.convolve(x, h[:, None])
    expected = ref if tail else ref[: len(x)]
    assert y.shape == expected.shape
    np.testing.assert_allclose(y, expected, atol=1e-10 * np.abs(ref).max())


def test_per_channel_and_mimo_taps(tmp_path, rng):
    x = _signal(rng, 2000, 2)
    sf.write(tmp_path / "in.wav", x, 8000, subtype="DOUBLE")
    h = rng.normal(size=(40, 2, 3)) / 10
    np.save(tmp_path / "h.npy", h)
    assert _filter(tmp_path, "in.wav", "out.wav", "--fir", str(tmp_path / "h.npy")) == 0
    y = sf.read(tmp_path / "out.wav")[0]
    ref = sum(
        scipy.signal.lfilter(h[:, i, j], [1], x[:, i])[:, None] * np.eye(3)[j]
        for i in range(2)
        for j in range(3)
    )
    np.testing.assert_allclose(y, ref, atol=1e-10)


def test_integer_wav_keeps_its_type_and_clips_at_full_scale(tmp_path, capsys):
    sf.write(tmp_path / "in.wav", np.full((100, 1), 0.5), 8000, subtype="PCM_16")
    fir = _write_taps(tmp_path / "h.txt", [3.0])  # gain 3: every sample clips
    assert _filter(tmp_path, "in.wav", "o.wav", "--fir", fir) == 0
    assert sf.info(tmp_path / "o.wav").subtype == "PCM_16"
    np.testing.assert_array_equal(sf.read(tmp_path / "o.wav", dtype="int16")[0], 32767)
    assert capsys.readouterr().err.strip().endswith("o.wav: 100 samples clipped")


def test_csv_sensor_file_to_csv(tmp_path, rng):
    x = rng.normal(size=(500, 3))
    np.savetxt(tmp_path / "in.csv", x, fmt="%.17g", delimiter=",")
    h = rng.normal(size=9)
    fir = _write_taps(tmp_path / "h.txt", h)
    assert _filter(tmp_path, "in.csv", "o.csv", "--fir", fir, "--rate", "100") == 0
    y = np.loadtxt(tmp_path / "o.csv", delimiter=",")
    np.testing.assert_allclose(y, scipy.signal.lfilter(h, [1], x, axis=0), atol=1e-12)


@pytest.mark.parametrize("fmt", ["s16le", "f32le"])
def test_shell_pipe(tmp_path, rng, fmt):
    """A real pipe: bytes in on stdin, bytes out on stdout, in a subprocess."""
    x = (rng.integers(-8000, 8000, (5000, 2)) / 32768).astype(np.float32)
    data = (x * 32768).astype("<i2").tobytes() if fmt == "s16le" else x.astype("<f4").tobytes()
    h = np.array([0.5, 0.25, 0.125])
    fir = _write_taps(tmp_path / "h.txt", h)
    argv = ["-i", "-", "-o", "-", "--fir", fir, "--format", fmt, "--rate", "8000"]
    argv += ["--channels", "2", "--block", "100"]
    proc = subprocess.run(
        [sys.executable, "-m", "streamconv.cli", "filter", *argv],
        input=data, capture_output=True, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    out = np.frombuffer(proc.stdout, "<i2" if fmt == "s16le" else "<f4").reshape(-1, 2)
    ref = scipy.signal.lfilter(h, [1], x, axis=0)
    if fmt == "s16le":
        np.testing.assert_array_equal(out, np.rint(ref * 32768))
    else:
        np.testing.assert_allclose(out, ref, atol=1e-6)


def test_filters_from_a_config(tmp_path, rng):
    """`-c CONFIG` runs the config's filter chain: the same as its taps given with --fir."""
    x = _signal(rng, 2000, 1)
    sf.write(tmp_path / "in.wav", x, 16000, subtype="DOUBLE")
    h = rng.normal(size=21)
    np.save(tmp_path / "h.npy", h)
    (tmp_path / "c.toml").write_text(
        '[source]\nuri = "in.wav"\n[sink]\nuri = "out.wav"\n'
        '[[filters]]\ntype = "file"\npath = "h.npy"\n'
    )
    assert _filter(tmp_path, "in.wav", "out.wav", "-c", str(tmp_path / "c.toml")) == 0
    y = sf.read(tmp_path / "out.wav")[0]
    np.testing.assert_allclose(y, scipy.signal.lfilter(h, [1], x[:, 0]), atol=1e-12)


def test_duration_stops_early(tmp_path, rng):
    sf.write(tmp_path / "in.wav", _signal(rng, 8000, 1), 8000)
    fir = _write_taps(tmp_path / "h.txt", [1.0])
    argv = ["filter", "-i", str(tmp_path / "in.wav"), "-o", str(tmp_path / "o.wav")]
    assert main([*argv, "--fir", fir, "--duration", "0.25", "--block", "300"]) == 0
    assert sf.info(tmp_path / "o.wav").frames == 2000


def _cli(args, capsys):
    """Run the command in-process; return (exit code, stderr). argparse exits by SystemExit."""
    try:
        code = main(["filter", *args])
    except SystemExit as exc:
        code = exc.code
    return code, capsys.readouterr().err


@pytest.fixture
def workdir(tmp_path, rng):
    sf.write(tmp_path / "in.wav", _signal(rng, 4000, 2), 8000, subtype="PCM_16")
    sf.write(tmp_path / "in44.wav", _signal(rng, 4000, 2), 44100)
    sf.write(tmp_path / "ir.wav", _signal(rng, 50, 1), 44100)
    data = (tmp_path / "in.wav").read_bytes()
    (tmp_path / "trunc.wav").write_bytes(data[: len(data) // 2])
    (tmp_path / "empty.wav").write_bytes(b"")
    (tmp_path / "garbage.wav").write_bytes(bytes(range(256)) * 8)
    (tmp_path / "h.txt").write_text("0.5\n0.5\n")
    (tmp_path / "h3.csv").write_text("1,0,0\n0,1,0\n")
    (tmp_path / "bad.txt").write_text("0.5\nzero\n")
    (tmp_path / "bad.toml").write_text('[source]\nuri = "in.wav"\nbogus = 1\n')
    nan = np.zeros((100, 2))
    nan[60, 1] = np.inf
    sf.write(tmp_path / "nan.wav", nan, 8000, subtype="FLOAT")
    return tmp_path


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-i", "trunc.wav", "--fir", "h.txt"], "trunc.wav: truncated"),
        (["-i", "empty.wav", "--fir", "h.txt"], "empty.wav: cannot read audio: file is empty"),
        (["-i", "garbage.wav", "--fir", "h.txt"], "garbage.wav: cannot read audio"),
        (["-i", "missing.wav", "--fir", "h.txt"], "missing.wav: no such file"),
        (["-i", "in.wav", "--fir", "missing.txt"], "missing.txt: no such file"),
        (["-i", "in.wav", "--fir", "bad.txt"], "bad.txt: line 2: 'zero' is not a number"),
        (["-i", "nan.wav", "--fir", "h.txt"], "nan.wav: NaN or Inf sample at frame 60"),
        (["-i", "-", "--fir", "h.txt"], "-: raw PCM needs --format, --rate, --channels"),
        (
            ["-i", "-", "--fir", "h.txt", "--format", "s24le", "--rate", "8000", "--channels", "1"],
            "--format: unknown sample format 's24le'",
        ),
        (
            ["-i", "in.wav", "--fir", "h3.csv"],
            "h3.csv: taps for 3 channels, the input in.wav has 2",
        ),
        (
            ["-i", "in.wav", "--fir", "ir.wav"],
            "ir.wav: the filters are for 44100 Hz, the input in.wav at 8000 Hz",
        ),
        (
            ["-i", "device:no such device", "--fir", "h.txt"],
            "device:no such device: no such input device",
        ),
        (["-i", "in.wav", "--fir", "h.txt", "-c", "x.toml"], "not allowed with argument"),
        (["-i", "in.wav", "-c", "bad.toml"], "bad.toml"),
    ],
)  # fmt: skip
def test_bad_input_one_line_exit_2_no_output(workdir, args, message, capsys, monkeypatch):
    monkeypatch.chdir(workdir)
    monkeypatch.setattr(sys, "stdin", open(os.devnull))
    code, err = _cli([*args, "-o", "out.wav"], capsys)
    assert code == 2, err
    assert message in err
    lines = err.splitlines()
    assert lines[0].startswith("error: ")
    # Missing or wrong options are the command line's mistakes: a hint to --help follows; a
    # bad file or config is one line.
    mistake = "not allowed" in message or "--" in message
    assert lines[1:] == ([HINT] if mistake else []), err
    assert not (workdir / "out.wav").exists()
    assert not [p for p in os.listdir(workdir) if p.startswith(".out.wav")]


@pytest.mark.parametrize(
    ("out", "more"),
    [("out.raw", []), ("-", ["--out-type", "raw"]), ("udp://127.0.0.1:9", [])],
)
def test_a_raw_output_of_an_audio_input_asks_for_out_format(
    workdir, out, more, capsys, monkeypatch
):
    """The option to give is --out-format: --format describes the input, and giving it for a
    WAV input is refused as contradicting its header."""
    monkeypatch.chdir(workdir)
    code, err = _cli(["-i", "in.wav", "--fir", "h.txt", "-o", out, *more], capsys)
    assert code == 2, err
    assert err == f"error: {out}: raw PCM needs --out-format\n{HINT}\n"
    assert not (workdir / "out.raw").exists()


def test_ctrl_c_on_a_silent_pipe_keeps_the_output_and_exits_130(tmp_path, rng):
    """Ctrl-C (SIGINT) while the input pipe is silent: what was read is filtered and the output
    file is complete under its name; exit 130 (the runner stops at a block boundary)."""
    import signal
    import time

    x = rng.uniform(-0.5, 0.5, (3000, 1)).astype("<f4")
    h = np.array([0.5, 0.25])
    fir = _write_taps(tmp_path / "h.txt", h)
    out = tmp_path / "out.wav"
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamconv.cli", "filter", "-i", "-", "-o", str(out), "--fir",
         fir, "--format", "f32le", "--rate", "8000", "--channels", "1", "--block", "100"],
        stdin=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        proc.stdin.write(x.tobytes())
        proc.stdin.flush()
        deadline = time.monotonic() + 30  # started: its output's temporary file is there
        while not [p for p in os.listdir(tmp_path) if p.startswith(".out.wav")]:
            assert time.monotonic() < deadline and proc.poll() is None
            time.sleep(0.05)
        time.sleep(0.5)  # filtered by now; the pipe stays open and silent
        t0 = time.monotonic()
        proc.send_signal(signal.SIGINT)
        assert proc.wait(10) == 130, proc.stderr.read()
        assert time.monotonic() - t0 < 2
    finally:
        proc.kill()
        proc.stdin.close()
    y = sf.read(out, dtype="float32")[0]
    assert sf.info(out).subtype == "FLOAT"  # a raw f32 source gives a float file
    np.testing.assert_allclose(y, scipy.signal.lfilter(h, [1], x[:, 0]), atol=1e-6)
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".out.wav")]


@pytest.mark.parametrize(
    "spelling", ["in.wav", "./in.wav", "ABS", "~/in.wav", "link.wav", "hard.wav"]
)
def test_output_that_is_the_input_file_is_refused(workdir, spelling, capsys, monkeypatch):
    """As a config whose sink is its source (and as ffmpeg): one line naming the file, exit 2,
    the input untouched; by any spelling of the same file."""
    monkeypatch.chdir(workdir)
    monkeypatch.setenv("HOME", str(workdir))
    os.symlink("in.wav", workdir / "link.wav")
    os.link(workdir / "in.wav", workdir / "hard.wav")
    before = (workdir / "in.wav").read_bytes()
    out = str(workdir / "in.wav") if spelling == "ABS" else spelling
    code, err = _cli(["-i", "in.wav", "--fir", "h.txt", "-o", out], capsys)
    assert code == 2 and err == (
        f"error: {out}: is the input file; the output would overwrite the input "
        f"(write another file, then rename it)\n{HINT}\n"
    )
    assert (workdir / "in.wav").read_bytes() == before
    assert not [p for p in os.listdir(workdir) if p.startswith(".")]
