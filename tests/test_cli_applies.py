"""``filter`` refuses options that the job would not use, in one ``error:`` line (exit 2),
before any output appears; options that agree with the input are accepted."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from streamconv.cli import main


@pytest.fixture
def job(tmp_path):
    sf.write(tmp_path / "s16.wav", np.zeros((800, 2)), 8000, subtype="PCM_16")
    (tmp_path / "in.csv").write_text("t,x\n0.0,1.0\n0.1,2.0\n")
    np.savetxt(tmp_path / "h.txt", [1.0])
    return tmp_path


def _filter(tmp_path, inp, out, *args):
    argv = ["filter", "-i", str(tmp_path / inp), "-o", str(tmp_path / out) if out != "null"
            else "null", "--fir", str(tmp_path / "h.txt"), *args]  # fmt: skip
    return main(argv)


@pytest.mark.parametrize(
    ("inp", "out", "args", "message"),
    [
        # A --rate, --channels or --format contradicting a file header was ignored silently.
        ("s16.wav", "o.wav", ["--rate", "16000"],
         "--rate 16000 contradicts the input ({d}/s16.wav: the file's header says 8000 Hz"),
        ("s16.wav", "o.wav", ["--channels", "1"],
         "--channels 1 contradicts the input ({d}/s16.wav: the file's header says 2)"),
        ("s16.wav", "o.wav", ["--format", "f32le"],
         "--format f32le contradicts the input ({d}/s16.wav: the file's header says PCM_16); "
         "--out-format sets the output's sample format"),
        ("s16.wav", "o.wav", ["--type", "wav"], "--type applies to -i - (a pipe), not to"),
        ("s16.wav", "o.wav", ["--out-type", "flac"], "--out-type applies to -o - (a pipe)"),
        ("s16.wav", "o.wav", ["--columns", "x"], "--columns applies to a .csv input"),
        ("s16.wav", "o.wav", ["--float-format", "%.3f"], "--float-format applies to a .csv"),
        ("in.csv", "o.csv", ["--rate", "10", "--out-format", "s16le"],
         "--out-format does not apply to {d}/o.csv: it has no sample format"),
        ("in.csv", "o.csv", ["--rate", "10", "--channels", "2"],
         "--channels 2 contradicts the input ({d}/in.csv has 1 data columns"),
        ("in.csv", "null", ["--rate", "10", "--format", "s16le"], "--format does not apply"),
    ],
)  # fmt: skip
def test_options_that_do_not_apply_are_refused(job, capsys, inp, out, args, message):
    assert _filter(job, inp, out, *args) == 2
    err = capsys.readouterr().err
    error, hint = err.splitlines()  # a mistake on the command line: the error and the hint
    assert error.startswith("error: ") and message.format(d=job) in error, err
    assert hint == "hint: streamconv filter --help shows the options and examples"
    assert not (job / out).exists() and not [p for p in job.iterdir() if p.name.startswith(".")]


@pytest.mark.parametrize(
    "args",
    [[], ["--rate", "8000"], ["--channels", "2"], ["--format", "s16le"],
     ["--out-format", "f32le"], ["--rate", "8000", "--channels", "2", "--format", "s16le"]],
)  # fmt: skip
def test_options_that_agree_with_the_header_are_fine(job, args):
    assert _filter(job, "s16.wav", "o.wav", *args) == 0
    want = "FLOAT" if "--out-format" in args else "PCM_16"
    assert sf.info(job / "o.wav").subtype == want
