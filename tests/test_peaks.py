"""Peak picking: the batch rule against a loop oracle, and the streaming tracker against both."""

import numpy as np
import pytest

from streamconv.dsp.peaks import PeakTracker, find_peaks, pick_peaks


def naive_peaks(scores, threshold, min_distance):
    thr = np.broadcast_to(threshold, scores.shape)
    w = min_distance - 1
    out = []
    for i, s in enumerate(scores):
        before = scores[max(0, i - w) : i]
        after = scores[i + 1 : i + w + 1]
        if s >= thr[i] and np.all(s > before) and np.all(s >= after):
            out.append(i)
    return out


def random_trace(seed, n=600):
    rng = np.random.default_rng(seed)
    # Coarse values make exact ties common, which is where the rule is subtle.
    return np.round(rng.uniform(-1, 1, n), 1)


@pytest.mark.parametrize("min_distance", [1, 2, 3, 7, 40, 1000])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_find_peaks_matches_loop_oracle(seed, min_distance):
    s = random_trace(seed)
    assert find_peaks(s, 0.2, min_distance).tolist() == naive_peaks(s, 0.2, min_distance)


def test_per_sample_threshold_matches_oracle():
    s = random_trace(5)
    thr = np.random.default_rng(6).uniform(0, 1, len(s))
    assert find_peaks(s, thr, 4).tolist() == naive_peaks(s, thr, 4)


@pytest.mark.parametrize(
    ("scores", "min_distance", "expected"),
    [
        ([0.0, 1.0, 1.0, 0.0], 3, [1]),  # a plateau: the earliest wins
        ([0.9, 0.0, 0.9], 3, [0]),  # equal peaks within reach: the earliest
        ([0.9, 0.0, 0.9], 2, [0, 2]),  # out of reach of each other: both
        ([0.5, 0.9, 0.5], 1, [0, 1, 2]),  # min_distance 1: every sample above threshold
        ([0.9, 0.95, 0.1, 0.0], 2, [1]),
        ([0.1, 0.3, 0.2], 5, []),  # below threshold
    ],
)
def test_rule_examples(scores, min_distance, expected):
    assert find_peaks(np.array(scores), 0.5, min_distance).tolist() == expected


def test_below_threshold_neighbour_still_suppresses():
    # The rule compares with every score, not only with those above threshold.
    s = np.array([0.0, 0.6, 0.0, 0.0])
    assert find_peaks(s, 0.7, 2).tolist() == []
    assert find_peaks(np.array([0.8, 0.6, 0.9]), 0.7, 3).tolist() == [2]


def random_cuts(n, rng):
    cuts, pos = [], 0
    while pos < n:
        step = int(rng.choice([0, 1, 1, 2, 3, 7, 31, 64, 65, 200]))
        cuts.append((pos, min(pos + step, n)))
        pos += step
    return cuts


@pytest.mark.parametrize("min_distance", [1, 2, 9, 150])
@pytest.mark.parametrize("seed", [0, 1])
def test_tracker_is_chunking_invariant(seed, min_distance):
    s = random_trace(seed + 10)
    thr = np.random.default_rng(seed).uniform(0, 0.6, len(s))
    tracker = PeakTracker(min_distance)
    found, values, thresholds = [], [], []
    for a, b in random_cuts(len(s), np.random.default_rng(seed + 20)):
        idx, v, t = tracker.push(s[a:b], thr[a:b])
        assert np.all(idx < tracker.decided)
        found += idx.tolist()
        values += v.tolist()
        thresholds += t.tolist()
    idx, v, t = tracker.push(np.zeros(0), np.zeros(0), final=True)
    found += idx.tolist()
    values += v.tolist()
    thresholds += t.tolist()
    expected = naive_peaks(s, thr, min_distance)
    assert found == expected
    assert values == s[expected].tolist()
    assert thresholds == thr[expected].tolist()


def test_tracker_decides_min_distance_minus_one_later():
    tracker = PeakTracker(4)
    assert tracker.push(np.array([0.0, 0.9, 0.1, 0.2]), 0.5)[0].tolist() == []
    assert tracker.push(np.array([0.3]), 0.5)[0].tolist() == [1]


@pytest.mark.parametrize("bad", [0, -3])
def test_bad_min_distance(bad):
    with pytest.raises(ValueError, match="min_distance"):
        PeakTracker(bad)
    with pytest.raises(ValueError, match="min_distance"):
        pick_peaks(np.zeros(3), 0.5, bad)
