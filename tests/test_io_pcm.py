"""Raw PCM: formats, full-scale scaling, clipping counts, and frames split anywhere by pipes."""

import io

import numpy as np
import pytest

from streamconv.errors import UsageError
from streamconv.io import pcm
from streamconv.io.pipes import RawSink, RawSource


class Trickle(io.RawIOBase):
    """A pipe that hands out its bytes in the given chunk sizes (cycled), like a real pipe may."""

    def __init__(self, data: bytes, sizes):
        self._data = data
        self._pos = 0
        self._sizes = list(sizes)
        self._i = 0

    def read(self, n=-1):
        size = min(n, self._sizes[self._i % len(self._sizes)])
        self._i += 1
        chunk = self._data[self._pos : self._pos + size]
        self._pos += len(chunk)
        return chunk


def _ints(fmt, shape, rng):
    info = np.iinfo(pcm.PCM_FORMATS[fmt])
    return rng.integers(info.min, info.max, shape, endpoint=True).astype(pcm.PCM_FORMATS[fmt])


@pytest.mark.parametrize("fmt", ["s16le", "s32le"])
def test_integer_samples_survive_float_round_trip(fmt, rng):
    ints = _ints(fmt, (500, 3), rng)
    ints[0], ints[1] = np.iinfo(ints.dtype).min, np.iinfo(ints.dtype).max  # both ends
    block = pcm.decode(ints.tobytes(), pcm.PCM_FORMATS[fmt], 3, np.float64)
    assert block.shape == (500, 3)
    assert np.all(np.abs(block) <= 1.0)
    data, clipped = pcm.encode(block, pcm.PCM_FORMATS[fmt])
    assert clipped == 0
    assert data == ints.tobytes()


def test_s16_scaling_is_by_full_scale():
    data = np.array([-32768, -16384, 0, 16384], "<i2").tobytes()
    np.testing.assert_array_equal(
        pcm.decode(data, pcm.PCM_FORMATS["s16le"], 1, np.float64)[:, 0], [-1, -0.5, 0, 0.5]
    )


@pytest.mark.parametrize("fmt", ["s16le", "s32le"])
def test_clipping_is_counted(fmt):
    block = np.array([[1.5], [1.0], [-1.0], [-1.01], [0.3]])
    data, clipped = pcm.encode(block, pcm.PCM_FORMATS[fmt])
    assert clipped == 3  # 1.5 and 1.0 above the top code, -1.01 below the bottom one
    out = np.frombuffer(data, pcm.PCM_FORMATS[fmt])
    info = np.iinfo(out.dtype)
    assert out[0] == out[1] == info.max and out[3] == info.min and out[2] == info.min


@pytest.mark.parametrize("fmt", ["f32le", "f64le"])
def test_float_formats_never_clip(fmt, rng):
    block = rng.normal(0, 3, (100, 2))
    data, clipped = pcm.encode(block, pcm.PCM_FORMATS[fmt])
    assert clipped == 0
    back = pcm.decode(data, pcm.PCM_FORMATS[fmt], 2, np.float64)
    np.testing.assert_allclose(back, block, rtol=1e-7 if fmt == "f32le" else 0)


@pytest.mark.parametrize("fmt", ["s16le", "s32le", "f32le", "f64le"])
@pytest.mark.parametrize("sizes", [[1], [3, 7], [5, 1, 64], [4096]])
@pytest.mark.parametrize("frames", [1, 7, 64])
def test_reads_split_mid_frame_are_carried_over(fmt, sizes, frames, rng):
    x = pcm.decode(_ints("s16le", (301, 3), rng).tobytes(), np.dtype("<i2"), 3, np.float64)
    data, _ = pcm.encode(x, pcm.PCM_FORMATS[fmt])
    src = RawSource(Trickle(data, sizes), fmt, 8000, 3)
    got = list(src.blocks(frames))
    assert all(len(b) == frames for b in got[:-1])
    np.testing.assert_allclose(np.concatenate(got), x, rtol=1e-7)
    assert src.frames_read == 301


def test_stream_ending_mid_frame_is_an_error():
    data = np.zeros(7, "<i2").tobytes()  # 3.5 stereo frames
    src = RawSource(io.BytesIO(data), "s16le", 8000, 2, name="-")
    with pytest.raises(UsageError, match=r"-: stream ends in the middle of a frame"):
        list(src.blocks(2))


@pytest.mark.parametrize("fmt", [None, "s24le", "wav"])
def test_bad_format_names_say_what_is_allowed(fmt):
    with pytest.raises(UsageError, match="s16le, s32le, f32le, f64le"):
        RawSource(io.BytesIO(b""), fmt, 8000, 1)


def test_raw_sink_counts_clipping_and_writes_interleaved():
    out = io.BytesIO()
    sink = RawSink(out, "s16le", 8000, 2)
    sink.write(np.array([[0.5, -0.5], [2.0, 0.25]]))
    sink.close()
    assert sink.clipped == 1
    np.testing.assert_array_equal(
        np.frombuffer(out.getvalue(), "<i2"), [16384, -16384, 32767, 8192]
    )
