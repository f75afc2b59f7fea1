"""``streamconv check CONFIG``: validate a config and summarize the pipeline it builds.

Exit 0 with a short summary (channels, taps per path, latency, estimated cost), or 2 with one
``error:`` line per problem. ``--schema`` prints the JSON Schema of the config file instead.
"""

from __future__ import annotations

import math
import sys

import numpy as np

from streamconv.config import LoadedConfig, config_schema, load_config
from streamconv.dsp.design import analyze
from streamconv.errors import ConfigError, UsageError


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "check",
        help="validate a config file",
        description="Validate a service config (TOML, or YAML for .yaml/.yml): exit 0 and "
        "summarize the pipeline, or exit 2 listing every error with its key path and line.",
    )
    parser.add_argument("config", nargs="?", metavar="CONFIG", help="config file to check")
    parser.add_argument(
        "--schema", action="store_true", help="print the JSON Schema of the config file"
    )
    parser.set_defaults(run=run)


def run(args) -> int:
    if args.schema:
        print(config_schema())
        return 0
    if args.config is None:
        raise UsageError("check needs a CONFIG file (or --schema)")
    try:
        loaded = load_config(args.config)
    except ConfigError as exc:
        for line in exc.errors or [str(exc)]:
            print(f"error: {line}", file=sys.stderr)
        return exc.exit_code
    print(summary(loaded))
    return 0


def _channels(n: int) -> str:
    return f"{n} channel" + ("" if n == 1 else "s")


def _stream(info, rate: float, channels: int) -> str:
    loc = info.locator
    kind = loc.file_kind + " file" if loc.kind == "file" else loc.kind
    return f"{loc.uri} ({kind}), {rate:g} Hz, {_channels(channels)}"


def estimate_flops(length: int, n_in: int, n_out: int, paths: int, block: int) -> dict:
    """Floating-point operations per frame: direct convolution and FFT overlap-add.

    Direct: a multiply and an add per tap and path. Overlap-add with FFT size
    ``N = 2**ceil(log2(block + L - 1))``: ``Cin`` forward and ``Cout`` inverse real FFTs of about
    ``2.5 N log2 N`` flops each, plus one complex multiply-add (8 flops) per bin and path, per
    ``block`` frames.
    """
    direct = 2.0 * length * paths
    size = 1 << max(1, math.ceil(math.log2(block + length - 1)))
    ffts = (n_in + n_out) * 2.5 * size * math.log2(size)
    fft = (ffts + 8.0 * (size // 2 + 1) * paths) / block
    return {"direct": direct, "fft": fft, "fft_size": size}


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
    block = loaded.block_size
    lines.append(
        f"  latency    {delay_text}; blocks of {block} frames ({1000 * block / rate:.3g} ms)"
    )
    cost = estimate_flops(length, n_in, n_out, len(nonzero), block)
    lines.append(
        f"  cost       direct {cost['direct'] * rate / 1e6:.3g} Mflop/s, FFT overlap-add "
        f"{cost['fft'] * rate / 1e6:.3g} Mflop/s (FFT size {cost['fft_size']}), "
        f"method {loaded.method}"
    )
    for t in loaded.templates:
        rule = f"threshold {t.threshold:g}" if t.mad is None else f"mad {t.mad:g}"
        lines.append(
            f"  template   {t.name}: {t.samples.shape[0]} frames "
            f"({1000 * t.samples.shape[0] / rate:.4g} ms), {_channels(t.samples.shape[1])}, "
            f"{rule}, min_distance {t.min_distance}, {t.combine}"
        )
    for p in loaded.periodicity:
        lines.append(
            f"  periodicity {p.name}: {p.min_period_s:g}..{p.max_period_s:g} s, "
            f"threshold {p.threshold:g}"
        )
    if loaded.detections_path:
        lines.append(f"  detections {loaded.detections_path}")
    if loaded.control_listen:
        lines.append(f"  control    {loaded.control_listen}")
    return "\n".join(lines)
