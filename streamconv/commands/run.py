"""``streamconv run -c CONFIG``: the service (docs/contract.md, "The service")."""

from __future__ import annotations

import sys


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "run",
        help="the service: source -> filters -> sink, detectors -> detection log, control API",
        description=(
            "Run the service a config describes until the source ends or SIGTERM/SIGINT "
            "(both flush and exit 0). SIGHUP reloads the config; a bad one is logged and the "
            "running one stays. Detections go to the detection log and to stderr (not with -q, "
            "which also leaves out the ready:/running: lines and the summary)."
        ),
    )
    parser.add_argument("-c", "--config", required=True, metavar="CONFIG", help="config file")
    parser.set_defaults(run=run)


def run(args) -> int:
    from streamconv import wisdom
    from streamconv.daemon import Service

    # FFT plans measured by an earlier `filter --fft-measure`, if any; said in the log, as an
    # operator otherwise cannot tell whether the service found them.
    if wisdom.load() and not args.quiet:
        print(f"fftw wisdom: loaded {wisdom.wisdom_path()}", file=sys.stderr, flush=True)
    return Service(args.config, quiet=args.quiet).run()
