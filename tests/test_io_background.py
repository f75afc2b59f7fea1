"""Read-ahead and write-behind threads: the same stream, the same errors, nothing half written."""

import contextlib
import threading

import numpy as np
import pytest

from streamconv.errors import RuntimeFailure, UsageError
from streamconv.io import MemorySink, MemorySource, background
from streamconv.io.background import DEPTH, ReadAhead, WriteBehind
from streamconv.io.files import SoundFileSink

READS = [1, 2, 3, 5, 7, 64, 97, 128, 1000]


@pytest.mark.parametrize("ahead", [1, 7, 128, 1000])
def test_read_ahead_delivers_the_stream_for_any_read_size(rng, ahead):
    data = rng.normal(size=(3001, 2)).astype(np.float32)
    reader = ReadAhead(MemorySource(data, 8000, name="mem"), ahead)
    with reader:
        blocks, i = [], 0
        while len(block := reader.read(READS[i % len(READS)])):
            assert len(block) <= READS[i % len(READS)]
            blocks.append(block)
            i += 1
        assert len(reader.read(5)) == 0  # the end stays the end
    np.testing.assert_array_equal(np.concatenate(blocks), data)
    assert reader.frames_read == len(data)
    assert (reader.name, reader.channels, reader.dtype) == ("mem", 2, np.float32)


def test_read_ahead_raises_the_source_error_after_the_good_blocks():
    data = np.zeros((100, 1))
    data[70] = np.nan
    reader = ReadAhead(MemorySource(data, 8000, name="mem"), 16)
    with reader:
        got = [reader.read(16) for _ in range(4)]
        with pytest.raises(UsageError, match="mem: NaN or Inf sample at frame 70"):
            reader.read(16)
    assert sum(len(b) for b in got) == 64


def test_read_ahead_close_stops_a_thread_waiting_on_a_full_queue():
    reader = ReadAhead(MemorySource(np.zeros((100 * DEPTH, 1)), 8000), 10)
    reader.read(10)
    reader.close()
    assert not reader._thread.is_alive()


@pytest.mark.parametrize("sizes", [[1] * 50, [7, 1, 0, 128, 3, 997], [4096] * 3])
def test_write_behind_writes_every_block_in_order(rng, sizes):
    data = rng.normal(size=(sum(sizes), 3))
    inner = MemorySink(8000, 3)
    with WriteBehind(inner) as sink:
        at = 0
        for n in sizes:
            sink.write(data[at : at + n])
            at += n
    assert inner.committed and sink.frames_written == len(data)
    np.testing.assert_array_equal(inner.data, data)


class FailingSink(MemorySink):
    """Fails on its `fail_at`-th block, as a full disk would."""

    def __init__(self, fail_at: int):
        super().__init__(8000, 1, name="disk")
        self.fail_at = fail_at
        self.discarded = False

    def _write(self, block):
        if len(self.blocks) == self.fail_at:
            raise RuntimeFailure("disk: write failed: No space left on device")
        super()._write(block)

    def _discard(self):
        self.discarded = True


@pytest.mark.parametrize("fail_at", [0, 5, 9])
@pytest.mark.parametrize("frames", [8, background.GATHER_FRAMES])
def test_write_behind_raises_a_write_error_and_discards(fail_at, frames):
    """Blocks of GATHER_FRAMES reach the sink one by one; 8-frame blocks are gathered (one
    write at the end, which fails at fail_at 0)."""
    inner = FailingSink(fail_at)
    raises = pytest.raises(RuntimeFailure, match="No space left")
    with raises if frames > 8 or fail_at == 0 else contextlib.nullcontext():
        with WriteBehind(inner) as sink:
            for _ in range(10):
                sink.write(np.zeros((frames, 1)))
    assert inner.discarded != inner.committed
    assert inner.committed == (frames == 8 and fail_at > 0)


def test_write_behind_gathers_small_blocks():
    inner = MemorySink(8000, 2)
    data = np.arange(2 * 100_000, dtype=np.float64).reshape(-1, 2)
    with WriteBehind(inner) as sink:
        for i in range(0, len(data), 64):
            sink.write(data[i : i + 64])
    np.testing.assert_array_equal(inner.data, data)
    assert len(inner.blocks) == -(-len(data) // background.GATHER_FRAMES)


def test_write_behind_abort_discards_the_file(tmp_path):
    path = tmp_path / "out.wav"
    with pytest.raises(KeyboardInterrupt):
        with WriteBehind(SoundFileSink(str(path), 8000, 1)) as sink:
            sink.write(np.zeros((100, 1)))
            raise KeyboardInterrupt
    assert list(tmp_path.iterdir()) == []


def test_write_behind_thread_ends_with_the_sink():
    sink = WriteBehind(MemorySink(8000, 1))
    sink.write(np.zeros((3, 1)))
    sink.close()
    assert not sink._thread.is_alive()
    assert "streamconv-write" not in {t.name for t in threading.enumerate()}


class _Trickle(MemorySource):
    """Gives 3 frames per read, then waits for `more` before the rest (a slow live source)."""

    def __init__(self, data):
        super().__init__(data, 8000, name="trickle")
        self.more = threading.Event()

    def _read(self, frames):
        if self.frames_read >= 6:
            self.more.wait()
        return super()._read(min(frames, 3))


def test_read_within_fill_joins_reads_and_keeps_frames_across_a_timeout(rng):
    data = rng.normal(size=(20, 1))
    src = _Trickle(data)
    reader = ReadAhead(src, 10)
    try:
        assert reader.read_within(4, 5.0, fill=True).tolist() == data[:4].tolist()  # 3 + 3
        assert reader.read_within(4, 0.05, fill=True) is None  # 2 frames wait, not lost
        assert reader.frames_read == 4
        src.more.set()
        got = [reader.read_within(4, 5.0, fill=True) for _ in range(4)]
    finally:
        src.more.set()
        reader.close()
    assert [len(b) for b in got] == [4, 4, 4, 4]
    np.testing.assert_array_equal(np.concatenate(got), data[4:])
    assert len(reader.read_within(4, 5.0, fill=True)) == 0  # the end
