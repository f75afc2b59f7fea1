"""Stage two of validation: cross-checks that need rates, channel counts and files.

:func:`resolve` walks a validated `Config` in pipeline order (source -> filters -> sink,
templates, detectors, control), collects every problem it finds as a `Problem` with its key
path, reads every file once, and returns a `LoadedConfig` holding the arrays the service runs
on: the combined ``(L, Cin, Cout)`` taps and the template samples. The source and the sink are
checked by `streamconv.config.streams`; the filter chain, templates, detectors, names and
control here.
"""

from __future__ import annotations

import grp
import os
from dataclasses import dataclass, field

import numpy as np

from streamconv.config.models import Config, MixFilter, Periodicity, Spectrogram
from streamconv.config.parse import Path, Problem
from streamconv.config.streams import (
    Collector,
    StreamInfo,
    check_output_dir,
    resolve_sink,
    resolve_source,
)
from streamconv.detect import DEFAULT_THRESHOLD, resample
from streamconv.dsp import design
from streamconv.dsp.spectrogram import SpectrogramParams, template_patch
from streamconv.errors import UsageError
from streamconv.io.arrays import read_array
from streamconv.io.taps import load_taps
from streamconv.locator import is_loopback, parse_host_port

MAX_TAPS = 1 << 24


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


def _field_of(message: str, model) -> str | None:
    """The model field a design ValueError names first (``"cutoff_hz must be ..."``)."""
    word = message.split(" ", 1)[0]
    return word if word in type(model).model_fields else None


def _build_filters(
    cfg: Config, base: str, rate: float, channels: int, out: Collector
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


def _file_taps(flt, base: str, rate: float, out: Collector, where: Path) -> np.ndarray | None:
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
    cfg: Config, base: str, rate: float, channels: int | None, out: Collector
) -> list[TemplateInfo]:
    """The templates at the stream's rate; ``channels`` None (the chain has an error) skips
    only the channel-count check, so a bad template is reported beside a bad filter."""
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
        if channels is not None and data.shape[1] not in (1, channels):
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
        min_distance = tpl.min_distance or data.shape[0]  # default: the template's length
        if tpl.domain == "spectrogram":
            try:  # the checks the matcher makes: a whole frame, a band with bins, not flat
                params = SpectrogramParams(**_spectrogram_params(tpl))
                patch = template_patch(tpl.name, data, rate, params)
            except ValueError as exc:
                out.add((*where, "spectrogram"), f"{path}: {exc}")
                continue
            if not tpl.min_distance:  # the spectrogram matcher's default, as `match` has it:
                min_distance = patch.frames * params.sizes(rate)[1]  # the patch's frames
        threshold = tpl.threshold
        if threshold is None and tpl.mad is None:
            threshold = DEFAULT_THRESHOLD
        infos.append(
            TemplateInfo(
                tpl.name,
                data,
                threshold,
                tpl.mad,
                min_distance,
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


def _check_names(cfg: Config, out: Collector) -> None:
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


def _check_socket_group(cfg: Config, out: Collector) -> str | None:
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


def _resolve_control(cfg: Config, base: str, out: Collector) -> str | None:
    if cfg.control is None:
        return None
    listen = cfg.control.listen
    where = ("control", "listen")
    if listen.startswith("unix:"):
        path = os.path.normpath(os.path.join(base, os.path.expanduser(listen[len("unix:") :])))
        if path == os.path.normpath(base):
            out.add(where, "unix: needs a socket path")
            return None
        check_output_dir(path, where, out)
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
    out = Collector()
    _check_names(cfg, out)
    source = resolve_source(cfg, base, out)
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
    sink = resolve_sink(cfg, base, rate, channels_out, out)
    detections = None
    if cfg.detections is not None and cfg.detections.path is not None:
        detections = os.path.normpath(os.path.join(base, os.path.expanduser(cfg.detections.path)))
        check_output_dir(detections, ("detections", "path"), out)
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
