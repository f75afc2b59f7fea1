"""Stage two of validation: cross-checks that need rates, channel counts and files.

:func:`resolve` walks a validated `Config` in pipeline order (source -> filters -> sink,
templates, detectors, control), collects every problem it finds as a `Problem` with its key
path, reads every file once, and returns a `LoadedConfig` holding the arrays the service runs
on: the combined ``(L, Cin, Cout)`` taps and the template samples.
"""

from __future__ import annotations

import grp
import os
from dataclasses import dataclass, field

import numpy as np
import soundfile as sf

from streamconv.config.arrays import read_array
from streamconv.config.models import Config, MixFilter, Periodicity, Spectrogram
from streamconv.config.parse import Path, Problem, format_path
from streamconv.detect import DEFAULT_THRESHOLD, resample
from streamconv.dsp import design
from streamconv.dsp.spectrogram import SpectrogramParams, template_patch
from streamconv.errors import UsageError
from streamconv.io.csvstream import CsvSource
from streamconv.io.taps import load_taps
from streamconv.locator import Locator, is_loopback, parse_host_port, parse_locator

MAX_TAPS = 1 << 24
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


@dataclass(frozen=True)
class FilterInfo:
    """One ``[[filters]]`` entry after design: its taps (or mix matrix) and channel counts."""

    index: int
    label: str
    type: str
    taps: np.ndarray  # (M,) or (M, K) for filters, (Cin, Cout) for a mix
    channels_in: int
    channels_out: int


@dataclass(frozen=True)
class TemplateInfo:
    """One ``[[templates]]`` entry with its samples ``(frames, channels)`` at the stream rate."""

    name: str
    samples: np.ndarray
    threshold: float | None
    mad: float | None
    min_distance: int
    combine: str  # "per_channel" or "mean" (streamconv.Matcher: combine=None or "mean")
    source_rate: float | None
    mad_window_s: float = 10.0
    mad_hop_s: float = 1.0
    domain: str = "waveform"
    spectrogram: dict | None = None  # SpectrogramParams keywords (domain "spectrogram")


@dataclass(frozen=True)
class LoadedConfig:
    """A config that passed both stages, with every file read and every filter designed."""

    path: str
    config: Config
    source: StreamInfo
    sink: StreamInfo
    sample_rate: float
    channels_in: int
    channels_out: int
    taps: np.ndarray  # (L, Cin, Cout)
    filters: list[FilterInfo]
    templates: list[TemplateInfo]
    periodicity: list[Periodicity]
    detections_path: str | None
    control_listen: str | None
    block_size: int | None  # None: by the stream kinds (streamconv.runner.block_size_for)
    method: str
    notes: list[str] = field(default_factory=list)
    control_socket_group: str | None = None

    def compact_taps(self) -> np.ndarray:
        """The taps in the smallest equivalent layout: (L,), (L, C) or (L, Cin, Cout)."""
        return design.compact_taps(self.taps)


class _Collector:
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


def _resolve_source(cfg: Config, base: str, out: _Collector) -> StreamInfo | None:
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


def _resolve_sink(
    cfg: Config, base: str, rate: float | None, channels: int | None, out: _Collector
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
        _check_output_dir(loc.uri, ("sink", "uri"), out, " for the output file")
        if os.path.normpath(os.path.join(base, cfg.source.uri)) == loc.uri:
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


def _field_of(message: str, model) -> str | None:
    """The model field a design ValueError names first (``"cutoff_hz must be ..."``)."""
    word = message.split(" ", 1)[0]
    return word if word in type(model).model_fields else None


def _build_filters(
    cfg: Config, base: str, rate: float, channels: int, out: _Collector
) -> tuple[np.ndarray | None, list[FilterInfo]]:
    mimo = design.identity(channels)
    infos: list[FilterInfo] = []
    ok = True
    for i, flt in enumerate(cfg.filters):
        where = ("filters", i)
        label = f"{flt.type} '{flt.name}'" if flt.name else flt.type
        current = mimo.shape[2]
        try:
            if isinstance(flt, MixFilter):
                matrix = np.asarray(flt.matrix, dtype=np.float64)
                widths = {len(row) for row in flt.matrix}
                if len(widths) != 1 or 0 in widths:
                    out.add((*where, "matrix"), "every row needs the same, non-zero length")
                    ok = False
                    continue
                if matrix.shape[0] != current:
                    out.add(
                        (*where, "matrix"),
                        f"has {matrix.shape[0]} rows but {current} channels arrive here "
                        "(one row per input channel)",
                    )
                    ok = False
                    continue
                mimo = design.apply_mix(mimo, matrix)
                infos.append(FilterInfo(i, label, flt.type, matrix, current, matrix.shape[1]))
                continue
            if flt.type == "file":
                h = _file_taps(flt, base, rate, out, where)
                if h is None:
                    ok = False
                    continue
            else:
                h = design.design(flt.type, rate, **flt.design_params())
        except ValueError as exc:
            message = str(exc)
            key = _field_of(message, flt)
            if key is not None:
                out.add((*where, key), message[len(key) :].lstrip())
            else:
                out.add(where, message)
            ok = False
            continue
        bad = [c for c in (flt.channels or []) if c >= current]
        if bad:
            out.add(
                (*where, "channels"),
                f"channel {bad[0]} does not exist: {current} channels arrive here "
                f"(0..{current - 1})",
            )
            ok = False
            continue
        try:
            if h.ndim == 3:
                mimo = design.apply_mimo(mimo, h)
            else:
                mimo = design.apply_filter(mimo, h, flt.channels)
        except ValueError as exc:
            out.add((*where, "path" if flt.type == "file" else "channels"), str(exc))
            ok = False
            continue
        infos.append(FilterInfo(i, label, flt.type, h, current, mimo.shape[2]))
        if mimo.shape[0] > MAX_TAPS:
            out.add(where, f"the chain is {mimo.shape[0]} taps long, more than {MAX_TAPS}")
            return None, infos
    return (mimo if ok else None), infos


def _file_taps(flt, base: str, rate: float, out: _Collector, where: Path) -> np.ndarray | None:
    """Taps of a ``type = "file"`` filter, read as ``streamconv filter --fir`` reads them."""
    path = os.path.normpath(os.path.join(base, os.path.expanduser(flt.path)))
    try:
        data, file_rate = load_taps(path)
    except UsageError as exc:
        out.add((*where, "path"), str(exc))
        return None
    if file_rate is not None and file_rate != rate:
        out.add(
            (*where, "path"),
            f"{path}: impulse response is {file_rate:g} Hz but the stream is {rate:g} Hz",
        )
        return None
    if data.ndim == 3 and (flt.column is not None or flt.channels is not None):
        out.add((*where, "path"), f"{path}: MIMO taps {data.shape} take no column or channels")
        return None
    if flt.column is not None:
        columns = 1 if data.ndim == 1 else data.shape[1]
        if flt.column >= columns:
            out.add(
                (*where, "column"),
                f"{path} has {columns} column(s) (0..{columns - 1}), not {flt.column}",
            )
            return None
        return data if data.ndim == 1 else data[:, flt.column]
    return data


def _spectrogram(tpl) -> dict | None:
    """The spectrogram parameters of a spectrogram-domain template (defaults filled in)."""
    if tpl.domain != "spectrogram":
        return None
    return _spectrogram_params(tpl)


def _spectrogram_params(tpl) -> dict:
    """A template's ``spectrogram`` table with the defaults filled in."""
    return (tpl.spectrogram or Spectrogram()).model_dump()


def _resolve_templates(
    cfg: Config, base: str, rate: float, channels: int, out: _Collector
) -> list[TemplateInfo]:
    infos = []
    for i, tpl in enumerate(cfg.templates):
        where = ("templates", i)
        path = os.path.normpath(os.path.join(base, os.path.expanduser(tpl.path)))
        try:
            data, file_rate = read_array(path)
        except UsageError as exc:
            out.add((*where, "path"), str(exc))
            continue
        if file_rate is not None and file_rate != rate:
            if not tpl.resample:
                out.add(
                    (*where, "path"),
                    f"{path}: template is {file_rate:g} Hz but the stream is {rate:g} Hz "
                    "(set resample = true to resample it)",
                )
                continue
            data = resample(data, file_rate, rate)
        if data.shape[1] not in (1, channels):
            out.add(
                (*where, "path"),
                f"{path}: template has {data.shape[1]} channels; the filtered stream has "
                f"{channels} (a template has 1 channel or one per stream channel)",
            )
            continue
        if data.shape[0] < 2:
            out.add((*where, "path"), f"{path}: a template needs at least 2 samples")
            continue
        if np.all(np.ptp(data, axis=0) == 0):
            out.add((*where, "path"), f"{path}: template is constant; its score is undefined")
            continue
        if tpl.domain == "spectrogram":
            try:  # the checks the matcher makes: a whole frame, a band with bins, not flat
                params = SpectrogramParams(**_spectrogram_params(tpl))
                template_patch(tpl.name, data, rate, params)
            except ValueError as exc:
                out.add((*where, "spectrogram"), f"{path}: {exc}")
                continue
        threshold = tpl.threshold
        if threshold is None and tpl.mad is None:
            threshold = DEFAULT_THRESHOLD
        infos.append(
            TemplateInfo(
                tpl.name,
                data,
                threshold,
                tpl.mad,
                tpl.min_distance or data.shape[0],
                tpl.combine,
                file_rate,
                tpl.mad_window_s,
                tpl.mad_hop_s,
                tpl.domain,
                _spectrogram(tpl),
            )
        )
    for i, det in enumerate(cfg.periodicity):
        if det.min_period_s * rate < 1:
            out.add(
                ("periodicity", i, "min_period_s"),
                f"{det.min_period_s:g} s is less than one sample at {rate:g} Hz",
            )
    return infos


def _check_names(cfg: Config, out: _Collector) -> None:
    seen: dict[str, str] = {}
    for i, flt in enumerate(cfg.filters):
        if flt.name is None:
            continue
        if flt.name in seen:
            out.add(("filters", i, "name"), f"duplicate name '{flt.name}' (also {seen[flt.name]})")
        else:
            seen[flt.name] = f"filters[{i}]"
    seen = {}
    for section in ("templates", "periodicity"):
        for i, item in enumerate(getattr(cfg, section)):
            if item.name in seen:
                out.add(
                    (section, i, "name"), f"duplicate name '{item.name}' (also {seen[item.name]})"
                )
            else:
                seen[item.name] = f"{section}[{i}]"


#: Where a systemd unit's StateDirectory=, LogsDirectory=, RuntimeDirectory= and
#: CacheDirectory= are made, when the service starts: an output in such a directory that is not
#: there yet is a note, not an error, so the installed config passes `streamconv check` before
#: the service's first start.
SERVICE_DIRECTORY_BASES = ("/var/lib", "/var/log", "/run", "/var/cache")


def _check_output_dir(path: str, where: Path, out: _Collector, what: str = "") -> None:
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


def _check_socket_group(cfg: Config, out: _Collector) -> str | None:
    control = cfg.control
    if control is None or control.socket_group is None:
        return None
    group = control.socket_group
    where = ("control", "socket_group")
    if not control.listen.startswith("unix:"):
        out.add(where, "needs a unix:PATH listen address")
    try:
        grp.getgrnam(group)
    except KeyError:
        out.add(where, f"no such group {group!r} (systemd/README.md: systemd-sysusers makes it)")
    return group


def _resolve_control(cfg: Config, base: str, out: _Collector) -> str | None:
    if cfg.control is None:
        return None
    listen = cfg.control.listen
    where = ("control", "listen")
    if listen.startswith("unix:"):
        path = os.path.normpath(os.path.join(base, os.path.expanduser(listen[len("unix:") :])))
        if path == os.path.normpath(base):
            out.add(where, "unix: needs a socket path")
            return None
        _check_output_dir(path, where, out)
        return f"unix:{path}"
    try:
        host, _ = parse_host_port(listen)
    except ValueError as exc:
        out.add(where, f"{exc} (or unix:PATH)")
        return None
    if not is_loopback(host) and not cfg.control.allow_remote:
        out.add(
            where,
            f"{host} is not a loopback address; set allow_remote = true to listen on it",
        )
    return listen


def resolve(cfg: Config, path: str) -> tuple[LoadedConfig | None, list[Problem]]:
    """Cross-check ``cfg`` (read from ``path``) and build what the service runs on.

    Returns
    -------
    (LoadedConfig or None, list of Problem)
        The loaded config when there is no problem, else None and every problem found.
    """
    base = os.path.dirname(os.path.abspath(path))
    out = _Collector()
    _check_names(cfg, out)
    source = _resolve_source(cfg, base, out)
    taps: np.ndarray | None = None
    filters: list[FilterInfo] = []
    templates: list[TemplateInfo] = []
    rate = source.rate if source else None
    channels_out: int | None = None
    if source is not None and source.rate is not None and source.channels is not None:
        taps, filters = _build_filters(cfg, base, source.rate, source.channels, out)
        if taps is not None:
            channels_out = taps.shape[2]
            templates = _resolve_templates(cfg, base, source.rate, channels_out, out)
    sink = _resolve_sink(cfg, base, rate, channels_out, out)
    detections = None
    if cfg.detections is not None and cfg.detections.path is not None:
        detections = os.path.normpath(os.path.join(base, os.path.expanduser(cfg.detections.path)))
        _check_output_dir(detections, ("detections", "path"), out)
    control = _resolve_control(cfg, base, out)
    socket_group = _check_socket_group(cfg, out)
    if out.problems or source is None or taps is None or sink is None:
        return None, out.problems
    # A resolved source has its rate and channels (else it is a problem, above).
    if source.rate is None or source.channels is None or channels_out is None:
        return None, out.problems
    loaded = LoadedConfig(
        path=os.path.abspath(path),
        config=cfg,
        source=source,
        sink=sink,
        sample_rate=source.rate,
        channels_in=source.channels,
        channels_out=channels_out,
        taps=taps,
        filters=filters,
        templates=templates,
        periodicity=list(cfg.periodicity),
        detections_path=detections,
        control_listen=control,
        block_size=cfg.processing.block_size,
        method=cfg.processing.method,
        notes=out.notes,
        control_socket_group=socket_group,
    )
    return loaded, []
