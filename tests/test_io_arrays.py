"""The one array reader (`streamconv.io.arrays`, `streamconv.io.rows`): the same text rules and
the same error text for ``match -t``, ``filter --fir`` and a config's templates and filters."""

import json
import os
import pathlib

import numpy as np
import pytest
import soundfile as sf

from streamconv.cli import main
from streamconv.errors import UsageError
from streamconv.io import open_source
from streamconv.io.arrays import read_array
from streamconv.io.rows import RowParser

REPO = pathlib.Path(__file__).resolve().parent.parent


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1\n2\n3\n", [[1], [2], [3]]),
        ("knock\n1\n2\n", [[1], [2]]),  # a header
        ("# made by hand\n\nx,y\n1,2\n3,4\n", [[1, 2], [3, 4]]),  # header after a comment
        ("1;2\n3;4\n", [[1, 2], [3, 4]]),
        ("1\t2\n3\t4  # inline comment\n", [[1, 2], [3, 4]]),
        ("1 2\n3\t 4  # blanks: spaces and tabs alike\n", [[1, 2], [3, 4]]),
        ("1, 2\n\n3 ,4\n", [[1, 2], [3, 4]]),
        # decimal commas beside ; or tab, in the header's file too, mixed with points
        ("0,5;1,25\n-2,5e-1;3\n", [[0.5, 1.25], [-0.25, 3]]),
        ("a\tb\n0,5\t1,25\n0.75\t2\n", [[0.5, 1.25], [0.75, 2]]),
        ("x;y\n1;2\n0,5;1\n", [[1, 2], [0.5, 1]]),
        ("1,5\n2,5\n", [[1, 5], [2, 5]]),  # a lone column: a comma separates (documented)
        ("-1e-3\n+2.5E2\n", [[-0.001], [250.0]]),
        ("0.1,\n0.2,\n", [[0.1], [0.2]]),  # a separator ending the line: a C array's taps
        ("a;b;\n1;2;\n3;4;\n", [[1, 2], [3, 4]]),  # a spreadsheet's export
    ],
)
@pytest.mark.parametrize("ext", [".txt", ".csv", ".dat"])
def test_text_rules(tmp_path, text, expected, ext):
    path = tmp_path / f"a{ext}"
    path.write_text(text)
    data, rate = read_array(str(path))
    assert rate is None
    np.testing.assert_array_equal(data, np.array(expected, dtype=float))


BAD = [
    # (content, line, message after "NAME: ")
    ("time\n1\n2\nx\n", "line 4: 'x' is not a number (column 1 (time))"),
    ("# c\n\n1,2\n3,4\n5,y\n", "line 5: 'y' is not a number (column 2)"),
    ("a,b\nc,d\n", "line 2: 'c' is not a number (column 1 (a))"),  # one header line at most
    ("1,2\n3,4\n5\n", "line 3: 1 columns, expected 2"),
    ("1,2\n3;4\n", "line 2: 1 columns, expected 2"),  # the first line's separator holds
    ("1\t2\n3 4\n", "line 2: 1 columns, expected 2"),
    ("h\n# nothing\n", "holds no samples"),
    ("1\nnan\n", "NaN or Inf sample at frame 1"),
]


@pytest.mark.parametrize(("content", "message"), BAD)
def test_bad_text_names_file_line_and_value(tmp_path, content, message):
    path = tmp_path / "bad.csv"
    path.write_text(content)
    with pytest.raises(UsageError) as err:
        read_array(str(path))
    assert str(err.value) == f"{path}: {message}"


def test_row_parser_counts_lines_across_pieces():
    p = RowParser("s.csv")
    assert p.parse(["x,y\n", "1,2\n"]).tolist() == [[1, 2]]
    p.skip(3)
    with pytest.raises(
        UsageError, match=r"^s\.csv: line 7: '\?' is not a number \(column 1 \(x\)\)$"
    ):
        p.parse(["3,4\n", "?,1\n"])


def test_npy_and_audio(tmp_path):
    np.save(tmp_path / "a.npy", np.arange(4.0))
    assert read_array(str(tmp_path / "a.npy"))[0].shape == (4, 1)
    np.save(tmp_path / "m.npy", np.zeros((4, 2, 3)))
    with pytest.raises(UsageError, match=r"m\.npy: an array of shape \(4, 2, 3\); want \(L,\)"):
        read_array(str(tmp_path / "m.npy"))
    assert read_array(str(tmp_path / "m.npy"), max_ndim=3)[0].shape == (4, 2, 3)
    sf.write(tmp_path / "a.wav", np.full((5, 2), 0.5), 8000, subtype="FLOAT")
    data, rate = read_array(str(tmp_path / "a.wav"))
    assert rate == 8000 and data.shape == (5, 2)


# -- the same rules and errors through every entry point --------------------------------------


def _via_match(tmp_path, path, capsys):
    rec = tmp_path / "rec.wav"
    sf.write(rec, np.random.default_rng(0).normal(size=4000), 8000)
    code = main(["match", str(rec), "-t", str(path), "-q"])
    return code, capsys.readouterr()


def _via_fir(tmp_path, path, capsys):
    sf.write(tmp_path / "in.wav", np.random.default_rng(0).normal(size=400), 8000)
    code = main(["filter", "-i", str(tmp_path / "in.wav"), "-o", str(tmp_path / "o.wav"),
                 "--fir", str(path)])  # fmt: skip
    return code, capsys.readouterr()


def _via_config(tmp_path, path, capsys, section):
    sf.write(tmp_path / "in.wav", np.random.default_rng(0).normal(size=400), 8000)
    entry = (
        f'[[templates]]\nname = "t"\npath = "{path}"\n'
        if section == "templates"
        else f'[[filters]]\ntype = "file"\npath = "{path}"\n'
    )
    (tmp_path / "c.toml").write_text(f'[source]\nuri = "in.wav"\n[sink]\nuri = "null"\n{entry}')
    code = main(["check", str(tmp_path / "c.toml")])
    return code, capsys.readouterr()


ENTRIES = {
    "match -t": _via_match,
    "filter --fir": _via_fir,
    "config template": lambda t, p, c: _via_config(t, p, c, "templates"),
    "config filter": lambda t, p, c: _via_config(t, p, c, "filters"),
}


@pytest.mark.parametrize("entry", sorted(ENTRIES))
@pytest.mark.parametrize(("content", "message"), BAD[:4])
def test_every_entry_point_reports_the_same_line(tmp_path, capsys, entry, content, message):
    (tmp_path / "h.txt").write_text("1\n0.5\n")
    path = tmp_path / "bad.csv"
    path.write_text(content)
    code, out = ENTRIES[entry](tmp_path, path, capsys)
    assert code == 2
    assert f"{path}: {message}" in out.err
    assert "Traceback" not in out.err
    assert not os.path.exists(tmp_path / "o.wav")


@pytest.mark.parametrize("entry", sorted(ENTRIES))
def test_every_entry_point_reads_a_header(tmp_path, capsys, entry):
    (tmp_path / "h.txt").write_text("1\n0.5\n")
    path = tmp_path / "good.csv"
    rng = np.random.default_rng(4)
    path.write_text("value\n" + "\n".join(f"{v:.6f}" for v in rng.normal(size=300)) + "\n")
    code, out = ENTRIES[entry](tmp_path, path, capsys)
    assert code == 0, out.err


def test_match_reads_the_projects_knock_template(capsys):
    """``configs/data/knock.csv`` starts with a header line: `match -t` reads it as the
    config does, and finds the knocks in the project's vibration recording."""
    code = main(["match", str(REPO / "configs/data/vibration.csv"), "--rate", "1000",
                 "-t", str(REPO / "configs/data/knock.csv"), "--mad", "10",
                 "--min-distance", "0.2", "-q"])  # fmt: skip
    out = capsys.readouterr().out
    records = [json.loads(line) for line in out.splitlines()]
    assert code == 0
    assert len(records) >= 3 and {r["template"] for r in records} == {"knock"}


def test_config_counts_the_csv_streams_data_columns(tmp_path, capsys):
    """A config's `.csv` source has the channels the stream reads: a time column is none."""
    (tmp_path / "s.csv").write_text("time,x\n0,1\n0.001,2\n0.002,3\n")
    (tmp_path / "c.toml").write_text('[source]\nuri = "s.csv"\nrate = 1000\n[sink]\nuri = "null"\n')
    assert main(["check", str(tmp_path / "c.toml")]) == 0
    assert "(csv file), 1000 Hz, 1 channel\n" in capsys.readouterr().out
    (tmp_path / "c.toml").write_text(
        '[source]\nuri = "s.csv"\nrate = 1000\nchannels = 2\n[sink]\nuri = "null"\n'
    )
    assert main(["check", str(tmp_path / "c.toml")]) == 2
    assert "source.channels: is 2 but" in capsys.readouterr().err


# -- the array reader and the .csv stream: one header rule, one error text ---------------------

SAME_HEADER = [
    "1\n2\n3\n",  # all numbers: no header
    "knock\n0.1\n0.2\n",  # a name: a header
    "# made by hand\n\nx,y\n1,2\n3,4\n",  # a header under a comment
    "ch1,2\n0.5,0.25\n1,2\n",  # fewer numbers than the next line: a header
    "100,200\n0.5,0.25\n",  # all numbers: data, though it may have been meant as names
    "0.1,\n0.2,\n",  # a separator ending each line: the stream passes the empty column on
    "v\n",  # alone and not a number: a header, so no samples
]


@pytest.mark.parametrize("text", SAME_HEADER)
@pytest.mark.parametrize("block", [1, 2, 7])
def test_array_reader_and_csv_stream_decide_the_header_alike(tmp_path, text, block):
    path = tmp_path / "x.csv"
    path.write_text(text)
    try:
        array = read_array(str(path))[0]
    except UsageError as exc:
        array = str(exc)
    try:
        with open_source(str(path), sample_rate=1000) as src:
            stream = np.concatenate(list(src.blocks(block)))
    except UsageError as exc:
        stream = str(exc)
    if isinstance(array, str) or isinstance(stream, str):
        assert array == stream == f"{path}: holds no samples"
    else:
        np.testing.assert_array_equal(stream, array)


SAME_ERROR = [
    ("v\n1\n2\nx\n", "line 4: 'x' is not a number (column 1 (v))"),
    ("# c\n\n1,2\n3,4\n5,y\n", "line 5: 'y' is not a number (column 2)"),
    ("ax,ay\n1,2\n3,4\n5\n", "line 4: 1 columns, expected 2"),
]
# Where they differ on purpose: a stream may carry text columns (a time stamp, a label), so a
# file with no column of numbers is "no column of numbers to filter" there.


def _via_stream(tmp_path, path, capsys):
    code = main(["filter", "-i", str(path), "--rate", "1000", "-o", str(tmp_path / "o.csv"),
                 "--fir", str(tmp_path / "h.txt")])  # fmt: skip
    return code, capsys.readouterr()


@pytest.mark.parametrize(("content", "message"), SAME_ERROR)
def test_array_reader_and_csv_stream_give_the_same_error(tmp_path, capsys, content, message):
    (tmp_path / "h.txt").write_text("1\n0.5\n")
    path = tmp_path / "bad.csv"
    path.write_text(content)
    errors = []
    for entry in (_via_match, _via_fir, _via_stream):
        code, out = entry(tmp_path, path, capsys)
        assert code == 2 and "Traceback" not in out.err
        errors.append(out.err)
    assert errors[0] == errors[1] == errors[2] == f"error: {path}: {message}\n"
    assert not (tmp_path / "o.csv").exists() and not (tmp_path / "o.wav").exists()
