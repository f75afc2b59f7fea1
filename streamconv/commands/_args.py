"""Argument types shared by the subcommands: numbers checked as argparse parses them."""

from __future__ import annotations

import argparse
import math
import sys


def _number(kind, text: str, what: str):
    try:
        return kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not {what}: {text!r}") from None


def positive_int(text: str) -> int:
    """An integer > 0."""
    value = _number(int, text, "an integer")
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive: {text!r}")
    return value


#: The largest block, as a config's ``[processing] block_size`` allows (`config.models`; this
#: module does not import it: the parsers are built before pydantic is loaded).
MAX_BLOCK = 1 << 20


def block_frames(text: str) -> int:
    """Frames per block: an integer 1..`MAX_BLOCK`."""
    value = positive_int(text)
    if value > MAX_BLOCK:
        raise argparse.ArgumentTypeError(f"at most {MAX_BLOCK} frames: {text!r}")
    return value


def positive_float(text: str) -> float:
    """A finite number > 0."""
    value = _number(float, text, "a number")
    if not (value > 0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(f"must be positive: {text!r}")
    return value


def non_negative_float(text: str) -> float:
    """A finite number >= 0."""
    value = _number(float, text, "a number")
    if not (value >= 0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(f"must be zero or positive: {text!r}")
    return value


def finite_float(text: str) -> float:
    """Any finite number."""
    value = _number(float, text, "a number")
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be finite: {text!r}")
    return value


def key_values(tokens: list[str], where: str) -> dict:
    """``["cutoff_hz=1000", "window='hann'"]`` -> ``{"cutoff_hz": 1000, "window": "hann"}``.

    Each value is read as TOML (``0.05``, ``true``, ``'hann'``, ``[1, 2]``), a bare word as
    text. `where` starts the `CommandLineError` of a token without ``=`` or a key given twice.
    """
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # Python 3.10: the same parser from PyPI
        import tomli as tomllib
    from streamconv.errors import CommandLineError

    out: dict = {}
    for token in tokens:
        key, sep, text = token.partition("=")
        if not sep or not key:
            raise CommandLineError(f"{where} {token!r}: expected KEY=VALUE")
        if key in out:
            raise CommandLineError(f"{where} {key}: given twice")
        try:
            out[key] = tomllib.loads(f"v = {text}")["v"]
        except tomllib.TOMLDecodeError:
            out[key] = text
    return out
