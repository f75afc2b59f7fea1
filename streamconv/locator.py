"""Stream locators (docs/contract.md, "Stream locators"), parsed once: the value every part of
streamconv reads.

==========================  ==============================================================
``-``                       ``pipe``: raw PCM on stdin (a source) or stdout (a sink)
``PATH``                    ``file``; ``file_kind`` by extension: ``raw`` (``.raw``
                            ``.pcm``), ``csv`` (``.csv``), else ``audio`` (libsndfile)
``device``                  ``device``: the default sound device (sounddevice, PortAudio)
``device:NAME``             ``device``: the device whose name holds NAME
``device:INDEX``            ``device``: device number INDEX (``index`` is set)
``pyaudio:INDEX``           ``pyaudio``: device number INDEX through PyAudio
``udp://HOST:PORT``         ``udp``: raw PCM datagrams; ``[V6ADDR]:PORT`` for IPv6
``null``                    ``null``: discard (a sink only)
==========================  ==============================================================

`parse_locator` is used by the config (``[source] uri``, ``[sink] uri``), by
`streamconv.io.open_source` / `open_sink` and by the commands; `parse_host_port` by udp
locators and ``[control] listen``. A malformed locator raises `LocatorError` (a `UsageError`
and a `ValueError`) whose one-line message starts with the locator as written.

Examples
--------
>>> parse_locator("udp://127.0.0.1:9000")
Locator(text='udp://127.0.0.1:9000', kind='udp', host='127.0.0.1', port=9000)
>>> parse_locator("device:3").index
3
>>> parse_locator("data/x.csv", base_dir="/etc/streamconv").path
'/etc/streamconv/data/x.csv'
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os

from streamconv.errors import UsageError

__all__ = [
    "CSV_EXTENSIONS",
    "RAW_EXTENSIONS",
    "Locator",
    "LocatorError",
    "file_kind",
    "is_loopback",
    "parse_host_port",
    "parse_locator",
]

#: Extensions read as raw PCM rather than through libsndfile.
RAW_EXTENSIONS = (".raw", ".pcm")
#: Extensions read as sensor data, one row a frame.
CSV_EXTENSIONS = (".csv",)


class LocatorError(UsageError, ValueError):
    """A malformed locator or ``HOST:PORT``; the message names it."""


@dataclasses.dataclass(frozen=True, repr=False)
class Locator:
    """A parsed stream locator.

    Attributes
    ----------
    text : str
        As written.
    kind : {"pipe", "file", "device", "pyaudio", "udp", "null"}
    path : str or None
        A file's path (made absolute against ``base_dir`` when given, ``~`` expanded).
    file_kind : {"audio", "raw", "csv"} or None
        A file's kind, by its extension.
    device : str or None
        The NAME or INDEX after ``device:`` / ``pyaudio:``; None: the default device.
    index : int or None
        ``device`` as a number, when it is one.
    host : str or None
        A udp locator's host (IPv6 without its brackets).
    port : int or None
        A udp locator's port (0: any free port, for a source).
    """

    text: str
    kind: str
    path: str | None = None
    file_kind: str | None = None
    device: str | None = None
    index: int | None = None
    host: str | None = None
    port: int | None = None

    def __repr__(self) -> str:
        fields = [f"{f.name}={getattr(self, f.name)!r}" for f in dataclasses.fields(self)]
        given = [f for f in fields if not f.endswith("=None")]
        return f"Locator({', '.join(given)})"

    @property
    def uri(self) -> str:
        """The path of a file, the text of anything else (what a config's ``uri`` resolves to)."""
        return self.path if self.path is not None else self.text

    @property
    def is_device(self) -> bool:
        """A live sound device (``device`` or ``pyaudio``)."""
        return self.kind in ("device", "pyaudio")

    @property
    def backend(self) -> str | None:
        """``"sounddevice"`` or ``"pyaudio"`` for a device, else None."""
        return {"device": "sounddevice", "pyaudio": "pyaudio"}.get(self.kind)


def file_kind(path: str) -> str:
    """``"raw"``, ``"csv"`` or ``"audio"`` for a path, by its extension."""
    ext = os.path.splitext(path)[1].lower()
    if ext in RAW_EXTENSIONS:
        return "raw"
    if ext in CSV_EXTENSIONS:
        return "csv"
    return "audio"


def parse_locator(text: str, base_dir: str | None = None) -> Locator:
    """Parse a stream locator.

    Parameters
    ----------
    text : str
        See the module docstring.
    base_dir : str, optional
        A relative file path is taken relative to it (a config's directory); None: kept as
        written (the command line: relative to the working directory).

    Raises
    ------
    LocatorError
        Empty text, ``device:`` with nothing after the colon, ``pyaudio:`` without a
        number, a malformed ``udp://HOST:PORT``.
    """
    if not text:
        raise LocatorError("empty locator")
    if text == "-":
        return Locator(text, "pipe")
    if text == "null":
        return Locator(text, "null")
    for prefix, kind in (("device", "device"), ("pyaudio", "pyaudio")):
        if text == prefix and kind == "device":
            return Locator(text, kind)
        if text.startswith(prefix + ":"):
            spec = text[len(prefix) + 1 :]
            if not spec:
                raise LocatorError(f"{text}: needs a NAME or INDEX after the colon")
            index = int(spec) if spec.isdigit() else None
            if kind == "pyaudio" and index is None:
                raise LocatorError(f"{text}: pyaudio:INDEX needs a device number")
            return Locator(text, kind, device=spec, index=index)
    if text.startswith("udp://"):
        try:
            host, port = parse_host_port(text[len("udp://") :])
        except LocatorError:
            raise LocatorError(f"{text}: expected udp://HOST:PORT with a port 0..65535") from None
        return Locator(text, "udp", host=host, port=port)
    scheme, sep, _ = text.partition("://")
    if sep and scheme.isalnum():
        raise LocatorError(f"{text}: unknown scheme {scheme}:// (a network stream is udp://)")
    path = os.path.expanduser(text)
    if base_dir is not None:
        path = os.path.normpath(os.path.join(base_dir, path))
    return Locator(text, "file", path=path, file_kind=file_kind(path))


def same_file(a: Locator, b: Locator) -> bool:
    """Whether two locators name one file, by any spelling (``./``, ``~``, a link, a hard link).

    A job whose output is its input file is refused (``streamconv filter`` and a config alike):
    the output, written as the input is read, would replace it. A file that does not exist yet
    is no other one.
    """
    if a.kind != "file" or b.kind != "file" or a.path is None or b.path is None:
        return False
    try:
        return a.path == b.path or os.path.samefile(a.path, b.path)
    except OSError:  # one of them does not exist
        return False


def parse_host_port(text: str) -> tuple[str, int]:
    """``HOST:PORT`` or ``[V6ADDR]:PORT`` -> ``(host, port)``, the host without brackets.

    Raises
    ------
    LocatorError
        No colon, an empty host, a port that is not a number in 0..65535, an IPv6 address
        without its brackets.

    Examples
    --------
    >>> parse_host_port("[::1]:8080")
    ('::1', 8080)
    """
    host, sep, port = text.rpartition(":")
    bracketed = host.startswith("[") and host.endswith("]")
    bad = not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535
    if bad or (":" in host and not bracketed) or host in ("[]",):
        raise LocatorError(f"{text}: expected HOST:PORT with a port 0..65535")
    return (host[1:-1] if bracketed else host), int(port)


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback addresses (127.0.0.0/8, ::1)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
