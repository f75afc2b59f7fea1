"""Matcher: scores against a naive per-window Pearson oracle, chunking invariance, physics."""

import numpy as np
import pytest
from numpy.lib.stride_tricks import sliding_window_view

from streamconv import Detection, Matcher
from streamconv.dsp.matcher import FLAT_RTOL
from streamconv.dsp.thresholds import MIN_MAD_THRESHOLD, MadThreshold
from streamconv.dsp.window_sums import BlockSums, window_sums


def naive_ncc(x, t):
    """Pearson correlation of t with every window of x, one window at a time (1-D)."""
    length = len(t)
    tc = t - t.mean()
    out = np.zeros(len(x) - length + 1)
    for s in range(len(out)):
        w = x[s : s + length]
        wc = w - w.mean()
        var = np.sum(wc * wc)
        if var <= FLAT_RTOL * np.sum(w * w):
            continue
        out[s] = np.sum(tc * wc) / np.sqrt(np.sum(tc * tc) * var)
    return out


def all_scores(matcher, x, chunk=None):
    """Every score, through the public API: threshold -1 and min_distance 1 report them all."""
    dets = []
    if chunk is None:
        dets = matcher.process(x)
    else:
        for a in range(0, len(x), chunk):
            dets += matcher.process(x[a : a + chunk])
    return dets + matcher.flush()


def trace(dets, name, channel):
    picked = [d for d in dets if d.template == name and d.channel == channel]
    assert [d.sample for d in picked] == list(range(len(picked)))
    return np.array([d.score for d in picked])


def test_window_sums_match_direct_sums():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(500, 2))
    for length in (1, 2, 7, 64, 300):
        count = len(a) - length + 1
        expected = sliding_window_view(a, length, axis=0).sum(axis=-1)
        np.testing.assert_allclose(window_sums(a, length, count), expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("block", [1, 4, 64])
def test_shared_block_sums_serve_every_length(block):
    rng = np.random.default_rng(13)
    a = rng.normal(size=(2, 700))
    sums = BlockSums(a, block, 700)
    for length in (64, 65, 100, 255, 256):
        count = 700 - length + 1
        expected = sliding_window_view(a, length, axis=1).sum(axis=-1)
        np.testing.assert_allclose(sums.sums(length, count), expected, rtol=1e-12, atol=1e-12)


def test_block_sums_refuse_windows_shorter_than_a_block():
    with pytest.raises(ValueError, match="shorter than the block"):
        BlockSums(np.zeros((1, 10)), 8, 10).sums(5, 3)


@pytest.mark.parametrize("block_size", [None, 1, 13, 256])
def test_scores_equal_naive_pearson(block_size):
    rng = np.random.default_rng(1)
    x = rng.normal(size=1500) + 0.3
    x[400:700] += np.sin(np.arange(300) / 5.0) * 3
    templates = {"a": rng.normal(size=40), "b": np.sin(np.arange(123) / 5.0), "c": [1, 2, 3, 2, 1]}
    m = Matcher(templates, 1000, threshold=-1.0, min_distance=1, block_size=block_size)
    dets = all_scores(m, x)
    for name, t in templates.items():
        expected = naive_ncc(x, np.asarray(t, float))
        np.testing.assert_allclose(trace(dets, name, 0), expected, atol=1e-10)


def test_detection_fields():
    rng = np.random.default_rng(2)
    x = rng.normal(size=3000)
    t = x[1234:1334].copy()
    m = Matcher({"bell": t}, sample_rate=500, threshold=0.9)
    dets = m.process(x) + m.flush()
    assert len(dets) == 1
    d = dets[0]
    assert isinstance(d, Detection)
    assert (d.template, d.sample, d.channel, d.threshold) == ("bell", 1234, 0, 0.9)
    assert d.time == pytest.approx(1234 / 500)
    assert d.score == pytest.approx(1.0, abs=1e-12)
    assert d.to_dict()["sample"] == 1234


def test_seed_pattern_found_where_it_sits():
    x = np.array([0, 0, 0, 1, 2, 3, 2, 1, 0, 0], float)
    m = Matcher({"seed": [1, 2, 3, 2, 1]}, sample_rate=1)
    dets = m.process(x) + m.flush()
    assert [(d.sample, round(d.score, 12)) for d in dets] == [(3, 1.0)]


def test_affine_invariance_and_sign():
    rng = np.random.default_rng(3)
    x = rng.normal(size=800)
    t = rng.normal(size=50)
    base = trace(all_scores(Matcher({"t": t}, 1, threshold=-1, min_distance=1), x), "t", 0)
    scaled = all_scores(Matcher({"t": t * 7 - 2}, 1, threshold=-1, min_distance=1), 1e3 * x + 5e3)
    np.testing.assert_allclose(trace(scaled, "t", 0), base, atol=1e-9)
    neg = all_scores(Matcher({"t": -t}, 1, threshold=-1, min_distance=1), x)
    np.testing.assert_allclose(trace(neg, "t", 0), -base, atol=1e-12)


def test_flat_silent_and_clipped_windows_score_zero():
    rng = np.random.default_rng(4)
    x = rng.normal(size=3000)
    x[500:1000] = 0.0  # digital silence
    x[1200:1700] = 0.8  # a clipped stretch
    x[2000:2500] = 1e5 + 1e-9 * rng.normal(size=500)  # a DC level with rounding-level jitter
    t = rng.normal(size=100)
    dets = all_scores(Matcher({"t": t}, 1, threshold=-1, min_distance=1), x)
    s = trace(dets, "t", 0)
    assert np.all(np.isfinite(s))
    for lo, hi in [(500, 1000), (1200, 1700), (2000, 2500)]:
        assert np.all(s[lo : hi - 100 + 1] == 0.0)
    m = Matcher({"t": t}, 1, threshold=0.3)
    assert all(not (500 <= d.sample <= 900) for d in m.process(x) + m.flush())


def test_quiet_window_after_a_loud_event_stays_exact():
    rng = np.random.default_rng(5)
    t = np.sin(np.linspace(0, 40, 300)) * np.hanning(300)
    x = 1e-5 * rng.normal(size=20000)
    x[2000:4000] += 1e3 * rng.normal(size=2000)  # loud, 160 dB above the noise
    x[9000:9300] += 1e-4 * t
    m = Matcher({"t": t}, 1, threshold=-1, min_distance=1, block_size=20000)
    s = trace(all_scores(m, x), "t", 0)
    np.testing.assert_allclose(s[4000:], naive_ncc(x[4000:], t), atol=1e-7)
    m = Matcher({"t": t}, 1, threshold=0.9, block_size=20000)
    assert [d.sample for d in m.process(x) + m.flush()] == [9000]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_planted_template_found_at_exact_sample_at_minus_3_db(seed):
    rng = np.random.default_rng(seed)
    n = np.arange(800)
    chirp = np.sin(2 * np.pi * (0.01 + 0.2 * n / 800) * n)
    noise = rng.normal(size=40000) * np.sqrt(2 * np.mean(chirp**2))  # -3 dB SNR
    where = int(rng.integers(1000, 38000))
    x = noise.copy()
    x[where : where + 800] += chirp
    m = Matcher({"chirp": chirp}, 16000, threshold=0.4)
    dets = m.process(x) + m.flush()
    assert [d.sample for d in dets] == [where]
    assert 0.45 < dets[0].score < 0.7  # 1/sqrt(1 + 2) ~ 0.58


def random_chunks(x, rng):
    out, pos = [], 0
    while pos < len(x):
        step = int(rng.choice([1, 1, 2, 3, 5, 17, 64, 127, 128, 129, 1000, 4099]))
        out.append(x[pos : pos + step])
        pos += step
    return out


def chunked_detections(make, x, seed):
    m = make()
    dets = []
    for chunk in random_chunks(x, np.random.default_rng(seed)):
        dets += m.process(chunk)
    return dets + m.flush()


@pytest.mark.parametrize(
    "kwargs",
    [
        {"threshold": 0.3},
        {"mad": 5.0, "mad_window_s": 0.5, "mad_hop_s": 0.1},
        {"threshold": {"short": 0.3}, "mad": {"long": 4.0}, "min_distance": {"short": 3}},
        {"threshold": 0.2, "combine": "mean"},
        {"threshold": 0.25, "block_size": 7},
    ],
)
def test_detections_do_not_depend_on_chunking(kwargs):
    rng = np.random.default_rng(7)
    x = rng.normal(size=(6000, 2))
    short = x[1000:1030, 0].copy()
    long = x[3000:3400].copy()
    x[4500:4530, 1] += 2 * short

    def make():
        return Matcher({"short": short, "long": long}, 1000, **kwargs)

    whole = make()
    expected = whole.process(x) + whole.flush()
    assert len(expected) > 2
    samples = [d.sample for d in expected]
    assert samples == sorted(samples)  # stream order
    for seed in range(3):
        assert chunked_detections(make, x, seed) == expected


def test_detections_equal_batch_oracle():
    """Naive scores + naive thresholds + the peak rule written as a loop."""
    rng = np.random.default_rng(8)
    x = rng.normal(size=3000)
    t = rng.normal(size=60)
    x[700:760] += t
    x[2100:2160] += 0.8 * t
    s = naive_ncc(x, t)
    expected = []
    for i in range(len(s)):
        near = s[max(0, i - 59) : i + 60]
        if s[i] >= 0.5 and s[i] == near.max() and np.argmax(near) == min(i, 59):
            expected.append(i)
    m = Matcher({"t": t}, 1, threshold=0.5)
    assert [d.sample for d in chunked_detections(lambda: m, x, 3)] == expected
    assert 700 in expected and 2100 in expected


def test_multichannel_template_per_channel_and_combined():
    rng = np.random.default_rng(9)
    x = rng.normal(size=(2000, 2))
    t = x[500:580].copy()
    m = Matcher({"st": t}, 1, threshold=-1, min_distance=1)
    dets = all_scores(m, x, chunk=333)
    for c in (0, 1):
        np.testing.assert_allclose(trace(dets, "st", c), naive_ncc(x[:, c], t[:, c]), atol=1e-10)
    m = Matcher({"st": t}, 1, threshold=-1, min_distance=1, combine="mean")
    mean = (naive_ncc(x[:, 0], t[:, 0]) + naive_ncc(x[:, 1], t[:, 1])) / 2
    np.testing.assert_allclose(trace(all_scores(m, x), "st", None), mean, atol=1e-10)
    m = Matcher({"st": t}, 1, threshold=0.9, combine="mean")
    assert [(d.sample, d.channel) for d in m.process(x) + m.flush()] == [(500, None)]


def test_mono_template_on_every_channel():
    rng = np.random.default_rng(10)
    x = rng.normal(size=(1000, 3))
    t = rng.normal(size=30)
    x[200:230, 2] += 5 * t
    m = Matcher({"t": t}, 1, threshold=0.9)
    assert [(d.sample, d.channel) for d in m.process(x) + m.flush()] == [(200, 2)]


def naive_mad_thresholds(s, k, window, hop):
    out = np.empty(len(s))
    for j in range(0, len(s), hop):
        end = min(j + hop, len(s))
        w = s[max(0, end - window) : end]
        out[j:end] = max(k * np.median(np.abs(w - np.median(w))), MIN_MAD_THRESHOLD)
    return out


def test_mad_finds_a_lone_event_in_digital_silence_and_nothing_else():
    """Silence scores 0 everywhere (MAD 0): the floor keeps those flat windows from
    'reaching' a zero threshold, while the one real event still passes."""
    t = np.random.default_rng(3).normal(size=50)
    x = np.zeros(4000)
    m = Matcher({"t": t}, 1000, mad=8.0, mad_window_s=1.0, mad_hop_s=0.25)
    assert m.process(x) + m.flush() == []
    x[2100:2150] = t
    m = Matcher({"t": t}, 1000, mad=8.0, mad_window_s=1.0, mad_hop_s=0.25)
    assert [(d.sample, round(d.score, 6)) for d in m.process(x) + m.flush()] == [(2100, 1.0)]


@pytest.mark.parametrize(("window", "hop"), [(50, 10), (7, 7), (100, 1)])
def test_mad_threshold_matches_oracle_for_any_chunking(window, hop):
    rng = np.random.default_rng(11)
    s = rng.normal(size=503)
    mad = MadThreshold(3.0, window, hop)
    got_s, got_t = [], []
    for chunk in random_chunks(s, rng):
        a, b = mad.push(chunk)
        got_s += a.tolist()
        got_t += b.tolist()
    a, b = mad.push(np.zeros(0), final=True)
    got_s += a.tolist()
    got_t += b.tolist()
    assert got_s == s.tolist()
    np.testing.assert_allclose(got_t, naive_mad_thresholds(s, 3.0, window, hop), rtol=1e-12)


def test_reset_and_flush_start_over():
    rng = np.random.default_rng(12)
    x = rng.normal(size=1000)
    m = Matcher({"t": x[100:150].copy()}, 1, threshold=0.9)
    first = m.process(x) + m.flush()
    assert m.process(x) + m.flush() == first
    m.process(x[:700])
    m.reset()
    assert m.process(x) + m.flush() == first


def test_template_longer_than_stream_finds_nothing():
    m = Matcher({"t": np.arange(100.0) % 7}, 1)
    assert m.process(np.random.default_rng(0).normal(size=50)) + m.flush() == []


@pytest.mark.parametrize(
    ("templates", "kwargs", "message"),
    [
        ({}, {}, "at least one template"),
        ({"e": []}, {}, "'e' must have shape"),
        ({"one": [1.0]}, {}, "'one' must have shape"),
        ({"z": np.zeros(10)}, {}, "'z' is constant"),
        ({"dc": np.full(10, 3.0)}, {}, "'dc' is constant"),
        ({"n": [1.0, np.nan, 2.0]}, {}, "'n' contains NaN"),
        ({"t": [1.0, 2.0]}, {"threshold": 0.5, "mad": 3.0}, "not both"),
        ({"t": [1.0, 2.0]}, {"threshold": {"t": 0.5}, "mad": {"t": 3.0}}, "not both"),
        ({"t": [1.0, 2.0]}, {"threshold": {"u": 0.5}}, "unknown templates: u"),
        ({"t": [1.0, 2.0]}, {"min_distance": 0}, "min_distance"),
        ({"t": [1.0, 2.0]}, {"mad": -1.0}, "positive"),
        ({"t": [1.0, 2.0]}, {"combine": "max"}, "combine"),
        ({"t": np.ones((5, 2)) * [[1], [2], [3], [4], [5]]}, {"channels": 3}, "2 channels"),
    ],
)
def test_bad_arguments(templates, kwargs, message):
    with pytest.raises(ValueError, match=message):
        m = Matcher(templates, 1000, **kwargs)
        m.process(np.zeros(10))


def test_bad_blocks():
    m = Matcher({"t": [1.0, 2.0, 1.0]}, 1000)
    m.process(np.zeros((5, 2)))
    with pytest.raises(ValueError, match="3 channels"):
        m.process(np.zeros((5, 3)))
    with pytest.raises(ValueError, match="NaN"):
        m.process(np.full((5, 2), np.nan))


def test_on_scores_reports_the_whole_trace_once():
    rng = np.random.default_rng(14)
    x = rng.normal(size=2500)
    t = rng.normal(size=90)
    got = {}

    def on_scores(name, channel, start, scores, thresholds):
        trace_ = got.setdefault((name, channel), [])
        assert start == sum(len(s) for s, _ in trace_)
        trace_.append((scores.copy(), thresholds.copy()))

    m = Matcher({"t": t}, 100, mad=4.0, mad_window_s=3.0, mad_hop_s=1.0, on_scores=on_scores)
    for chunk in random_chunks(x, rng):
        m.process(chunk)
    m.flush()
    scores = np.concatenate([s for s, _ in got["t", 0]])
    thresholds = np.concatenate([h for _, h in got["t", 0]])
    np.testing.assert_allclose(scores, naive_ncc(x, t), atol=1e-10)
    np.testing.assert_allclose(thresholds, naive_mad_thresholds(scores, 4.0, 300, 100))


@pytest.mark.parametrize("kwargs", [{"threshold": 0.5}, {"mad": 5.0, "mad_hop_s": 0.2}])
def test_detections_come_out_within_latency(kwargs):
    rng = np.random.default_rng(15)
    x = rng.normal(size=5000)
    t = x[1000:1080].copy()
    x[3000:3080] += t
    m = Matcher({"t": t, "u": rng.normal(size=20)}, 1000, block_size=300, **kwargs)
    emitted = []
    for n in range(len(x)):
        emitted += [(d, n + 1) for d in m.process(x[n : n + 1])]
    assert {1000, 3000} <= {d.sample for d, _ in emitted if d.template == "t"}
    for d, frames_seen in emitted:
        assert frames_seen - (d.sample + 80) <= m.latency


def test_a_single_threshold_is_the_default_beside_a_mapping():
    rng = np.random.default_rng(16)
    x = rng.normal(size=3000)
    t = {"a": rng.normal(size=20), "b": rng.normal(size=30), "c": rng.normal(size=40)}

    def thresholds(**kwargs):
        seen = {}

        def record(name, channel, start, scores, thr):
            seen.setdefault(name, set()).update(thr)

        m = Matcher(t, 1000, mad_window_s=0.5, mad_hop_s=0.1, on_scores=record, **kwargs)
        m.process(x)
        m.flush()
        return {n: sorted(v)[0] if len(v) == 1 else "mad" for n, v in seen.items()}

    assert thresholds(threshold=0.6, mad={"b": 4.0}) == {"a": 0.6, "b": "mad", "c": 0.6}
    assert thresholds(threshold={"a": 0.9}, mad=5.0) == {"a": 0.9, "b": "mad", "c": "mad"}
    assert thresholds() == {"a": 0.7, "b": 0.7, "c": 0.7}
