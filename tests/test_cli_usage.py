"""The command line as a new user meets it: help with examples, short usage errors, JSON that
parses, no library chatter, plot files of the type their name says."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from streamconv.cli import COMMAND_MODULES, main


def _cli(*args: str, env=None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "streamconv.cli", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
    )


@pytest.mark.parametrize("command", COMMAND_MODULES)
def test_every_subcommand_help_ends_with_an_example(command, capsys):
    with pytest.raises(SystemExit) as stop:
        main([command, "--help"])
    assert stop.value.code == 0
    out = capsys.readouterr().out
    examples = out[out.index("\nexamples:\n") :]
    lines = examples.strip().splitlines()[1:]
    assert lines
    assert all("streamconv " in line or line.startswith("      ") for line in lines)
    assert any(f"streamconv {command} " in line for line in lines)
    assert "-v, --verbose" in out and "-q, --quiet" in out


@pytest.mark.parametrize(
    ("argv", "message", "hint"),
    [
        (["filter", "-i", "x.wav"], "error: the following arguments are required: -o/--output",
         "hint: streamconv filter --help shows the options and examples"),
        (["design", "lowpass", "--rate", "abc"], "error: argument --rate: invalid float value",
         "hint: streamconv design --help"),
        (["fliter"], "error: unknown command 'fliter'", "hint: did you mean `streamconv filter`?"),
        (["devices", "--bogus"], "error: unrecognized arguments: --bogus",
         "hint: streamconv devices --help"),
        (["filter", "-i", "a", "-o", "b", "--fir", "t", "--block", "0"],
         "error: argument --block: must be positive", "hint: streamconv filter --help"),
        (["filter", "-i", "a", "-o", "b", "--fir", "t", "--block", "2000000"],
         "error: argument --block: at most 1048576 frames: '2000000'",
         "hint: streamconv filter --help"),
        # Mistakes the commands find after argparse (CommandLineError) had no hint.
        (["match", "x.wav", "-t", "t.wav", "--tolerance", "0.1"],
         "error: --tolerance needs --domain spectrogram",
         "hint: streamconv match --help shows the options and examples"),
        (["match", "x.wav"], "error: match: give at least one template",
         "hint: streamconv match --help"),
        (["check", "--schema", "x.toml"], "error: check --schema takes no CONFIG",
         "hint: streamconv check --help"),
        (["design", "lowpass", "cutoff_hz=100", "taps=11", "cutof_hz=1"],
         "error: design: cutof_hz: unknown key",
         "hint: streamconv design --help"),
    ],
)  # fmt: skip
def test_usage_errors_are_one_error_line_and_a_hint(argv, message, hint):
    run = _cli(*argv)
    assert run.returncode == 2
    assert run.stdout == ""
    lines = run.stderr.splitlines()
    assert len(lines) == 2, run.stderr
    assert lines[0].startswith(message) and lines[1].startswith(hint)


def test_a_file_or_config_error_is_one_line_without_a_hint(tmp_path):
    """The hint is for mistakes on the command line: --help says nothing about a file that is
    missing or a config that does not validate."""
    (tmp_path / "bad.toml").write_text('[source]\nuri = "in.wav"\nbogus = 1\n')
    for argv in (["filter", "-i", str(tmp_path / "no.wav"), "-o", "o.wav", "--fir", "t.txt"],
                 ["check", str(tmp_path / "bad.toml")],
                 ["match", str(tmp_path / "no.wav"), "-t", str(tmp_path / "no.npy")]):  # fmt: skip
        run = _cli(*argv)
        assert run.returncode == 2 and run.stderr.startswith("error: "), run.stderr
        assert "hint:" not in run.stderr and "Traceback" not in run.stderr, run.stderr


def test_no_command_prints_help_and_exits_2():
    run = _cli()
    assert run.returncode == 2 and "usage: streamconv" in run.stderr


@pytest.mark.parametrize("backend", ["sounddevice", "pyaudio"])
def test_devices_json_is_always_one_json_list(backend):
    run = _cli("devices", "--backend", backend, "--json")
    assert run.returncode == 0, run.stderr
    devices = json.loads(run.stdout)
    assert isinstance(devices, list)
    for device in devices:
        assert {"index", "name", "hostapi", "inputs", "outputs", "sample_rate"} <= set(device)


def test_devices_json_is_an_empty_list_without_devices(monkeypatch, capsys):
    from streamconv.commands import devices

    monkeypatch.setattr(devices, "list_devices", lambda backend: [])
    assert main(["devices", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == []


def test_library_messages_on_fd2_are_hidden_unless_verbose():
    """What a C library writes to descriptor 2 while PortAudio starts is dropped, shown with
    -v (STREAMCONV_VERBOSE=1), and shown when the start fails."""
    code = (
        "import os, sys\n"
        "from streamconv.io.chatter import quiet_stderr\n"
        "with quiet_stderr():\n"
        "    os.write(2, b'ALSA lib pcm.c: chatter\\n')\n"
        "print('after', file=sys.stderr)\n"
        "try:\n"
        "    with quiet_stderr():\n"
        "        os.write(2, b'why it failed\\n')\n"
        "        raise RuntimeError('x')\n"
        "except RuntimeError:\n"
        "    pass\n"
    )
    quiet = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert quiet.stderr == "after\nwhy it failed\n"
    loud = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={**os.environ, "STREAMCONV_VERBOSE": "1"},
    )
    assert loud.stderr == "ALSA lib pcm.c: chatter\nafter\nwhy it failed\n"


def test_pyaudio_backend_start_is_quiet_without_v():
    """PyAudio's PortAudio probes ALSA and JACK at start; on a machine without a sound card
    or JACK server they print dozens of lines. Without -v none reach stderr; -v shows them."""
    quiet = _cli("devices", "--backend", "pyaudio", "--json", env={"STREAMCONV_VERBOSE": ""})
    assert quiet.returncode == 0 and quiet.stderr == ""
    loud = _cli("devices", "--backend", "pyaudio", "--json", "-v")
    assert loud.returncode == 0 and loud.stdout == quiet.stdout


@pytest.mark.parametrize(
    ("name", "magic"), [("lp.svg", b"<?xml"), ("lp.pdf", b"%PDF"), ("lp.PNG", b"\x89PNG")]
)
def test_design_plot_type_follows_the_extension(tmp_path, capsys, name, magic):
    out = tmp_path / name
    code = main(["design", "lowpass", "cutoff_hz=1000", "taps=31", "--plot", str(out)])
    assert code == 0
    assert out.read_bytes().startswith(magic)
    if name.endswith(".svg"):
        assert b"<svg" in out.read_bytes()[:2000]
    assert [p.name for p in tmp_path.iterdir()] == [name]


def test_design_plot_unknown_extension_is_refused_before_any_work(tmp_path, capsys):
    code = main(
        ["design", "lowpass", "cutoff_hz=1000", "taps=31", "--plot", str(tmp_path / "x.gif")]
    )
    assert code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "x.gif: unknown plot type .gif" in err
    assert list(tmp_path.iterdir()) == []


def test_version_and_usage_errors_do_not_load_numpy():
    """The variable -v sets is the one the libraries' chatter filter reads, and the command
    line itself does not import streamconv.io (numpy): `run --help` does not wait for it."""
    from streamconv import cli
    from streamconv.io import chatter

    assert cli.VERBOSE_ENV == chatter.VERBOSE_ENV
    for argv in (["run", "--help"], ["--version"]):
        code = (
            "import sys\n"
            "from streamconv.cli import main\n"
            "try:\n"
            f"    main({argv!r})\n"
            "except SystemExit:\n"
            "    pass\n"
            "print('numpy' in sys.modules)\n"
        )
        run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        assert run.stdout.strip().endswith("False"), (argv, run.stdout + run.stderr)


def test_python_dash_m_runs_the_same_command_line(tmp_path):
    """``python -m streamconv`` is the ``streamconv`` script: same output, same exit codes."""
    run = subprocess.run(
        [sys.executable, "-m", "streamconv", "--version"], capture_output=True, text=True
    )
    assert run.returncode == 0 and run.stdout.startswith("streamconv "), run.stderr
    taps = tmp_path / "taps.txt"
    taps.write_text("1\n2\n")
    missing = tmp_path / "none.wav"
    argv = ["filter", "-i", str(missing), "-o", str(tmp_path / "o.wav"), "--fir", str(taps)]
    bad = subprocess.run(
        [sys.executable, "-m", "streamconv", *argv], capture_output=True, text=True
    )
    assert bad.returncode == 2, bad.stderr
    assert bad.stderr.startswith("error: ") and "none.wav" in bad.stderr
    assert sorted(tmp_path.iterdir()) == [taps]  # no output file


GC_PROBE = """
import gc, sys
from streamconv.cli import main
sys.argv = ["streamconv", *sys.argv[1:]]
collections = []
gc.callbacks.append(lambda phase, info: collections.append(phase))
try:
    code = main({argv})
except SystemExit as stop:
    code = stop.code
print(code, gc.isenabled(), gc.get_freeze_count() > 0, bool(collections))
"""


@pytest.mark.parametrize("argv", [["filter", "-i", "IN", "-o", "OUT", "--fir", "H"],
                                  ["run", "-c", "CONF"],
                                  ["filter", "--no-such-option"]])  # fmt: skip
def test_the_program_freezes_its_start_up_objects_a_call_with_argv_does_not(tmp_path, argv):
    """`main()` as the program (no argv) keeps the collector off while the command loads and
    freezes what loading made; the collector is on again afterwards, also after a usage error,
    and it collects while the command runs (``run``, the service, runs for months).
    `main(argv)`, a call inside some other program (these tests), leaves the collector alone."""
    import numpy as np
    import soundfile as sf

    sf.write(tmp_path / "in.wav", np.zeros((100, 1)), 8000, subtype="FLOAT")
    np.savetxt(tmp_path / "h.txt", [1.0])
    conf = tmp_path / "c.toml"
    conf.write_text(
        f'[source]\nuri = "{tmp_path / "in.wav"}"\n[sink]\nuri = "{tmp_path / "o.wav"}"\n'
    )
    paths = {"IN": str(tmp_path / "in.wav"), "OUT": str(tmp_path / "out.wav"),
             "H": str(tmp_path / "h.txt"), "CONF": str(conf)}  # fmt: skip
    argv = [paths.get(a, a) for a in argv]
    ok = "--no-such-option" not in argv
    for given, frozen in (("None", "True"), (repr(argv), "False")):
        code = GC_PROBE.format(argv=given)
        run = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True)
        out = run.stdout.split()
        assert out[:3] == ["0" if ok else "2", "True", frozen], run.stdout + run.stderr
        if ok:  # the command made garbage enough for the collector to run: it was on
            assert out[3] == "True", run.stdout + run.stderr


def test_the_largest_block_is_the_configs():
    """`filter --block` and a config's block_size have one bound."""
    from streamconv.commands._args import MAX_BLOCK
    from streamconv.config.models import Processing

    meta = Processing.model_json_schema()["properties"]["block_size"]["anyOf"][0]
    assert (meta["minimum"], meta["maximum"]) == (1, MAX_BLOCK)


def test_filter_help_names_every_pipe_type():
    """--type and --out-type list what the pipes take (streamconv.io.audiopipes)."""
    from streamconv.io.audiopipes import PIPE_WRITABLE, TYPES

    text = " ".join(_cli("filter", "--help").stdout.split())
    into = text.split("--type TYPE what", 1)[1].split("--out-type TYPE what", 1)
    assert all(f" {t}," in into[0] or f" {t} " in into[0] for t in TYPES), into[0]
    assert all(f" {t}," in into[1] or f" {t} " in into[1] for t in PIPE_WRITABLE), into[1]
