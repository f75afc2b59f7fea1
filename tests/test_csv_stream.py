"""``.csv`` sensor files through ``streamconv filter``: header kept, data columns chosen, time
columns passed through as written, ``,`` ``;`` tab separators, the input's precision."""

from __future__ import annotations

import numpy as np
import pytest

from streamconv.cli import main
from streamconv.io import MemorySink, open_sink, open_source

TAPS = np.array([0.25, 0.5, 0.25])


def _sensor(rng, rows: int, decimals: int = 3) -> np.ndarray:
    return np.round(rng.uniform(-2, 2, (rows, 2)), decimals)


def _times(rows: int) -> list[str]:
    return [f"2026-11-25T17:{i // 600:02d}:{(i % 600) / 10:04.1f}Z" for i in range(rows)]


def _oracle(x: np.ndarray) -> np.ndarray:
    return np.stack([np.convolve(x[:, c], TAPS)[: len(x)] for c in range(x.shape[1])], axis=1)


def _as_written(texts: list[str], want: np.ndarray, decimals: int, point: str = ".") -> None:
    """`texts` are `want` rounded to `decimals` (either way at a tie: the filter's own
    rounding differs from the oracle's in the last bits), written with exactly that many."""
    assert all(len(t.split(point)[1]) == decimals for t in texts)
    got = np.array([float(t.replace(point, ".")) for t in texts])
    np.testing.assert_allclose(got, want, rtol=0, atol=0.5 * 10.0**-decimals + 1e-9)


def _run(tmp_path, text: str, *args: str, name="in.csv") -> tuple[int, list[str]]:
    (tmp_path / name).write_text(text)
    np.savetxt(tmp_path / "taps.txt", TAPS)
    code = main(
        ["filter", "-i", str(tmp_path / name), "-o", str(tmp_path / "out.csv"),
         "--fir", str(tmp_path / "taps.txt"), "--rate", "10", *args]
    )  # fmt: skip
    out = (tmp_path / "out.csv").read_text().splitlines() if code == 0 else []
    return code, out


@pytest.mark.parametrize("block", ["1", "7", "64", "16384"])
def test_header_kept_time_column_untouched_precision_of_the_input(tmp_path, rng, block):
    x = _sensor(rng, 500)
    times = _times(500)
    text = "# logger 7, firmware 1.2\ntime,ax,ay\n"
    text += "".join(f"{t},{a:.3f},{b:.3f}\n" for t, (a, b) in zip(times, x, strict=True))
    code, out = _run(tmp_path, text, "--block", block)
    assert code == 0
    assert out[:2] == ["# logger 7, firmware 1.2", "time,ax,ay"]
    rows = [line.split(",") for line in out[2:]]
    assert [r[0] for r in rows] == times
    want = _oracle(x)
    _as_written([r[1] for r in rows], want[:, 0], 3)  # 3 decimals, as the input
    _as_written([r[2] for r in rows], want[:, 1], 3)


def test_numeric_time_column_by_name_is_not_filtered(tmp_path, rng):
    x = _sensor(rng, 50, 4)
    text = "t_s,temp\n" + "".join(f"{i / 10:.1f},{v:.4f}\n" for i, v in enumerate(x[:, 0]))
    code, out = _run(tmp_path, text)
    assert code == 0 and out[0] == "t_s,temp"
    assert [line.split(",")[0] for line in out[1:]] == [f"{i / 10:.1f}" for i in range(50)]
    want = _oracle(x[:, :1])[:, 0]
    _as_written([line.split(",")[1] for line in out[1:]], want, 4)


def test_columns_by_name_and_number_others_pass_through(tmp_path, rng):
    x = np.round(rng.uniform(0, 100, (40, 3)), 2)
    text = "id,a,b,c\n" + "".join(f"{i},{a:.2f},{b:.2f},{c:.2f}\n" for i, (a, b, c) in enumerate(x))
    for spec in ("c,a", "4,2"):
        code, out = _run(tmp_path, text, "--columns", spec, "--float-format", "%.17g")
        assert code == 0 and out[0] == "id,a,b,c"
        rows = [line.split(",") for line in out[1:]]
        assert [r[0] for r in rows] == [str(i) for i in range(40)]
        assert [r[2] for r in rows] == [f"{v:.2f}" for v in x[:, 1]]  # b untouched
        want = _oracle(x[:, [2, 0]])
        got = np.array([[float(r[3]), float(r[1])] for r in rows])
        np.testing.assert_allclose(got, want, rtol=1e-15, atol=1e-13)  # %.17g: exact


@pytest.mark.parametrize(
    ("sep", "decimal"), [(";", ","), ("\t", ","), ("\t", "."), (";", "."), (",", ".")]
)
@pytest.mark.parametrize("header", [True, False])
def test_separators_and_decimal_comma_round_trip(tmp_path, rng, sep, decimal, header):
    x = _sensor(rng, 60, 2)
    fmt = [f"{a:.2f}".replace(".", decimal) + sep + f"{b:.2f}".replace(".", decimal) for a, b in x]
    text = (f"x{sep}y\n" if header else "") + "".join(line + "\n" for line in fmt)
    code, out = _run(tmp_path, text)
    assert code == 0
    if header:
        assert out.pop(0) == f"x{sep}y"
    rows = [line.split(sep) for line in out]
    assert all(len(r) == 2 for r in rows)
    want = _oracle(x)
    _as_written([r[0] for r in rows], want[:, 0], 2, decimal)
    _as_written([r[1] for r in rows], want[:, 1], 2, decimal)


def test_no_more_binary_noise_in_the_digits(tmp_path):
    """A reported case: 0.008 came out as 0.0080000000000000002."""
    code, out = _run(tmp_path, "v\n0.008\n0.016\n0.024\n")
    assert code == 0 and out == ["v", "0.002", "0.008", "0.016"]


def test_tail_rows_leave_pass_through_fields_empty(tmp_path):
    code, out = _run(tmp_path, "time,v\n00:01,1.0\n00:02,0.0\n", "--tail")
    assert code == 0
    assert out == ["time,v", "00:01,0.2", "00:02,0.5", ",0.2", ",0.0"]


def test_library_round_trip_through_memory_keeps_plain_files_plain(tmp_path, rng):
    """A csv written from another stream (no csv source) is plain numbers, exact."""
    x = rng.normal(size=(100, 2))
    path = tmp_path / "plain.csv"
    with open_sink(str(path), sample_rate=10, channels=2) as sink:
        sink.write(x)
    assert np.array_equal(np.loadtxt(path, delimiter=","), x)
    sink = MemorySink(10, 2)
    with open_source(str(path), sample_rate=10) as src:
        for block in src.blocks(13):
            sink.write(block)
    assert np.array_equal(sink.data, x)


@pytest.mark.parametrize(
    ("args", "text", "message"),
    [
        (["--columns", "az"], "ax,ay\n1,2\n", "--columns: no column 'az' (names: ax, ay;"),
        (["--columns", "ax,ax"], "ax,ay\n1,2\n", "column 'ax' given twice"),
        (["--float-format", "%d%d"], "ax\n1\n", "--float-format: '%d%d' is not a format"),
        ([], "time,label\n00:01,on\n", "line 2: no column of numbers to filter"),
        ([], "ax,ay\n1,2\n3,x\n", "line 3: 'x' is not a number (column 2 (ay))"),
        ([], "ax,ay\n1,2\n3\n", "line 3: 1 columns, expected 2"),
    ],
)
def test_bad_csv_use_is_one_error_line(tmp_path, capsys, args, text, message):
    code, _ = _run(tmp_path, text, *args)
    assert code == 2
    err = capsys.readouterr().err
    lines = err.splitlines()
    assert lines[0].startswith("error: ") and message in lines[0]
    # A wrong option value is the command line's mistake (a hint follows); the file's are not.
    hint = "hint: streamconv filter --help shows the options and examples"
    assert lines[1:] == ([hint] if args else []), err
    assert not (tmp_path / "out.csv").exists()


ONE_RULE = [
    "x,y\n0.5,1.25\n-1,2\n",
    "x;y\n0,5;1,25\n-1;2\n",
    "0,5;1,25\n-1;2\n",
    "x\ty\n0,5\t1,25\n-1\t2\n",
    "x\ty\n0.5\t1.25\n-1\t2\n",
    "0.5 1.25\n-1\t 2\n",
    "# a comment\n\nx;y\n0,5;1.25\n-1;2e0\n",
]


@pytest.mark.parametrize("text", ONE_RULE)
def test_one_column_rule_for_taps_and_the_csv_stream(tmp_path, text):
    """The same file reads as the same numbers as taps (`read_array`) and as a `.csv` stream:
    one rule (`streamconv.io.rows.columns_of`) splits both."""
    from streamconv.io.arrays import read_array

    (tmp_path / "a.csv").write_text(text)
    taps, _ = read_array(str(tmp_path / "a.csv"))
    src = open_source(str(tmp_path / "a.csv"), sample_rate=10)
    stream = src.read(100)
    src.close()
    np.testing.assert_array_equal(taps, [[0.5, 1.25], [-1, 2]])
    np.testing.assert_array_equal(stream, taps)


@pytest.mark.parametrize("text", ["1,2\n3;4\n", "1\t2\n3 4\n"])
def test_one_column_rule_refuses_the_same_mixed_separators(tmp_path, text):
    """A line split otherwise than the first is the same error in both places."""
    from streamconv.errors import UsageError
    from streamconv.io.arrays import read_array

    path = tmp_path / "a.csv"
    path.write_text(text)
    with pytest.raises(UsageError) as taps:
        read_array(str(path))
    src = open_source(str(path), sample_rate=10)
    with pytest.raises(UsageError) as stream:
        src.read(100)
    src.close()
    assert str(taps.value) == str(stream.value) == f"{path}: line 2: 1 columns, expected 2"
