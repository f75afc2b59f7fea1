"""Matcher and Periodicity on chunks of a stream: chunk_bounds + start_at give the whole stream's
detections, for any cut of the stream into chunks and of a chunk into blocks."""

import itertools

import numpy as np
import pytest

from streamconv import Matcher, Periodicity
from streamconv.detect import MatchOptions

RATE = 1000


def stream(seed=3, n=23_000, channels=2):
    """Noise with a few copies of two templates (one per channel, some across chunk borders)."""
    rng = np.random.default_rng(seed)
    x = 0.5 * rng.normal(size=(n, channels))
    k = np.arange(300)
    a = np.sin(2 * np.pi * (0.01 + 0.1 * k / 300) * k) * np.hanning(300)
    b = rng.normal(size=120) * np.hanning(120)
    for start in rng.integers(0, n - 300, size=30):
        x[start : start + 300, rng.integers(channels)] += a
    for start in rng.integers(0, n - 120, size=30):
        x[start : start + 120, rng.integers(channels)] += b
    return x, {"a": a, "b": b}


def cuts(n, rng, count):
    inner = sorted(set(rng.integers(1, n, size=count).tolist()))
    return list(zip([0, *inner], [*inner, n], strict=True))


def feed(detector, x, rng, final):
    """Blocks of random lengths (1 to 3000 frames), then flush if the stream ends."""
    out, pos = [], 0
    while pos < len(x):
        step = int(rng.choice([1, 7, 511, 3000]))
        out += detector.process(x[pos : pos + step])
        pos += step
    return out + (detector.flush() if final else [])


MATCHER_ARGS = [
    {"threshold": 0.3},
    {"threshold": 0.25, "min_distance": 900},
    {"mad": 5.0, "mad_window_s": 1.3, "mad_hop_s": 0.37},
    {"mad": 4.0, "mad_window_s": 2.0, "mad_hop_s": 2.0, "combine": "mean"},
    {"mad": {"a": 5.0}, "threshold": {"b": 0.3}, "mad_window_s": 0.7, "mad_hop_s": 0.05},
    {"threshold": 0.3, "block_size": 700},
    # a MAD hop longer than a segment
    {"mad": 4.0, "mad_window_s": 3.0, "mad_hop_s": 1.3, "block_size": 500},
]


@pytest.mark.parametrize("kwargs", MATCHER_ARGS)
def test_matcher_chunks_give_the_whole_stream_detections(kwargs):
    x, templates = stream()
    whole = Matcher(templates, RATE, channels=2, **kwargs)
    expected = whole.process(x) + whole.flush()
    assert len(expected) > 20
    rng = np.random.default_rng(len(str(kwargs)))
    for count in (1, 3, 9):
        got, firsts = [], []
        for start, stop in cuts(len(x), rng, count):
            m = Matcher(templates, RATE, channels=2, **kwargs)
            first, end = m.chunk_bounds(start, stop, len(x))
            firsts.append(first)
            m.start_at(first)
            dets = feed(m, x[first:end], rng, final=end == len(x))
            got += [d for d in dets if start <= d.sample < stop]
        assert got == expected
        assert max(firsts) > 0 or count == 1  # the later chunks did not start from sample 0


def test_matcher_started_at_any_segment_boundary_is_exact_after_its_warm_up():
    x, templates = stream()
    kwargs = {"mad": 4.0, "mad_window_s": 3.0, "mad_hop_s": 1.3, "block_size": 500}
    whole = Matcher(templates, RATE, channels=2, **kwargs)
    expected = whole.process(x) + whole.flush()
    m = Matcher(templates, RATE, channels=2, **kwargs)
    m.start_at(1500)  # the first hop boundary after it, 2600, is two segments later
    got = m.process(x[1500:]) + m.flush()
    exact_from = 2600 + 299 + 3000  # trace start + peak reach + MAD window
    assert [d for d in got if d.sample >= exact_from] == [
        d for d in expected if d.sample >= exact_from
    ]
    assert min(d.sample for d in got) >= 2600


def test_matcher_chunk_reads_a_bounded_context():
    _, templates = stream()
    m = Matcher(templates, RATE, channels=2, mad=5.0, mad_window_s=1.3, mad_hop_s=0.37)
    first, end = m.chunk_bounds(10_000, 12_000)
    reach, window, hop, lmax = 299, 1300, 370, 300
    assert first % m.block_size == 0
    assert 10_000 - reach - window - hop - m.block_size < first <= 10_000 - reach - window
    assert 12_000 + reach + lmax - 1 <= end <= 12_000 + reach + hop + m.block_size + lmax


def test_matcher_decided_bounds_what_comes_later():
    x, templates = stream()
    m = Matcher(templates, RATE, mad=5.0, mad_window_s=1.0, mad_hop_s=0.25)
    m.start_at(2 * m.block_size)
    decided, later = m.decided, []
    for pos in range(0, 15_000, 997):
        later += [d.sample for d in m.process(x[pos : pos + 997])]
        assert all(s >= decided for s in later)
        decided, later = m.decided, []
    assert decided > 2 * m.block_size


def test_matcher_on_scores_counts_from_the_chunk_start():
    x, templates = stream()
    seen = {}

    def on_scores(name, channel, start, scores, _thr):
        seen.setdefault((name, channel), []).append((start, len(scores)))

    m = Matcher(templates, RATE, channels=2, threshold=0.3, block_size=500, on_scores=on_scores)
    m.start_at(1500)
    m.process(x[1500:6000])
    m.flush()
    for pieces in seen.values():
        assert pieces[0][0] == 1500
        assert all(a + n == b for (a, n), (b, _) in itertools.pairwise(pieces))


def test_matcher_start_at_needs_a_segment_boundary():
    m = Matcher({"a": np.hanning(50)}, RATE, block_size=100)
    with pytest.raises(ValueError, match="multiple of block_size"):
        m.start_at(150)
    with pytest.raises(ValueError, match="start < stop"):
        m.chunk_bounds(10, 10)


@pytest.mark.parametrize(
    "kwargs",
    [{}, {"hop_s": 0.37}, {"window_s": 2.5, "hop_s": 1.0, "combine": "mean"}],
)
def test_periodicity_chunks_give_the_whole_stream_estimates(kwargs):
    rng = np.random.default_rng(5)
    n = 20_000
    t = np.arange(n) / RATE
    x = np.stack([np.sin(2 * np.pi * t / 0.31), np.sign(np.sin(2 * np.pi * t / 0.55))], axis=1)
    x += 0.8 * rng.normal(size=x.shape)
    whole = Periodicity(RATE, 0.2, 0.7, **kwargs)
    expected = whole.process(x) + whole.flush()
    assert len(expected) > 15
    for count in (1, 4, 11):
        got = []
        for start, stop in cuts(n, rng, count):
            p = Periodicity(RATE, 0.2, 0.7, **kwargs)
            first, end = p.chunk_bounds(start, stop, n)
            assert first == start  # no history needed
            p.start_at(first)
            got += [e for e in feed(p, x[first:end], rng, end == n) if start <= e.sample < stop]
        assert got == expected


def test_periodicity_decided_bounds_what_comes_later():
    x = np.sin(np.arange(9000) / 20.0)
    p = Periodicity(RATE, 0.05, 0.3, hop_s=0.1)
    p.start_at(1234)
    decided = p.decided
    for pos in range(1234, 9000, 301):
        assert all(e.sample >= decided for e in p.process(x[pos : pos + 301]))
        decided = p.decided
    assert decided > 8000 - p.window


def run_group(x, templates, block, start=None, stop=None):
    options = MatchOptions(threshold=0.2, periodicity=(0.05, 0.3), periodicity_threshold=0.01)
    group = options.detectors(templates, RATE, x.shape[1])
    first, end = (0, len(x)) if start is None else group.start_chunk(start, stop, len(x))
    out = []
    for pos in range(first, end, block):
        out += group.process(x[pos : min(pos + block, end)])
    if end == len(x):
        out += group.flush()
    return [d for d in out if start is None or start <= d.sample < stop]


def test_detectors_merge_into_stream_order_whatever_the_blocks():
    x, templates = stream()
    expected = run_group(x, templates, len(x))
    kinds = {type(d).__name__ for d in expected}
    assert kinds == {"Detection", "PeriodDetection"}
    assert [d.sample for d in expected] == sorted(d.sample for d in expected)
    for block in (1000, 4093):
        assert run_group(x, templates, block) == expected
    got = []
    for start, stop in cuts(len(x), np.random.default_rng(2), 5):
        got += run_group(x, templates, 3001, start, stop)
    assert got == expected
