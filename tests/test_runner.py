"""The stream runner: MemorySource -> Runner -> MemorySink against scipy and one-shot detectors,
for many chunkings; its hooks (idle ticks on a silent source, block events, states, stop)."""

import threading
import time

import numpy as np
import pytest
import soundfile as sf
from scipy import signal

from streamconv.config import TemplateInfo
from streamconv.config.models import Periodicity as PeriodicityEntry
from streamconv.dsp.group_delay import chain_delay
from streamconv.dsp.matcher import Matcher
from streamconv.dsp.periodicity import Periodicity
from streamconv.errors import UsageError
from streamconv.io import MemorySink, MemorySource
from streamconv.io.base import Source
from streamconv.runner import (
    FILE_BLOCK,
    LIVE_BLOCK,
    Endpoint,
    Observer,
    Runner,
    block_size_for,
    sink_subtype,
    work_dtype,
)

RATE = 8000.0
CHUNKINGS = [1, 2, 7, 97, 256, 4099]


class Recorder(Observer):
    """Every hook call, in order."""

    def __init__(self):
        self.ticks = 0
        self.events = []
        self.detections = []
        self.states = []

    def on_tick(self, runner):
        self.ticks += 1

    def on_block(self, event):
        self.events.append(event)

    def on_detection(self, detection):
        self.detections.append(detection)

    def on_state(self, runner, state):
        self.states.append(state)


class ChoppySource(MemorySource):
    """A live-like source: every read returns a random number of frames, 1..asked."""

    def __init__(self, data, rate, seed):
        super().__init__(data, rate, name="choppy")
        self._rng = np.random.default_rng(seed)

    def _read(self, frames):
        return super()._read(int(self._rng.integers(1, frames + 1)))


class SilentSource(Source):
    """A source that delivers `data`, then waits (as an idle pipe would) until `release`."""

    def __init__(self, data, rate):
        self.data = np.asarray(data, dtype=np.float64).reshape(len(data), -1)
        self.sample_rate, self.channels, self.name = rate, self.data.shape[1], "silent"
        self.release = threading.Event()
        self.closed = False

    def _read(self, frames):
        start = self.frames_read
        if start < len(self.data):
            return self.data[start : start + frames].copy()
        self.release.wait()
        return np.zeros((0, self.channels))

    def close(self):
        self.closed = True


def _signal(rng, frames=20000, channels=2):
    x = 0.1 * rng.normal(size=(frames, channels))
    bell = np.sin(2 * np.pi * 440 * np.arange(400) / RATE) * np.hanning(400)
    for start in (3000, 9001, 15555):
        x[start : start + 400] += bell[:, None]
    pulses = np.arange(11000, 14000, 80)  # a pulse train: periodicity in the middle
    x[pulses] += 2.0
    return x, bell


def _detectors(h, bell):
    templates = [TemplateInfo("bell", signal.lfilter(h, 1, bell), 0.8, None, 400, "per_channel",
                              None)]  # fmt: skip
    periodic = [PeriodicityEntry(name="pulse", min_period_s=0.005, max_period_s=0.02)]
    return templates, periodic


def _run(source, channels_out, **kwargs):
    rec = Recorder()
    sink = MemorySink(RATE, channels_out)
    result = Runner(source, sink, observers=[rec], **kwargs).run()
    return result, sink, rec


@pytest.mark.parametrize("block", CHUNKINGS)
def test_sink_and_detections_equal_one_shot_oracles_for_any_block(rng, block):
    x, bell = _signal(rng)
    h = signal.firwin(31, [300, 600], fs=RATE, pass_zero=False)
    templates, periodic = _detectors(h, bell)
    result, sink, rec = _run(
        MemorySource(x, RATE), 2, taps=h, templates=templates, periodicity=periodic,
        block_size=block,
    )  # fmt: skip
    y = signal.lfilter(h, 1, x, axis=0)
    np.testing.assert_allclose(sink.data, y, atol=1e-10 * np.abs(y).max())
    assert sink.committed and result.frames_in == result.frames_out == len(x)
    # The oracle: each detector on the whole filtered stream at once, merged by sample, stable
    # (the matcher before the periodicity detector), as `streamconv match` prints them.
    matcher = Matcher({"bell": templates[0].samples}, RATE, threshold=0.8, channels=2)
    period = Periodicity(RATE, 0.005, 0.02, 0.5, channels=2)
    found = [(0, d.template, d.sample, d.channel) for d in matcher.process(y) + matcher.flush()]
    found += [(1, "pulse", e.sample, e.channel) for e in period.process(y) + period.flush()
              if e.detected]  # fmt: skip
    found.sort(key=lambda f: (f[2], f[0]))
    # Reported on the input's timeline: the linear-phase chain's delay, 15 frames, taken off.
    assert chain_delay(h) == 15
    got = [(d.template, d.sample, d.channel) for d in rec.detections]
    assert got == [(f[1], f[2] - 15, f[3]) for f in found]
    assert {(d.timeline, d.chain_delay) for d in rec.detections} == {("input", 15)}
    assert {"bell", "pulse"} == {g[0] for g in got}  # both kinds are in the test
    assert [d.sample for d in rec.detections] == sorted(d.sample for d in rec.detections)
    assert result.detections == len(got)
    assert [d for e in rec.events for d in e.detections] == rec.detections[: sum(
        len(e.detections) for e in rec.events)]  # fmt: skip


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_short_reads_of_a_live_source_change_nothing(rng, seed):
    """The blocks are whole however a live source's reads arrive, so the output has the same
    bits as from a source that fills every read (the FFT engines' rounding depends on where
    blocks are cut)."""
    x = rng.normal(size=(5000, 2))
    h = rng.normal(size=300)  # long enough for the FFT engines
    _, sink, rec = _run(ChoppySource(x, RATE, seed), 2, taps=h, block_size=97)
    _, whole, _ = _run(MemorySource(x, RATE), 2, taps=h, block_size=97)
    assert sink.data.tobytes() == whole.data.tobytes()
    np.testing.assert_allclose(sink.data, signal.lfilter(h, 1, x, axis=0), atol=1e-10)
    assert [len(e.input) for e in rec.events] == [97] * (5000 // 97) + [5000 % 97]
    starts = [e.start for e in rec.events]
    assert starts == list(np.cumsum([0] + [len(e.input) for e in rec.events[:-1]]))


def test_block_events_carry_levels_per_channel_and_states_in_order(rng):
    x = rng.normal(size=(3000, 2)) * [0.1, 0.5]
    _, _, rec = _run(MemorySource(x, RATE), 2, taps=[2.0], block_size=1000)
    assert [len(e.input) for e in rec.events] == [1000, 1000, 1000]
    for e in rec.events:
        block = x[e.start : e.start + 1000]
        np.testing.assert_allclose(e.input_peak, np.abs(block).max(axis=0))
        np.testing.assert_allclose(e.input_rms, np.sqrt((block**2).mean(axis=0)))
        np.testing.assert_allclose(e.output_peak, 2 * np.abs(block).max(axis=0))
        np.testing.assert_allclose(e.output_rms, 2 * np.sqrt((block**2).mean(axis=0)))
        assert e.busy_s >= 0
    assert rec.states == ["running", "stopping", "stopped"]
    assert rec.ticks >= 3  # before every block


def test_idle_source_ticks_and_a_stop_from_the_tick_ends_the_run(rng):
    """A silent source (a pipe nobody writes to) must not hold the loop: ticks keep coming at
    the tick interval, and a stop asked for in one ends the run with what was read."""
    x = rng.normal(size=(300, 1))
    src = SilentSource(x, RATE)

    class StopAfterIdle(Recorder):
        def on_tick(self, runner):
            super().on_tick(runner)
            if runner.frames_in == len(x) and self.ticks >= 8:
                runner.stop()

    rec = StopAfterIdle()
    sink = MemorySink(RATE, 1)
    runner = Runner(src, sink, observers=[rec], block_size=100, tick_s=0.05)
    t0 = time.monotonic()
    try:
        result = runner.run()
    finally:
        src.release.set()
    elapsed = time.monotonic() - t0
    assert result.stopped and result.frames_in == 300
    np.testing.assert_array_equal(sink.data, x)
    assert rec.ticks >= 8 and elapsed < 5  # 5 ticks of silence at 0.05 s, with room
    assert rec.states[-2:] == ["stopping", "stopped"]


def test_stop_from_another_thread_keeps_an_exact_prefix(rng):
    x = rng.normal(size=(2_000_000, 1))  # blocks of 64 for longer than the 0.05 s to the stop
    h = rng.normal(size=9)
    sink = MemorySink(RATE, 1)
    runner = Runner(MemorySource(x, RATE), sink, taps=h, block_size=64)
    threading.Timer(0.05, runner.stop).start()
    result = runner.run()
    assert result.stopped and 0 < result.frames_in < len(x)
    n = result.frames_in
    np.testing.assert_allclose(sink.data, signal.lfilter(h, 1, x[:n], axis=0), atol=1e-10)


def test_tail_and_duration(rng):
    x = rng.normal(size=(1000, 1))
    h = rng.normal(size=20)
    _, sink, _ = _run(MemorySource(x, RATE), 1, taps=h, tail=True, block_size=33)
    np.testing.assert_allclose(sink.data[:, 0], np.convolve(x[:, 0], h), atol=1e-10)
    result, sink, _ = _run(MemorySource(x, RATE), 1, duration_s=0.05, block_size=33)
    assert result.frames_in == 400 and not result.stopped
    np.testing.assert_array_equal(sink.data, x[:400])


def test_a_failing_source_discards_the_sink(rng):
    x = rng.normal(size=(500, 1))
    x[321] = np.nan
    sink = MemorySink(RATE, 1)
    with pytest.raises(UsageError, match="NaN or Inf sample at frame 321"):
        Runner(MemorySource(x, RATE), sink, block_size=50).run()
    assert not sink.committed and not sink.blocks


def test_taps_that_do_not_fit_the_source_are_a_usage_error(rng):
    src = MemorySource(rng.normal(size=(10, 2)), RATE)
    with pytest.raises(UsageError, match=r"h\.txt: taps for 3 channels, the input memory has 2"):
        Runner(src, MemorySink(RATE, 3), taps=np.ones((4, 3)), taps_name="h.txt").open()
    with pytest.raises(UsageError, match="the filters are for 16000 Hz"):
        Runner(src, MemorySink(RATE, 2), taps_rate=16000.0).open()


@pytest.mark.parametrize(
    ("source", "sink", "taps", "block"),
    [
        ("in.wav", "out.wav", 255, FILE_BLOCK),
        ("in.wav", "null", 255, FILE_BLOCK),
        ("in.raw", "out.flac", 40000, 65536),
        ("in.wav", "out.wav", 1 << 20, 1 << 18),
        ("in.wav", "-", 255, LIVE_BLOCK),
        ("-", "out.wav", 255, LIVE_BLOCK),
        ("device", "out.wav", 255, LIVE_BLOCK),
        ("in.wav", "udp://127.0.0.1:9", 255, LIVE_BLOCK),
    ],
)
def test_block_size_rule(source, sink, taps, block):
    assert block_size_for(source, sink, taps) == block


@pytest.mark.parametrize(
    ("sink", "source_subtype", "subtype"),
    [
        (Endpoint("o.wav"), "FLOAT", "FLOAT"),
        (Endpoint("o.flac"), "PCM_24", "PCM_24"),
        (Endpoint("o.wav"), "PCM_24", "PCM_24"),
        (Endpoint("o.flac"), "FLOAT", None),  # FLAC holds no float: the type's default
        (Endpoint("o.wav", subtype="PCM_16"), "FLOAT", "PCM_16"),
        (Endpoint("o.wav", format="s32le"), "FLOAT", "PCM_32"),
        (Endpoint("o.raw", format="f32le"), "FLOAT", None),  # not an audio file
        (Endpoint("o.wav"), None, None),
    ],
)
def test_sink_subtype_rule(sink, source_subtype, subtype):
    assert sink_subtype(sink, source_subtype) == subtype


@pytest.mark.parametrize(
    ("source", "sink", "subtype", "dtype"),
    [
        (np.float32, Endpoint("o.wav"), "FLOAT", np.float32),
        (np.float32, Endpoint("o.wav"), "PCM_16", np.float32),
        (np.float32, Endpoint("o.wav"), None, np.float32),  # WAV's default: PCM_16
        (np.float32, Endpoint("o.flac"), "PCM_24", np.float64),
        (np.float32, Endpoint("o.wav"), "DOUBLE", np.float64),
        (np.float32, Endpoint("-", format="f32le"), None, np.float32),
        (np.float32, Endpoint("o.raw", format="f64le"), None, np.float64),
        (np.float32, Endpoint("o.csv"), None, np.float32),
        (np.float32, Endpoint("device"), None, np.float32),
        (np.float32, Endpoint("null"), None, np.float32),
        (np.float64, Endpoint("o.wav"), "FLOAT", np.float64),
    ],
)
def test_work_dtype_rule(source, sink, subtype, dtype):
    assert work_dtype(source, sink, subtype) == dtype


@pytest.mark.parametrize(
    ("subtype", "ext", "out_subtype"),
    [("FLOAT", "wav", "FLOAT"), ("PCM_24", "flac", "PCM_24"), ("PCM_16", "wav", "PCM_16"),
     ("DOUBLE", "wav", "DOUBLE"), ("FLOAT", "flac", "PCM_16")],
)  # fmt: skip
def test_audio_file_sink_keeps_the_source_format(tmp_path, rng, subtype, ext, out_subtype):
    x = rng.uniform(-0.5, 0.5, (3000, 2))
    sf.write(tmp_path / "in.wav", x, 8000, subtype=subtype)
    out = tmp_path / f"out.{ext}"
    result = Runner(str(tmp_path / "in.wav"), str(out)).run()
    assert sf.info(out).subtype == out_subtype and result.clipped == 0
    if out_subtype == subtype:  # no filter, the same format: the same samples
        np.testing.assert_array_equal(sf.read(out)[0], sf.read(tmp_path / "in.wav")[0])


def test_clipping_is_counted_and_an_explicit_subtype_wins(tmp_path):
    sf.write(tmp_path / "in.wav", np.full((100, 1), 0.5), 8000, subtype="FLOAT")
    out = tmp_path / "out.wav"
    result = Runner(str(tmp_path / "in.wav"), Endpoint(str(out), subtype="PCM_24"),
                    taps=[3.0]).run()  # fmt: skip
    assert sf.info(out).subtype == "PCM_24" and result.clipped == 100
    result = Runner(str(tmp_path / "in.wav"), str(out), taps=[3.0]).run()  # float: no clipping
    assert sf.info(out).subtype == "FLOAT" and result.clipped == 0
    np.testing.assert_array_equal(sf.read(out)[0], 1.5)
