"""The Source/Sink contract, one suite run against every implementation in `streamconv.io`.

Each kind below makes a sink and the source that reads back what it wrote (memory, null, audio
files in float and integer subtypes, csv, raw files, pipes, udp, the read-ahead/write-behind
threads, and sound devices on the private JACK server). Every kind then has to keep the same
promises (`streamconv.io.base`): blocks are ``(frames, channels)`` of the source's float
`dtype`; a finite source returns exactly what was asked until its last block, then empty
blocks for ever; what a sink took reads back exactly on the format's own sample grid;
``close`` twice is harmless; a sink that is aborted (or left by an exception) leaves nothing
behind; bad calls raise the documented errors. `test_every_implementation_is_covered` fails
when a new Source or Sink class appears without a kind here.
"""

from __future__ import annotations

import importlib
import io
import os
import pkgutil
import threading
import time

import numpy as np
import pytest

import streamconv.io
from streamconv.errors import UsageError
from streamconv.io import csvstream, files
from streamconv.io.audiopipes import AudioPipeSource
from streamconv.io.background import ReadAhead, WriteBehind
from streamconv.io.base import Sink, Source
from streamconv.io.locators import open_sink, open_source
from streamconv.io.memory import MemorySink, MemorySource, NullSink
from streamconv.io.network import UdpSink, UdpSource
from streamconv.io.pipes import RawSink, RawSource
from streamconv.io.pipesinks import PipeSoundFileSink, PipeWavSink

RATE = 8000
FRAMES = 1009  # prime: the last block of every chunking is a partial one
CHUNKINGS = [[1], [7, 64], [FRAMES + 5]]


def _grid(bits):
    """Quantize to a signed `bits`-bit integer grid (full scale 1.0), as the format stores."""
    scale = 2.0 ** (bits - 1)
    return lambda x: np.clip(np.round(x * scale), -scale, scale - 1) / scale


class Kind:
    """One Source/Sink implementation pair: make a sink, and a source over what it wrote."""

    name: str
    classes: tuple[type, ...] = ()  # the implementations this kind exercises
    holds = staticmethod(lambda x: x)  # what the format stores of float64 samples
    holds_nan = True
    has_source = True
    fills = True  # a finite source: exactly the frames asked for until its last block
    read_back_bug = ""  # a known bug that keeps this kind's output from reading back

    def sink(self, tmp_path, channels) -> Sink:
        raise NotImplementedError

    def source(self, tmp_path, sink, channels, dtype) -> Source:
        """The source reading back what `sink` (closed) took."""
        raise NotImplementedError

    def leftovers(self, tmp_path) -> list[str]:
        """What an aborted sink left behind (files in `tmp_path`)."""
        return sorted(os.listdir(tmp_path))


class MemoryKind(Kind):
    name = "memory"
    classes = (MemorySource, MemorySink)

    def sink(self, tmp_path, channels):
        return MemorySink(RATE, channels)

    def source(self, tmp_path, sink, channels, dtype):
        return MemorySource(sink.data.astype(dtype), RATE)

    def leftovers(self, tmp_path):
        return []


class NullKind(Kind):
    name = "null"
    classes = (NullSink,)
    has_source = False

    def sink(self, tmp_path, channels):
        return open_sink("null", sample_rate=RATE, channels=channels)


class FileKind(Kind):
    """An audio, csv or raw file written by its locator's sink and read by its source."""

    def __init__(self, name, suffix, classes, holds=None, holds_nan=True, fmt=None, subtype=None):
        self.name, self.suffix, self.classes = name, suffix, classes
        self.fmt, self.subtype, self.holds_nan = fmt, subtype, holds_nan
        if holds is not None:
            self.holds = holds

    def _path(self, tmp_path):
        return str(tmp_path / f"out{self.suffix}")

    def sink(self, tmp_path, channels):
        return open_sink(
            self._path(tmp_path), sample_rate=RATE, channels=channels, fmt=self.fmt,
            subtype=self.subtype,
        )  # fmt: skip

    def source(self, tmp_path, sink, channels, dtype):
        return open_source(
            self._path(tmp_path), sample_rate=RATE, channels=channels, fmt=self.fmt, dtype=dtype
        )


class PipeKind(Kind):
    """Raw PCM through a binary stream (what ``-`` is: stdin, stdout)."""

    classes = (RawSource, RawSink)

    def __init__(self, fmt, holds=None):
        self.name, self.fmt = f"pipe-{fmt}", fmt
        self.holds_nan = fmt.startswith("f")
        if holds is not None:
            self.holds = holds

    def sink(self, tmp_path, channels):
        self._stream = io.BytesIO()
        return RawSink(self._stream, self.fmt, RATE, channels, name="-")

    def source(self, tmp_path, sink, channels, dtype):
        data = io.BytesIO(self._stream.getvalue())
        return RawSource(data, self.fmt, RATE, channels, dtype=dtype, close_stream=True)

    def leftovers(self, tmp_path):
        return []


class _Captured(io.BytesIO):
    """A pipe's far end in memory: keeps what was written when the writer closes it."""

    written = b""

    def close(self):
        self.written = self.getvalue()
        super().close()


class AudioPipeKind(Kind):
    """An audio file on a pipe (``-`` with ``--type``/``--out-type``), as sox passes them."""

    classes = (AudioPipeSource, PipeWavSink, PipeSoundFileSink)

    def __init__(self, file_type, subtype, holds=None, holds_nan=True, read_back_bug=""):
        self.name, self.file_type, self.subtype = f"pipe-{file_type}-{subtype}", file_type, subtype
        self.holds_nan, self.read_back_bug = holds_nan, read_back_bug
        if holds is not None:
            self.holds = holds

    def sink(self, tmp_path, channels):
        self._stream = _Captured()
        return open_sink(
            "-", sample_rate=RATE, channels=channels, stdout=self._stream,
            file_type=self.file_type, subtype=self.subtype,
        )  # fmt: skip

    def source(self, tmp_path, sink, channels, dtype):
        data = self._stream.written or self._stream.getvalue()
        return open_source("-", stdin=io.BytesIO(data), file_type=self.file_type, dtype=dtype)

    def leftovers(self, tmp_path):
        return []


class UdpKind(Kind):
    """Datagrams on the loopback interface: the source listens before the sink sends."""

    classes = (UdpSource, UdpSink)

    def __init__(self, fmt, holds=None):
        self.name, self.fmt = f"udp-{fmt}", fmt
        self.holds_nan = fmt.startswith("f")
        if holds is not None:
            self.holds = holds

    def sink(self, tmp_path, channels):
        self._listener = {}
        for dtype in (np.float32, np.float64):  # both dtypes the suite may ask for
            self._listener[np.dtype(dtype)] = UdpSource(
                "udp://127.0.0.1:0", self.fmt, RATE, channels, dtype=dtype, timeout_s=1.0
            )
        self._ports = [src.port for src in self._listener.values()]
        return _Tee(
            [UdpSink(f"udp://127.0.0.1:{p}", self.fmt, RATE, channels) for p in self._ports]
        )

    def source(self, tmp_path, sink, channels, dtype):
        chosen = self._listener.pop(np.dtype(dtype))
        for other in self._listener.values():
            other.close()
        return chosen

    def leftovers(self, tmp_path):
        for src in getattr(self, "_listener", {}).values():
            src.close()
        return []


class _Tee(Sink):
    """Write the same blocks to several sinks (a test helper, not a kind of its own)."""

    def __init__(self, sinks):
        self.sinks = sinks
        self.name, self.sample_rate, self.channels = sinks[0].name, RATE, sinks[0].channels

    @property
    def clipped(self):
        return self.sinks[0].clipped

    def _write(self, block):
        for s in self.sinks:
            s.write(block)

    def _commit(self):
        for s in self.sinks:
            s.close()

    def _discard(self):
        for s in self.sinks:
            s.abort()


class ThreadedKind(Kind):
    """`ReadAhead` and `WriteBehind` (the file jobs' threads) around memory."""

    name = "threads"
    classes = (ReadAhead, WriteBehind)
    # ReadAhead hands on what its thread read, cut where the caller asks, and never waits for
    # the next block to fill a read: a live source behind it is not held up (documented).
    fills = False

    def sink(self, tmp_path, channels):
        self._inner = MemorySink(RATE, channels)
        return WriteBehind(self._inner)

    def source(self, tmp_path, sink, channels, dtype):
        return ReadAhead(MemorySource(self._inner.data.astype(dtype), RATE), 37)

    def leftovers(self, tmp_path):
        return ["written"] if self._inner.blocks else []


KINDS = [
    MemoryKind(),
    NullKind(),
    ThreadedKind(),
    FileKind("wav-float", ".wav", (files.SoundFileSource, files.SoundFileSink), subtype="FLOAT",
             holds=lambda x: x.astype(np.float32).astype(np.float64)),
    FileKind("wav-double", ".wav", (files.SoundFileSource, files.SoundFileSink), subtype="DOUBLE"),
    FileKind("wav-pcm16", ".wav", (files.SoundFileSource, files.SoundFileSink), subtype="PCM_16",
             holds=_grid(16), holds_nan=False),
    FileKind("flac-pcm24", ".flac", (files.SoundFileSource, files.SoundFileSink),
             subtype="PCM_24", holds=_grid(24), holds_nan=False),
    FileKind("csv", ".csv", (csvstream.CsvSource, csvstream.CsvSink)),
    FileKind("raw-s16le", ".raw", (RawSource, files.RawFileSink), fmt="s16le",
             holds=_grid(16), holds_nan=False),
    FileKind("raw-f64le", ".raw", (RawSource, files.RawFileSink), fmt="f64le"),
    PipeKind("f32le", holds=lambda x: x.astype(np.float32).astype(np.float64)),
    AudioPipeKind("wav", "FLOAT", holds=lambda x: x.astype(np.float32).astype(np.float64)),
    AudioPipeKind("wav", "PCM_16", holds=_grid(16), holds_nan=False),
    AudioPipeKind("flac", "PCM_24", holds=_grid(24), holds_nan=False),
    PipeKind("s32le", holds=_grid(32)),
    UdpKind("f32le", holds=lambda x: x.astype(np.float32).astype(np.float64)),
    UdpKind("s16le", holds=_grid(16)),
]  # fmt: skip
SOURCE_KINDS = [k for k in KINDS if k.has_source]


def _known_bug(kind, request):
    """A kind whose output does not read back yet is an expected failure, reported as such
    (strict: the test fails once the bug is fixed, so the mark goes)."""
    if kind.read_back_bug:
        request.applymarker(pytest.mark.xfail(reason=kind.read_back_bug, strict=True))


def _data(channels, seed=7):
    """Samples in [-0.9, 0.9): no clipping anywhere, every format's grid well inside."""
    return np.random.default_rng(seed).uniform(-0.9, 0.9, (FRAMES, channels))


def _write_all(kind, tmp_path, x):
    sink = kind.sink(tmp_path, x.shape[1])
    with sink:
        for start in range(0, len(x), 100):
            sink.write(x[start : start + 100])
    return sink


def _read_all(src, sizes):
    blocks, i = [], 0
    while True:
        want = sizes[i % len(sizes)]
        block = src.read(want)
        assert block.ndim == 2 and block.shape[1] == src.channels
        assert block.dtype == src.dtype
        assert len(block) <= want
        if not len(block):
            return blocks
        blocks.append((want, block))
        i += 1


@pytest.mark.parametrize("sizes", CHUNKINGS, ids=lambda s: "-".join(map(str, s)))
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("channels", [1, 2])
@pytest.mark.parametrize("kind", SOURCE_KINDS, ids=lambda k: k.name)
def test_what_a_sink_took_reads_back_exactly(kind, channels, dtype, sizes, tmp_path, request):
    """Round trip in any chunking: exact on the format's grid (and the source's dtype); a
    finite source fills every block but the last; the end stays the end."""
    _known_bug(kind, request)
    x = _data(channels)
    sink = _write_all(kind, tmp_path, x)
    assert sink.frames_written == FRAMES
    with kind.source(tmp_path, sink, channels, dtype) as src:
        assert (src.sample_rate, src.channels, src.dtype) == (RATE, channels, np.dtype(dtype))
        blocks = _read_all(src, sizes)
        assert src.frames_read == FRAMES
        for want, block in blocks[:-1]:
            assert len(block) == want or not kind.fills, "a short block before the end"
            assert len(block), "an empty block before the end"
        assert src.read(5).shape == (0, channels)  # the end stays the end
        assert src.read(1).shape == (0, channels)
    got = np.concatenate([b for _, b in blocks])
    np.testing.assert_array_equal(got, kind.holds(x).astype(dtype))


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.name)
def test_sink_layout_counts_and_errors(kind, tmp_path, request):
    """Empty and 1-frame blocks, 1-D blocks for mono, counts, and a wrong channel count."""
    _known_bug(kind, request)
    mono = kind.sink(tmp_path, 1)
    mono.write(np.zeros((0, 1)))
    mono.write(np.full((1, 1), 0.25))
    mono.write(np.full(3, 0.5))  # 1-D: mono
    with pytest.raises(ValueError, match="channels"):
        mono.write(np.zeros((2, 2)))
    assert mono.frames_written == 4
    assert mono.stats()["clipped"] == 0
    mono.close()
    mono.close()  # idempotent
    mono.abort()  # after close: nothing to undo, the output stays
    if kind.has_source:
        with kind.source(tmp_path, mono, 1, np.float64) as src:
            np.testing.assert_array_equal(
                np.concatenate(list(src.blocks(2)))[:, 0], [0.25, 0.5, 0.5, 0.5]
            )


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.name)
def test_an_aborted_sink_leaves_nothing(kind, tmp_path):
    """A sink left by an exception aborts: no output file, no temporary file."""
    with pytest.raises(RuntimeError, match="job failed"):
        with kind.sink(tmp_path, 2) as sink:
            sink.write(_data(2)[:50])
            raise RuntimeError("job failed")
    sink.abort()  # idempotent
    sink.close()  # after abort: does not commit
    assert kind.leftovers(tmp_path) == []


@pytest.mark.parametrize("kind", SOURCE_KINDS, ids=lambda k: k.name)
def test_source_errors_and_close(kind, tmp_path):
    """read(0) is a ValueError, a NaN sample a UsageError naming its frame; close twice."""
    x = _data(1)
    if kind.holds_nan:
        x[123, 0] = np.nan
    sink = _write_all(kind, tmp_path, x)
    src = kind.source(tmp_path, sink, 1, np.float64)
    with pytest.raises(ValueError, match="positive"):
        src.read(0)
    if kind.holds_nan:
        with pytest.raises(UsageError, match="NaN or Inf sample at frame 123"):
            while len(src.read(50)):
                pass
    src.close()
    src.close()


def test_every_implementation_is_covered():
    """Every Source and Sink class of streamconv.io is exercised by a kind of this suite (the
    device classes by the JACK tests below)."""
    for info in pkgutil.iter_modules(streamconv.io.__path__):
        if info.name != "device_worker":  # the worker process's entry point: no classes
            importlib.import_module(f"streamconv.io.{info.name}")
    from streamconv.io.devices import DeviceSink, DeviceSource
    from streamconv.io.reopen import ReopeningSink, ReopeningSource

    def subclasses(cls):
        for sub in cls.__subclasses__():
            yield sub
            yield from subclasses(sub)

    found = {
        c
        for base in (Source, Sink)
        for c in subclasses(base)
        if c.__module__.startswith("streamconv.io")
    }
    covered = {c for k in KINDS for c in k.classes}
    covered |= {DeviceSource, DeviceSink, ReopeningSource, ReopeningSink}
    assert found - covered == set(), "Source/Sink classes without a contract kind"


# Sound devices: live, so no end and no exact round trip here (tests/test_io_devices.py checks
# the samples); the layout, dtype, count and close promises are the same.


def _device_pairs(server):
    from streamconv.io.devices import DeviceSink, DeviceSource

    device, rate = server.device, server.sample_rate
    yield (
        "device",
        (
            lambda dtype: DeviceSource(device, rate, 1, 256, dtype=dtype),
            lambda: DeviceSink(device, rate, 1, 256),
        ),
    )
    yield "reopening", (
        lambda dtype: open_source(f"device:{device}", sample_rate=rate, channels=1,
                                  block_size=256, dtype=dtype),
        lambda: open_sink(f"device:{device}", sample_rate=rate, channels=1, block_size=256),
    )  # fmt: skip


@pytest.mark.parametrize("which", ["device", "reopening"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
def test_device_source_contract(audio_server, which, dtype):
    make_source, _ = dict(_device_pairs(audio_server))[which]
    src = make_source(dtype)
    with src:
        assert (src.channels, src.dtype) == (1, np.dtype(dtype))
        for want in (1, 7, 300):
            block = src.read(want)
            assert block.shape == (want, 1) and block.dtype == np.dtype(dtype)
        assert src.frames_read == 308
        with pytest.raises(ValueError, match="positive"):
            src.read(0)
    src.close()


@pytest.mark.parametrize("which", ["device", "reopening"])
def test_device_sink_contract(audio_server, which):
    _, make_sink = dict(_device_pairs(audio_server))[which]
    sink = make_sink()
    sink.write(np.zeros((0, 1)))
    sink.write(np.zeros((1, 1)))
    sink.write(np.zeros(700))
    with pytest.raises(ValueError, match="channels"):
        sink.write(np.zeros((2, 2)))
    assert sink.frames_written == 701
    assert sink.stats()["clipped"] == 0
    t0 = time.monotonic()
    sink.close()  # plays the queue (701 frames: well under a second)
    assert time.monotonic() - t0 < 5
    sink.close()
    sink.abort()


def test_udp_source_ends_on_the_senders_close():
    """The udp kind's end is the sink's end datagram, not the source's timeout."""
    src = UdpSource("udp://127.0.0.1:0", "f32le", RATE, 1, timeout_s=30.0)
    sink = UdpSink(f"udp://127.0.0.1:{src.port}", "f32le", RATE, 1)
    thread = threading.Thread(target=lambda: (sink.write(np.zeros((10, 1))), sink.close()))
    thread.start()
    t0 = time.monotonic()
    got = sum(len(b) for b in src.blocks(4))
    thread.join()
    src.close()
    assert got == 10 and time.monotonic() - t0 < 5
