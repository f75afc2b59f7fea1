"""Files: audio through libsndfile, csv, raw; block reading; atomic output; bad files."""

import os

import numpy as np
import pytest
import soundfile as sf

from streamconv.errors import UsageError
from streamconv.io import MemorySink, MemorySource, open_sink, open_source
from streamconv.io.files import SoundFileSink


def _copy(src, sink, frames):
    with src, sink:
        for block in src.blocks(frames):
            sink.write(block)


def _quantized(rng, shape, bits):
    """Random samples on the integer grid of `bits` (so every format stores them exactly)."""
    top = 2 ** (bits - 1)
    return rng.integers(-top, top, shape) / top


@pytest.mark.parametrize(
    ("name", "subtype", "bits"),
    [
        ("x.wav", "PCM_16", 16),
        ("x.wav", "PCM_24", 24),
        ("x.wav", "PCM_32", 32),
        ("x.wav", "PCM_U8", 8),
        ("x.wav", "FLOAT", 24),
        ("x.wav", "DOUBLE", 32),
        ("x.flac", "PCM_16", 16),
        ("x.flac", "PCM_24", 24),
        ("x.aiff", "PCM_16", 16),
        ("x.aiff", "PCM_S8", 8),
    ],
)
def test_audio_file_round_trip_is_exact(tmp_path, rng, name, subtype, bits):
    x = _quantized(rng, (3001, 2), bits)
    x[0] = -1.0  # the most negative code
    path = str(tmp_path / name)
    _copy(MemorySource(x, 44100), SoundFileSink(path, 44100, 2, subtype=subtype), 500)
    assert sf.info(path).subtype == subtype
    # Check against libsndfile's own reading (independent of our reader) ...
    ref = sf.read(path, dtype="int32" if subtype.startswith("PCM") else "float64")[0]
    if subtype.startswith("PCM"):
        ref = ref / 2.0**31
    np.testing.assert_array_equal(ref, x)
    # ... and read it back through our source in awkward blocks.
    sink = MemorySink(44100, 2)
    _copy(open_source(path), sink, 97)
    np.testing.assert_array_equal(sink.data, x)


@pytest.mark.parametrize("name", ["x.wav", "x.aiff"])
def test_float_files_are_written_without_a_peak_chunk(tmp_path, rng, name):
    """libsndfile's optional PEAK chunk costs a scan of every sample; we turn it off."""
    x = rng.normal(size=(1000, 2)).astype(np.float32)
    path = tmp_path / name
    _copy(MemorySource(x, 48000), SoundFileSink(str(path), 48000, 2, subtype="FLOAT"), 100)
    assert b"PEAK" not in path.read_bytes()[:200]
    np.testing.assert_array_equal(sf.read(path, dtype="float32")[0], x)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_source_dtype(tmp_path, dtype, rng):
    path = str(tmp_path / "x.wav")
    sf.write(path, rng.uniform(-1, 1, (100, 1)), 8000, subtype="FLOAT")
    with open_source(path, dtype=dtype) as src:
        block = src.read(64)
    assert block.dtype == dtype and block.shape == (64, 1)


def test_integer_wav_clipping_is_counted(tmp_path):
    path = str(tmp_path / "c.wav")
    sink = SoundFileSink(path, 8000, 1, subtype="PCM_16")
    with sink:
        sink.write(np.array([[0.5], [1.0], [-1.0], [3.0], [-2.0]]))
    assert sink.clipped == 3
    np.testing.assert_array_equal(
        sf.read(path, dtype="int16")[0], [16384, 32767, -32768, 32767, -32768]
    )


@pytest.mark.parametrize("name", ["out.wav", "out.csv", "out.raw"])
def test_output_appears_only_when_complete(tmp_path, name):
    path = tmp_path / name
    sink = open_sink(str(path), sample_rate=8000, channels=1, fmt="s16le")
    sink.write(np.zeros((100, 1)))
    assert not path.exists()  # written under a temporary name so far
    sink.close()
    assert path.exists()
    assert [p.name for p in tmp_path.iterdir()] == [name]


@pytest.mark.parametrize("name", ["out.wav", "out.csv", "out.raw"])
def test_failed_job_leaves_nothing(tmp_path, name):
    path = tmp_path / name
    with pytest.raises(RuntimeError, match="boom"):
        with open_sink(str(path), sample_rate=8000, channels=1, fmt="s16le") as sink:
            sink.write(np.zeros((100, 1)))
            raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("name", ["out.wav", "out.csv", "out.raw"])
def test_existing_output_is_replaced_whole(tmp_path, name):
    """Over an existing file the new output is swapped in (`files._exchange`) and the old one
    removed: one file, the new content, the usual permissions."""
    path = tmp_path / name
    for frames in (300, 100):
        with open_sink(str(path), sample_rate=8000, channels=1, fmt="s16le") as sink:
            sink.write(np.full((frames, 1), 0.25))
    assert [p.name for p in tmp_path.iterdir()] == [name]
    back = open_source(str(path), sample_rate=8000, channels=1, fmt="s16le")
    assert back.read(1000).shape[0] == 100
    umask = os.umask(0)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask


def test_exchange_needs_an_existing_target(tmp_path):
    from streamconv.io.files import _exchange

    (tmp_path / "a").write_text("a")
    assert not _exchange(str(tmp_path / "a"), str(tmp_path / "b"))  # caller renames instead
    (tmp_path / "b").write_text("b")
    assert _exchange(str(tmp_path / "a"), str(tmp_path / "b"))
    assert (tmp_path / "b").read_text() == "a" and (tmp_path / "a").read_text() == "b"


def test_existing_output_survives_a_failed_job(tmp_path):
    path = tmp_path / "keep.wav"
    sf.write(path, np.ones(10) * 0.5, 8000)
    with pytest.raises(RuntimeError):
        with open_sink(str(path), sample_rate=8000, channels=1) as sink:
            sink.write(np.zeros((100, 1)))
            raise RuntimeError
    assert sf.info(path).frames == 10


def test_csv_round_trip_with_header(tmp_path, rng):
    x = rng.normal(size=(250, 3))
    path = tmp_path / "s.csv"
    _copy(MemorySource(x, 100), open_sink(str(path), sample_rate=100, channels=3), 33)
    np.testing.assert_array_equal(np.loadtxt(path, delimiter=","), x)  # exact: %.17g
    path.write_text("ax,ay,az\n" + path.read_text())
    sink = MemorySink(100, 3)
    _copy(open_source(str(path), sample_rate=100), sink, 64)
    np.testing.assert_array_equal(sink.data, x)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("1,2\n3,4\n5\n", r"line 3: 1 columns, expected 2"),
        ("1,2\n3,x\n", r"line 2: 'x' is not a number"),
        ("", "holds no samples"),
        ("time,x\n# only a header\n", "holds no samples"),
    ],
)
def test_bad_csv_names_the_line(tmp_path, text, message):
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(UsageError, match=f"bad.csv: {message}"):
        with open_source(str(path), sample_rate=10) as src:
            list(src.blocks(10))


def test_csv_needs_a_rate(tmp_path):
    (tmp_path / "s.csv").write_text("1\n")
    with pytest.raises(UsageError, match="needs --rate"):
        open_source(str(tmp_path / "s.csv"))


@pytest.mark.parametrize("fmt", ["s16le", "s32le", "f32le", "f64le"])
def test_raw_file_round_trip(tmp_path, rng, fmt):
    x = _quantized(rng, (1000, 2), 16)
    path = str(tmp_path / "x.pcm")
    _copy(MemorySource(x, 8000), open_sink(path, sample_rate=8000, channels=2, fmt=fmt), 100)
    assert os.path.getsize(path) == 1000 * 2 * int(fmt[1:3]) // 8
    sink = MemorySink(8000, 2)
    _copy(open_source(path, sample_rate=8000, channels=2, fmt=fmt), sink, 333)
    np.testing.assert_array_equal(sink.data, x)


def _wav_bytes(tmp_path, rng):
    path = tmp_path / "good.wav"
    sf.write(path, rng.uniform(-0.5, 0.5, (4000, 2)), 8000, subtype="PCM_16")
    return path.read_bytes()


@pytest.mark.parametrize(
    ("name", "make", "message"),
    [
        ("trunc.wav", lambda b: b[: len(b) // 2], "truncated"),
        ("header.wav", lambda b: b[:30], "cannot read audio"),
        ("empty.wav", lambda b: b"", "cannot read audio: file is empty"),
        ("garbage.wav", lambda b: bytes(range(256)) * 4, "cannot read audio"),
        ("trunc.flac", None, "corrupt audio|truncated"),
    ],
)
def test_bad_audio_files_are_named(tmp_path, rng, name, make, message):
    path = tmp_path / name
    if make is None:
        sf.write(tmp_path / "good.flac", rng.uniform(-0.5, 0.5, (40000, 2)), 8000)
        data = (tmp_path / "good.flac").read_bytes()
        path.write_bytes(data[: len(data) // 2])
    else:
        path.write_bytes(make(_wav_bytes(tmp_path, rng)))
    with pytest.raises(UsageError, match=f"{name}: ({message})"):
        with open_source(str(path)) as src:
            list(src.blocks(1024))


@pytest.mark.parametrize(
    ("locator", "message"),
    [
        ("nope.wav", "nope.wav: no such file"),
        ("x.unknownext", "unknown file type .unknownext"),
        ("null", "null: is a sink only"),
    ],
)
def test_bad_source_locators(tmp_path, locator, message):
    if locator.endswith("unknownext"):
        (tmp_path / locator).write_bytes(b"abc")
    with pytest.raises(UsageError, match=message):
        open_source(str(tmp_path / locator) if locator != "null" else locator)


def test_nan_in_a_float_file_is_an_error_with_its_frame(tmp_path):
    x = np.zeros((100, 1))
    x[77] = np.nan
    sf.write(tmp_path / "n.wav", x, 8000, subtype="FLOAT")
    with pytest.raises(UsageError, match=r"n.wav: NaN or Inf sample at frame 77"):
        with open_source(str(tmp_path / "n.wav")) as src:
            list(src.blocks(30))
