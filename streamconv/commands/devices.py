"""``streamconv devices``: list the sound devices PortAudio sees."""

from __future__ import annotations

import json

from streamconv.io.devices import list_devices


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "devices",
        help="list input and output sound devices",
        description=(
            "List the sound devices PortAudio sees, with their index, for the device:INDEX, "
            "device:NAME and pyaudio:INDEX locators."
        ),
    )
    parser.add_argument(
        "--backend",
        choices=("sounddevice", "pyaudio"),
        default="sounddevice",
        help="which PortAudio binding to ask (default sounddevice)",
    )
    parser.add_argument(
        "--json", action="store_true", help="print a JSON array of devices ([] when none)"
    )
    parser.set_defaults(run=run)


def run(args) -> int:
    devices = list_devices(args.backend)
    if args.json:
        print(json.dumps(devices, indent=1))
        return 0
    if not devices:
        print("no sound devices found")
        return 0
    print(f"{'index':>5}  {'in':>3}  {'out':>3}  {'rate':>7}  {'host API':<28}  name")
    for d in devices:
        print(
            f"{d['index']:>5}  {d['inputs']:>3}  {d['outputs']:>3}  {d['sample_rate']:>7g}  "
            f"{d['hostapi']:<28}  {d['name']}"
        )
    return 0
