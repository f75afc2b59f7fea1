"""``streamconv filter``: run a stream through an FIR filter, block by block."""

from __future__ import annotations

import argparse
import sys

from streamconv.commands._args import (
    block_frames,
    non_negative_float,
    positive_float,
    positive_int,
)
from streamconv.errors import CommandLineError, UsageError
from streamconv.io.pcm import PCM_FORMATS

METHODS = ("auto", "direct", "ola", "partitioned")
REOPEN_S = 30.0
# The defaults of streamconv.runner, repeated for --help: importing it costs start-up here.
LIVE_BLOCK = 1024
FILE_BLOCK = 16384


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
        help="what - carries: raw (PCM) or an audio file type: wav, flac, ogg, opus, aiff, au, "
        "w64, caf, rf64 (default: the type its header shows, else raw)",
    )
    group.add_argument(
        "--out-type",
        metavar="TYPE",
        help="what -o - carries: raw, wav, flac, ogg, opus or au (default --type; else the input's "
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
        type=block_frames,
        help=f"frames per block (default: the config's [processing] block_size with -c; else "
        f"{LIVE_BLOCK}, and from file to file {FILE_BLOCK} or the filter's length when longer)",
    )
    parser.add_argument("--tail", action="store_true", help="append the L-1 frames of the tail")
    parser.add_argument(
        "--method", choices=METHODS,
        help="convolution engine (default: the config's with -c, else auto)",
    )  # fmt: skip
    parser.add_argument(
        "--subtype", metavar="SUBTYPE",
        help="sample type of an output audio file, a libsndfile name (PCM_16, PCM_24, FLOAT, "
        "...); default: the input's when the file type holds it",
    )  # fmt: skip
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


def _from_config(args):
    """The config's filter chain and ``[processing]``; the stream options it fills in."""
    from streamconv.config import load_config

    loaded = load_config(args.config)
    source, sink = loaded.source, loaded.sink
    args.format = args.format or source.format
    args.out_format = args.out_format or sink.format
    args.subtype = args.subtype or getattr(loaded.config.sink, "subtype", None)
    args.rate = args.rate or source.rate
    args.channels = args.channels or source.channels
    args.block = args.block or loaded.block_size
    args.method = args.method or loaded.method
    return loaded.compact_taps(), loaded.sample_rate, args.config


def run(args) -> int:
    from streamconv.commands._applies import refuse_unused
    from streamconv.io.audiopipes import check_type
    from streamconv.io.taps import load_taps
    from streamconv.progress import RunProgress
    from streamconv.runner import Endpoint, Runner, clip_warning, stop_on_signals

    _refuse_overwriting_the_input(args.input, args.output)
    asked = argparse.Namespace(**vars(args))  # as given, before a config fills options in
    if args.config is not None:
        taps, taps_rate, origin = _from_config(args)
    else:
        (taps, taps_rate), origin = load_taps(args.fir), args.fir
    runner = Runner(
        Endpoint(
            args.input,
            args.format,
            args.rate,
            args.channels,
            columns=args.columns,
            file_type=check_type(args.type),
        ),
        Endpoint(
            args.output,
            args.out_format or args.format,
            subtype=args.subtype,
            float_format=args.float_format,
            file_type=check_type(args.out_type, "--out-type") or check_type(args.type),
        ),
        taps=taps,
        block_size=args.block,
        method=args.method or "auto",
        give_up_s=args.reopen,
        duration_s=args.duration,
        tail=args.tail,
        fft_measure=args.fft_measure,
        taps_name=origin,
        taps_rate=taps_rate,
    )
    live = runner.source_kind in ("device", "udp")
    progress = RunProgress(args.quiet or live)  # a bar on a terminal's stderr, not for devices
    runner.observers.append(progress)
    runner.open()
    try:
        refuse_unused(asked, runner.source)
    except UsageError:
        runner.abort()
        raise
    if runner.wisdom_saved:
        print(f"streamconv filter: FFT plans measured, wisdom saved to {runner.wisdom_saved}",
              file=sys.stderr)  # fmt: skip
    with stop_on_signals(runner):  # Ctrl-C ends the input; the output is kept (exit 130)
        try:
            result = runner.run()
        finally:
            progress.close()
    _report(result, args.stats or runner.source_endpoint.kind == "device"
            or runner.sink_endpoint.kind == "device", clip_warning)  # fmt: skip
    return 130 if result.stopped else 0


def _refuse_overwriting_the_input(source: str, sink: str) -> None:
    """``-o`` naming the ``-i`` file (by any spelling) is refused, as a config whose sink is its
    source is, and as ffmpeg refuses it: filtering a file into itself is more often a slip
    than meant, and a sox user who meant it writes another file and renames it."""
    from streamconv.locator import parse_locator, same_file

    try:
        same = same_file(parse_locator(source), parse_locator(sink))
    except ValueError:
        return  # a malformed locator: the runner says what is wrong with it
    if same:
        raise CommandLineError(
            f"{sink}: is the input file; the output would overwrite the input "
            "(write another file, then rename it)"
        )


def _report(result, verbose: bool, clip_warning) -> None:
    warning = clip_warning(result.sink, result.clipped)
    if warning:
        print(warning, file=sys.stderr)
    if verbose:
        counts = {f"{result.source} {k}": v for k, v in result.source_stats.items()}
        counts.update({f"{result.sink} {k}": v for k, v in result.sink_stats.items()})
        parts = [f"{result.frames_in} frames in", f"{result.frames_out} frames out"]
        parts += [f"{name}={value}" for name, value in counts.items()]
        print(f"streamconv filter: {', '.join(parts)}", file=sys.stderr)
