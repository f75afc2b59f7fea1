"""Loading --fir taps: text, csv, npy, audio impulse responses, and bad files."""

import numpy as np
import pytest
import soundfile as sf

from streamconv.errors import UsageError
from streamconv.io.taps import load_taps


@pytest.mark.parametrize("columns", [1, 2])
@pytest.mark.parametrize(("ext", "sep"), [(".txt", " "), (".txt", "\t"), (".csv", ",")])
def test_text_taps(tmp_path, rng, columns, ext, sep):
    h = rng.normal(size=(31, columns))
    path = tmp_path / f"h{ext}"
    lines = ["# designed by hand", ""] + [sep.join(repr(float(v)) for v in row) for row in h]
    lines[5] += "  # an inline comment"
    path.write_text("\n".join(lines) + "\n")
    taps, rate = load_taps(str(path))
    assert rate is None
    np.testing.assert_array_equal(taps, h[:, 0] if columns == 1 else h)


@pytest.mark.parametrize("shape", [(17,), (17, 2), (17, 2, 3)])
def test_npy_taps(tmp_path, rng, shape):
    h = rng.normal(size=shape)
    np.save(tmp_path / "h.npy", h)
    taps, rate = load_taps(str(tmp_path / "h.npy"))
    np.testing.assert_array_equal(taps, h)
    assert rate is None


def test_audio_impulse_response_keeps_its_rate(tmp_path, rng):
    h = rng.integers(-(2**15), 2**15, (300, 2)) / 2**15
    sf.write(tmp_path / "ir.wav", h, 44100, subtype="PCM_16")
    taps, rate = load_taps(str(tmp_path / "ir.wav"))
    np.testing.assert_array_equal(taps, h)
    assert rate == 44100


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("bad.txt", "0.5\nabc\n", r"bad.txt: line 2: 'abc' is not a number"),
        ("bad.csv", "1,2\n3\n", r"bad.csv: line 2: 1 columns, expected 2"),
        ("empty.txt", "# nothing\n", r"empty.txt: holds no samples"),
        ("nan.txt", "1\nnan\n", r"nan.txt: NaN or Inf sample at frame 1"),
        ("bad.npy", "not numpy", r"bad.npy: not a readable .npy array"),
        ("bad.wav", "RIFF junk", r"bad.wav: cannot read audio"),
        ("bad.xyz", "1\n", r"bad.xyz: unknown file type .xyz"),
    ],
)
def test_bad_taps_files_are_named(tmp_path, name, content, message):
    (tmp_path / name).write_text(content)
    with pytest.raises(UsageError, match=message):
        load_taps(str(tmp_path / name))


def test_missing_taps_file(tmp_path):
    with pytest.raises(UsageError, match=r"nope\.txt: no such file"):
        load_taps(str(tmp_path / "nope.txt"))


def test_npy_of_strings_is_refused(tmp_path):
    np.save(tmp_path / "s.npy", np.array(["a", "b"]))
    with pytest.raises(UsageError, match=r"s.npy: holds <U1 values, not numbers"):
        load_taps(str(tmp_path / "s.npy"))
