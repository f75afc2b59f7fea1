"""``streamconv check CONFIG``: validate a config and summarize the pipeline it builds.

Exit 0 with a short summary (channels, taps per path, latency, the engine's plan and expected
load), or 2 with one ``error:`` line per problem. ``--schema`` prints the JSON Schema of the
config file instead; ``--calibrate`` first measures the engine's cost model on this machine and
saves it beside the FFTW wisdom (:mod:`streamconv.wisdom`).
"""

from __future__ import annotations

import os
import sys

import numpy as np

from streamconv import wisdom
from streamconv.config import LoadedConfig, config_schema, load_config
from streamconv.dsp import compiled, costmodel
from streamconv.dsp.convolve import Convolver
from streamconv.dsp.design import analyze
from streamconv.dsp.group_delay import chain_delay
from streamconv.errors import CommandLineError, ConfigError
from streamconv.outputs.base import shown_url
from streamconv.runner import block_size_for


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "check",
        help="validate a config file",
        description="Validate a service config (TOML, or YAML for .yaml/.yml): exit 0 and "
        "summarize the pipeline, or exit 2 listing every error with its key path and line.",
    )
    parser.add_argument("config", nargs="?", metavar="CONFIG", help="config file to check")
    parser.add_argument(
        "-q", "--quiet", action="store_true", help="no summary: only the errors (and exit code)"
    )
    parser.add_argument(
        "--schema", action="store_true", help="print the JSON Schema of the config file"
    )
    parser.add_argument(
        "--calibrate",
        action="store_true",
        help="first measure the engine's cost model on this machine (about 2 s) and keep it "
        "beside the FFTW wisdom, where every later run loads it",
    )
    parser.set_defaults(run=run)


def run(args) -> int:
    if args.schema:
        if args.config is not None or args.calibrate:  # it would be ignored, as if checked
            raise CommandLineError("check --schema takes no CONFIG and no --calibrate")
        print(config_schema())
        return 0
    if args.config is None and not args.calibrate:
        raise CommandLineError("check needs a CONFIG file (or --schema, --calibrate)")
    wisdom.load()  # FFT plans and the cost model measured on this machine, if any
    if args.calibrate:
        backend = "compiled" if compiled.available() else "numpy"
        model = costmodel.calibrate(backend)
        costmodel.use({backend: model})
        path = wisdom.save_costs({backend: model})
        print(f"cost model of the {backend} engine measured: {_model_text(model)}")
        if path:
            print(f"saved to {path}")
        if args.config is None:
            return 0
    try:
        loaded = load_config(args.config)
    except ConfigError as exc:
        for line in exc.errors or [str(exc)]:
            print(f"error: {line}", file=sys.stderr)
        return exc.exit_code
    if not args.quiet:
        print(summary(loaded))
    for note in loaded.notes:
        print(f"note: {note}", file=sys.stderr)
    return 0


def _model_text(m) -> str:
    return (
        f"FFT {1e9 * m.fft:.3g} ns per sample*log2(size), complex MAC {1e9 * m.mac:.3g} ns, "
        f"{1e6 * m.run:.3g} us per segment block, direct MAC {1e9 * m.direct:.3g} ns, "
        f"{1e6 * m.call:.3g} us per direct call and path"
    )


def _channels(n: int) -> str:
    return f"{n} channel" + ("" if n == 1 else "s")


def _stream(info, rate: float, channels: int) -> str:
    loc = info.locator
    kind = loc.file_kind + " file" if loc.kind == "file" else loc.kind
    return f"{loc.uri} ({kind}), {rate:g} Hz, {_channels(channels)}"


def summary(loaded: LoadedConfig) -> str:
    """A few lines describing the resolved pipeline of a loaded config."""
    rate = loaded.sample_rate
    taps = loaded.taps
    length, n_in, n_out = taps.shape
    nonzero = [(i, j) for i in range(n_in) for j in range(n_out) if np.any(taps[:, i, j])]
    delays = sorted({analyze(taps[:, i, j], rate)["group_delay_samples"] for i, j in nonzero})
    lines = [f"{loaded.path}: ok"]
    lines.append(f"  source     {_stream(loaded.source, rate, n_in)}")
    lines.append(f"  sink       {_stream(loaded.sink, rate, n_out)}")
    if loaded.filters:
        parts = []
        for f in loaded.filters:
            if f.type == "mix":
                parts.append(f"{f.label} {f.channels_in}->{f.channels_out} channels")
            else:
                n = f.taps.shape[0]
                parts.append(f"{f.label} {n} tap" + ("" if n == 1 else "s"))
        lines.append(f"  filters    {'; '.join(parts)}")
    else:
        lines.append("  filters    none (the stream passes unchanged)")
    layout = loaded.compact_taps().shape
    lines.append(
        f"  combined   {length} taps per path, {n_in} -> {_channels(n_out)}, "
        f"{len(nonzero)} non-zero path(s), engine layout {layout}"
    )
    if delays:
        lo, hi = delays[0], delays[-1]
        span = f"{lo:g}" if lo == hi else f"{lo:g}..{hi:g}"
        ms = (
            f"{1000 * lo / rate:.3g}"
            if lo == hi
            else f"{1000 * lo / rate:.3g}..{1000 * hi / rate:.3g}"
        )
        delay_text = f"filter group delay {span} samples ({ms} ms)"
    else:
        delay_text = "no signal path (all taps zero)"
    block = loaded.block_size or block_size_for(loaded.source.uri, loaded.sink.uri, length)
    lines.append(
        f"  latency    {delay_text}; blocks of {block} frames ({1000 * block / rate:.3g} ms)"
    )
    conv = Convolver(loaded.compact_taps(), block_size=block, method=loaded.method, channels=n_in)
    segments = ", ".join(f"{s.count} x {s.block}" for s in conv.plan)
    model = costmodel.current(conv.backend or "numpy")
    cost = conv.cost_per_frame or 0.0  # (both are known: the channel count was given)
    lines.append(
        f"  engine     {conv.method} ({conv.backend})"
        + (f", plan: partitions {segments}" if segments else "")
        + f"; latency added {conv.latency} frames (each block's output returns with it)"
    )
    lines.append(
        f"  load       expected {100 * cost * rate:.2g}% of one core at blocks "
        f"of {block} ({1e6 * cost * block:.3g} us per block; cost model: "
        f"{model.source})"
    )
    for t in loaded.templates:
        rule = f"threshold {t.threshold:g}" if t.mad is None else f"mad {t.mad:g}"
        lines.append(
            f"  template   {t.name}: {t.samples.shape[0]} frames "
            f"({1000 * t.samples.shape[0] / rate:.4g} ms), {_channels(t.samples.shape[1])}, "
            f"{rule}, min_distance {t.min_distance}, {t.combine}"
            + (_spectrogram(t, rate) if t.spectrogram is not None else "")
        )
    for p in loaded.periodicity:
        lines.append(
            f"  periodicity {p.name}: {p.min_period_s:g}..{p.max_period_s:g} s, "
            f"threshold {p.threshold:g}"
        )
    if loaded.templates or loaded.periodicity:
        delay = chain_delay(loaded.taps)
        lines.append(
            "  timeline   detections on the filtered stream's (the chain has no single delay)"
            if delay is None
            else f"  timeline   detections on the input's ({delay:g} samples of chain delay "
            "taken off)"
        )
    if loaded.detections_path:
        lines.append(f"  detections {loaded.detections_path}")
    cfg = loaded.config
    snips = cfg.detections.snippets if cfg.detections is not None else None
    if snips is not None:
        base = os.path.dirname(loaded.path)
        where = os.path.normpath(os.path.join(base, os.path.expanduser(snips.dir)))
        lines.append(
            f"  snippets   {where}: {snips.pre_s:g} s before, {snips.post_s:g} s from each "
            f"detection, at most {snips.max_mb:g} MB" + (", filtered too" if snips.filtered else "")
        )
    for out in cfg.outputs:
        lines.append(f"  output     {_output(out)}")
    if loaded.control_listen:
        lines.append(f"  control    {loaded.control_listen}")
    return "\n".join(lines)


def _output(out) -> str:
    """An ``[[outputs]]`` entry in one line, without a password from its URL."""
    url = shown_url(out.url)
    if out.type == "mqtt":
        return f"mqtt {url} topic {out.topic}, qos {out.qos}, queue {out.queue}"
    return f"webhook {url}, timeout {out.timeout_s:g} s, queue {out.queue}"


def _spectrogram(template, rate: float) -> str:
    """The spectrogram parameters of a template, for its line: the band is the one the matcher
    compares (an edge not given is the template's own, widened by the margin), in Hz."""
    from streamconv.dsp.spectrogram import SpectrogramParams, template_patch

    params = template.spectrogram
    sp = SpectrogramParams(**params)
    frame, _ = sp.sizes(rate)
    bins = template_patch(template.name, template.samples, rate, sp).bins
    lo, hi = params["low_hz"], params["high_hz"]
    own = f"own band, margin {params['band_margin']:g}"
    how = {
        (True, True): own,
        (False, True): f"low_hz given, high: {own}",
        (True, False): f"high_hz given, low: {own}",
        (False, False): "low_hz and high_hz given",
    }[(lo is None, hi is None)]
    scale = f"db floor {params['floor_db']:g} dB" if params["scale"] == "db" else params["scale"]
    return (
        f", spectrogram (frame {params['frame_s']:g} s, hop {params['hop_s']:g} s, "
        f"{params['window']}, {scale}, band {bins.start * rate / frame:g}.."
        f"{(bins.stop - 1) * rate / frame:g} Hz ({how}), tolerance {params['tolerance']:g})"
    )
