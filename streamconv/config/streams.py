"""Stage two for the ends of the stream: the ``[source]`` and ``[sink]`` of a config.

`resolve_source` and `resolve_sink` parse each locator, ask a file what it holds (rate,
channels, csv columns, whole raw frames), check what the kind of stream needs and what the
sink's directory and type allow, and return a `StreamInfo`. `Collector` gathers the problems
and notes of the whole of stage two (`streamconv.config.resolve`); `check_output_dir` is shared
by the sink, the detection log and the control socket.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import soundfile as sf

from streamconv.config.models import Config
from streamconv.config.parse import Path, Problem, format_path
from streamconv.errors import UsageError
from streamconv.io.csvstream import CsvSource
from streamconv.locator import Locator, parse_locator, same_file

_ALIASES = {"aif": "AIFF", "aifc": "AIFF", "oga": "OGG", "opus": "OGG"}
PCM_BYTES = {"s16le": 2, "s32le": 4, "f32le": 4, "f64le": 8}


@dataclass(frozen=True)
class StreamInfo:
    """A resolved ``[source]`` or ``[sink]``: locator plus the format, rate and channels used."""

    locator: Locator
    format: str | None
    rate: float | None
    channels: int | None

    @property
    def uri(self) -> str:
        return self.locator.uri


class Collector:
    """The problems (with their key paths) and notes found so far."""

    def __init__(self) -> None:
        self.problems: list[Problem] = []
        self.notes: list[str] = []

    def add(self, path: Path, message: str) -> None:
        self.problems.append(Problem(tuple(path), message))


def _check_input_file(path: str) -> str | None:
    if not os.path.exists(path):
        return f"{path}: no such file"
    if os.path.isdir(path):
        return f"{path}: is a directory, not a file"
    if not os.access(path, os.R_OK):
        return f"{path}: permission denied"
    return None


def resolve_source(cfg: Config, base: str, out: Collector) -> StreamInfo | None:
    src = cfg.source
    try:
        loc = parse_locator(src.uri, base)
    except ValueError as exc:
        out.add(("source", "uri"), str(exc))
        return None
    rate, channels, needs = src.rate, src.channels, []
    if loc.kind == "null":
        out.add(("source", "uri"), "null is a sink only; a source must deliver samples")
        return None
    if loc.kind in ("pipe", "udp") or loc.file_kind == "raw":
        needs = ["format", "rate", "channels"]
    elif loc.kind in ("device", "pyaudio"):
        needs = ["rate", "channels"]
    elif loc.file_kind == "csv":
        needs = ["rate"]
    for key in needs:
        if getattr(src, key) is None:
            out.add(("source", key), f"required for a {_describe(loc)} source")
    if src.subtype is not None:
        out.add(
            ("source", "subtype"), "only a sink audio file has a subtype (the source's is read)"
        )
    if loc.kind == "file":
        if (err := _check_input_file(loc.uri)) is not None:
            out.add(("source", "uri"), err)
            return None
        if loc.file_kind != "raw" and src.format is not None:
            out.add(("source", "format"), f"only raw PCM has a format; {loc.uri} is not raw")
        if loc.file_kind == "audio":
            try:
                info = sf.info(loc.uri)
            except (sf.LibsndfileError, RuntimeError) as exc:
                out.add(("source", "uri"), f"{loc.uri}: not a readable audio file ({exc})")
                return None
            for key, value in (("rate", float(info.samplerate)), ("channels", info.channels)):
                given = getattr(src, key)
                if given is not None and given != value:
                    out.add(("source", key), f"is {given:g} but {loc.uri} has {value:g}; remove it")
            rate, channels = float(info.samplerate), info.channels
        elif loc.file_kind == "csv":
            try:
                # The channels are the data columns the stream reads (a time column is not one).
                with CsvSource(loc.uri, rate or 1.0) as csv_source:
                    found = csv_source.channels
            except UsageError as exc:
                out.add(("source", "uri"), str(exc))
                return None
            if channels is not None and channels != found:
                out.add(
                    ("source", "channels"), f"is {channels} but {loc.uri} has {found} data columns"
                )
            channels = found
        elif loc.file_kind == "raw" and src.format and src.channels:
            frame = PCM_BYTES[src.format] * src.channels
            size = os.path.getsize(loc.uri)
            if size % frame:
                out.add(
                    ("source", "uri"),
                    f"{loc.uri}: {size} bytes is not a whole number of {frame}-byte frames "
                    f"({src.channels} x {src.format})",
                )
    if rate is None or channels is None:
        return None
    return StreamInfo(loc, src.format, float(rate), int(channels))


def _describe(loc: Locator) -> str:
    if loc.kind == "file" and loc.file_kind is not None:
        return {"raw": "raw PCM file", "csv": "csv file", "audio": "audio file"}[loc.file_kind]
    return {"pipe": "stdin/stdout", "udp": "udp", "device": "device", "pyaudio": "pyaudio"}.get(
        loc.kind, loc.kind
    )


def _same_file(source_uri: str, base: str, sink: Locator) -> bool:
    """Whether the source locator names the sink's file (`streamconv.locator.same_file`)."""
    try:
        source = parse_locator(source_uri, base)
    except ValueError:
        return False  # said for the source
    return same_file(source, sink)


def resolve_sink(
    cfg: Config, base: str, rate: float | None, channels: int | None, out: Collector
) -> StreamInfo | None:
    snk = cfg.sink
    try:
        loc = parse_locator(snk.uri, base)
    except ValueError as exc:
        out.add(("sink", "uri"), str(exc))
        return None
    if (loc.kind in ("pipe", "udp") or loc.file_kind == "raw") and snk.format is None:
        out.add(("sink", "format"), f"required for a {_describe(loc)} sink")
    if loc.kind == "file":
        check_output_dir(loc.uri, ("sink", "uri"), out, " for the output file")
        if _same_file(cfg.source.uri, base, loc):
            out.add(("sink", "uri"), "is the source file; the output would overwrite the input")
        if loc.file_kind == "audio":
            ext = os.path.splitext(loc.uri)[1].lower().lstrip(".")
            known = {f.lower() for f in sf.available_formats()} | {"aif", "aifc", "oga", "opus"}
            if ext not in known:
                out.add(("sink", "uri"), f"{loc.uri}: unknown audio file type '.{ext}'")
            elif snk.subtype is not None:
                major = _ALIASES.get(ext, ext.upper())
                if not sf.check_format(major, snk.subtype):
                    out.add(
                        ("sink", "subtype"), f"a {major} file cannot hold {snk.subtype} samples"
                    )
    if snk.subtype is not None and loc.file_kind != "audio":
        out.add(("sink", "subtype"), f"only an audio file has a subtype; {snk.uri} is not one")
    if rate is not None and snk.rate is not None and snk.rate != rate:
        out.add(("sink", "rate"), f"is {snk.rate:g} Hz but the stream is {rate:g} Hz")
    if channels is not None and snk.channels is not None and snk.channels != channels:
        out.add(
            ("sink", "channels"),
            f"is {snk.channels} but the filter chain gives {channels} channels",
        )
    return StreamInfo(loc, snk.format, rate, channels)


#: Where a systemd unit's StateDirectory=, LogsDirectory=, RuntimeDirectory= and
#: CacheDirectory= are made, when the service starts: an output in such a directory that is not
#: there yet is a note, not an error, so the installed config passes `streamconv check` before
#: the service's first start.
SERVICE_DIRECTORY_BASES = ("/var/lib", "/var/log", "/run", "/var/cache")


def check_output_dir(path: str, where: Path, out: Collector, what: str = "") -> None:
    parent = os.path.dirname(path) or "."
    if not os.path.isdir(parent):
        if os.path.isabs(parent) and os.path.dirname(parent) in SERVICE_DIRECTORY_BASES:
            out.notes.append(
                f"{format_path(where)}: {parent} does not exist yet; the service's "
                "StateDirectory=/LogsDirectory=/RuntimeDirectory= creates it when it starts"
            )
        else:
            out.add(where, f"{parent}: no such directory{what}")
    elif not os.access(parent, os.W_OK):
        out.add(where, f"{parent}: directory is not writable")
