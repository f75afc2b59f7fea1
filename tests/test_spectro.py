"""The spectrogram-domain matcher: oracle, chunking invariance, chunks of a stream, API."""

import itertools

import numpy as np
import pytest

from streamconv import Matcher
from streamconv.dsp.spectro_matcher import SpectroMatcher
from streamconv.dsp.spectrogram import SpectrogramParams

RATE = 8000


def _chirp(seconds=0.25, f0=600.0, f1=1800.0, rate=RATE):
    t = np.arange(int(seconds * rate)) / rate
    k = (f1 - f0) / seconds
    return np.sin(2 * np.pi * (f0 * t + 0.5 * k * t * t)) * np.hanning(len(t))


def _stream(seed=0, seconds=6.0, onsets=(1.0, 2.7, 4.4), template=None, noise=0.3, chans=1):
    rng = np.random.default_rng(seed)
    x = rng.normal(scale=noise, size=(int(seconds * RATE), chans))
    tpl = _chirp() if template is None else template
    for k, on in enumerate(onsets):
        s = int(on * RATE) + 13 * k
        x[s : s + len(tpl)] += tpl[:, None] if tpl.ndim == 1 else tpl
    return x


# -- oracle: the obvious, slow computation ---------------------------------------------------


def _features(x, frame, hop, p, rate):
    """(channels, frames, bins) dB features, one frame at a time."""
    from scipy import signal

    win = signal.get_window(p.window, frame)
    out = []
    for c in range(x.shape[1]):
        rows = []
        for j in range((len(x) - frame) // hop + 1):
            spec = np.fft.rfft(x[j * hop : j * hop + frame, c] * win)
            rows.append(10 * np.log10(np.maximum(np.abs(spec) ** 2, 1e-30)))
        out.append(rows)
    return np.array(out)


def _dilated(f, r):
    """Max over bins k +- round(r k) and frames j-1..j+1 (clipped), written out."""
    if r == 0:
        return f
    _, n, b = f.shape
    g = np.empty_like(f)
    for k in range(b):
        w = round(r * k)
        g[:, :, k] = f[:, :, max(k - w, 0) : k + w + 1].max(axis=2)
    h = np.empty_like(g)
    for j in range(n):
        h[:, j] = g[:, max(j - 1, 0) : j + 2].max(axis=1)
    return h


def _oracle_scores(x, tpl, p, rate=RATE):
    frame, hop = p.sizes(rate)
    tf = _features(tpl[:, None], frame, hop, p, rate)[0]
    # The template's own band: bins whose mean power is within band_db of the strongest,
    # its lowest bin divided and its highest multiplied by 1 + band_margin (whole bins, outward).
    power = (10 ** (tf / 10)).mean(axis=0)
    strong = np.flatnonzero(power >= power.max() * 10 ** (-p.band_db / 10))
    lo = int(np.floor(strong[0] / (1 + p.band_margin)))
    hi = min(int(np.ceil(strong[-1] * (1 + p.band_margin))), tf.shape[1] - 1)
    band = slice(lo, hi + 1)
    tf = tf[:, band]
    floor = tf.max() - p.floor_db
    tf = np.maximum(tf, floor)
    xf = _dilated(_features(x, frame, hop, p, rate), p.tolerance)[:, :, band]
    xf = np.maximum(xf, floor)
    m = len(tf)
    out = np.zeros((xf.shape[1] - m + 1, x.shape[1]))
    for c in range(x.shape[1]):
        for j in range(len(out)):
            patch = xf[c, j : j + m]
            if np.ptp(patch) > 0:
                out[j, c] = np.corrcoef(patch.ravel(), tf.ravel())[0, 1]
    return out


@pytest.mark.parametrize(
    "kwargs",
    [{"tolerance": 0.0, "band_margin": 0.0}, {"tolerance": 0.04, "floor_db": 60.0}, {}],
)
def test_scores_match_a_direct_stft_and_pearson(kwargs):
    x = _stream(seconds=2.0, onsets=(0.5, 1.3))
    tpl = _chirp()
    p = SpectrogramParams(frame_s=0.032, hop_s=0.008, **kwargs)
    got = {}

    def keep(name, channel, first, scores, thresholds):
        got.setdefault(channel, []).append((first, scores.copy()))

    m = Matcher({"c": tpl}, RATE, threshold=0.5, domain="spectrogram", spectrogram=p,
                on_scores=keep, block_size=200)  # fmt: skip
    assert isinstance(m, SpectroMatcher)
    m.process(x)
    m.flush()
    want = _oracle_scores(x, tpl, p)
    first = [f for f, _ in got[0]]
    assert first[0] == 0 and all(f % m.hop == 0 for f in first)
    trace = np.concatenate([s for _, s in got[0]])
    assert len(trace) == len(want)
    np.testing.assert_allclose(trace, want[:, 0], atol=1e-9)
    assert want.max() > 0.6  # the planted chirps were scored, not only noise


def _run(m, x, chunks):
    out, pos = [], 0
    for c in chunks:
        out += m.process(x[pos : pos + c])
        pos += c
    return out + m.process(x[pos:]) + m.flush()


def _chunkings(n, seed=3):
    rng = np.random.default_rng(seed)
    yield [1] * 2000 + [n]
    yield [7, 13, 127, 1031, 4099] * 20
    yield list(rng.integers(1, 3000, size=200))
    yield [n]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"threshold": 0.4},
        {"mad": 6.0, "mad_window_s": 1.0, "mad_hop_s": 0.25},
        {"threshold": 0.3, "spectrogram": {"tolerance": 0.05}, "min_distance": 1},
        {"threshold": 0.3, "combine": "mean"},
    ],
)
def test_detections_do_not_depend_on_the_chunking(kwargs):
    x = _stream(chans=2)
    tpls = {"c": _chirp(), "d": _chirp(0.15, 1500, 700)}
    ref = None
    for chunks in _chunkings(len(x)):
        m = Matcher(tpls, RATE, domain="spectrogram", block_size=300, **kwargs)
        dets = _run(m, x, chunks)
        if ref is None:
            ref = dets
            assert any(d.template == "c" for d in ref)
        assert dets == ref
    assert ref == sorted(ref, key=lambda d: d.sample)


def test_onsets_within_a_few_milliseconds_and_exact_copy_scores_one():
    x = _stream(noise=0.05)
    m = Matcher({"c": _chirp()}, RATE, threshold=0.6, domain="spectrogram")
    dets = m.process(x) + m.flush()
    want = [int(on * RATE) + 13 * k for k, on in enumerate((1.0, 2.7, 4.4))]
    assert [d.sample for d in dets] == pytest.approx(want, abs=0.002 * RATE)
    # A copy alone, at a hop boundary, is the template: score 1 without a tolerance; the
    # default tolerance widens the stream's peaks, so a little below 1.
    y = np.zeros(RATE)
    y[64 * 20 : 64 * 20 + len(_chirp())] = _chirp()
    m = Matcher({"c": _chirp()}, RATE, threshold=0.9, domain="spectrogram",
                spectrogram={"tolerance": 0.0})  # fmt: skip
    (d,) = m.process(y) + m.flush()
    assert d.sample == 64 * 20 and d.score == pytest.approx(1.0, abs=1e-9)
    m = Matcher({"c": _chirp()}, RATE, threshold=0.5, domain="spectrogram")
    (d,) = m.process(y) + m.flush()
    assert abs(d.sample - 64 * 20) <= 0.002 * RATE and 0.8 < d.score < 1.0


def _bell(rate, seconds=0.15):
    """The example's bell: a decaying 880 Hz sine, the sound the max-filter moved the most."""
    t = np.arange(int(seconds * rate)) / rate
    return np.sin(2 * np.pi * 880 * t) * np.exp(-t / 0.04)


def _parabola_argmax(scores, cand):
    """The candidate with the largest score (the first in `cand` on a tie) and the vertex of
    the parabola through it and its neighbours, clipped to +-1/2."""
    p = max(cand, key=lambda i: scores[i])
    if not 0 < p < len(scores) - 1:
        return p, 0.0
    a, b, c = scores[p - 1 : p + 2]
    den = a - 2 * b + c
    return p, (0.0 if den >= 0 else float(np.clip(0.5 * (a - c) / den, -0.5, 0.5)))


@pytest.mark.parametrize("tolerance", [0.0, 0.03])
def test_onsets_match_a_direct_search_at_a_quarter_of_the_frame(tolerance):
    # The obvious computation of the module notes: the tolerant score's peaks (which the
    # matcher reports with their scores), then the exact Pearson score at a quarter of the
    # frame and hop, written out, its best lag within ONSET_FRAMES hops, and a parabola.
    from streamconv.dsp.spectro_matcher import ONSET_DIVISOR, ONSET_FRAMES

    x = _stream(seconds=2.5, onsets=(0.5, 1.4), noise=0.5)
    p = SpectrogramParams(tolerance=tolerance)
    frame, hop = p.sizes(RATE)
    fine = SpectrogramParams(
        frame_s=frame / ONSET_DIVISOR / RATE, hop_s=hop / ONSET_DIVISOR / RATE, tolerance=0.0
    )
    h = hop // ONSET_DIVISOR
    scores = _oracle_scores(x, _chirp(), p)[:, 0]
    onset_scores = _oracle_scores(x, _chirp(), fine)[:, 0]
    m = Matcher({"c": _chirp()}, RATE, threshold=0.3, domain="spectrogram", spectrogram=p)
    dets = _run(m, x, [97, 1, 1000])
    assert len(dets) == 2
    for d in dets:
        (j,) = [j for j in np.flatnonzero(np.isclose(scores, d.score, atol=1e-9))
                if abs(j * hop - d.sample) <= (ONSET_FRAMES + 1) * hop]  # fmt: skip
        reach = ONSET_FRAMES * ONSET_DIVISOR
        cand = sorted(range(j * ONSET_DIVISOR - reach, j * ONSET_DIVISOR + reach + 1),
                      key=lambda i: abs(i - j * ONSET_DIVISOR))  # fmt: skip
        best, delta = _parabola_argmax(onset_scores, cand)
        assert abs(d.sample - (best * h + delta * h)) <= 0.5 + 1e-6


@pytest.mark.parametrize("rate", [8000, 48000])
def test_an_exact_copy_is_placed_at_its_onset(rate):
    # The tolerance's max-filter widens the stream's bell by a frame each way: its own score
    # peaked 29 ms (3.6 hops) late; the exact score at the matching resolution blurs the onset
    # over a frame. The onset search at a quarter of the frame and hop places it within a
    # fine hop.
    bell = _bell(rate)
    hop = round(0.008 * rate)
    rng = np.random.default_rng(1)
    x = 0.001 * rng.standard_normal(3 * rate)
    onsets = [rate // 2 + 37, rate + rate // 2 + 5 * hop + hop // 3, 2 * rate + 11]
    for on in onsets:
        x[on : on + len(bell)] += bell
    ref = None
    for chunks in [[1] * (rate // 2 + 3 * hop) + [len(x)], [hop], [997, 1, 4099], [len(x)]]:
        if chunks == [hop]:
            chunks = [hop] * (len(x) // hop)
        for tol in (0.0, 0.01, 0.03, 0.1):
            m = Matcher({"bell": bell}, rate, threshold=0.5, domain="spectrogram",
                        spectrogram={"tolerance": tol})  # fmt: skip
            dets = _run(m, x, chunks)
            assert len(dets) == 3
            for d, on in zip(dets, onsets, strict=True):
                assert abs(d.sample - on) <= hop // 4, (tol, d.sample - on, hop)
            if tol == 0.03:
                assert ref is None or dets == ref
                ref = dets


@pytest.mark.parametrize(
    "kwargs",
    [
        {"threshold": 0.3},
        {"mad": 6.0, "mad_window_s": 1.0, "mad_hop_s": 0.25, "min_distance": 1},
        {"threshold": 0.2, "spectrogram": {"tolerance": 0.1}, "combine": "mean"},
    ],
)
def test_the_onset_search_keeps_the_decisions_and_scores(kwargs, monkeypatch):
    # Which peaks are detections and their scores come from the tolerant score alone; the
    # onset search only moves `sample`, by at most ONSET_FRAMES hops and a half.
    from streamconv.dsp import spectro_matcher

    x = _stream(chans=2, noise=0.2)
    tpls = {"c": _chirp(), "d": _chirp(0.15, 1500, 700)}
    m = Matcher(tpls, RATE, domain="spectrogram", **kwargs)
    new = m.process(x) + m.flush()
    bound = (spectro_matcher.ONSET_FRAMES + 1) * m.hop + 1
    monkeypatch.setattr(spectro_matcher, "ONSET_FRAMES", 0)
    m = Matcher(tpls, RATE, domain="spectrogram", **kwargs)
    old = m.process(x) + m.flush()
    key = lambda d: (d.template, d.channel, d.score, d.threshold)  # noqa: E731
    assert len(new) >= 3 and sorted(map(key, new)) == sorted(map(key, old))
    assert new != old  # the search did move some onsets
    moved = {key(d): d.sample for d in old}
    assert all(abs(d.sample - moved[key(d)]) <= bound for d in new)


def _harmonic(f0, seconds=0.3):
    t = np.arange(int(seconds * RATE)) / RATE
    tone = sum(np.sin(2 * np.pi * k * f0 * t) / k for k in range(1, 12))
    return tone * np.hanning(len(t)) * (1 + 0.5 * np.sin(2 * np.pi * 7 * t))


def test_tolerance_keeps_a_pitch_shifted_copy():
    # A harmonic sound 4 % (68 cents) higher: its upper harmonics move by several bins.
    x = _stream(template=_harmonic(330 * 1.04), noise=0.05)
    scores = {}
    for r in (0.0, 0.05):
        m = Matcher({"h": _harmonic(330)}, RATE, threshold=0.0, domain="spectrogram",
                    spectrogram={"tolerance": r})  # fmt: skip
        scores[r] = max(d.score for d in m.process(x) + m.flush())
    assert scores[0.05] > scores[0.0] + 0.15, scores


@pytest.mark.parametrize("min_distance", [None, 1])
def test_a_chunk_of_the_stream_gives_the_whole_streams_detections(min_distance):
    x = _stream(seconds=12.0, onsets=np.arange(0.5, 11.5, 0.77))
    kw = {"mad": 5.0, "mad_window_s": 2.0, "mad_hop_s": 0.5, "domain": "spectrogram",
          "block_size": 400, "spectrogram": {"tolerance": 0.03},
          "min_distance": min_distance}  # fmt: skip
    whole = Matcher({"c": _chirp()}, RATE, **kw)
    ref = whole.process(x) + whole.flush()
    assert len(ref) >= 10
    edges = [0, 20011, 33333, 50000, 71234, len(x)]
    got = []
    for start, stop in itertools.pairwise(edges):
        m = Matcher({"c": _chirp()}, RATE, **kw)
        first, end = m.chunk_bounds(start, stop, len(x))
        m.start_at(first)
        dets = m.process(x[first:end]) + (m.flush() if end == len(x) else [])
        got += [d for d in dets if start <= d.sample < stop]
    assert got == ref


def test_stereo_template_scores_each_channel_with_its_column():
    tpl = np.stack([_chirp(), _chirp(0.25, 1800, 600)], axis=1)
    x = _stream(template=tpl, chans=2, noise=0.05)
    m = Matcher({"st": tpl}, RATE, threshold=0.7, domain="spectrogram")
    dets = m.process(x) + m.flush()
    assert sorted({d.channel for d in dets}) == [0, 1]
    assert len(dets) == 6


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"spectrogram": {"scale": "log2"}}, "scale"),
        ({"spectrogram": {"tolerance": 0.5}}, "tolerance"),
        ({"spectrogram": {"band_margin": -0.1}}, "band_margin"),
        ({"spectrogram": {"low_hz": 900, "high_hz": 800}}, "low_hz"),
        ({"spectrogram": {"window": "nope"}}, "window"),
        ({"domain": "wavelet"}, "domain"),
    ],
)
def test_bad_parameters_are_refused(kwargs, message):
    kwargs.setdefault("domain", "spectrogram")
    with pytest.raises(ValueError, match=message):
        Matcher({"c": _chirp()}, RATE, **kwargs)


def test_band_margin_widens_the_default_band_and_tells_a_tone_from_a_burst():
    from streamconv.dsp.spectrogram import template_patch

    t = np.arange(int(0.25 * RATE)) / RATE
    tone = np.sin(2 * np.pi * 1000 * t) * np.hanning(len(t))
    bins = {}
    for margin in (0.0, 0.5):
        p = SpectrogramParams(band_margin=margin)
        bins[margin] = template_patch("tone", tone[:, None], RATE, p).bins
    # 1000 Hz is bin 32 of 256-sample frames at 8 kHz: the margin moves the edges out by half.
    lo, hi = bins[0.0].start, bins[0.0].stop - 1
    assert lo <= 32 <= hi and hi - lo < 8
    assert bins[0.5] == slice(int(np.floor(lo / 1.5)), int(np.ceil(hi * 1.5)) + 1)
    hand = SpectrogramParams(low_hz=500, high_hz=1500, band_margin=2.0)
    assert template_patch("tone", tone[:, None], RATE, hand).bins == slice(16, 49)
    # A noise burst with the tone's envelope has energy in the tone's bins: without the margin
    # it scores about as high as the tone; with it, the tone's quiet neighbours tell them apart.
    rng = np.random.default_rng(5)
    burst = rng.normal(size=len(t)) * np.hanning(len(t))
    x = np.zeros(2 * RATE)
    x[4000 : 4000 + len(t)] += tone
    x[12000 : 12000 + len(t)] += burst
    x += rng.normal(scale=1e-3, size=len(x))
    score = {}
    for margin in (0.0, 0.5):
        m = Matcher({"tone": tone}, RATE, threshold=0.05, domain="spectrogram",
                    spectrogram={"band_margin": margin})  # fmt: skip
        dets = m.process(x) + m.flush()
        score[margin] = {on: max(d.score for d in dets if abs(d.sample - on) < 400)
                         for on in (4000, 12000)}  # fmt: skip
    assert score[0.0][4000] > 0.9 and score[0.0][12000] > 0.8  # 0.93 and 0.89
    assert score[0.5][4000] > 0.8 and score[0.5][12000] < 0.3  # 0.86 and 0.06


def test_templates_too_short_or_silent_are_refused():
    with pytest.raises(ValueError, match="shorter than one spectrogram frame"):
        Matcher({"c": np.ones(100)}, RATE, domain="spectrogram")
    with pytest.raises(ValueError, match="flat spectrogram"):
        Matcher({"c": np.zeros(4000)}, RATE, domain="spectrogram")
    with pytest.raises(ValueError, match="need domain='spectrogram'"):
        Matcher({"c": _chirp()}, RATE, spectrogram={"tolerance": 0.1})


def test_waveform_is_still_the_default_and_exact():
    x = _stream(noise=0.3)
    m = Matcher({"c": _chirp()}, RATE, threshold=0.5)
    assert type(m) is Matcher and m.score_step == 1
    dets = m.process(x) + m.flush()
    assert [d.sample for d in dets] == [8000, 21613, 35226]


def _config(tmp_path, template_keys):
    x = _stream(seconds=4.0, onsets=(1.0, 2.5))
    import soundfile as sf

    sf.write(tmp_path / "in.wav", x, RATE, subtype="DOUBLE")
    np.save(tmp_path / "chirp.npy", _chirp())
    (tmp_path / "run.toml").write_text(
        '[source]\nuri = "in.wav"\n[sink]\nuri = "null"\n'
        f'[[templates]]\nname = "chirp"\npath = "chirp.npy"\n{template_keys}\n'
    )
    return tmp_path / "run.toml", x


def test_a_config_template_in_the_spectrogram_domain(tmp_path):
    from streamconv.config import load_config
    from streamconv.pipeline import Pipeline

    keys = 'threshold = 0.5\ndomain = "spectrogram"\nspectrogram = { tolerance = 0.03 }'
    path, x = _config(tmp_path, keys)
    loaded = load_config(str(path))
    assert loaded.templates[0].spectrogram["tolerance"] == 0.03
    assert loaded.templates[0].spectrogram["band_margin"] == 0.5  # the default
    p = Pipeline(loaded.compact_taps(), loaded.sample_rate, loaded.channels_in,
                 templates=loaded.templates)  # fmt: skip
    dets = []
    for i in range(0, len(x), 1000):
        dets += p.process(x[i : i + 1000])[1]
    dets += p.flush()
    assert [d.sample for d in dets] == pytest.approx([8000, 20013], abs=16)
    # Its parameters with the same matcher from Python: the same detections.
    m = Matcher({"chirp": _chirp()}, RATE, threshold=0.5, domain="spectrogram",
                spectrogram={"tolerance": 0.03})  # fmt: skip
    assert [d.sample for d in m.process(x) + m.flush()] == [d.sample for d in dets]


@pytest.mark.parametrize(
    ("keys", "message"),
    [
        ('domain = "spectrogram"\nspectrogram = { frame_s = 0.3 }', "shorter than one"),
        ("spectrogram = { tolerance = 0.03 }", "need domain"),
        ('domain = "spectrogram"\nspectrogram = { low_hz = 4500, high_hz = 5000 }', "no spectro"),
        (
            'domain = "spectrogram"\nspectrogram = { low_hz = 4500 }',
            "no spectrogram bin between 4500 Hz (low_hz) and 2593.75 Hz (the template's own band, "
            "widened); bins are 31.25 Hz apart, from 0 to 4000 Hz",
        ),
        (
            'domain = "spectrogram"\nspectrogram = { hop_s = 0.05 }',
            "hop_s (0.05 s) must not exceed frame_s (0.032 s)",
        ),
        (
            'domain = "spectrogram"\nspectrogram = { low_hz = 1200, high_hz = 600 }',
            "low_hz (1200 Hz) must be below high_hz (600 Hz)",
        ),
        ('domain = "spectrogram"\nspectrogram = { tolerance = 0.5 }', "tolerance"),
        ('domain = "spectrogram"\nspectrogram = { band_margin = 5 }', "band_margin"),
    ],
)
def test_bad_spectrogram_config_names_the_template(tmp_path, keys, message):
    from streamconv.config import load_config
    from streamconv.errors import ConfigError

    path, _ = _config(tmp_path, keys)
    with pytest.raises(ConfigError, match=r"templates\[0\]") as err:
        load_config(str(path))
    assert message in str(err.value)


def test_the_service_pipeline_in_the_spectrogram_domain_for_any_block_size():
    from streamconv.detect import TemplateSpec
    from streamconv.pipeline import Pipeline

    x = _stream(chans=2)
    spec = TemplateSpec("c", _chirp(), mad=5.0, domain="spectrogram",
                        spectrogram={"tolerance": 0.03}, mad_window_s=1.0)  # fmt: skip
    h = np.r_[0.25, 0.5, 0.25]  # linear phase: 1 sample of delay taken off
    ref = None
    for block in (1, 97, 4096):
        p = Pipeline(h, RATE, 2, block_size=block, method="direct", templates=[spec])
        dets = []
        for i in range(0, len(x), block):
            dets += p.process(x[i : i + block])[1]
        dets += p.flush()
        if ref is None:
            ref = dets
            m = Matcher({"c": _chirp()}, RATE, mad=5.0, domain="spectrogram", mad_window_s=1.0,
                        spectrogram={"tolerance": 0.03})  # fmt: skip
            y = np.stack([np.convolve(x[:, c], h)[: len(x)] for c in (0, 1)], axis=1)
            want = m.process(y) + m.flush()
            assert [(d.sample - 1, d.channel) for d in want] == [
                (d.sample, d.channel) for d in dets
            ]
            frames = (len(_chirp()) - m.frame) // m.hop + 1  # default: the template's length
            assert m.rules("c").min_distance == frames * m.hop
        assert dets == ref


def test_check_says_the_domain_and_the_timeline(tmp_path, capsys):
    from streamconv.cli import main

    keys = 'domain = "spectrogram"\nspectrogram = { high_hz = 3000, tolerance = 0.03 }'
    path, _ = _config(tmp_path, keys)
    text = path.read_text() + '[[filters]]\ntype = "lowpass"\ncutoff_hz = 3500\ntaps = 41\n'
    path.write_text(text)
    assert main(["check", str(path)]) == 0
    out = capsys.readouterr().out
    # The band the matcher compares: an edge given is used as is, the other is the template's
    # own band widened (it said "band 0..3000 Hz", an edge the matcher does not use).
    lo, _ = _band_hz(high_hz=3000)
    assert lo > 300
    assert (
        f"spectrogram (frame 0.032 s, hop 0.008 s, hann, db floor 50 dB, band {lo:g}..3000 Hz "
        "(high_hz given, low: own band, margin 0.5), tolerance 0.03)"
    ) in out
    assert "  timeline   detections on the input's (20 samples of chain delay taken off)" in out
    path.write_text(text.replace("high_hz = 3000, ", "window = 'blackman', scale = 'linear', "))
    assert main(["check", str(path)]) == 0
    out = capsys.readouterr().out
    lo, hi = _band_hz(window="blackman", scale="linear")
    want = f"blackman, linear, band {lo:g}..{hi:g} Hz (own band, margin 0.5), tolerance 0.03)"
    assert want in out


def _band_hz(**params):
    """The lowest and highest frequency of the bins the matcher compares for `_chirp()`."""
    from streamconv.dsp.spectrogram import SpectrogramParams, template_patch

    sp = SpectrogramParams(**params)
    frame, _ = sp.sizes(RATE)
    bins = template_patch("chirp", _chirp()[:, None], RATE, sp).bins
    return bins.start * RATE / frame, (bins.stop - 1) * RATE / frame


def test_spectrogram_templates_and_periodicity_merge_in_stream_order():
    from streamconv.detect import MatchOptions

    x = _stream(chans=2)
    x[RATE : 3 * RATE : 400] += 10.0  # a pulse train: 50 ms period
    opts = MatchOptions(threshold=0.4, combine=True, domain="spectrogram",
                        periodicity=(0.02, 0.1), periodicity_threshold=0.3)  # fmt: skip
    ref = None
    for chunks in _chunkings(len(x)):
        group = opts.detectors({"c": _chirp()}, RATE, 2)
        dets = _run(group, x, chunks)
        if ref is None:
            ref = dets
            assert {d.template for d in ref} == {"c", "periodicity"}
            assert [d.sample for d in ref] == sorted(d.sample for d in ref)
        assert dets == ref
