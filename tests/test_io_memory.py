"""The protocol and its test doubles."""

import numpy as np
import pytest

from streamconv.errors import UsageError
from streamconv.io import MemorySink, MemorySource, NullSink, open_sink


@pytest.mark.parametrize("frames", [1, 2, 7, 64, 1000])
def test_memory_source_serves_any_block_size(frames, rng):
    x = rng.normal(size=(301, 2))
    src = MemorySource(x, 1000)
    blocks = list(src.blocks(frames))
    assert all(b.shape == (frames, 2) for b in blocks[:-1])
    np.testing.assert_array_equal(np.concatenate(blocks), x)
    assert len(src.read(5)) == 0  # stays at the end


def test_mono_1d_is_one_channel():
    src = MemorySource(np.arange(4.0), 10)
    assert src.channels == 1 and src.read(4).shape == (4, 1)
    sink = MemorySink(10, 1)
    sink.write(np.arange(3.0))
    assert sink.data.shape == (3, 1)


def test_sink_rejects_wrong_channel_count():
    sink = MemorySink(10, 2)
    with pytest.raises(ValueError, match=r"shape \(5, 3\) for a sink of 2 channels"):
        sink.write(np.zeros((5, 3)))


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_samples_are_refused_with_frame_index(bad):
    x = np.zeros((50, 2))
    x[33, 1] = bad
    src = MemorySource(x, 10, name="mem")
    src.read(30)
    with pytest.raises(UsageError, match="mem: NaN or Inf sample at frame 33"):
        src.read(30)


def test_sink_commits_on_success_and_discards_on_error():
    with MemorySink(10, 1) as ok:
        ok.write(np.ones((3, 1)))
    assert ok.committed and len(ok.data) == 3
    bad = MemorySink(10, 1)
    with pytest.raises(KeyError):
        with bad:
            bad.write(np.ones((3, 1)))
            raise KeyError
    assert not bad.committed and len(bad.data) == 0


def test_null_sink_counts_and_discards():
    sink = open_sink("null", sample_rate=10, channels=2)
    assert isinstance(sink, NullSink)
    sink.write(np.zeros((7, 2)))
    sink.close()
    assert sink.frames_written == 7
