"""Stream locators (docs/contract.md, "Stream locators") -> sources and sinks.

======================  ====================================================================
``-``                   raw PCM on stdin / stdout (needs format, rate, channels)
``PATH``                audio file by extension (libsndfile); ``.csv`` (needs rate);
                        ``.raw`` / ``.pcm`` raw PCM (needs format, rate, channels)
``device[:NAME|:N]``    a sound device through sounddevice (PortAudio); a lost one is reopened
                        with backoff, in a worker process (`streamconv.io.reopen`)
``pyaudio:N``           the same through PyAudio
``udp://HOST:PORT``     raw PCM datagrams (needs format, rate, channels)
``null``                discard (sink only)
======================  ====================================================================
"""

from __future__ import annotations

import sys

import numpy as np

from streamconv.errors import UsageError
from streamconv.io import csvstream, files
from streamconv.io.base import Sink, Source
from streamconv.io.memory import NullSink
from streamconv.io.pipes import RawSink, RawSource
from streamconv.locator import Locator, parse_locator


def _parse(locator: str | Locator, role: str) -> Locator:
    if isinstance(locator, Locator):
        return locator
    if not locator:
        raise UsageError(f"empty {role} locator")
    return parse_locator(locator)


def open_source(
    locator: str | Locator,
    *,
    sample_rate: float | None = None,
    channels: int | None = None,
    fmt: str | None = None,
    block_size: int = 1024,
    dtype=np.float64,
    stdin=None,
    give_up_s: float | None = None,
    log=None,
    columns: str | None = None,
    file_type: str | None = None,
) -> Source:
    """Open the source a locator names.

    Parameters
    ----------
    locator : str or Locator
        See the module docstring (`streamconv.locator` parses it).
    sample_rate, channels, fmt : optional
        ``--rate``, ``--channels``, ``--format``: needed where the stream does not say them
        (raw PCM, csv, udp); for a device they choose instead of its defaults.
    block_size : int
        Frames per device callback.
    dtype : numpy dtype or "auto"
        float32 or float64, the type of the blocks; ``"auto"``: float32 where it is exact.
    stdin : binary file object, optional
        What ``-`` reads (default ``sys.stdin.buffer``).
    give_up_s : float, optional
        A lost device is reopened with backoff (`streamconv.io.reopen`); after this many
        seconds without it, reading raises `RuntimeFailure`. None: keep trying.
    log : callable, optional
        Takes the one-line reports of a device being lost and reopened (default: stderr).
    columns : str, optional
        ``--columns`` of a ``.csv`` source: its data columns (`streamconv.io.csvstream`).
    file_type : str, optional
        ``--type`` of ``-``: ``raw``, or an audio type (``wav``, ``flac``, ...); None: an
        audio file if the stream starts with a known header (`streamconv.io.audiopipes`).

    Returns
    -------
    Source

    Raises
    ------
    UsageError
        A missing parameter, a missing or unreadable file, an unknown device, ...
    """
    loc = _parse(locator, "input")
    if loc.kind == "null":
        raise UsageError("null: is a sink only; it cannot be read")
    if loc.is_device:
        from streamconv.io.reopen import ReopeningSource

        return ReopeningSource(
            loc.device, sample_rate, channels, block_size, backend=loc.backend or "sounddevice",
            dtype=dtype, give_up_s=give_up_s, log=log,
        )  # fmt: skip
    if loc.kind == "udp":
        from streamconv.io.network import UdpSource

        fmt, sample_rate, channels = files.raw_params(loc.text, fmt, sample_rate, channels)
        return UdpSource(loc.text, fmt, sample_rate, channels, dtype=dtype)
    if loc.kind == "pipe":
        from streamconv.io.audiopipes import open_pipe_source

        stream = stdin if stdin is not None else sys.stdin.buffer
        audio, stream = open_pipe_source(stream, file_type, name="-", dtype=dtype)
        if audio is not None:
            return audio
        fmt, sample_rate, channels = files.raw_params("-", fmt, sample_rate, channels)
        return RawSource(stream, fmt, sample_rate, channels, name="-", dtype=dtype)
    path = loc.uri
    if loc.file_kind == "raw":
        return files.open_raw_file_source(path, fmt, sample_rate, channels, dtype=dtype)
    if loc.file_kind == "csv":
        return csvstream.CsvSource(path, sample_rate, dtype=dtype, columns=columns)
    files.audio_format(path)
    return files.SoundFileSource(path, dtype=dtype)


def open_sink(
    locator: str | Locator,
    *,
    sample_rate: float,
    channels: int,
    fmt: str | None = None,
    subtype: str | None = None,
    block_size: int = 1024,
    stdout=None,
    give_up_s: float | None = None,
    log=None,
    like: Source | None = None,
    float_format: str | None = None,
    file_type: str | None = None,
) -> Sink:
    """Open the sink a locator names.

    Parameters
    ----------
    locator : str or Locator
        See the module docstring (`streamconv.locator` parses it).
    sample_rate : float
        Frames per second of the stream written.
    channels : int
        Samples per frame of the stream written.
    fmt : str, optional
        Raw PCM format (``-``, ``.raw``, udp); for an audio file, the sample type to store
        (``s16le`` -> PCM_16, ``f32le`` -> FLOAT, ...) unless `subtype` says.
    subtype : str, optional
        A libsndfile subtype for audio files.
    block_size : int
        Frames per device callback.
    stdout : binary file object, optional
        What ``-`` writes (default ``sys.stdout.buffer``).
    give_up_s, log : optional
        As for `open_source`: a lost output device is reopened with backoff.
    like : Source, optional
        The stream's source: a ``.csv`` sink writes in the form of a ``.csv`` source (header,
        separator, pass-through columns, precision; `streamconv.io.csvstream`).
    float_format : str, optional
        ``--float-format`` of a ``.csv`` sink: a printf format for its numbers.
    file_type : str, optional
        ``--out-type`` of ``-``: an audio type written to the pipe (``wav``, ``flac``, ``ogg``,
        ``au``; `streamconv.io.pipesinks`), or None/``raw`` for raw PCM.

    Returns
    -------
    Sink
        Output files appear under their name only when the sink is closed.
    """
    loc = _parse(locator, "output")
    if loc.kind == "null":
        return NullSink(sample_rate, channels)
    if loc.is_device:
        from streamconv.io.reopen import ReopeningSink

        return ReopeningSink(
            loc.device, sample_rate, channels, block_size, backend=loc.backend or "sounddevice",
            give_up_s=give_up_s, log=log,
        )  # fmt: skip
    if loc.kind == "udp":
        from streamconv.io.network import UdpSink

        fmt, sample_rate, channels = files.raw_params(
            loc.text, fmt, sample_rate, channels, "--out-format"
        )
        return UdpSink(loc.text, fmt, sample_rate, channels)
    if loc.kind == "pipe":
        stream = stdout if stdout is not None else sys.stdout.buffer
        if file_type not in (None, "raw"):
            from streamconv.io.pipesinks import open_pipe_sink

            subtype = subtype or files.pcm_subtype(fmt)
            return open_pipe_sink(stream, file_type, sample_rate, channels, subtype, name="-")
        fmt, sample_rate, channels = files.raw_params(
            "-", fmt, sample_rate, channels, "--out-format"
        )
        return RawSink(stream, fmt, sample_rate, channels, name="-", flush=True)
    path = loc.uri
    if loc.file_kind == "raw":
        fmt, sample_rate, channels = files.raw_params(
            path, fmt, sample_rate, channels, "--out-format"
        )
        return files.RawFileSink(path, fmt, sample_rate, channels)
    if loc.file_kind == "csv":
        return csvstream.CsvSink(path, sample_rate, channels, like=like, float_format=float_format)
    return files.SoundFileSink(
        path, sample_rate, channels, subtype=subtype or files.pcm_subtype(fmt)
    )
