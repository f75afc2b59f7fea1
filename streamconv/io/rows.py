"""Rows of numbers from lines of text: the rules every text array follows (`streamconv.io.arrays`).

Columns are split by commas, semicolons or blanks; blank lines and ``#`` comments are skipped;
the first line holding anything may be a header (`is_header`: it holds no number, or fewer
numbers than the line after it); every row has the columns of the first. An error is one line
naming the file, the line, the value and its column (`not_a_number`). Used by
`streamconv.io.arrays.read_array` (taps, templates); the ``.csv`` stream source
(`streamconv.io.csvstream`) decides its header with `is_header` and reports a bad value with
`not_a_number`, and adds what a stream file needs (one separator, pass-through text columns,
decimal commas, rows as wide as the header).
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable

import numpy as np

from streamconv.errors import UsageError

__all__ = ["RowParser", "header_end", "is_header", "is_number", "not_a_number"]

_SPLIT = re.compile(r"[,;\s]+")


def _fields(line: str) -> list[str]:
    text = line.split("#", 1)[0].strip()
    return [f for f in _SPLIT.split(text) if f] if text else []


def is_number(text: str, decimal_comma: bool = False) -> bool:
    """`text` reads as a number (``0,25`` too when `decimal_comma`)."""
    if decimal_comma:
        text = text.replace(",", ".")
    try:
        float(text)
    except ValueError:
        return False
    return True


def is_header(first: list[str], following: list[str] | None, decimal_comma: bool = False) -> bool:
    """The one header rule of every text array and ``.csv`` stream.

    The first line holding anything (its fields `first`) is a header when it holds no number,
    or fewer numbers than the line after it (`following`; None when it is alone in the file:
    then when any field is not a number). So ``time,ax`` above ``0,1`` is a header, ``t,label``
    above ``00:01,on`` too (the data row's error then names line 2), while a first row with a
    text column (``12:00,0.5`` above ``12:01,0.7``) is data.
    """
    numbers = sum(is_number(f, decimal_comma) for f in first)
    if following is None:
        return numbers < len(first)
    return numbers == 0 or numbers < sum(is_number(f, decimal_comma) for f in following)


def not_a_number(name: str, line: int, value: str, column: int, names=None) -> UsageError:
    """The error for a field that is not a number: 1-based `column`, named if there is a header."""
    label = f" ({names[column - 1].strip()})" if names else ""
    return UsageError(f"{name}: line {line}: {value!r} is not a number (column {column}{label})")


def _first_two(lines: Iterable[str]) -> list[tuple[int, list[str]]]:
    """The first two lines holding anything: (1-based number, fields)."""
    found: list[tuple[int, list[str]]] = []
    for number, line in enumerate(lines, start=1):
        fields = _fields(line)
        if fields:
            found.append((number, fields))
            if len(found) == 2:
                break
    return found


def header_end(lines: Iterable[str]) -> int:
    """Lines before the first row: 0, or up to and with the header line (comments above it)."""
    found = _first_two(lines)
    if not found:
        return 0
    following = found[1][1] if len(found) > 1 else None
    return found[0][0] if is_header(found[0][1], following) else 0


class RowParser:
    """Rows of numbers from the lines of one text file, fed in pieces.

    Parameters
    ----------
    name : str
        The file, for errors.
    dtype : numpy dtype
        Of the rows returned (each field converted once from its text: correctly rounded).

    Attributes
    ----------
    columns : int or None
        The columns of every row, known from the first one.
    line : int
        Lines consumed so far.
    """

    def __init__(self, name: str, dtype=np.float64):
        self.name, self.dtype = name, dtype
        self.columns: int | None = None
        self.names: list[str] | None = None  # the header's fields, if there is one
        self.line = 0
        self._header_ok = True  # until the first line holding anything

    def parse(self, lines: Iterable[str]) -> np.ndarray:
        """The rows of the next `lines`, ``(rows, columns)``; `UsageError` at a bad line.

        The header decision (`is_header`) looks at the line after the first: a first line
        that ends a piece is judged alone.
        """
        lines = list(lines)
        rows = []
        for index, raw in enumerate(lines):
            self.line += 1
            fields = _fields(raw)
            if not fields:
                continue
            if self._header_ok:
                self._header_ok = False
                after = _first_two(itertools.islice(lines, index + 1, None))
                if is_header(fields, after[0][1] if after else None):
                    self.names = fields
                    continue
            if self.columns is None:
                self.columns = len(fields)
                if self.names is not None and len(self.names) != self.columns:
                    self.names = None  # a name with a blank in it: the header is not a guide
            elif len(fields) != self.columns:
                raise UsageError(
                    f"{self.name}: line {self.line}: {len(fields)} columns, expected {self.columns}"
                )
            for column, value in enumerate(fields, start=1):
                if not is_number(value):
                    raise not_a_number(self.name, self.line, value, column, self.names)
            rows.append(fields)
        return np.array(rows, dtype=self.dtype).reshape(len(rows), self.columns or 0)

    def skip(self, lines: int) -> None:
        """Count `lines` parsed elsewhere (a fast path), after the first row."""
        self.line += lines
        self._header_ok = False
