"""benchmarks/bench_detect.py's scoring: an occurrence is scored by its best detection."""

import importlib.util
import os
from pathlib import Path
from types import SimpleNamespace

import pytest

RATE = 16000


@pytest.fixture(scope="module")
def bench():
    path = Path(__file__).parent.parent / "benchmarks" / "bench_detect.py"
    spec = importlib.util.spec_from_file_location("bench_detect", path)
    module = importlib.util.module_from_spec(spec)
    # The module pins OMP_NUM_THREADS etc. for its own run; keep this process's environment.
    saved = dict(os.environ)
    try:
        spec.loader.exec_module(module)
    finally:
        os.environ.clear()
        os.environ.update(saved)
    return module


def det(sample, score, template="bell"):
    return SimpleNamespace(template=template, sample=sample, score=score)


def test_an_occurrence_takes_its_best_detection_not_its_first(bench):
    onset = 5 * RATE
    events = [("bell", onset, True, 0.0, {}), ("message", 20 * RATE, False, 0.0, {})]
    dets = [
        det(onset - 3000, 0.35),  # a noise peak 0.19 s before the onset, detected first
        det(onset + 20, 0.82),  # the occurrence's own peak
        det(onset + 2000, 0.40),  # another noise peak in the window: neither hit nor false
        det(20 * RATE, 0.50),  # a false detection on a distractor
        det(onset, 0.9, template="seven"),  # another template's detection
    ]
    res = bench.score(dets, events, ["bell", "seven"])
    assert res["bell"]["hits"] == 1
    assert res["bell"]["scores"] == [0.82]
    assert res["bell"]["errors"] == [20 / RATE]
    assert res["bell"]["false"] == [0.50]
    assert res["seven"] == {"hits": 0, "errors": [], "scores": [], "false": [0.9], "occurrences": 0}
    # Halfway between the highest false (0.50) and lowest true (0.82) peaks; scored by the
    # first detection (0.35) they would overlap and the threshold would be 0.52.
    assert bench.threshold(res["bell"]) == pytest.approx(0.66)


def test_detections_outside_the_window_are_false(bench):
    onset = 5 * RATE
    window = int(bench.MATCH_WINDOW_S * RATE)
    events = [("bell", onset, True, 0.0, {})]
    dets = [det(onset - window - 1, 0.7), det(onset + window, 0.6)]
    res = bench.score(dets, events, ["bell"])
    assert (res["bell"]["hits"], res["bell"]["scores"], res["bell"]["false"]) == (1, [0.6], [0.7])
