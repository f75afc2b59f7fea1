"""Rows of numbers from lines of text: the rules every text array follows (`streamconv.io.arrays`).

Columns are split by commas, semicolons or blanks; blank lines and ``#`` comments are skipped;
the first line holding anything may be a header (skipped when it is not all numbers); every
row has the columns of the first. An error is one line naming the file, the line and the
value. Used by `streamconv.io.arrays.read_array` (taps, templates); the ``.csv`` stream
source (`streamconv.io.csvstream`) reads with the same rules and error text, plus what a
stream file needs (pass-through columns, decimal commas).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

import numpy as np

from streamconv.errors import UsageError

__all__ = ["RowParser", "header_end"]

_SPLIT = re.compile(r"[,;\s]+")


def _fields(line: str) -> list[str]:
    text = line.split("#", 1)[0].strip()
    return [f for f in _SPLIT.split(text) if f] if text else []


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def header_end(lines: Iterable[str]) -> int:
    """Lines before the first row: 0, or up to and with the header line (comments above it)."""
    for number, line in enumerate(lines, start=1):
        fields = _fields(line)
        if fields:
            return 0 if all(_is_number(f) for f in fields) else number
    return 0


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
        self.line = 0
        self._header_ok = True  # until the first line holding anything

    def parse(self, lines: Iterable[str]) -> np.ndarray:
        """The rows of the next `lines`, ``(rows, columns)``; `UsageError` at a bad line."""
        rows = []
        for raw in lines:
            self.line += 1
            fields = _fields(raw)
            if not fields:
                continue
            header_ok, self._header_ok = self._header_ok, False
            if not all(_is_number(f) for f in fields):
                if header_ok:
                    continue  # a header line
                bad = next(f for f in fields if not _is_number(f))
                raise UsageError(f"{self.name}: line {self.line}: {bad!r} is not a number")
            if self.columns is None:
                self.columns = len(fields)
            elif len(fields) != self.columns:
                raise UsageError(
                    f"{self.name}: line {self.line}: {len(fields)} columns, expected {self.columns}"
                )
            rows.append(fields)
        return np.array(rows, dtype=self.dtype).reshape(len(rows), self.columns or 0)

    def skip(self, lines: int) -> None:
        """Count `lines` parsed elsewhere (a fast path), after the first row."""
        self.line += lines
        self._header_ok = False
