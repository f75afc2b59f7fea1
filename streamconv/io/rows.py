"""Rows of numbers from lines of text: the rules every text array follows (`streamconv.io.arrays`).

One column rule (`columns_of`) serves every text file streamconv reads, the arrays (taps,
templates, a config's files) and the ``.csv`` stream (`streamconv.io.csvstream`): the first
line holding anything decides the separator, ``;`` or tab when it holds one (the one it holds
more of), else ``,`` when it holds one, else blanks; with ``;`` or tab a comma in a number is
its decimal mark (``0,5;1,25``). Blank lines and ``#`` comments are skipped; the first line
holding anything may be a header (`is_header`: it holds no number, or fewer numbers than the
line after it); every row has the columns of the first. An error is one line naming the file,
the line, the value and its column (`not_a_number`). Used by `streamconv.io.arrays.read_array`
(taps, templates); the ``.csv`` stream source splits its lines with `columns_of`, decides its
header with `is_header`, reports a bad value with `not_a_number`, and adds what a stream file
needs (pass-through text columns, numbers written back as they were, rows as wide as the
header).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from streamconv.errors import UsageError

__all__ = [
    "Columns",
    "RowParser",
    "columns_of",
    "content",
    "is_header",
    "is_number",
    "layout_of",
    "not_a_number",
]


def content(line: str) -> str:
    """A line without its ``#`` comment and outer blanks (empty: it holds nothing)."""
    return line.split("#", 1)[0].strip()


def is_number(text: str, decimal_comma: bool = False) -> bool:
    """`text` reads as a number (``0,25`` too when `decimal_comma`)."""
    if decimal_comma:
        text = text.replace(",", ".")
    try:
        float(text)
    except ValueError:
        return False
    return True


@dataclass(frozen=True)
class Columns:
    """How a text file's columns are separated and its numbers written (`columns_of`).

    Attributes
    ----------
    separator : str
        ``";"``, ``"\\t"``, ``","`` or ``" "`` (blanks: any run of spaces and tabs).
    decimal_comma : bool
        The first lines write numbers with a decimal comma (``0,25``): written back so.
    """

    separator: str
    decimal_comma: bool = False

    @property
    def commas_are_decimal(self) -> bool:
        """A comma in a number is its decimal mark (``;`` or tab separators): ``0,25`` reads
        as 0.25 anywhere in the file."""
        return self.separator in (";", "\t")

    def split(self, text: str) -> list[str]:
        """The fields of a line's `content`, as written (blanks around them kept)."""
        return text.split() if self.separator == " " else text.split(self.separator)

    def is_number(self, text: str) -> bool:
        """`text` reads as a number under this rule."""
        return is_number(text, self.commas_are_decimal)


def columns_of(first: str, following: str | None = None) -> Columns:
    """The one column rule of every text array and ``.csv`` stream.

    Parameters
    ----------
    first, following : str
        The `content` of the first two lines holding anything (`following`: None if none).

    Returns
    -------
    Columns
        The separator every line of the file is split by, and whether its numbers are written
        with decimal commas.

    Notes
    -----
    The separator is ``;`` or tab when `first` holds one (the one it holds more of), else
    ``,`` when it holds one, else blanks: ``;`` and tab go first because a comma may be a
    decimal mark beside them. The numbers have decimal commas when one of the two lines writes
    one so.

    Examples
    --------
    >>> columns_of("0,5;1,25")
    Columns(separator=';', decimal_comma=True)
    >>> columns_of("time,ax", "0.01,0.5")
    Columns(separator=',', decimal_comma=False)
    >>> columns_of("1 2 3").split("1 2 3")
    ['1', '2', '3']
    """
    tabs, semicolons = first.count("\t"), first.count(";")
    if tabs or semicolons:
        separator = "\t" if tabs > semicolons else ";"
    else:
        separator = "," if "," in first else " "
    rule = Columns(separator)
    if not rule.commas_are_decimal:
        return rule
    lines = [first] if following is None else [first, following]
    comma = any("," in f and is_number(f, True) for line in lines for f in rule.split(line))
    return Columns(separator, comma)


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


def _first_two(lines: Iterable[str]) -> list[tuple[int, str]]:
    """The first two lines holding anything: (1-based number, `content`)."""
    found: list[tuple[int, str]] = []
    for number, line in enumerate(lines, start=1):
        text = content(line)
        if text:
            found.append((number, text))
            if len(found) == 2:
                break
    return found


def _rule_and_header(found: list[tuple[int, str]]) -> tuple[Columns, list[str] | None]:
    """The column rule of the first two lines holding anything, and the first one's fields if
    it is a header."""
    following = found[1][1] if len(found) > 1 else None
    rule = columns_of(found[0][1], following)
    fields = rule.split(found[0][1])
    after = rule.split(following) if following is not None else None
    return rule, fields if is_header(fields, after, rule.commas_are_decimal) else None


def layout_of(lines: Iterable[str]) -> tuple[Columns, int]:
    """The column rule of a file's first lines, and the lines before its first row: 0, or up
    to and with the header line (comments above it)."""
    found = _first_two(lines)
    if not found:
        return Columns(" "), 0
    rule, header = _rule_and_header(found)
    return rule, found[0][0] if header is not None else 0


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
        self.rule: Columns | None = None  # `columns_of` the first lines holding anything
        self.line = 0
        self._header_ok = True  # until the first line holding anything

    def parse(self, lines: Iterable[str]) -> np.ndarray:
        """The rows of the next `lines`, ``(rows, columns)``; `UsageError` at a bad line.

        The column rule and the header decision (`is_header`) look at the line after the
        first: a first line that ends a piece is judged alone.
        """
        lines = list(lines)
        rows = []
        for index, raw in enumerate(lines):
            self.line += 1
            text = content(raw)
            if not text:
                continue
            if self.rule is None:
                after = _first_two(itertools.islice(lines, index + 1, None))
                self.rule, header = _rule_and_header([(0, text), *after[:1]])
                if header is not None and self._header_ok:
                    self._header_ok = False
                    self.names = header
                    continue
            self._header_ok = False
            fields = self.rule.split(text)
            if len(fields) > 1 and not fields[-1].strip():
                fields.pop()  # "0.1," ends the row (a C array's taps, a spreadsheet's export)
            if self.columns is None:
                self.columns = len(fields)
                if self.names is not None and len(self.names) != self.columns:
                    self.names = None  # a name with a blank in it: the header is not a guide
            elif len(fields) != self.columns:
                raise UsageError(
                    f"{self.name}: line {self.line}: {len(fields)} columns, expected {self.columns}"
                )
            for column, value in enumerate(fields, start=1):
                if not self.rule.is_number(value):
                    raise not_a_number(self.name, self.line, value, column, self.names)
            rows.append(fields)
        if rows and self.rule is not None and self.rule.commas_are_decimal:
            rows = [[f.replace(",", ".") for f in row] for row in rows]
        return np.array(rows, dtype=self.dtype).reshape(len(rows), self.columns or 0)

    def skip(self, lines: int) -> None:
        """Count `lines` parsed elsewhere (a fast path), after the first row."""
        self.line += lines
        self._header_ok = False
