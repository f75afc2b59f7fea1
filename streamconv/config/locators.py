"""Stream locators as a config sees them: the one parser, `streamconv.locator`.

Only parsing and checking here; opening streams is the job of ``streamconv.io``.
"""

from __future__ import annotations

from streamconv.locator import (
    CSV_EXTENSIONS,
    RAW_EXTENSIONS,
    Locator,
    LocatorError,
    is_loopback,
    parse_host_port,
)
from streamconv.locator import parse_locator as _parse

__all__ = [
    "CSV_EXTENSIONS",
    "RAW_EXTENSIONS",
    "Locator",
    "LocatorError",
    "is_loopback",
    "parse_host_port",
    "parse_locator",
]


def parse_locator(uri: str, base_dir: str) -> Locator:
    """Parse a config's ``uri``; a file path is made absolute relative to ``base_dir``.

    Raises
    ------
    LocatorError
        A malformed locator (a `ValueError` too).
    """
    return _parse(uri, base_dir)
