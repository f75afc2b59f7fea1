"""Config loading: strict models, every error with its path and line, cross-checks, built taps."""

from __future__ import annotations

import json
import os
import textwrap

import numpy as np
import pytest
import soundfile as sf
from scipy import signal

from streamconv.config import config_schema, load_config
from streamconv.dsp import design
from streamconv.errors import ConfigError

RATE = 16000


@pytest.fixture
def workdir(tmp_path):
    """A directory with a stereo input, a mono template and a two-tap taps file."""
    rng = np.random.default_rng(0)
    sf.write(tmp_path / "in.wav", 0.1 * rng.standard_normal((RATE, 2)), RATE, subtype="FLOAT")
    sf.write(tmp_path / "tpl.wav", np.sin(np.arange(300) * 0.2), RATE, subtype="FLOAT")
    (tmp_path / "ir.txt").write_text("# an impulse response\n1.0\n0.5\n")
    return tmp_path


def write(directory, text, name="c.toml"):
    path = directory / name
    path.write_text(textwrap.dedent(text))
    return str(path)


BASE = """\
[source]
uri = "in.wav"
[sink]
uri = "out.wav"
"""


def errors_of(path) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert info.value.exit_code == 2
    return info.value.errors


def test_a_chain_becomes_one_mimo_fir_equal_to_the_filters_in_turn(workdir):
    path = write(
        workdir,
        BASE
        + """
        [[filters]]
        type = "lowpass"
        cutoff_hz = 2000
        taps = 31
        [[filters]]
        type = "file"
        path = "ir.txt"
        channels = [1]
        [[filters]]
        type = "mix"
        matrix = [[1.0, 0.0, 0.5], [0.0, 1.0, 0.5]]
        [[filters]]
        type = "delay"
        samples = 3
        channels = [2]
        """.replace("\n        ", "\n"),
    )
    loaded = load_config(path)
    assert (loaded.sample_rate, loaded.channels_in, loaded.channels_out) == (RATE, 2, 3)
    x = np.random.default_rng(1).standard_normal((500, 2))
    lp = design.lowpass(RATE, cutoff_hz=2000, taps=31)
    left = signal.lfilter(lp, 1, x[:, 0])
    right = signal.lfilter([1.0, 0.5], 1, signal.lfilter(lp, 1, x[:, 1]))
    mid = np.concatenate([np.zeros(3), 0.5 * (left + right)])[: len(x)]
    expected = np.stack([left, right, mid], axis=1)
    taps = loaded.taps
    got = np.stack(
        [sum(np.convolve(x[:, i], taps[:, i, j])[: len(x)] for i in range(2)) for j in range(3)],
        axis=1,
    )
    np.testing.assert_allclose(got, expected, atol=1e-12)
    assert loaded.sink.channels == 3
    assert loaded.sink.uri == str(workdir / "out.wav")


def test_toml_and_yaml_give_the_same_config(workdir):
    toml = write(
        workdir,
        BASE + '[[filters]]\ntype = "bandpass"\nlow_hz = 500\nhigh_hz = 2000\ntaps = 51\n'
        '[[templates]]\nname = "t"\npath = "tpl.wav"\nmad = 5\n',
    )
    yaml = write(
        workdir,
        """\
        source: {uri: in.wav}
        sink: {uri: out.wav}
        filters:
          - {type: bandpass, low_hz: 500, high_hz: 2000, taps: 51}
        templates:
          - name: t
            path: tpl.wav
            mad: 5
        """,
        name="c.yaml",
    )
    a, b = load_config(toml), load_config(yaml)
    np.testing.assert_array_equal(a.taps, b.taps)
    assert a.templates[0].mad == b.templates[0].mad == 5
    np.testing.assert_array_equal(a.templates[0].samples, b.templates[0].samples)
    assert a.templates[0].threshold is None
    assert a.templates[0].min_distance == 300  # default: the template length


def test_no_filters_pass_the_stream_unchanged(workdir):
    loaded = load_config(write(workdir, BASE))
    np.testing.assert_array_equal(loaded.taps, np.eye(2)[np.newaxis])
    np.testing.assert_array_equal(loaded.compact_taps(), [1.0])


# Each kind of mistake, with the path (and line) its message must name.
MISTAKES = [
    ("unknown key", '[[filters]]\ntype = "gain"\ngain_db = 1\ngian = 2\n', "filters[0].gian", 8),
    (
        "wrong type",
        '[[filters]]\ntype = "lowpass"\ncutoff_hz = "1k"\ntaps = 5\n',
        "filters[0].cutoff_hz",
        7,
    ),
    (
        "bool is not an int",
        '[[filters]]\ntype = "moving_average"\ntaps = true\n',
        "filters[0].taps",
        7,
    ),
    ("out of bounds", "[processing]\nblock_size = 0\n", "processing.block_size", 6),
    (
        "above Nyquist",
        '[[filters]]\ntype = "lowpass"\ncutoff_hz = 9000\ntaps = 5\n',
        "filters[0].cutoff_hz",
        7,
    ),
    ("missing taps file", '[[filters]]\ntype = "file"\npath = "nope.txt"\n', "filters[0].path", 7),
    ("bad taps file", '[[filters]]\ntype = "file"\npath = "bad.txt"\n', "filters[0].path", 7),
    (
        "channel out of range",
        '[[filters]]\ntype = "gain"\ngain_db = 1\nchannels = [2]\n',
        "filters[0].channels",
        8,
    ),
    ("mix rows mismatch", '[[filters]]\ntype = "mix"\nmatrix = [[1.0]]\n', "filters[0].matrix", 7),
    ("sink channel mismatch", "", "sink.channels", 5),
    (
        "duplicate name",
        '[[templates]]\nname = "a"\npath = "tpl.wav"\n'
        '[[templates]]\nname = "a"\npath = "tpl.wav"\n',
        "templates[1].name",
        9,
    ),
    ("unknown type", '[[filters]]\ntype = "lowpas"\n', "filters[0].type", 6),
    ("missing key", '[[templates]]\nname = "a"\n', "templates[0].path", 5),
    (
        "threshold and mad",
        '[[templates]]\nname = "a"\npath = "tpl.wav"\nthreshold = 0.5\nmad = 3\n',
        "templates[0]",
        5,
    ),
    ("template rate", '[[templates]]\nname = "a"\npath = "tpl48k.wav"\n', "templates[0].path", 7),
    ("remote control", '[control]\nlisten = "0.0.0.0:8080"\n', "control.listen", 6),
    ("missing source file", None, "source.uri", 2),
    ("unknown table", "[sorce]\nuri = 1\n", "sorce", 5),
    ("unknown subtype", 'subtype = "PCM_17"\n', "sink.subtype", 5),
    ("subtype the type cannot hold", 'subtype = "FLOAT"\n', "sink.subtype", 5),
    ("subtype on a raw sink", 'subtype = "PCM_16"\n', "sink.subtype", 6),
    ("subtype on the source", None, "source.subtype", 3),
]


@pytest.mark.parametrize(("kind", "extra", "key", "line"), MISTAKES, ids=[m[0] for m in MISTAKES])
def test_each_kind_of_mistake_is_reported_with_its_path_and_line(workdir, kind, extra, key, line):
    (workdir / "bad.txt").write_text("0.5\nabc\n")
    sf.write(workdir / "tpl48k.wav", np.sin(np.arange(300) * 0.2), 48000)
    base = BASE
    if extra is None and kind == "missing source file":
        base, extra = base.replace("in.wav", "gone.wav"), ""
    if kind == "sink channel mismatch":
        base = base + "channels = 1\n"
    if kind == "subtype the type cannot hold":
        base = base.replace("out.wav", "out.flac")
    if kind == "subtype on a raw sink":
        base = base.replace('"out.wav"', '"out.raw"\nformat = "s16le"')
    if kind == "subtype on the source":
        base, extra = base.replace('"in.wav"\n', '"in.wav"\nsubtype = "PCM_16"\n', 1), ""
    path = write(workdir, base + extra)
    errors = errors_of(path)
    assert len(errors) == 1, errors
    expected = f"{path}:{line}: {key}:" if line else f"{path}: {key}:"
    assert errors[0].startswith(expected), errors[0]


def test_every_error_is_listed_not_just_the_first(workdir):
    path = write(
        workdir,
        """\
        [source]
        uri = "in.wav"
        rate = "fast"
        [sink]
        uri = "out.wav"
        colour = "red"
        [[filters]]
        type = "gain"
        [[templates]]
        name = ""
        path = "tpl.wav"
        """,
    )
    errors = errors_of(path)
    keys = [e.split(": ")[1] for e in errors]
    assert keys == ["source.rate", "sink.colour", "filters[0].gain_db", "templates[0].name"]
    with pytest.raises(ConfigError, match=r"source\.rate.*and 3 more"):
        load_config(path)


def test_cross_checks_list_every_problem_at_once(workdir):
    path = write(
        workdir,
        BASE + '[[filters]]\nname = "x"\ntype = "highpass"\ncutoff_hz = 100\ntaps = 10\n'
        '[[filters]]\nname = "x"\ntype = "file"\npath = "none.npy"\n'
        '[detections]\npath = "no/such/dir/d.jsonl"\n',
    )
    keys = [e.split(": ")[1] for e in errors_of(path)]
    assert keys == ["filters[1].name", "filters[0].taps", "filters[1].path", "detections.path"]


def test_a_bad_template_is_reported_beside_a_bad_filter(workdir):
    """docs/configuration.md's example: a filter above Nyquist and a missing template file,
    both in one run of `check` (the templates were skipped when the chain failed)."""
    path = write(
        workdir,
        BASE + '[[filters]]\ntype = "lowpass"\ncutoff_hz = 30000\ntaps = 11\n'
        '[[templates]]\nname = "t"\npath = "/srv/t.wav"\n',
    )
    errors = errors_of(path)
    assert [e.split(": ")[1] for e in errors] == ["filters[0].cutoff_hz", "templates[0].path"]
    assert errors[1] == f"{path}:11: templates[0].path: /srv/t.wav: no such file"


def test_yaml_errors_carry_lines(workdir):
    path = write(
        workdir,
        "source:\n  uri: in.wav\nsink:\n  uri: out.wav\nfilters:\n  - type: gain\n    gain_db: x\n",
        name="c.yml",
    )
    (error,) = errors_of(path)
    assert error.startswith(f"{path}:7: filters[0].gain_db:")


def test_a_yaml_bare_null_sink_says_to_quote_it(workdir):
    """`uri: null` in YAML is no value, not the null sink: the error says how to write it."""
    path = write(workdir, "source:\n  uri: in.wav\nsink:\n  uri: null\n", name="c.yaml")
    assert errors_of(path) == [
        f"{path}:4: sink.uri: no value (YAML reads a bare null, ~ or nothing as none): "
        'write uri: "null" for the null sink'
    ]
    write(workdir, 'source:\n  uri: in.wav\nsink:\n  uri: "null"\n', name="c.yaml")
    assert load_config(path).config.sink.uri == "null"


@pytest.mark.parametrize(
    ("text", "name", "fragment"),
    [
        ("[source\nuri=1", "c.toml", "invalid TOML"),
        ("source: [1, 2\n", "c.yaml", "invalid YAML"),
        ("- 1\n- 2\n", "c.yaml", "top level must be a table"),
    ],
)
def test_unparsable_files_name_the_file(workdir, text, name, fragment):
    path = write(workdir, text, name=name)
    with pytest.raises(ConfigError, match=fragment) as info:
        load_config(path)
    assert str(info.value).startswith(path)


def test_a_sink_that_is_the_source_file_is_refused(workdir, monkeypatch):
    # The same file by any spelling: the service would replace its own input.
    monkeypatch.setenv("HOME", str(workdir))
    os.symlink(workdir / "in.wav", workdir / "link.wav")
    for uri in ("in.wav", "./in.wav", str(workdir / "in.wav"), "~/in.wav", "link.wav"):
        path = write(workdir, f'[source]\nuri = "in.wav"\n[sink]\nuri = "{uri}"\n')
        assert [e.split(": ", 1)[1] for e in errors_of(path)] == [
            "sink.uri: is the source file; the output would overwrite the input"
        ]
    assert os.path.getsize(workdir / "in.wav") > 0


def test_a_missing_config_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="no such config file"):
        load_config(str(tmp_path / "none.toml"))


def test_sources_that_do_not_carry_rate_and_channels_need_them(workdir):
    path = write(workdir, '[source]\nuri = "-"\nformat = "s16le"\n[sink]\nuri = "null"\n')
    assert [e.split(": ")[1] for e in errors_of(path)] == ["source.rate", "source.channels"]
    path = write(workdir, '[source]\nuri = "-"\n[sink]\nuri = "-"\n')
    keys = [e.split(": ")[1] for e in errors_of(path)]
    assert keys == ["source.format", "source.rate", "source.channels", "sink.format"]


def test_csv_source_takes_its_channels_from_the_file(workdir):
    (workdir / "s.csv").write_text("a,b,c\n1,2,3\n4,5,6\n")
    loaded = load_config(
        write(workdir, '[source]\nuri = "s.csv"\nrate = 100\n[sink]\nuri = "null"\n')
    )
    assert loaded.channels_in == 3


def test_template_resampling_is_by_choice(workdir):
    n = 480
    sf.write(workdir / "t48.wav", np.sin(2 * np.pi * 1000 * np.arange(n) / 48000), 48000)
    text = BASE + '[[templates]]\nname = "t"\npath = "t48.wav"\nresample = true\n'
    loaded = load_config(write(workdir, text))
    samples = loaded.templates[0].samples
    assert samples.shape == (n // 3, 1)
    expected = np.sin(2 * np.pi * 1000 * np.arange(n // 3) / RATE)
    np.testing.assert_allclose(samples[20:-20, 0], expected[20:-20], atol=0.02)


def test_kaiser_filter_in_a_config_meets_its_attenuation(workdir):
    text = BASE + (
        '[[filters]]\ntype = "lowpass"\ncutoff_hz = 2000\n'
        "transition_hz = 400\nattenuation_db = 70\n"
    )
    h = load_config(write(workdir, text)).compact_taps()
    freqs = np.linspace(2200, RATE / 2, 4000)
    _, resp = signal.freqz(h, worN=freqs, fs=RATE)
    assert 20 * np.log10(np.abs(resp).max()) <= -70


def test_file_filter_reads_stereo_impulse_responses_per_channel(workdir):
    ir = np.zeros((4, 2))
    ir[0, 0] = 1.0
    ir[3, 1] = 0.5
    sf.write(workdir / "ir.wav", ir, RATE, subtype="FLOAT")
    loaded = load_config(write(workdir, BASE + '[[filters]]\ntype = "file"\npath = "ir.wav"\n'))
    np.testing.assert_array_equal(loaded.compact_taps(), ir)
    sf.write(workdir / "ir44.wav", ir, 44100, subtype="FLOAT")
    errors = errors_of(write(workdir, BASE + '[[filters]]\ntype = "file"\npath = "ir44.wav"\n'))
    assert "44100 Hz" in errors[0] and "16000 Hz" in errors[0]


def test_relative_paths_are_relative_to_the_config_not_the_cwd(
    workdir, monkeypatch, tmp_path_factory
):
    monkeypatch.chdir(tmp_path_factory.mktemp("elsewhere"))
    loaded = load_config(write(workdir, BASE + '[[templates]]\nname = "t"\npath = "tpl.wav"\n'))
    assert loaded.source.uri == os.path.join(workdir, "in.wav")


def test_schema_is_json_and_forbids_unknown_keys():
    schema = json.loads(config_schema())
    assert set(schema["required"]) == {"source", "sink"}
    assert schema["additionalProperties"] is False
    assert "filters" in schema["properties"]


def test_a_key_of_another_type_names_the_keys_of_this_one(workdir):
    """`timeout_s` (a webhook's) on an mqtt output was "unknown key (did you mean
    'timeout_s'?)": the very key written. It now says which keys the type takes."""
    path = write(
        workdir,
        BASE + '[[filters]]\ntype = "gain"\ngain_db = 1\ncutoff_hz = 5\n'
        '[[outputs]]\ntype = "mqtt"\nurl = "mqtt://127.0.0.1"\ntimeout_s = 1\n'
        '[[outputs]]\ntype = "webhook"\nurl = "http://127.0.0.1/x"\ntimeot_s = 1\n',
    )
    errors = [e.split(": ", 1)[1] for e in errors_of(path)]
    assert errors == [
        "filters[0].cutoff_hz: not a key for type 'gain'; its keys: channels, gain_db, name",
        "outputs[0].timeout_s: not a key for type 'mqtt'; its keys: client_id, qos, queue, "
        "retain, topic, url",
        "outputs[1].timeot_s: unknown key (did you mean 'timeout_s'?)",
    ]


def test_an_mqtt_url_or_topic_error_names_its_key_and_line(workdir):
    path = write(
        workdir,
        BASE + '[[outputs]]\ntype = "mqtt"\nurl = "http://x"\ntopic = "a/{foo}"\n',
    )
    errors = errors_of(path)
    assert errors == [
        f"{path}:7: outputs[0].url: 'http://x': the broker URL must start with mqtt:// or mqtts://",
        f"{path}:8: outputs[0].topic: 'a/{{foo}}': unknown field {{foo}}; use {{channel}}, "
        "{sample}, {template}",
    ]
