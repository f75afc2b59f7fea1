"""``streamconv design SPEC``: design one FIR from the command line, as a config would.

SPEC is the filter's ``type`` followed by ``KEY=VALUE`` parameters, the keys of a config's
``[[filters]]`` entry (``streamconv design lowpass cutoff_hz=1000 taps=101``), or one TOML/YAML
file holding such a table. Values are TOML values (``bands_hz=[[0,1000],[2000,8000]]``); a value
that is not TOML is taken as a string (``window=hann``).

The taps go to stdout, one per line, so the output is a taps file for ``--fir``; the properties
(length, group delay, gains at DC and Nyquist, attenuation achieved) go to stderr as ``#``
lines. ``--plot FILE`` draws magnitude in dB and group delay; the extension picks the type
(``.png``, ``.svg``, ``.pdf``).
"""

from __future__ import annotations

import os
import sys
import tempfile

import numpy as np
from pydantic import TypeAdapter, ValidationError

from streamconv.commands._args import key_values
from streamconv.config.models import FILTER_TYPES, Filter, keys_of_type
from streamconv.config.parse import did_you_mean, format_path, read_document
from streamconv.dsp.design import analyze, design, design_bands, frequency_response
from streamconv.errors import CommandLineError, UsageError
from streamconv.io.arrays import read_array

_ADAPTER = TypeAdapter(Filter)


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "design",
        help="design a FIR filter, print its taps and properties",
        description="Design one FIR filter from TYPE KEY=VALUE... (the keys of a config's "
        "[[filters]] entry) or from a TOML/YAML file holding one such table. Taps go to stdout "
        "one per line; properties go to stderr.",
        epilog="example: streamconv design lowpass cutoff_hz=1000 transition_hz=200 "
        "attenuation_db=80 --rate 48000 --plot lp.png > lp.txt",
    )
    parser.add_argument("spec", nargs="+", metavar="SPEC", help="TYPE [KEY=VALUE ...] or FILE")
    parser.add_argument(
        "--rate", type=float, default=48000.0, help="sample rate in Hz (default 48000)"
    )
    parser.add_argument(
        "--plot",
        metavar="FILE",
        help="plot magnitude and group delay to FILE (.png, .svg or .pdf, by its extension)",
    )
    parser.set_defaults(run=run)


#: What a SPEC file ends in.
SPEC_FILES = (".toml", ".yaml", ".yml")


def parse_spec(tokens: list[str]) -> dict:
    """``["lowpass", "cutoff_hz=1000"]`` or ``["spec.toml"]`` -> a filter table."""
    first = tokens[0]
    if _spec_file(tokens):
        data, _ = read_document(first)
        return data
    if "=" in first:
        return key_values(tokens, "design:")
    spec = key_values(tokens[1:], "design:")
    if "type" in spec:
        raise CommandLineError(f"design: type: given twice ({first!r} and {spec['type']!r})")
    return {"type": first, **spec}


def _spec_file(tokens: list[str]) -> bool:
    """Whether SPEC names a spec file (whose mistakes are the file's, not the command line's)."""
    return len(tokens) == 1 and os.path.splitext(tokens[0])[1].lower() in SPEC_FILES


def _validate(spec: dict, mistake: type[UsageError] = UsageError):
    designable = [t for t in FILTER_TYPES if t != "mix"]
    try:
        flt = _ADAPTER.validate_python(spec)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            loc = [p for p in err["loc"] if p not in FILTER_TYPES]
            key = format_path(tuple(loc)) or "type"
            if err["type"] == "extra_forbidden":
                message = "unknown key" + did_you_mean(loc[-1], keys_of_type(spec.get("type")))
            elif err["type"] == "missing":
                message = "required key is missing"
            elif err["type"] == "union_tag_invalid":
                kind = spec.get("type")
                message = f"unknown filter type {kind!r}{did_you_mean(kind, designable)}; "
                message += "known: " + ", ".join(designable)
            elif err["type"].startswith("union_tag"):
                message = "give a filter type: " + ", ".join(designable)
            else:
                message = err["msg"].removeprefix("Value error, ")
            problems.append(f"{key}: {message}")
        raise mistake("design: " + "; ".join(problems)) from None
    if flt.type == "mix":
        raise mistake("design: type: mix is a channel routing matrix, not a filter")
    return flt


def design_taps(flt, sample_rate: float, mistake: type[UsageError] = UsageError) -> np.ndarray:
    """Taps of a validated filter model (``file`` paths relative to the working directory);
    `mistake` is raised for parameters the designer refuses."""
    if flt.type == "file":
        data, file_rate = read_array(flt.path)
        if file_rate is not None and file_rate != sample_rate:
            raise UsageError(
                f"{flt.path}: impulse response is {file_rate:g} Hz, --rate is {sample_rate:g} Hz"
            )
        if flt.column is None and data.shape[1] > 1:
            raise UsageError(f"{flt.path} has {data.shape[1]} columns; choose one with column=N")
        column = flt.column or 0
        if column >= data.shape[1]:
            raise UsageError(f"design: column: {flt.path} has {data.shape[1]} column(s)")
        return data[:, column]
    try:
        return design(flt.type, sample_rate, **flt.design_params())
    except ValueError as exc:
        raise mistake(f"design: {exc}") from None


def _db(value: float) -> str:
    return f"{round(value, 3) + 0.0:.3f}"  # + 0.0: no "-0.000"


def _properties(flt, h: np.ndarray, rate: float) -> tuple[list[str], list, list]:
    params = flt.design_params() if flt.type != "file" else {}
    passes, stops = design_bands(flt.type, rate, **params)
    info = analyze(h, rate, stopbands=stops, passbands=passes)
    delay = info["group_delay_samples"]
    lines = [
        f"type: {flt.type}",
        f"sample rate: {rate:g} Hz",
        f"length: {info['length']} taps",
        f"linear phase: {'yes' if info['linear_phase'] else 'no'}",
        f"group delay: {delay:g} samples ({1000 * delay / rate:.4g} ms)",
        f"gain at DC: {_db(info['gain_dc_db'])} dB",
        f"gain at Nyquist: {_db(info['gain_nyquist_db'])} dB",
    ]
    if info["attenuation_db"] is not None:
        bands = ", ".join(f"{lo:g}-{hi:g} Hz" for lo, hi in stops)
        asked = getattr(flt, "attenuation_db", None)
        asked_text = f" (asked {asked:g} dB)" if asked else ""
        lines.append(f"stopband: {bands}: attenuation {info['attenuation_db']:.2f} dB{asked_text}")
    return lines, passes, stops


#: Plot file types, by extension (matplotlib's Agg, SVG and PDF back ends).
PLOT_FORMATS = ("png", "svg", "pdf")


def plot_format(path: str) -> str:
    """The plot type of a path's extension, or `CommandLineError` naming the path."""
    ext = os.path.splitext(path)[1].lower().lstrip(".")
    if ext not in PLOT_FORMATS:
        raise CommandLineError(
            f"{path}: unknown plot type {('.' + ext) if ext else '(no extension)'} "
            f"(expected {', '.join('.' + f for f in PLOT_FORMATS)})"
        )
    return ext


def plot_response(h: np.ndarray, rate: float, path: str, title: str, stops=()) -> None:
    """Write magnitude (dB) and group delay (samples) against frequency (Hz) to a PNG, SVG or
    PDF file, by the path's extension."""
    fmt = plot_format(path)
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise UsageError("--plot needs matplotlib: pip install 'streamconv[plot]'") from None
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise UsageError(f"{path}: no such directory {directory}")
    freqs, resp, delay = frequency_response(h, rate)
    with np.errstate(divide="ignore"):
        mag_db = 20 * np.log10(np.abs(resp))
    fig, (ax1, ax2) = plt.subplots(2, 1, sharex=True, figsize=(8, 6))
    ax1.plot(freqs, np.maximum(mag_db, -200))
    for lo, hi in stops:
        ax1.axvspan(lo, hi, color="0.9")
    ax1.set_ylabel("magnitude (dB)")
    ax1.set_title(title)
    ax1.grid(True, alpha=0.3)
    ax2.plot(freqs, delay)
    finite = delay[np.isfinite(delay)]
    if len(finite) and np.ptp(finite) < 1.0:  # linear phase: a flat line, not rounding noise
        middle = float(np.median(finite))
        ax2.set_ylim(middle - 1, middle + 1)
    ax2.ticklabel_format(axis="y", useOffset=False)
    ax2.set_ylabel("group delay (samples)")
    ax2.set_xlabel("frequency (Hz)")
    ax2.grid(True, alpha=0.3)
    fig.tight_layout()
    fd, tmp = tempfile.mkstemp(suffix="." + fmt, prefix=".design-", dir=directory)
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; a plot is an ordinary file
    try:
        fig.savefig(tmp, format=fmt, dpi=100)
        os.replace(tmp, path)
    except OSError as exc:
        raise UsageError(f"{path}: cannot write the plot ({exc.strerror or exc})") from None
    finally:
        plt.close(fig)
        if os.path.exists(tmp):
            os.unlink(tmp)


def run(args) -> int:
    if not args.rate > 0:
        raise CommandLineError(f"--rate must be positive, got {args.rate:g}")
    if args.plot:
        plot_format(args.plot)  # before the design work
    mistake = UsageError if _spec_file(args.spec) else CommandLineError
    flt = _validate(parse_spec(args.spec), mistake)
    h = design_taps(flt, args.rate, mistake)
    lines, _, stops = _properties(flt, h, args.rate)
    if args.plot:
        plot_response(h, args.rate, args.plot, " ".join(args.spec), stops)
    for line in lines:
        print(f"# {line}", file=sys.stderr)
    sys.stdout.write("".join(f"{v:.17g}\n" for v in h))
    return 0
