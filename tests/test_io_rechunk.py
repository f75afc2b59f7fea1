"""FrameBuffer against the trivial oracle: concatenate everything, then split it."""

import itertools

import numpy as np
import pytest

from streamconv.io.rechunk import FrameBuffer

# Sizes in (pushed) and out (popped): single frames, primes, and sizes larger than the capacity.
CHUNKINGS = [[1], [2, 3], [7], [13, 1, 29], [64], [509], [1000, 1]]


def _pieces(total, sizes):
    """Cut ``range(total)`` into consecutive lengths cycling through `sizes`."""
    out, start = [], 0
    for size in itertools.cycle(sizes):
        if start >= total:
            return out
        out.append(min(size, total - start))
        start += size


def _split(data, lengths):
    edges = np.cumsum(lengths)[:-1]
    return np.split(data, edges)


@pytest.mark.parametrize("sizes_in", CHUNKINGS)
@pytest.mark.parametrize("sizes_out", CHUNKINGS)
@pytest.mark.parametrize("channels", [1, 3])
def test_blocks_in_any_chunking_come_out_as_the_oracle_splits_them(
    rng, sizes_in, sizes_out, channels
):
    """Push blocks of one chunking, pop blocks of another as soon as enough is held: the output
    equals concatenating the input and splitting it, and what is left is the tail."""
    data = rng.standard_normal((2311, channels))  # prime length
    blocks = _split(data, _pieces(len(data), sizes_in))
    want = _pieces(len(data), sizes_out)
    buf = FrameBuffer(channels, np.float64, capacity=8)
    got, i = [], 0
    for block in blocks:
        buf.push(block)
        while i < len(want) and len(buf) >= want[i]:
            got.append(buf.pop(want[i]))
            i += 1
    expected = _split(data, want)
    assert len(got) == len(expected)
    for a, b in zip(got, expected, strict=True):
        assert a.shape == b.shape
        np.testing.assert_array_equal(a, b)
    assert len(buf) == 0


@pytest.mark.parametrize("sizes_in", [[1], [3], [5, 7], [11], [4093]])
def test_raw_bytes_cut_anywhere_give_the_whole_frames(rng, sizes_in):
    """Bytes split inside samples and frames: whole frames come out as np.frombuffer of the
    joined bytes reads them; a partial frame waits."""
    frames = rng.integers(-(2**15), 2**15, size=(997, 2)).astype("<i2")
    raw = frames.tobytes()
    buf = FrameBuffer(2, "<i2", capacity=2)
    got, start = [], 0
    for size in _pieces(len(raw), sizes_in):
        buf.push_bytes(raw[start : start + size])
        start += size
        assert buf.partial_bytes == start % 4
        got.append(buf.pop(len(buf)))
    np.testing.assert_array_equal(np.concatenate(got), frames)
    assert buf.partial_bytes == 0


def test_pushed_blocks_are_cast_and_popped_blocks_are_copies():
    buf = FrameBuffer(1, np.float32)
    x = np.array([[0.1], [0.2]])
    buf.push(x)
    out = buf.pop(2)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, x.astype(np.float32))
    buf.push(np.zeros((2, 1)))
    assert out[0, 0] == np.float32(0.1)  # not a view of the reused storage


def test_the_storage_is_reused_not_reallocated_in_steady_state(rng):
    """A steady flow below the capacity never reallocates."""
    buf = FrameBuffer(2, np.float64, capacity=1024)
    storage = buf._raw
    for _ in range(200):
        buf.push(rng.standard_normal((300, 2)))
        while len(buf) >= 256:
            buf.pop(256)
    assert buf._raw is storage


def test_misuse_is_an_error():
    buf = FrameBuffer(2, np.float64)
    with pytest.raises(ValueError, match="shape"):
        buf.push(np.zeros((4, 3)))
    with pytest.raises(ValueError, match="cannot take 1 frames"):
        buf.pop(1)
    raw = FrameBuffer(1, "<i2")
    raw.push_bytes(b"\x01")
    with pytest.raises(ValueError, match="partial frame"):
        raw.push(np.zeros((1, 1)))
    raw.clear()
    assert len(raw) == 0 and raw.partial_bytes == 0
