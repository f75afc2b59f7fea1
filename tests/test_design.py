"""FIR design, tested by physics: gains measured on the designed taps, not golden files."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import signal

from streamconv.dsp import design as d

FS = 48000.0


def gain_at(h, freq_hz, fs=FS):
    """|H(f)| evaluated directly from the definition, sum_n h[n] e^{-j 2 pi f n / fs}."""
    n = np.arange(len(h))
    return abs(np.sum(h * np.exp(-2j * np.pi * np.asarray(freq_hz)[..., None] * n / fs), -1))


def db(x):
    return 20 * np.log10(x)


WINDOW_DESIGNS = [
    ("lowpass", {"cutoff_hz": 1000.0}, [1000.0], 0.0),
    ("lowpass", {"cutoff_hz": 9000.0, "window": "blackman"}, [9000.0], 0.0),
    ("highpass", {"cutoff_hz": 5000.0, "window": "hann"}, [5000.0], FS / 2),
    ("bandpass", {"low_hz": 2000.0, "high_hz": 6000.0}, [2000.0, 6000.0], 4000.0),
    ("bandstop", {"low_hz": 2000.0, "high_hz": 6000.0}, [2000.0, 6000.0], 0.0),
]


@pytest.mark.parametrize(("kind", "params", "edges", "pass_hz"), WINDOW_DESIGNS)
@pytest.mark.parametrize("numtaps", [255, 1001])
def test_window_design_is_minus_6_db_at_cutoff(kind, params, edges, pass_hz, numtaps):
    h = d.design(kind, FS, taps=numtaps, **params)
    assert len(h) == numtaps
    np.testing.assert_allclose(db(gain_at(h, edges)), -6.02, atol=0.15)
    # Unit gain in the middle of the passband (firwin scales it there).
    np.testing.assert_allclose(gain_at(h, pass_hz), 1.0, atol=1e-3)
    np.testing.assert_allclose(h, h[::-1], atol=1e-15)  # linear phase


KAISER = [
    ("lowpass", {"cutoff_hz": 3000.0}, [(3250.0, FS / 2)], [(0.0, 2750.0)]),
    ("highpass", {"cutoff_hz": 3000.0}, [(0.0, 2750.0)], [(3250.0, FS / 2)]),
    (
        "bandpass",
        {"low_hz": 2000.0, "high_hz": 5000.0},
        [(0, 1750), (5250, FS / 2)],
        [(2250, 4750)],
    ),
    (
        "bandstop",
        {"low_hz": 2000.0, "high_hz": 5000.0},
        [(2250, 4750)],
        [(0, 1750), (5250, FS / 2)],
    ),
]


@pytest.mark.parametrize(("kind", "params", "stops", "passes"), KAISER)
@pytest.mark.parametrize("attenuation_db", [40.0, 60.0, 90.0])
def test_kaiser_design_reaches_the_asked_attenuation(kind, params, stops, passes, attenuation_db):
    h = d.design(kind, FS, transition_hz=500.0, attenuation_db=attenuation_db, **params)
    for lo, hi in stops:  # an independent dense grid, including both band edges
        worst = gain_at(h, np.linspace(lo, hi, 6000)).max()
        assert -db(worst) >= attenuation_db
    ripple = 10 ** (-attenuation_db / 20)
    for lo, hi in passes:  # the Kaiser passband ripple equals the stopband ripple
        g = gain_at(h, np.linspace(lo, hi, 2000))
        assert np.all(np.abs(g - 1) <= 2 * ripple)


def test_kaiser_attenuation_reported_by_analyze_matches_design():
    params = {"cutoff_hz": 3000.0, "transition_hz": 500.0, "attenuation_db": 70.0}
    h = d.lowpass(FS, **params)
    passes, stops = d.design_bands("lowpass", FS, **params)
    assert stops == [(3250.0, FS / 2)]
    info = d.analyze(h, FS, stops, passes)
    assert info["attenuation_db"] >= 70.0
    assert info["group_delay_samples"] == (len(h) - 1) / 2
    assert len(h) % 2 == 1


@pytest.mark.parametrize("kind", ["remez", "firls"])
def test_band_designs_meet_their_bands(kind):
    bands = [[0, 4000], [6000, 12000], [14000, 24000]]
    h = d.design(kind, FS, taps=151, bands_hz=bands, gains=[0, 1, 0], weights=[10, 1, 10])
    g_pass = gain_at(h, np.linspace(6000, 12000, 500))
    np.testing.assert_allclose(g_pass, 1.0, atol=0.02)
    for lo, hi in ([0, 4000], [14000, 24000]):
        assert -db(gain_at(h, np.linspace(lo, hi, 1000)).max()) > 50


def test_remez_matches_the_scipy_oracle():
    h = d.remez(FS, taps=63, bands_hz=[[0, 5000], [7000, 24000]], gains=[1, 0])
    ref = signal.remez(63, [0, 5000, 7000, 24000], [1, 0], fs=FS)
    np.testing.assert_allclose(h, ref, rtol=0, atol=1e-15)


def test_hilbert_shifts_a_sinusoid_by_90_degrees():
    h = d.hilbert(FS, taps=255)
    n = np.arange(8000)
    f = 6000.0
    x = np.cos(2 * np.pi * f * n / FS)
    y = np.convolve(x, h)[: len(x)]
    delay = (len(h) - 1) // 2
    expected = np.sin(2 * np.pi * f * (n - delay) / FS)
    np.testing.assert_allclose(y[1000:7000], expected[1000:7000], atol=5e-3)


def test_differentiator_matches_the_derivative_of_a_slow_sinusoid():
    h = d.differentiator(FS, taps=63)
    w = 2 * np.pi * 1000.0 / FS  # rad/sample
    n = np.arange(4000)
    y = np.convolve(np.sin(w * n), h)[: len(n)]
    delay = (len(h) - 1) // 2
    expected = w * np.cos(w * (n - delay))
    np.testing.assert_allclose(y[200:3800], expected[200:3800], atol=1e-4 * w)


@pytest.mark.parametrize("numtaps", [1, 2, 7, 64])
def test_moving_average_is_the_mean_of_the_last_samples(numtaps):
    rng = np.random.default_rng(1)
    x = rng.standard_normal(300)
    y = np.convolve(x, d.moving_average(FS, taps=numtaps))[: len(x)]
    naive = [x[max(0, i - numtaps + 1) : i + 1].sum() / numtaps for i in range(len(x))]
    np.testing.assert_allclose(y, naive, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("sigma", [0.7, 3.0, 12.5])
def test_gaussian_has_unit_dc_gain_and_the_asked_spread(sigma):
    h = d.gaussian(FS, sigma_samples=sigma)
    assert len(h) % 2 == 1
    np.testing.assert_allclose(h.sum(), 1.0, rtol=1e-12)
    m = np.arange(len(h)) - (len(h) - 1) / 2
    np.testing.assert_allclose(np.sqrt(np.sum(h * m**2)), sigma, rtol=0.02)


@pytest.mark.parametrize("gain_db", [-20.0, 0.0, 6.0])
def test_gain_scales_by_decibels(gain_db):
    x = np.random.default_rng(2).standard_normal(50)
    y = np.convolve(x, d.gain(FS, gain_db=gain_db))
    np.testing.assert_allclose(db(np.abs(y).sum() / np.abs(x).sum()), gain_db, atol=1e-9)


@pytest.mark.parametrize(
    ("spec", "shift"), [({"samples": 0}, 0), ({"samples": 17}, 17), ({"seconds": 0.001}, 48)]
)
def test_delay_moves_an_impulse_by_n(spec, shift):
    x = np.zeros(100)
    x[10] = 1.0
    y = np.convolve(x, d.delay(FS, **spec))
    assert np.argmax(y) == 10 + shift
    assert y.sum() == 1.0


@pytest.mark.parametrize(
    ("kind", "params", "word"),
    [
        ("lowpass", {"cutoff_hz": 30000.0, "taps": 11}, "cutoff_hz"),
        ("highpass", {"cutoff_hz": 1000.0, "taps": 10}, "taps"),
        ("lowpass", {"cutoff_hz": 1000.0}, "give either"),
        ("bandpass", {"low_hz": 5000.0, "high_hz": 1000.0, "taps": 11}, "low_hz"),
        ("lowpass", {"cutoff_hz": 1000.0, "taps": 11, "window": "nope"}, "window"),
        ("firls", {"taps": 10, "bands_hz": [[0, 1], [2, 3]], "gains": [1, 0]}, "taps"),
        ("remez", {"taps": 11, "bands_hz": [[0, 9], [5, 30]], "gains": [1, 0]}, "bands_hz"),
        ("remez", {"taps": 11, "bands_hz": [[0, 9], [10, 30]], "gains": [1]}, "gains"),
        ("hilbert", {"taps": 10}, "taps"),
        ("delay", {"seconds": 0.0000101}, "seconds"),
        ("delay", {}, "exactly one"),
        ("taps", {"values": [1.0, float("nan")]}, "values"),
        ("nonsense", {}, "unknown filter type"),
    ],
)
def test_bad_parameters_raise_value_error_naming_them(kind, params, word):
    with pytest.raises(ValueError, match=word):
        d.design(kind, FS, **params)


def test_chain_equals_filters_applied_one_after_another():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2000, 2))
    lp = d.lowpass(FS, cutoff_hz=4000, taps=63)
    hp = d.highpass(FS, cutoff_hz=500, taps=101)
    dl = d.delay(FS, samples=5)
    mimo = d.identity(2)
    mimo = d.apply_filter(mimo, lp)
    mimo = d.apply_filter(mimo, hp, channels=[1])
    mimo = d.apply_filter(mimo, dl, channels=[0])
    mix = np.array([[1.0, 0.5, 0.0], [0.25, 0.0, -1.0]])
    mimo = d.apply_mix(mimo, mix)
    assert mimo.shape == (63 + 101 - 1 + 5, 2, 3)

    # One after another, as the engine applies them: y_j = sum_i x_i * taps[:, i, j].
    left = signal.lfilter(dl, 1, signal.lfilter(lp, 1, x[:, 0]))
    right = signal.lfilter(hp, 1, signal.lfilter(lp, 1, x[:, 1]))
    expected = np.stack([left, right], axis=1) @ mix
    combined = np.stack(
        [sum(np.convolve(x[:, i], mimo[:, i, j])[: len(x)] for i in range(2)) for j in range(3)],
        axis=1,
    )
    np.testing.assert_allclose(combined, expected, rtol=0, atol=1e-12)


def test_mimo_taps_compose_as_a_matrix_convolution():
    rng = np.random.default_rng(4)
    a = rng.standard_normal((5, 2, 3))
    b = rng.standard_normal((4, 3, 1))
    out = d.apply_mimo(a, b)
    for i in range(2):
        ref = sum(np.convolve(a[:, i, j], b[:, j, 0]) for j in range(3))
        np.testing.assert_allclose(out[:, i, 0], ref, atol=1e-12)


@pytest.mark.parametrize(
    ("build", "shape"),
    [
        (lambda: d.apply_filter(d.identity(3), np.ones(4)), (4,)),
        (lambda: d.apply_filter(d.identity(2), np.ones(4), channels=[0]), (4, 2)),
        (lambda: d.apply_mix(d.identity(2), [[1.0], [1.0]]), (1, 2, 1)),
        (lambda: d.apply_mix(d.identity(2), [[0.0, 1.0], [1.0, 0.0]]), (1, 2, 2)),
    ],
)
def test_compact_taps_is_the_same_filter_in_a_smaller_layout(build, shape):
    mimo = build()
    small = d.compact_taps(mimo)
    assert small.shape == shape
    n_in, n_out = mimo.shape[1:]
    for i in range(n_in):
        for j in range(n_out):
            if small.ndim == 1:
                expected = small if i == j else 0 * small
            elif small.ndim == 2:
                expected = small[:, j] if i == j else 0 * small[:, j]
            else:
                expected = small[:, i, j]
            np.testing.assert_array_equal(mimo[:, i, j], expected)


def test_analyze_reports_gains_and_group_delay_of_a_non_linear_phase_filter():
    h = np.array([0.0, 0.0, 0.0, 1.0, 0.5])  # not symmetric
    info = d.analyze(h, FS)
    assert not info["linear_phase"]
    np.testing.assert_allclose(info["gain_dc_db"], db(1.5))
    np.testing.assert_allclose(info["gain_nyquist_db"], db(0.5))
    # The group delay of 1 + 0.5 z^-1 at DC is 0.5/1.5; the 3 leading zeros add 3.
    _, _, gd = d.frequency_response(h, FS)
    np.testing.assert_allclose(gd[0], 3 + 0.5 / 1.5, rtol=1e-12)
    assert 3 < info["group_delay_samples"] < 4
