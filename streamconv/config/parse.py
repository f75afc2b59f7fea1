"""Reading a config document (TOML or YAML) and finding the line of a key path in it.

``read_document(path)`` returns the parsed mapping and a :class:`LineMap` that answers "on which
line is ``filters[2].cutoff_hz``?". YAML knows its lines through its node tree; ``tomllib`` does
not, so TOML lines come from a scan of table headers and ``key =`` lines, which covers the usual
layout (tables and arrays of tables, one key per line) and gives no line for the rest.
"""

from __future__ import annotations

import difflib
import os
import re
import sys
from dataclasses import dataclass, field

import yaml

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10: the same parser from PyPI
    import tomli as tomllib

from streamconv.errors import ConfigError

Path = tuple  # a key path: ("filters", 2, "cutoff_hz")

YAML_EXTENSIONS = (".yaml", ".yml")


def did_you_mean(word, choices) -> str:
    """`` (did you mean 'KEY'?)`` for the choice closest to a misspelt `word`, or nothing.

    >>> did_you_mean("cutof_hz", ["cutoff_hz", "numtaps"]), did_you_mean("zzz", ["numtaps"])
    (" (did you mean 'cutoff_hz'?)", '')
    """
    near = difflib.get_close_matches(str(word), sorted(choices), n=1, cutoff=0.7)
    return f" (did you mean '{near[0]}'?)" if near else ""


def format_path(path: Path) -> str:
    """``("filters", 2, "cutoff_hz")`` -> ``filters[2].cutoff_hz``."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


@dataclass
class LineMap:
    """Lines (1-based) of key paths; :meth:`line` falls back to the nearest known parent."""

    lines: dict[Path, int] = field(default_factory=dict)

    def line(self, path: Path) -> int | None:
        path = tuple(path)
        while path:
            if path in self.lines:
                return self.lines[path]
            path = path[:-1]
        return None


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a config: where (key path, line) and what."""

    path: Path
    message: str
    line: int | None = None

    def render(self, filename: str) -> str:
        where = f"{filename}:{self.line}" if self.line else filename
        key = format_path(self.path)
        return f"{where}: {key}: {self.message}" if key else f"{where}: {self.message}"


def config_error(filename: str, problems: list[Problem]) -> ConfigError:
    """A `ConfigError` whose message names the first problem and whose errors list them all."""
    rendered = [p.render(filename) for p in problems]
    message = rendered[0]
    if len(rendered) > 1:
        message += f" (and {len(rendered) - 1} more; `streamconv check` lists them all)"
    return ConfigError(message, errors=rendered)


_TOML_ARRAY_TABLE = re.compile(r"^\s*\[\[\s*([^\]]+?)\s*\]\]")
_TOML_TABLE = re.compile(r"^\s*\[\s*([^\]\[]+?)\s*\]")
_TOML_KEY = re.compile(r"^\s*([A-Za-z0-9_\-]+|\"[^\"]*\"|'[^']*')\s*=")


def _toml_lines(text: str) -> LineMap:
    lines: dict[Path, int] = {}
    counts: dict[Path, int] = {}
    table: Path = ()
    for number, raw in enumerate(text.splitlines(), start=1):
        if m := _TOML_ARRAY_TABLE.match(raw):
            name = tuple(k.strip().strip("\"'") for k in m.group(1).split("."))
            index = counts.get(name, 0)
            counts[name] = index + 1
            table = (*name, index)
            lines.setdefault(table, number)
        elif m := _TOML_TABLE.match(raw):
            table = tuple(k.strip().strip("\"'") for k in m.group(1).split("."))
            lines.setdefault(table, number)
        elif m := _TOML_KEY.match(raw):
            lines.setdefault((*table, m.group(1).strip("\"'")), number)
    return LineMap(lines)


def _yaml_lines(node, path: Path = (), lines: dict | None = None) -> LineMap:
    lines = {} if lines is None else lines
    if node is None:
        return LineMap(lines)
    lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            sub = (*path, key.value)
            lines.setdefault(sub, key.start_mark.line + 1)
            _yaml_lines(value, sub, lines)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _yaml_lines(item, (*path, i), lines)
    return LineMap(lines)


def read_document(path: str) -> tuple[dict, LineMap]:
    """Read and parse a TOML (default) or YAML (``.yaml``/``.yml``) config.

    Raises
    ------
    ConfigError
        The file cannot be read or does not parse; the message names the file and the line.
    """
    try:
        with open(path, "rb") as fh:
            raw = fh.read()
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such config file") from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: is a directory, not a config file") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror or exc}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    if os.path.splitext(path)[1].lower() in YAML_EXTENSIONS:
        try:
            data = yaml.safe_load(text)
            lines = _yaml_lines(yaml.compose(text))
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f"{path}:{mark.line + 1}" if mark else path
            problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
            raise ConfigError(f"{where}: invalid YAML: {problem}") from None
        if data is None:
            data = {}
    else:
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: invalid TOML: {exc}") from None
        lines = _toml_lines(text)
    if not isinstance(data, dict):
        raise ConfigError(
            f"{path}: the top level must be a table of keys, not {type(data).__name__}"
        )
    return data, lines
