"""``streamconv filter``: run a stream through an FIR filter, block by block."""

from __future__ import annotations

import argparse
import sys

from streamconv.commands._args import non_negative_float, positive_float, positive_int
from streamconv.errors import UsageError
from streamconv.io import files, open_sink, open_source
from streamconv.io.audiopipes import check_type, type_of
from streamconv.io.background import ReadAhead, WriteBehind
from streamconv.io.pcm import PCM_FORMATS
from streamconv.io.taps import load_taps, taps_channels

METHODS = ("auto", "direct", "ola", "partitioned")
LIVE_BLOCK = 1024
REOPEN_S = 30.0
# From file to file nobody waits for a block, and large blocks make the FFT engines cheaper.
FILE_BLOCK = 16384
MAX_FILE_BLOCK = 1 << 18
READ_AHEAD_FRAMES = 65536  # per read of the read-ahead thread: fewer thread hand-overs


def add_stream_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``--rate/--channels/--format`` options raw streams need (shared by commands)."""
    group = parser.add_argument_group("raw streams (-, .raw/.pcm, .csv, udp://)")
    group.add_argument("--rate", type=positive_float, help="sample rate in Hz")
    group.add_argument("--channels", type=positive_int, help="channels per frame")
    group.add_argument(
        "--format",
        metavar="FMT",
        help=f"raw PCM sample format: {', '.join(PCM_FORMATS)} (also the output's)",
    )
    group.add_argument(
        "--out-format", metavar="FMT", help="output sample format (default --format)"
    )
    group.add_argument(
        "--type",
        metavar="TYPE",
        help="what - carries: raw (PCM) or an audio file type: wav, flac, ogg, aiff, au, w64, "
        "caf, rf64 (default: the type its header shows, else raw)",
    )
    group.add_argument(
        "--out-type",
        metavar="TYPE",
        help="what -o - carries: raw, wav, flac, ogg or au (default --type; else the input's "
        "audio type; else raw)",
    )
    csv = parser.add_argument_group(
        ".csv files",
        "A .csv output of a .csv input keeps its header, separator (, ; or tab), other "
        "columns (a time stamp: passed through untouched) and precision.",
    )
    csv.add_argument(
        "--columns",
        metavar="A,B",
        help="the data columns to filter, by header name or 1-based number (default: every "
        "column of numbers not named like a time)",
    )
    csv.add_argument(
        "--float-format",
        metavar="FMT",
        help="printf format of the numbers written (default: the input's decimals), e.g. %%.6f",
    )


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "filter",
        help="filter a stream through an FIR (files, pipes, devices, udp)",
        description=(
            "Filter a stream through an FIR filter. Output frames = input frames; --tail adds "
            "the L-1 frames of the filter's tail. Locators: - (raw PCM on stdin/stdout), a file "
            "(.wav .flac .ogg .aiff ..., .csv, .raw/.pcm), device[:NAME|:INDEX], pyaudio:INDEX, "
            "udp://HOST:PORT, null (output only)."
        ),
    )
    parser.add_argument("-i", "--input", required=True, metavar="IN", help="input locator")
    parser.add_argument("-o", "--output", required=True, metavar="OUT", help="output locator")
    taps = parser.add_mutually_exclusive_group(required=True)
    taps.add_argument(
        "--fir", metavar="FILE", help="taps: .txt/.csv (a column per channel), .npy, or audio IR"
    )
    taps.add_argument("-c", "--config", metavar="CONFIG", help="filters from a config file")
    parser.add_argument(
        "--block",
        type=positive_int,
        help=f"frames per block (default {LIVE_BLOCK}; from file to file {FILE_BLOCK}, or the "
        "filter's length when longer)",
    )
    parser.add_argument("--tail", action="store_true", help="append the L-1 frames of the tail")
    parser.add_argument("--method", choices=METHODS, default="auto", help="convolution engine")
    parser.add_argument(
        "--fft-measure",
        action="store_true",
        help="measure the FFT plans this job needs (seconds, once per machine and size) and "
        "save them for later runs, which are then 25-35%% faster in their FFTs",
    )
    parser.add_argument(
        "--duration", type=positive_float, metavar="S", help="stop after S seconds of input"
    )
    parser.add_argument(
        "--stats", action="store_true", help="print frame, overflow and clipping counts at the end"
    )
    parser.add_argument(
        "--reopen", type=non_negative_float, default=REOPEN_S, metavar="S",
        help=f"reopen a lost device with backoff for up to S seconds, then exit 1 "
        f"(default {REOPEN_S:g}; 0: exit 1 at once)",
    )  # fmt: skip
    add_stream_arguments(parser)
    parser.set_defaults(run=run)


def _file_block(taps: int) -> int:
    """Frames per block from file to file: `FILE_BLOCK`, or the filter's length rounded up to
    a power of two when longer (65536 taps: one FFT block per call, 1.4x as fast as 16384)."""
    return min(max(FILE_BLOCK, 1 << (taps - 1).bit_length()), MAX_FILE_BLOCK)


def _is_file(locator: str) -> bool:
    return locator not in ("-", "null") and not _is_device(locator) and "://" not in locator


def _is_device(locator: str) -> bool:
    return locator.split(":", 1)[0] in ("device", "pyaudio")


def _taps_from_config(args):
    """The config's filter chain as taps, at its rate; raw-stream options it fills in."""
    from streamconv.config import load_config

    loaded = load_config(args.config)
    source, sink = loaded.source, loaded.sink
    args.format = args.format or source.format
    args.out_format = args.out_format or sink.format
    args.rate = args.rate or source.rate
    args.channels = args.channels or source.channels
    args.fir = args.config  # names the taps' origin in messages
    return loaded.compact_taps(), loaded.sample_rate


def run(args) -> int:
    if args.config is not None:
        taps, taps_rate = _taps_from_config(args)
    else:
        taps, taps_rate = load_taps(args.fir)
    in_channels, out_channels = taps_channels(taps)
    device_in = _is_device(args.input)
    if args.block is None:
        files_only = all(_is_file(x) for x in (args.input, args.output))
        args.block = _file_block(len(taps)) if files_only else LIVE_BLOCK
    src = open_source(
        args.input,
        sample_rate=args.rate or (taps_rate if device_in else None),
        channels=args.channels or (in_channels if device_in else None),
        fmt=args.format,
        block_size=args.block,
        dtype="auto",
        give_up_s=args.reopen,
        columns=getattr(args, "columns", None),
        file_type=check_type(getattr(args, "type", None)),
    )
    with src:
        if taps_rate is not None and taps_rate != src.sample_rate:
            raise UsageError(
                f"{args.fir}: the filters are for {taps_rate:g} Hz, "
                f"the input {args.input} at {src.sample_rate:g} Hz"
            )
        if in_channels is not None and in_channels != src.channels:
            raise UsageError(
                f"{args.fir}: taps for {in_channels} channels, "
                f"the input {args.input} has {src.channels}"
            )
        conv = _convolver(taps, src, args)
        sink = open_sink(
            args.output,
            sample_rate=src.sample_rate,
            channels=out_channels or src.channels,
            fmt=args.out_format or args.format,
            subtype=_same_subtype(src, args.output) if not args.out_format else None,
            file_type=_out_type(args, src),
            block_size=args.block,
            give_up_s=args.reopen,
            like=src,
            float_format=getattr(args, "float_format", None),
        )
        reader = src
        if _is_file(args.input) and _is_file(args.output):
            # Read ahead and write behind in threads: file I/O overlaps the filtering.
            reader = ReadAhead(src, max(args.block, READ_AHEAD_FRAMES))
            sink = WriteBehind(sink)
        with reader:
            interrupted = _run(reader, sink, conv, args)
    _report(reader, sink, args.stats or _is_device(args.output) or device_in)
    return 130 if interrupted else 0


def _convolver(taps, src, args):
    """The filter, its FFTs planned from saved wisdom, or measured and saved (--fft-measure)."""
    from streamconv import wisdom
    from streamconv.dsp import fftw
    from streamconv.dsp.convolve import Convolver

    wisdom.load()
    fftw.measure_plans(args.fft_measure)
    # The source's precision: float32 for 16-bit and float32 data (exact, and twice as fast).
    conv = Convolver(
        taps.astype(src.dtype), block_size=args.block, method=args.method, channels=src.channels
    )
    if args.fft_measure and (path := wisdom.save()):
        print(f"streamconv filter: FFT plans measured, wisdom saved to {path}", file=sys.stderr)
    return conv


def _run(src, sink, conv, args) -> bool:
    """Pump blocks; return True if interrupted (Ctrl-C ends the input, the output is kept)."""
    limit = None if args.duration is None else round(args.duration * src.sample_rate)
    interrupted = False
    with sink:
        try:
            while limit is None or src.frames_read < limit:
                want = args.block if limit is None else min(args.block, limit - src.frames_read)
                x = src.read(want)
                if not len(x):
                    break
                sink.write(conv.process(x))
        except KeyboardInterrupt:
            interrupted = True
        if args.tail:
            sink.write(conv.flush())
    return interrupted


def _out_type(args, src) -> str | None:
    """What ``-o -`` carries: --out-type, --type, else the input's audio type unless a raw
    --format/--out-format was asked for, else raw."""
    if args.output != "-":
        return None
    asked = check_type(getattr(args, "out_type", None), "--out-type")
    asked = asked or check_type(getattr(args, "type", None))
    if asked:
        return asked
    if args.format or args.out_format:
        return "raw"
    return type_of(src) or "raw"


def _same_subtype(src, output: str) -> str | None:
    """Keep the input file's sample type for an output audio file when it can hold it."""
    subtype = getattr(src, "subtype", None)
    if subtype is None or (output != "-" and files.file_kind(output) != "audio"):
        return None
    if output == "-":
        return subtype
    import soundfile as sf

    try:
        return subtype if sf.check_format(files.audio_format(output), subtype) else None
    except UsageError:
        return None


def _report(src, sink, verbose: bool) -> None:
    counts = {f"{src.name} {k}": v for k, v in src.stats().items()}
    counts.update({f"{sink.name} {k}": v for k, v in sink.stats().items()})
    if sink.clipped:
        print(f"warning: {sink.name}: {sink.clipped} samples clipped", file=sys.stderr)
    if verbose:
        parts = [f"{src.frames_read} frames in", f"{sink.frames_written} frames out"]
        parts += [f"{name}={value}" for name, value in counts.items()]
        print(f"streamconv filter: {', '.join(parts)}", file=sys.stderr)
