"""``.csv`` sensor data as a stream: data columns filtered, the rest passed through as written.

Reading (`CsvSource`) follows the rules of every text array of streamconv (``streamconv.io.rows``
for taps and templates): one column rule, blank lines and ``#`` comments skipped, the first
line holding anything may be a header, every row has the columns of the first. On top of that
a stream file keeps what a person wrote, so that the output reads like the input (`CsvLayout`):

- **Separator** (`streamconv.io.rows.columns_of`, as for taps and templates): ``;`` or tab
  when the first line holds one (the one it holds more of), else ``,``, else blanks. With ``;``
  or tab a comma in a number is its decimal mark (``0,25``); numbers written so in the first
  lines are written back the same way.
- **Header**: the rule of every text array (`streamconv.io.rows.is_header`): the first line
  is a header when it holds no number, or fewer numbers than the line after it (alone in the
  file: when anything in it is not a number). It is written again on output, with the ``#``
  comment lines above it.
- **Data columns** are the channels: those ``--columns`` names (header names or 1-based
  numbers, comma-separated), or by default every column whose first value is a number and
  whose name is not a time (``t``, ``time``, ``timestamp``, ``date``, ``datetime``, ``ts``,
  ``epoch``, also with a unit: ``time_s``, ``time [ms]``).
- **Other columns** (a time stamp, a label) pass through untouched: output row ``n`` carries
  input row ``n``'s text (the filter's output frame ``n`` belongs to input frame ``n``; rows of
  the tail, after the input's last, leave them empty).
- **Precision**: each data column is written with the decimals of its first rows (``%.3f``
  for ``0.125``, ``%.4g``-style for ``1.5e-3``), or ``--float-format`` (a printf format such as
  ``%.6f``) for all.

A `CsvSink` writes plain rows (``%.17g``, or ``%.9g`` for float32: exact) unless it is given
the `CsvLayout` of a source, whose rows it then writes in the source's form.
"""

from __future__ import annotations

import collections
import itertools
import re

import numpy as np

from streamconv.errors import CommandLineError, UsageError
from streamconv.io.base import Sink, Source, float_type
from streamconv.io.rows import Columns, columns_of, content, is_header, not_a_number

_TIME_NAME = re.compile(
    r"^\s*(t|time|timestamp|date|datetime|ts|epoch|utc)(\s*[\[(_ -].*)?\s*$", re.IGNORECASE
)
_DECIMALS = re.compile(r"^\s*[-+]?\d*[.,]?(\d*)\s*$")


def check_float_format(fmt: str) -> str:
    """A printf format for one number (``%.6f``, ``%.4e``, ``%g``), or `CommandLineError`."""
    try:
        text = fmt % 1.0
    except (TypeError, ValueError):
        text = None
    if text is None or fmt.count("%") != 1 or fmt.strip() != fmt:
        raise CommandLineError(
            f"--float-format: {fmt!r} is not a format for one number (like %.6f)"
        )
    return fmt


class CsvLayout:
    """How a CSV file is written: separator, header, which columns are data, their precision.

    Attributes
    ----------
    rule : streamconv.io.rows.Columns
        The file's separator and whether its numbers are written ``0,25``.
    preamble : list of str
        The comment lines above the header and the header line, as written.
    names : list of str or None
        The header's column names.
    columns : int
        Fields per row.
    data : list of int
        0-based indices of the data columns (the channels, in this order).
    formats : list of str
        A printf format per data column.
    """

    def __init__(self, rule: Columns, preamble, names, columns, data, formats):
        self.rule = rule
        self.preamble = preamble
        self.names = names
        self.columns = columns
        self.data = data
        self.formats = formats


def _precision(values: list[str], decimal_comma: bool) -> str:
    """The printf format that writes numbers like `values` (the first rows of a column)."""
    if any("e" in v.lower() for v in values):
        mantissas = (re.sub(r"[^0-9]", "", v.lower().split("e")[0]).lstrip("0") for v in values)
        digits = max(len(m) for m in mantissas)
        return f"%.{max(digits, 1)}g"
    decimals = 0
    for value in values:
        match = _DECIMALS.match(value.replace(",", ".") if decimal_comma else value)
        if match:
            decimals = max(decimals, len(match.group(1)))
    return f"%.{decimals}f"


def _select(spec: str, names: list[str] | None, columns: int, path: str) -> list[int]:
    """``--columns`` (names or 1-based numbers) -> 0-based indices."""
    chosen = []
    for item in (s.strip() for s in spec.split(",")):
        if names is not None and item in [n.strip() for n in names]:
            index = [n.strip() for n in names].index(item)
        elif item.isdigit() and 1 <= int(item) <= columns:
            index = int(item) - 1
        else:
            known = f"names: {', '.join(n.strip() for n in names)}; " if names else ""
            raise CommandLineError(
                f"{path}: --columns: no column {item!r} ({known}numbers 1 to {columns})"
            )
        if index in chosen:
            raise CommandLineError(f"{path}: --columns: column {item!r} given twice")
        chosen.append(index)
    return chosen


class CsvSource(Source):
    """Read sensor data from a ``.csv`` file: one row per frame, the data columns as channels.

    Parameters
    ----------
    path : str
        The file.
    sample_rate : float
        Frames per second (a CSV file does not say).
    dtype : numpy dtype or "auto"
        float32 or float64 (``"auto"``: float64; decimal text is not exact in float32).
    columns : str, optional
        ``--columns``: the data columns, names or 1-based numbers, comma-separated.

    Attributes
    ----------
    layout : CsvLayout
        The file's form, for a `CsvSink` that writes like it.
    """

    def __init__(self, path: str, sample_rate: float | None, dtype=np.float64, columns=None):
        from streamconv.io.files import _check_readable

        _check_readable(path)
        if sample_rate is None:
            raise CommandLineError(f"{path}: a .csv stream needs --rate (its sample rate)")
        self.name = path
        self.sample_rate = float(sample_rate)
        self.dtype = float_type(dtype, False)
        self.frames_read = 0
        self._file = open(path, encoding="utf-8", errors="replace", newline="")
        self._line = 0
        self._passed: collections.deque = collections.deque()
        try:
            self._start(columns)
        except BaseException:
            self._file.close()
            raise

    def _start(self, columns: str | None) -> None:
        preamble: list[str] = []  # comment lines above the header
        lines: list[tuple[int, str]] = []  # (number, text) of rows
        first_raw = ""
        while len(lines) < 2:
            raw = self._file.readline()
            if not raw:
                break
            self._line += 1
            text = content(raw)
            if text:
                lines.append((self._line, text))
                first_raw = first_raw or raw.rstrip("\r\n")
            elif not lines and raw.strip():
                preamble.append(raw.rstrip("\r\n"))
        if not lines:
            raise UsageError(f"{self.name}: holds no samples")
        rule = columns_of(*(text for _, text in lines))
        fields = [rule.split(text) for _, text in lines]
        names = None
        if is_header(fields[0], fields[1] if len(fields) == 2 else None, rule.commas_are_decimal):
            names = fields[0]
            preamble.append(first_raw)
            lines, fields = lines[1:], fields[1:]
        if not lines:
            raise UsageError(f"{self.name}: holds no samples")
        width = len(fields[0])
        if names is not None and len(names) != width:
            raise UsageError(
                f"{self.name}: line {lines[0][0]}: {width} columns, the header has {len(names)}"
            )
        if columns:
            data = _select(columns, names, width, self.name)
        else:
            data = [
                i
                for i, value in enumerate(fields[0])
                if rule.is_number(value) and not (names and _TIME_NAME.match(names[i]))
            ]
            if not data:
                raise UsageError(
                    f"{self.name}: line {lines[0][0]}: no column of numbers to filter "
                    "(--columns chooses them)"
                )
        self.layout = CsvLayout(rule, preamble, names, width, data, [])
        self.channels = len(data)
        self._pending = lines  # rows read ahead, (line number, text)
        # Precision from the first rows of the file.
        head = list(itertools.islice(self._file, 256))
        self._pending_raw = head
        sample = [rule.split(t) for _, t in lines]
        sample += [rule.split(content(r)) for r in head if content(r)]
        sample = [row for row in sample if len(row) == width]
        commas = rule.commas_are_decimal
        self.layout.formats = [_precision([row[i] for row in sample], commas) for i in data]

    def _rows(self, frames: int) -> list[tuple[int, str]]:
        """The next `frames` content lines, with their line numbers."""
        rows, self._pending = self._pending[:frames], self._pending[frames:]
        while len(rows) < frames:
            if self._pending_raw:
                lines, self._pending_raw = self._pending_raw, []
            else:
                lines = list(itertools.islice(self._file, frames - len(rows)))
            if not lines:
                break
            for raw in lines:
                self._line += 1
                text = content(raw)
                if text:
                    rows.append((self._line, text))
        if len(rows) > frames:
            rows, self._pending = rows[:frames], rows[frames:] + self._pending
        return rows

    def _read(self, frames: int) -> np.ndarray:
        layout = self.layout
        rows = self._rows(frames)
        if not rows:
            return np.zeros((0, self.channels), self.dtype)
        fields = [layout.rule.split(text) for _, text in rows]
        for (number, _), row in zip(rows, fields, strict=True):
            if len(row) != layout.columns:
                raise UsageError(
                    f"{self.name}: line {number}: {len(row)} columns, expected {layout.columns}"
                )
        table = np.array(fields, dtype=object)
        values = table[:, layout.data]
        if layout.rule.commas_are_decimal:
            values = np.char.replace(values.astype(str), ",", ".")
        try:
            block = values.astype(self.dtype)
        except ValueError:
            self._raise_bad_value(rows, fields)
        others = [i for i in range(layout.columns) if i not in layout.data]
        self._passed.append(table[:, others] if others else len(rows))
        return block

    def _raise_bad_value(self, rows, fields):
        for (number, _), row in zip(rows, fields, strict=True):
            for i in self.layout.data:
                if not self.layout.rule.is_number(row[i]):
                    raise not_a_number(self.name, number, row[i], i + 1, self.layout.names)
        raise UsageError(f"{self.name}: unreadable rows from line {rows[0][0]}")

    def passed_rows(self, frames: int):
        """The pass-through fields of the next `frames` rows read (for the sink), as an
        object array ``(frames, other columns)``; rows past what was read are empty."""
        parts, have = [], 0
        while have < frames and self._passed:
            head = self._passed.popleft()
            n = head if isinstance(head, int) else len(head)
            take = min(n, frames - have)
            if isinstance(head, int):
                parts.append(np.empty((take, 0), object))
                if take < n:
                    self._passed.appendleft(n - take)
            else:
                parts.append(head[:take])
                if take < n:
                    self._passed.appendleft(head[take:])
            have += take
        others = self.layout.columns - len(self.layout.data)
        if have < frames:
            parts.append(np.full((frames - have, others), "", object))
        return np.concatenate(parts) if len(parts) > 1 else parts[0]

    def close(self) -> None:
        self._file.close()


class CsvSink(Sink):
    """Write a ``.csv`` file (one row per frame) under a temporary name; rename on `close`.

    Parameters
    ----------
    path : str
        The file.
    sample_rate : float
        Frames per second.
    channels : int
        Samples per frame.
    like : CsvSource, optional
        Write in this source's form (`CsvLayout`): its header, separator, pass-through
        columns and precision. Used when the channels are the source's data columns.
    float_format : str, optional
        A printf format for every number (``--float-format``).
    """

    def __init__(self, path, sample_rate, channels, like=None, float_format=None):
        from streamconv.io.files import AtomicFile

        self.name = path
        self.sample_rate = float(sample_rate)
        self.channels = int(channels)
        self.clipped = 0
        self._float_format = check_float_format(float_format) if float_format else None
        layout = getattr(like, "layout", None)
        self._like = like if layout is not None and len(layout.data) == self.channels else None
        self._atomic = AtomicFile(path)
        self._file = open(self._atomic.tmp_path, "w", encoding="utf-8", newline="")
        if self._like is not None and layout.preamble:
            self._file.write("".join(line + "\n" for line in layout.preamble))

    def _write(self, block: np.ndarray) -> None:
        try:
            if self._like is None:
                fmt = self._float_format or ("%.9g" if block.dtype == np.float32 else "%.17g")
                np.savetxt(self._file, block, fmt=fmt, delimiter=",")
            else:
                self._file.write(self._rows(block))
        except OSError as exc:
            from streamconv.io.files import write_failure

            raise write_failure(self.name, exc) from None

    def _rows(self, block: np.ndarray) -> str:
        layout = self._like.layout
        n = len(block)
        if not n:
            return ""
        table = np.empty((n, layout.columns), object)
        others = [i for i in range(layout.columns) if i not in layout.data]
        if others:
            table[:, others] = self._like.passed_rows(n)
        else:
            self._like.passed_rows(n)
        for k, column in enumerate(layout.data):
            text = np.char.mod(self._float_format or layout.formats[k], block[:, k])
            if layout.rule.decimal_comma:
                text = np.char.replace(text, ".", ",")
            table[:, column] = text
        return "".join(layout.rule.separator.join(row) + "\n" for row in table.tolist())

    def _commit(self) -> None:
        self._atomic.close_and_commit(self._file, self.name)

    def _discard(self) -> None:
        self._atomic.close_and_discard(self._file)
