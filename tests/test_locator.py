"""`streamconv.locator`: every locator syntax of docs/contract.md ("Stream locators"), bad ones,
and the same parser (and error text) behind the config, `open_source`/`open_sink`, the commands
and udp."""

import ast
import os
import pathlib

import numpy as np
import pytest
import soundfile as sf

import streamconv
from streamconv.cli import main
from streamconv.errors import UsageError
from streamconv.io import open_sink, open_source
from streamconv.io.network import parse_udp
from streamconv.locator import Locator, LocatorError, is_loopback, parse_host_port, parse_locator

GOOD = [
    # text, expected fields (besides text)
    ("-", {"kind": "pipe"}),
    ("null", {"kind": "null"}),
    ("rec.wav", {"kind": "file", "path": "rec.wav", "file_kind": "audio"}),
    ("dir/REC.FLAC", {"kind": "file", "path": "dir/REC.FLAC", "file_kind": "audio"}),
    ("a.ogg", {"kind": "file", "path": "a.ogg", "file_kind": "audio"}),
    ("noext", {"kind": "file", "path": "noext", "file_kind": "audio"}),
    ("s.csv", {"kind": "file", "path": "s.csv", "file_kind": "csv"}),
    ("s.CSV", {"kind": "file", "path": "s.CSV", "file_kind": "csv"}),
    ("x.raw", {"kind": "file", "path": "x.raw", "file_kind": "raw"}),
    ("x.pcm", {"kind": "file", "path": "x.pcm", "file_kind": "raw"}),
    ("/abs/x.wav", {"kind": "file", "path": "/abs/x.wav", "file_kind": "audio"}),
    ("device", {"kind": "device"}),
    ("device:USB Audio", {"kind": "device", "device": "USB Audio"}),
    ("device:hw:1,0", {"kind": "device", "device": "hw:1,0"}),
    ("device:3", {"kind": "device", "device": "3", "index": 3}),
    ("pyaudio:2", {"kind": "pyaudio", "device": "2", "index": 2}),
    ("udp://127.0.0.1:9000", {"kind": "udp", "host": "127.0.0.1", "port": 9000}),
    ("udp://localhost:0", {"kind": "udp", "host": "localhost", "port": 0}),
    ("udp://[::1]:5000", {"kind": "udp", "host": "::1", "port": 5000}),
    ("udp://sensor.lan:65535", {"kind": "udp", "host": "sensor.lan", "port": 65535}),
]


@pytest.mark.parametrize(("text", "fields"), GOOD)
def test_every_syntax(text, fields):
    loc = parse_locator(text)
    expected = Locator(text, **fields)
    assert loc == expected
    assert loc.is_device == (fields["kind"] in ("device", "pyaudio"))
    assert loc.backend == {"device": "sounddevice", "pyaudio": "pyaudio"}.get(fields["kind"])
    assert loc.uri == fields.get("path", text)


def test_paths_relative_to_a_base_and_home():
    assert parse_locator("data/x.csv", "/etc/sc").path == "/etc/sc/data/x.csv"
    assert parse_locator("/abs/x.csv", "/etc/sc").path == "/abs/x.csv"
    assert parse_locator("../x.wav", "/etc/sc").path == "/etc/x.wav"
    assert parse_locator("~/x.wav").path == os.path.expanduser("~/x.wav")
    assert parse_locator("x.wav").path == "x.wav"  # the command line: as written


BAD = [
    ("", "empty locator"),
    ("device:", "device:: needs a NAME or INDEX after the colon"),
    ("pyaudio:", "pyaudio:: needs a NAME or INDEX after the colon"),
    ("pyaudio:usb", "pyaudio:usb: pyaudio:INDEX needs a device number"),
    ("udp://", "udp://: expected udp://HOST:PORT with a port 0..65535"),
    ("udp://nohostport", "udp://nohostport: expected udp://HOST:PORT with a port 0..65535"),
    ("udp://:12", "udp://:12: expected udp://HOST:PORT with a port 0..65535"),
    ("udp://h:notaport", "udp://h:notaport: expected udp://HOST:PORT with a port 0..65535"),
    ("udp://h:70000", "udp://h:70000: expected udp://HOST:PORT with a port 0..65535"),
    ("udp://::1:5000", "udp://::1:5000: expected udp://HOST:PORT with a port 0..65535"),
    ("tcp://h:1", "tcp://h:1: unknown scheme tcp:// (a network stream is udp://)"),
    ("http://x/a.wav", "http://x/a.wav: unknown scheme http:// (a network stream is udp://)"),
]


@pytest.mark.parametrize(("text", "message"), BAD)
def test_bad_locators(text, message):
    with pytest.raises(LocatorError) as err:
        parse_locator(text)
    assert str(err.value) == message
    assert isinstance(err.value, UsageError) and isinstance(err.value, ValueError)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("127.0.0.1:8080", ("127.0.0.1", 8080)),
        ("localhost:0", ("localhost", 0)),
        ("[::1]:80", ("::1", 80)),
        ("0.0.0.0:65535", ("0.0.0.0", 65535)),
    ],
)
def test_host_port(text, expected):
    assert parse_host_port(text) == expected


@pytest.mark.parametrize("text", ["8080", ":80", "h:", "h:-1", "h:65536", "::1:80", "[]:80", ""])
def test_bad_host_port(text):
    with pytest.raises(LocatorError) as err:
        parse_host_port(text)
    assert str(err.value) == f"{text}: expected HOST:PORT with a port 0..65535"


def test_loopback():
    assert all(map(is_loopback, ["localhost", "127.0.0.1", "127.9.9.9", "::1"]))
    assert not any(map(is_loopback, ["0.0.0.0", "192.0.2.1", "::", "example.com"]))


# -- the same parser everywhere ---------------------------------------------------------------

EVERYWHERE = [b for b in BAD if b[0]]  # an empty uri is refused by the config schema first


@pytest.mark.parametrize(("text", "message"), EVERYWHERE)
def test_io_reports_the_parsers_error(text, message):
    with pytest.raises(UsageError) as err:
        open_source(text, fmt="s16le", sample_rate=10, channels=1)
    assert str(err.value) == message
    with pytest.raises(UsageError) as err:
        open_sink(text, fmt="s16le", sample_rate=10, channels=1)
    assert str(err.value) == message


@pytest.mark.parametrize(("text", "message"), EVERYWHERE)
def test_filter_reports_the_parsers_error(tmp_path, capsys, text, message):
    (tmp_path / "h.txt").write_text("1\n")
    sf.write(tmp_path / "in.wav", np.zeros(10), 8000)
    for argv in (["-i", text, "-o", str(tmp_path / "o.wav")], ["-i", str(tmp_path / "in.wav"),
                                                               "-o", text]):  # fmt: skip
        code = main(["filter", *argv, "--fir", str(tmp_path / "h.txt"), "--rate", "8000",
                     "--channels", "1", "--format", "s16le"])  # fmt: skip
        err = capsys.readouterr().err
        assert code == 2
        assert err.startswith(f"error: {message}")
    assert not (tmp_path / "o.wav").exists()


@pytest.mark.parametrize(("text", "message"), EVERYWHERE)
def test_config_reports_the_parsers_error(tmp_path, capsys, text, message):
    sf.write(tmp_path / "in.wav", np.zeros(10), 8000)
    for section in ("source", "sink"):
        other = {"source": "sink", "sink": "source"}[section]
        other_uri = "in.wav" if other == "source" else "null"
        (tmp_path / "c.toml").write_text(
            f'[{section}]\nuri = "{text}"\nformat = "s16le"\nrate = 8000\nchannels = 1\n'
            f'[{other}]\nuri = "{other_uri}"\n'
        )
        assert main(["check", str(tmp_path / "c.toml")]) == 2
        assert f"{section}.uri: {message}" in capsys.readouterr().err


@pytest.mark.parametrize("listen", ["8080", "h:70000", "::1:80"])
def test_control_listen_uses_the_same_host_port_parser(tmp_path, capsys, listen):
    sf.write(tmp_path / "in.wav", np.zeros(10), 8000)
    (tmp_path / "c.toml").write_text(
        f'[source]\nuri = "in.wav"\n[sink]\nuri = "null"\n[control]\nlisten = "{listen}"\n'
    )
    assert main(["check", str(tmp_path / "c.toml")]) == 2
    err = capsys.readouterr().err
    assert f"control.listen: {listen}: expected HOST:PORT with a port 0..65535" in err


def test_udp_streams_use_the_same_parser():
    assert parse_udp("udp://[::1]:5000") == ("::1", 5000)
    with pytest.raises(UsageError, match=r"^device:1: expected udp://HOST:PORT"):
        parse_udp("device:1")


def test_no_other_module_parses_locator_prefixes():
    """The prefixes live in `streamconv.locator` only: a module holding ``"udp://"``,
    ``"device:"`` or ``"pyaudio:"`` as a string (not a docstring or a message) is a copy of the
    parser (as `runner.endpoint_kind` and `commands._applies.locator_kind` were)."""
    root = pathlib.Path(streamconv.__file__).parent
    copies = []
    for path in sorted(root.rglob("*.py")):
        if path.name == "locator.py" and path.parent == root:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Constant) and node.value in ("udp://", "device:", "pyaudio:"):
                copies.append(f"{path.relative_to(root)}:{node.lineno}")
    assert copies == []
