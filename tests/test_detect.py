"""`streamconv.detect`: template naming and resampling, detector construction, the stream-order
merge and the detection records, as `match`, archives and the service use them."""

import csv
import dataclasses
import io
import json
from fractions import Fraction

import numpy as np
import pytest
import soundfile as sf
from scipy import signal

from streamconv import config
from streamconv.detect import (
    DEFAULT_THRESHOLD,
    FIELDS,
    MAX_RESAMPLE_DENOMINATOR,
    Detectors,
    MatchOptions,
    PeriodDetection,
    PeriodicitySpec,
    RecordWriter,
    Template,
    TemplateSpec,
    build_detectors,
    load_templates,
    resample,
    resample_ratio,
    template_name,
    to_record,
)
from streamconv.dsp import matcher
from streamconv.dsp.matcher import Detection, Matcher
from streamconv.errors import UsageError

# -- naming -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("knock.csv", ("knock", "knock.csv")),
        ("data/bell.wav", ("bell", "data/bell.wav")),
        ("ding=data/bell.wav", ("ding", "data/bell.wav")),
        ("data/a=b.wav", ("a=b", "data/a=b.wav")),  # '=' after a separator: a path
        ("x.y.npy", ("x.y", "x.y.npy")),
    ],
)
def test_template_names(text, expected):
    assert template_name(text) == expected


@pytest.mark.parametrize("text", ["=x.wav", "name=", ""])
def test_bad_template_arguments(text):
    with pytest.raises(UsageError, match="expected PATH or NAME=PATH"):
        template_name(text)


def test_an_existing_file_with_an_equals_sign_is_a_path(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    np.save("a=b.npy", np.arange(5.0))
    assert template_name("a=b.npy") == ("a=b", "a=b.npy")


def test_a_name_comes_once(tmp_path):
    np.save(tmp_path / "t.npy", np.arange(5.0))
    with pytest.raises(UsageError, match="template name 't' given twice"):
        load_templates([str(tmp_path / "t.npy"), f"t={tmp_path / 't.npy'}"])


# -- resampling -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("src", "dst", "up", "down"),
    [
        (44100, 48000, 160, 147),
        (48000, 8000, 1, 6),
        (11025, 192000, 2560, 147),
        (48000, 44056, 5507, 6000),  # limit_denominator(1000) would bend this one
        (1000, 999.5, 1999, 2000),
    ],
)
def test_resampling_is_exact_for_rates_with_a_small_ratio(src, dst, up, down):
    ratio = resample_ratio(dst, src)
    assert (ratio.numerator, ratio.denominator) == (up, down)
    assert Fraction(ratio) == Fraction(dst) / Fraction(src)
    x = np.random.default_rng(0).normal(size=(701, 2))
    oracle = signal.resample_poly(x, up, down, axis=0)
    np.testing.assert_array_equal(resample(x, src, dst), oracle)


def test_an_inexact_ratio_is_off_by_less_than_1e8():
    src, dst = 48000.0, 48000.0 * 10007 / 10009 / 1.0000001  # no small exact ratio
    ratio = resample_ratio(dst, src)
    assert ratio.denominator <= MAX_RESAMPLE_DENOMINATOR
    assert abs(float(ratio) - dst / src) / (dst / src) < 1e-8


def test_resampled_sine_keeps_its_frequency():
    """Independent of scipy's own test: a 1 kHz tone taken 44.1 -> 48 kHz is a 1 kHz tone."""
    n = np.arange(44100)
    x = np.sin(2 * np.pi * 1000 * n / 44100)
    y = resample(x, 44100, 48000)
    assert len(y) == 48000
    m = np.arange(2000, 46000)  # away from the edges of the polyphase filter
    np.testing.assert_allclose(y[m], np.sin(2 * np.pi * 1000 * m / 48000), atol=2e-3)


def test_match_and_config_resample_a_template_the_same(tmp_path):
    """One precision: the samples `match -t` matches are the ones a config's service matches."""
    t = np.random.default_rng(3).normal(size=300) * np.hanning(300)
    sf.write(tmp_path / "t.wav", t, 48000, subtype="DOUBLE")
    (tmp_path / "in.raw").write_bytes(b"")
    (tmp_path / "c.toml").write_text(
        '[source]\nuri = "in.raw"\nformat = "f32le"\nrate = 44056\nchannels = 1\n'
        '[sink]\nuri = "null"\n'
        '[[templates]]\nname = "t"\npath = "t.wav"\nresample = true\n'
    )
    loaded = config.load_config(str(tmp_path / "c.toml"))
    [info] = loaded.templates
    cli = Template("t", str(tmp_path / "t.wav")).at(44056)
    np.testing.assert_array_equal(info.samples[:, 0], cli)
    np.testing.assert_array_equal(cli, signal.resample_poly(t, 5507, 6000))


def test_template_at_the_stream_rate_is_not_resampled(tmp_path):
    t = np.random.default_rng(3).normal(size=(50, 2))
    sf.write(tmp_path / "t.wav", t, 8000, subtype="DOUBLE")
    notes = []
    tpl = Template("t", str(tmp_path / "t.wav"))
    np.testing.assert_array_equal(tpl.for_stream(8000, 2, "x.wav", notes.append), t)
    assert notes == []
    tpl.for_stream(16000, 2, "x.wav", notes.append)
    tpl.for_stream(16000, 2, "y.wav", notes.append)  # cached: one note
    assert notes == ["template 't' resampled from 8000 Hz to 16000 Hz for x.wav"]
    with pytest.raises(UsageError, match=r"x\.wav: 3 channel\(s\), but template 't' .* --downmix"):
        tpl.for_stream(8000, 3, "x.wav")
    np.testing.assert_array_equal(tpl.for_stream(8000, 1, "x.wav", downmix=True), t.mean(axis=1))


def test_one_default_threshold():
    assert DEFAULT_THRESHOLD is matcher.DEFAULT_THRESHOLD
    from streamconv.config import models

    assert models.DEFAULT_THRESHOLD is matcher.DEFAULT_THRESHOLD


# -- construction -----------------------------------------------------------------------------


def _stream(n=20_000, seed=5):
    rng = np.random.default_rng(seed)
    x = 0.3 * rng.normal(size=(n, 2))
    k = np.arange(200)
    a = np.sin(2 * np.pi * (0.02 + 0.1 * k / 200) * k) * np.hanning(200)
    for s in rng.integers(0, n - 200, size=12):
        x[s : s + 200, rng.integers(2)] += a
    return x, a


def test_match_options_build_the_matcher_the_api_would():
    x, a = _stream()
    opts = MatchOptions(mad=5.0, mad_window_s=1.5, mad_hop_s=3.0, min_distance=300)
    group = opts.detectors({"a": a}, 1000, 2)
    got = group.process(x) + group.flush()
    m = Matcher({"a": a}, 1000, mad=5.0, min_distance=300, mad_window_s=1.5, mad_hop_s=1.5)
    assert got == m.process(x) + m.flush()
    assert got


def test_specs_group_templates_by_what_a_matcher_takes_once():
    _, a = _stream()
    specs = [
        TemplateSpec("a", a, threshold=0.5),
        TemplateSpec("b", a[::-1].copy(), mad=4.0),
        TemplateSpec("c", a, combine="mean"),
        TemplateSpec("d", a, mad=3.0, mad_window_s=2.0),
    ]
    built = build_detectors(specs, [PeriodicitySpec("p", 0.05, 0.2)], sample_rate=1000,
                            channels=2)  # fmt: skip
    assert [type(d).__name__ for d in built] == ["Matcher"] * 3 + ["NamedPeriodicity"]
    assert [d.names for d in built[:3]] == [["a", "b"], ["c"], ["d"]]
    assert built[0].rules("a").threshold == 0.5 and built[0].rules("b").mad == 4.0
    assert built[1].rules("c").threshold == DEFAULT_THRESHOLD


def test_a_refused_periodicity_range_names_the_option():
    with pytest.raises(UsageError, match=r"--periodicity 0\.0001:0\.001: period range"):
        MatchOptions(periodicity=(0.0001, 0.001)).detectors({}, 1000, 1)


# -- the stream-order merge -------------------------------------------------------------------


class Scripted:
    """A detector that says what it has decided and returns scripted detections."""

    def __init__(self, name, samples, lag):
        self.name, self.samples, self.lag = name, sorted(samples), lag
        self.pos = 0
        self.given = 0

    @property
    def decided(self):
        return max(self.pos - self.lag, 0)

    def process(self, x):
        self.pos += len(x)
        return self._upto(self.decided)

    def flush(self):
        return self._upto(None)

    def _upto(self, upto):
        out = []
        while self.given < len(self.samples) and (upto is None or self.samples[self.given] < upto):
            s = self.samples[self.given]
            out += [Detection(f"{self.name}{k}", s, s / 10, 0.9, k, 0.5) for k in range(2)]
            self.given += 1
        return out


@pytest.mark.parametrize("block", [1, 7, 13, 100, 1000])
def test_equal_samples_come_in_detector_order_then_each_detectors_own(block):
    def run():
        group = Detectors([Scripted("a", [5, 40, 41, 90], 30), Scripted("b", [5, 41, 60], 3)])
        out = []
        for pos in range(0, 100, block):
            out += group.process(np.zeros((min(block, 100 - pos), 1)))
        return out + group.flush()

    got = [(d.sample, d.template, d.channel) for d in run()]
    expected = []
    for s in [5, 40, 41, 60, 90]:
        for name in "ab":
            if s in {"a": [5, 40, 41, 90], "b": [5, 41, 60]}[name]:
                expected += [(s, f"{name}0", 0), (s, f"{name}1", 1)]
    assert got == expected


def test_detections_wait_until_every_detector_has_decided():
    slow, fast = Scripted("s", [50], 60), Scripted("f", [10, 20], 0)
    group = Detectors([slow, fast])
    assert group.process(np.zeros((30, 1))) == []  # the slow one has decided nothing yet
    out = group.process(np.zeros((51, 1)))  # slow decided up to 21
    assert [d.sample for d in out] == [10, 10, 20, 20]


def test_periodicity_and_templates_merge_in_stream_order_in_the_pipeline():
    """The service's detections are `match`'s: same objects, same order, any block size."""
    from streamconv.pipeline import Pipeline

    x, a = _stream()
    templates = [TemplateSpec("a", a, threshold=0.2)]
    periodic = [PeriodicitySpec("periodicity", 0.05, 0.3, threshold=0.01)]
    opts = MatchOptions(threshold=0.2, periodicity=(0.05, 0.3), periodicity_threshold=0.01)
    group = opts.detectors({"a": a}, 1000, 2)
    expected = group.process(x) + group.flush()
    assert {d.template for d in expected} == {"a", "periodicity"}
    for block in (13, 997, 4096):
        pipe = Pipeline(np.ones(1), 1000, 2, block_size=block, method="direct",
                        templates=templates, periodicity=periodic)  # fmt: skip
        got = []
        for pos in range(0, len(x), block):
            got += pipe.process(x[pos : pos + block])[1]
        # The one-tap chain delays nothing: the input's timeline, chain delay 0.
        on_input = [dataclasses.replace(d, timeline="input", chain_delay=0.0) for d in expected]
        assert got + pipe.flush() == on_input


# -- records ----------------------------------------------------------------------------------


DET = Detection("knock", 1200, 1.2, 0.875, 1, 0.7)
PER = PeriodDetection("periodicity", 800, 0.8, 0.5, None, 0.25, 0.3125)


def test_records():
    assert to_record("a.wav", DET) == {
        "file": "a.wav", "template": "knock", "sample": 1200, "time": 1.2, "score": 0.875,
        "channel": 1, "threshold": 0.7,
    }  # fmt: skip
    assert list(to_record("a.wav", PER)) == FIELDS
    assert to_record("a.wav", PER)["period"] == 0.3125


def test_json_lines_to_a_stream():
    out = io.StringIO()
    w = RecordWriter(stream=out)
    w.write(to_record("a.wav", DET))
    w.write(to_record("a.wav", PER))
    w.close(ok=True)
    assert out.getvalue().splitlines() == [
        '{"file": "a.wav", "template": "knock", "sample": 1200, "time": 1.2, "score": 0.875, '
        '"channel": 1, "threshold": 0.7}',
        '{"file": "a.wav", "template": "periodicity", "sample": 800, "time": 0.8, "score": 0.5, '
        '"channel": null, "threshold": 0.25, "period": 0.3125}',
    ]
    assert [json.loads(line)["sample"] for line in out.getvalue().splitlines()] == [1200, 800]


def test_csv_file_appears_when_complete(tmp_path):
    path = tmp_path / "d.csv"
    w = RecordWriter(str(path))
    w.write(to_record("a.wav", DET))
    w.write(to_record("a.wav", PER))
    assert not path.exists()
    w.close(ok=True)
    assert path.read_text().splitlines() == [
        "file,template,sample,time,score,channel,threshold,period",
        "a.wav,knock,1200,1.2,0.875,1,0.7,",
        "a.wav,periodicity,800,0.8,0.5,,0.25,0.3125",
    ]
    rows = list(csv.DictReader(path.open()))
    assert rows[1]["period"] == "0.3125"


def test_failed_run_leaves_no_file(tmp_path):
    path = tmp_path / "d.jsonl"
    w = RecordWriter(str(path))
    w.write(to_record("a.wav", DET))
    w.close(ok=False)
    assert list(tmp_path.iterdir()) == []
