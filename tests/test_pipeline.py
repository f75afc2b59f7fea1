"""Pipeline: block by block against scipy and a one-shot Matcher (the loop around it, with
sources and sinks, is tested in test_runner.py)."""

import numpy as np
import pytest
from scipy import signal

from streamconv.config import TemplateInfo
from streamconv.dsp.matcher import Matcher
from streamconv.pipeline import Pipeline

RATE = 8000.0


def _template(name, samples, threshold=0.8, combine="per_channel"):
    return TemplateInfo(name, samples, threshold, None, len(samples), combine, None)


def _signal(rng, frames=20000, channels=2):
    x = 0.1 * rng.normal(size=(frames, channels))
    bell = np.sin(2 * np.pi * 440 * np.arange(400) / RATE) * np.hanning(400)
    for start in (3000, 9001, 15555):
        x[start : start + 400] += bell[:, None]
    return x, bell


def _run(x, pipeline, block):
    ys, found = [], []
    for i in range(0, len(x), block):
        y, dets = pipeline.process(x[i : i + block])
        ys.append(y)
        found += dets
    return np.concatenate(ys), found + pipeline.flush()


@pytest.mark.parametrize("block", [1, 97, 256, 4096])
@pytest.mark.parametrize("combine", ["per_channel", "mean"])
def test_sink_is_filtered_input_and_detections_match_one_shot(rng, block, combine):
    x, bell = _signal(rng)
    h = signal.firwin(63, [300, 600], fs=RATE, pass_zero=False)
    tpl = [_template("bell", signal.lfilter(h, 1, bell), combine=combine)]
    y, found = _run(x, Pipeline(h, RATE, 2, block_size=block, templates=tpl), block)
    expected = signal.convolve(x, h[:, None])[: len(x)]
    np.testing.assert_allclose(y, expected, rtol=0, atol=1e-10 * np.abs(expected).max())
    mean = "mean" if combine == "mean" else None
    oracle = Matcher({"bell": tpl[0].samples}, RATE, threshold=0.8, combine=mean)
    want = oracle.process(expected) + oracle.flush()
    # Reported on the input's timeline: the 63-tap linear-phase chain's 31 samples taken off
    # (the template here is the bell through the causal filter, so it sits 31 early).
    assert all(d.timeline == "input" and d.chain_delay == 31 for d in found)
    assert [(d.sample, d.channel) for d in found] == [(d.sample - 31, d.channel) for d in want]
    assert {d.sample + 31 for d in found} >= {3000, 9001, 15555}
    np.testing.assert_allclose([d.score for d in found], [d.score for d in want], atol=1e-9)


def test_mimo_chain_changes_channel_count(rng):
    x = rng.normal(size=(1000, 2))
    taps = rng.normal(size=(16, 2, 3))
    y, _ = _run(x, Pipeline(taps, RATE, 2, block_size=64), 100)
    expected = sum(signal.convolve(x[:, [i]], taps[:, i, :])[: len(x)] for i in range(2))
    np.testing.assert_allclose(y, expected, atol=1e-10 * np.abs(expected).max())


@pytest.mark.parametrize("new_len", [9, 31, 200])
def test_successor_continues_the_stream_without_a_lost_or_repeated_sample(rng, new_len):
    x = rng.normal(size=(3000, 1))
    h1, h2 = rng.normal(size=31), rng.normal(size=new_len)
    p = Pipeline(h1, RATE, 1, block_size=128)
    # 7-frame blocks: the kept input history (a ring of L - 1 frames) wraps around many times
    y1 = np.concatenate([p.process(x[i : min(i + 7, 1700)])[0] for i in range(0, 1700, 7)])
    p, _ = p.successor(h2)
    y2, _ = p.process(x[1700:])
    y = np.concatenate([y1, y2])
    assert len(y) == len(x)
    np.testing.assert_allclose(y1[:, 0], np.convolve(x[:, 0], h1)[:1700], atol=1e-9)
    # After the switch: the new filter on the whole input, as far back as the old history.
    full = np.convolve(x[:, 0], h2)[1700:3000]
    if new_len <= 31:
        np.testing.assert_allclose(y2[:, 0], full, atol=1e-9)
    else:  # history before 1700 - 30 counts as zeros: exact once the filter is past it
        np.testing.assert_allclose(y2[new_len:, 0], full[new_len:], atol=1e-9)
    assert p.frames == 3000


def test_successor_keeps_detectors_and_global_sample_numbers(rng):
    x, bell = _signal(rng, channels=1)
    tpl = [_template("bell", bell)]
    p = Pipeline([1.0], RATE, 1, block_size=256, templates=tpl)
    _, a = p.process(x[:9100])  # the reload falls inside the second bell
    p, b = p.successor([1.0], templates=tpl)
    _, c = p.process(x[9100:])
    found = a + b + c + p.flush()
    assert [d.sample for d in found] == [3000, 9001, 15555]
    # New templates: the old ones are flushed, the new ones count from the reload on.
    p = Pipeline([1.0], RATE, 1, block_size=256, templates=tpl)
    _, a = p.process(x[:6000])
    p, b = p.successor([1.0], templates=[_template("bell2", bell)])
    _, c = p.process(x[6000:])
    found = a + b + c + p.flush()
    assert [(d.template, d.sample, d.time) for d in found] == [
        ("bell", 3000, 3000 / RATE),
        ("bell2", 9001, 9001 / RATE),
        ("bell2", 15555, 15555 / RATE),
    ]


def test_successor_refuses_a_different_output_channel_count(rng):
    p = Pipeline(np.ones((4, 2)), RATE, 2)
    with pytest.raises(ValueError, match="3 channels"):
        p.successor(np.ones((4, 2, 3)))
