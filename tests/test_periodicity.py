"""Periodicity: autocorrelation against np.corrcoef per lag, chunking invariance, physics."""

import numpy as np
import pytest

from streamconv import Periodicity
from streamconv.dsp.periodicity import normalized_autocorrelation


def naive_autocorrelation(w, max_lag):
    out = np.zeros(max_lag + 1)
    for tau in range(max_lag + 1):
        a, b = w[: len(w) - tau], w[tau:]
        if np.var(a) > 0 and np.var(b) > 0:
            out[tau] = np.corrcoef(a, b)[0, 1]
    return out


def test_autocorrelation_equals_pearson_per_lag():
    rng = np.random.default_rng(0)
    w = rng.normal(size=300) + np.sin(np.arange(300) / 3.0) + 50.0
    got = normalized_autocorrelation(w[:, None], 200)[:, 0]
    np.testing.assert_allclose(got, naive_autocorrelation(w, 200), atol=1e-10)


def test_flat_window_scores_zero():
    r = normalized_autocorrelation(np.full((100, 1), 3.0), 50)
    assert np.all(r == 0.0)


def sensor(rate, seconds, period_s, rng):
    """A spiky periodic sensor-like signal: heartbeats on a drifting baseline, with noise."""
    t = np.arange(int(rate * seconds)) / rate
    phase = (t / period_s) % 1.0
    beats = np.exp(-(((phase - 0.2) / 0.03) ** 2)) - 0.3 * np.exp(-(((phase - 0.35) / 0.05) ** 2))
    return 5.0 + 0.2 * np.sin(2 * np.pi * 0.05 * t) + beats + 0.05 * rng.normal(size=len(t))


@pytest.mark.parametrize("period_s", [0.45, 0.8, 1.3])
def test_finds_the_period_of_a_sensor_signal(period_s):
    rate = 200
    x = sensor(rate, 30, period_s, np.random.default_rng(1))
    p = Periodicity(rate, 0.3, 2.0, threshold=0.6)
    est = p.process(x) + p.flush()
    assert len(est) > 10
    for e in est:
        assert e.detected
        assert e.period == pytest.approx(period_s, abs=1.5 / rate)
        assert e.lag == pytest.approx(period_s * rate, abs=1)


def test_noise_is_not_periodic():
    p = Periodicity(100, 0.1, 1.0, threshold=0.5)
    est = p.process(np.random.default_rng(2).normal(size=3000))
    assert est and not any(e.detected for e in est)


def test_estimates_do_not_depend_on_chunking():
    rng = np.random.default_rng(3)
    x = np.stack([sensor(100, 20, 0.7, rng), rng.normal(size=2000)], axis=1)
    whole = Periodicity(100, 0.2, 1.5, hop_s=0.37).process(x)
    assert len(whole) == 2 * ((2000 - 450) // 37 + 1)
    p = Periodicity(100, 0.2, 1.5, hop_s=0.37)
    chunked, pos = [], 0
    for step in rng.choice([1, 2, 7, 100, 333], size=400):
        chunked += p.process(x[pos : pos + step])
        pos += int(step)
    assert pos >= len(x)
    assert chunked == whole
    assert {e.channel for e in whole} == {0, 1}


def test_combined_channels():
    rng = np.random.default_rng(4)
    s = sensor(100, 10, 0.5, rng)
    x = np.stack([s, s + 0.1 * rng.normal(size=len(s))], axis=1)
    est = Periodicity(100, 0.2, 1.0, combine="mean").process(x)
    assert est and all(e.channel is None and e.lag == 50 for e in est)


def test_analysis_windows_are_fixed_from_sample_zero():
    est = Periodicity(10, 0.2, 1.0, window_s=3.0, hop_s=0.5).process(np.sin(np.arange(100.0)))
    assert [e.sample for e in est] == list(range(0, 71, 5))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"min_period_s": 1.0, "max_period_s": 1.0}, "two samples"),
        ({"min_period_s": 0.1, "max_period_s": 1.0, "window_s": 0.5}, "window_s"),
        ({"min_period_s": 0.1, "max_period_s": 1.0, "combine": "sum"}, "combine"),
    ],
)
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Periodicity(100, **kwargs)


def test_tolerance_decides_between_a_period_and_its_multiple():
    # Beats every 50 samples, every other one a little smaller: the true period is 100 but 50
    # correlates nearly as well.
    n = np.arange(3000)
    x = np.exp(-(((n % 50) - 10) ** 2) / 8.0) * np.where((n // 50) % 2, 0.8, 1.0)
    strongest = Periodicity(100, 0.3, 1.5, tolerance=0.0).process(x)
    shortest = Periodicity(100, 0.3, 1.5, tolerance=0.1).process(x)
    assert {e.lag for e in strongest} == {100}
    assert {e.lag for e in shortest} == {50}
    assert all(a.score > b.score for a, b in zip(strongest, shortest, strict=True))
