"""`streamconv check` and `streamconv design` through the command line entry point."""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from streamconv.cli import main
from streamconv.dsp import design
from streamconv.io.taps import load_taps

REPO = Path(__file__).resolve().parent.parent
CONFIGS = sorted(p.name for p in (REPO / "configs").iterdir() if p.suffix in (".toml", ".yaml"))


@pytest.fixture(scope="module")
def repo_copy(tmp_path_factory):
    """configs/ beside examples/data/example.wav, which `make run` generates the same way."""
    root = tmp_path_factory.mktemp("repo")
    shutil.copytree(REPO / "configs", root / "configs")
    spec = importlib.util.spec_from_file_location("make_example", REPO / "examples/make_example.py")
    make_example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(make_example)
    out = root / "examples" / "data" / "example.wav"
    out.parent.mkdir(parents=True)
    import soundfile

    soundfile.write(out, make_example.example_signal(), make_example.SAMPLE_RATE)
    return root


def test_every_example_config_is_there():
    assert {"default.toml", "live.toml", "pipe.toml", "room_correction.toml"} <= set(CONFIGS)
    assert any(name.endswith(".yaml") for name in CONFIGS)


@pytest.mark.parametrize("name", CONFIGS)
def test_every_example_config_passes_check(repo_copy, name, capsys):
    assert main(["check", str(repo_copy / "configs" / name)]) == 0
    out, err = capsys.readouterr()
    assert err == ""
    assert out.splitlines()[0].endswith(f"{name}: ok")
    assert "  combined " in out and "  latency " in out and "  engine " in out
    assert "  load       expected " in out


def test_check_prints_plan_latency_and_load(repo_copy, capsys):
    assert main(["check", str(repo_copy / "configs" / "room_correction.toml")]) == 0
    out = capsys.readouterr().out
    engine = next(line for line in out.splitlines() if line.startswith("  engine "))
    load = next(line for line in out.splitlines() if line.startswith("  load "))
    assert "plan: partitions " in engine and "latency added 0 frames" in engine
    assert "cost model: default" in load and "% of one core at blocks of 512" in load


def test_check_calibrate_measures_saves_and_later_runs_use_it(
    repo_copy, tmp_path, monkeypatch, capsys
):
    from streamconv.dsp import compiled, costmodel

    monkeypatch.setenv("STREAMCONV_FFTW_WISDOM", str(tmp_path / "wisdom.json"))
    assert main(["check", "--calibrate"]) == 0
    out = capsys.readouterr().out
    backend = "compiled" if compiled.available() else "numpy"
    assert f"cost model of the {backend} engine measured: FFT " in out
    saved = json.loads((tmp_path / "cost-model.json").read_text())
    model = costmodel.CostModel.from_json(saved[backend])
    assert model.source.startswith("calibrated ")
    # The constants are the machine's, within a factor of 10 of the development machine's
    # (a broken fit gives zeros or absurd values).
    default = costmodel.DEFAULTS[backend]
    for name in ("fft", "mac", "run", "direct", "call"):
        assert getattr(default, name) / 10 <= getattr(model, name) <= 10 * getattr(default, name)
    monkeypatch.setattr(costmodel, "_measured", {})  # a new process: loaded from the file
    assert main(["check", str(repo_copy / "configs" / "room_correction.toml")]) == 0
    assert f"cost model: {model.source}" in capsys.readouterr().out


def test_check_lists_every_error_and_exits_2(tmp_path, capsys):
    config = tmp_path / "bad.toml"
    config.write_text(
        '[source]\nuri = "-"\nformat = "s24le"\nrate = 8000\nchannels = 1\n'
        '[sink]\nuri = "null"\nextra = 1\n'
        '[[filters]]\ntype = "lowpass"\ncutoff_hz = -5\ntaps = 11\n'
    )
    assert main(["check", str(config)]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    lines = err.splitlines()
    assert [line.split(": ")[2] for line in lines] == [
        "source.format",
        "sink.extra",
        "filters[0].cutoff_hz",
    ]
    assert all(line.startswith(f"error: {config}:") for line in lines)
    assert "Traceback" not in err


def test_check_summary_shows_snippets_and_outputs_without_passwords(tmp_path, capsys):
    """A new user checks the config before the first run: the snippets and every output are
    in the summary (they were left out), a password in a URL is not."""
    config = tmp_path / "svc.toml"
    config.write_text(
        '[source]\nuri = "-"\nformat = "s16le"\nrate = 8000\nchannels = 1\n'
        '[sink]\nuri = "null"\n'
        '[detections]\nsnippets = { dir = "snips", pre_s = 0.5, filtered = true }\n'
        '[[outputs]]\ntype = "mqtt"\nurl = "mqtt://alice:s3cret@127.0.0.1:18883"\n'
        '[[outputs]]\ntype = "webhook"\nurl = "http://127.0.0.1:18880/hook"\n'
        'headers = { Authorization = "Bearer 0123" }\n'
    )
    assert main(["check", str(config)]) == 0
    out = capsys.readouterr().out
    assert (
        f"  snippets   {tmp_path / 'snips'}: 0.5 s before, 2 s from each detection, "
        "at most 100 MB, filtered too\n"
    ) in out
    assert (
        "  output     mqtt mqtt://alice:***@127.0.0.1:18883 topic streamconv/{template}, "
        "qos 1, queue 10000\n"
    ) in out
    assert "  output     webhook http://127.0.0.1:18880/hook, timeout 5 s, queue 10000" in out
    assert "s3cret" not in out and "Bearer" not in out


def test_check_without_a_config_is_a_usage_error(capsys):
    assert main(["check"]) == 2
    assert capsys.readouterr().err.startswith("error: ")


def test_check_schema_prints_json_schema(capsys):
    assert main(["check", "--schema"]) == 0
    schema = json.loads(capsys.readouterr().out)
    assert "source" in schema["properties"]


def test_check_schema_with_a_config_is_refused_not_ignored(capsys):
    """`check --schema x.toml` printed the schema and exit 0, as if x.toml had been checked."""
    assert main(["check", "--schema", "x.toml"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err == (
        "error: check --schema takes no CONFIG and no --calibrate\n"
        "hint: streamconv check --help shows the options and examples\n"
    )


def run_design(args, capsys):
    code = main(["design", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_design_prints_taps_loadable_as_a_taps_file(tmp_path, capsys):
    code, out, err = run_design(
        ["lowpass", "cutoff_hz=1000", "taps=101", "--rate", "16000"], capsys
    )
    assert code == 0
    path = tmp_path / "lp.txt"
    path.write_text(out)
    taps, _ = load_taps(str(path))
    np.testing.assert_array_equal(taps, design.lowpass(16000, cutoff_hz=1000, taps=101))
    assert "# length: 101 taps" in err
    assert "# group delay: 50 samples" in err
    assert "# gain at DC: 0.000 dB" in err


def test_design_reports_the_attenuation_achieved(capsys):
    args = ["highpass", "cutoff_hz=2000", "transition_hz=500", "attenuation_db=65"]
    code, _, err = run_design(args, capsys)
    assert code == 0
    (line,) = [x for x in err.splitlines() if "attenuation" in x]
    achieved = float(line.split("attenuation ")[1].split(" dB")[0])
    assert achieved >= 65
    assert "(asked 65 dB)" in line


def test_design_takes_toml_values_and_spec_files(tmp_path, capsys):
    args = ["remez", "taps=31", "bands_hz=[[0, 4000], [6000, 24000]]", "gains=[1, 0]"]
    code, out, _ = run_design(args, capsys)
    assert code == 0
    spec = tmp_path / "spec.toml"
    spec.write_text(
        'type = "remez"\ntaps = 31\nbands_hz = [[0, 4000], [6000, 24000]]\ngains = [1, 0]\n'
    )
    code, from_file, _ = run_design([str(spec)], capsys)
    assert code == 0 and from_file == out
    assert len(out.splitlines()) == 31
    # A mistake in a spec file is the file's: one error line, no hint to --help.
    spec.write_text('type = "lowpass"\ncutoff_hz = 100\ntaps = 11\ncutof_hz = 1\n')
    code, _, err = run_design([str(spec)], capsys)
    assert code == 2 and err == "error: design: cutof_hz: unknown key (did you mean 'cutoff_hz'?)\n"


def test_design_plot_writes_a_png(tmp_path, capsys):
    png = tmp_path / "plot.png"
    code, _, _ = run_design(
        ["bandpass", "low_hz=300", "high_hz=3000", "taps=201", "--plot", str(png)], capsys
    )
    assert code == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in tmp_path.iterdir()] == ["plot.png"]  # no temporary left


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["lowpass", "cutoff_hz=30000", "taps=11"], "cutoff_hz"),
        (
            ["lowpass", "cutof_hz=100", "taps=11"],
            "cutof_hz: unknown key (did you mean 'cutoff_hz'?)",
        ),
        (["nonsense"], "type: unknown filter type 'nonsense'; known: lowpass,"),
        (["lowpas", "cutoff_hz=100"], "unknown filter type 'lowpas' (did you mean 'lowpass'?)"),
        (["mix", "matrix=[[1.0]]"], "not a filter"),
        (["gain", "gain_db"], "KEY=VALUE"),
        (["lowpass", "taps=11", "taps=13"], "design: taps: given twice"),
        (["lowpass", "type=highpass"], "design: type: given twice ('lowpass' and 'highpass')"),
        (["lowpass", "cutoff_hz=100", "taps=11", "--rate", "0"], "--rate"),
        (["file", "path=/no/such/taps.txt"], "no such file"),
        (
            ["lowpass", "cutoff_hz=100", "taps=11", "--plot", "/no/such/dir/p.png"],
            "no such directory",
        ),
    ],
)
def test_design_errors_exit_2_with_one_line(args, fragment, capsys):
    """One ``error:`` line; a mistake in SPEC or an option (not a file's) adds the hint every
    command-line mistake gets (it had none)."""
    code, out, err = run_design(args, capsys)
    assert code == 2
    assert out == ""
    lines = err.splitlines()
    assert lines[0].startswith("error: ") and fragment in lines[0]
    hint = "hint: streamconv design --help shows the options and examples"
    assert lines[1:] == ([] if "no such" in fragment else [hint]), err
