"""Stream locators (SPEC section 4) as a config sees them: what kind, and what it needs.

Only parsing and checking here; opening streams is the job of ``streamconv.io``.
"""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass

RAW_EXTENSIONS = (".raw", ".pcm")
CSV_EXTENSIONS = (".csv",)


@dataclass(frozen=True)
class Locator:
    """A parsed locator: ``kind`` is pipe, file, device, pyaudio, udp or null."""

    uri: str
    kind: str
    file_kind: str | None = None  # for files: "audio", "raw" or "csv"
    host: str | None = None
    port: int | None = None


def parse_locator(uri: str, base_dir: str) -> Locator:
    """Classify ``uri``; a file path is made absolute relative to ``base_dir``.

    Raises
    ------
    ValueError
        A malformed ``udp://`` or ``pyaudio:`` locator.
    """
    if uri == "-":
        return Locator(uri, "pipe")
    if uri == "null":
        return Locator(uri, "null")
    if uri == "device" or uri.startswith("device:"):
        if uri == "device:":
            raise ValueError("device: needs a NAME or INDEX after the colon")
        return Locator(uri, "device")
    if uri.startswith("pyaudio:"):
        index = uri[len("pyaudio:") :]
        if not index.isdigit():
            raise ValueError(f"pyaudio:INDEX needs a device number, got {uri!r}")
        return Locator(uri, "pyaudio")
    if uri.startswith("udp://"):
        host, port = parse_host_port(uri[len("udp://") :])
        return Locator(uri, "udp", host=host, port=port)
    path = os.path.join(base_dir, os.path.expanduser(uri))
    ext = os.path.splitext(path)[1].lower()
    kind = "raw" if ext in RAW_EXTENSIONS else "csv" if ext in CSV_EXTENSIONS else "audio"
    return Locator(os.path.normpath(path), "file", file_kind=kind)


def parse_host_port(text: str) -> tuple[str, int]:
    """``HOST:PORT`` or ``[V6]:PORT`` -> (host, port); raise ValueError when malformed."""
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"want HOST:PORT with a port 0..65535, got {text!r}")
    return host.strip("[]"), int(port)


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback addresses (127.0.0.0/8, ::1)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
