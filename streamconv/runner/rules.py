"""The rules a run opens its ends by: block size, sample type, sink format (`streamconv.runner`).

Pure functions of the two ends' locators and formats, so ``streamconv check`` and the service's
reload apply the same rules as a run.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from streamconv.io import files
from streamconv.io.base import Source
from streamconv.locator import file_kind, parse_locator

#: Frames per block from file to file: nobody waits for a block, and large blocks make the FFT
#: engines cheaper ...
FILE_BLOCK = 16384
#: ... up to this, for filters longer than `FILE_BLOCK`.
MAX_FILE_BLOCK = 1 << 18
#: Frames per block when an end is live (a pipe, a device, udp).
LIVE_BLOCK = 1024
#: Frames per read of a file source's read-ahead thread: fewer thread hand-overs.
READ_AHEAD_FRAMES = 65536
#: The loop has control back at least this often, in seconds, even from a silent source.
TICK_S = 0.25

# Sample formats float32 cannot carry to the sink exactly enough: the filter runs in float64.
_WIDE_SUBTYPES = {"PCM_24", "PCM_32", "DOUBLE", "ALAC_20", "ALAC_24", "ALAC_32"}
_WIDE_PCM = {"s32le", "f64le"}


def endpoint_kind(uri: str) -> str:
    """``"pipe"`` (``-``), ``"null"``, ``"udp"``, ``"device"`` (``device...``, ``pyaudio:``)
    or ``"file"``: what decides the block size and the threads of a run
    (`streamconv.locator.parse_locator`; `LocatorError` for a malformed one)."""
    loc = parse_locator(uri)
    return "device" if loc.is_device else loc.kind


def block_size_for(source_uri: str, sink_uri: str, taps: int) -> int:
    """The block size when none is given (see the module docstring).

    Parameters
    ----------
    source_uri, sink_uri : str
        The locators of the two ends.
    taps : int
        Length of the filter.
    """
    return _block_for_kinds(endpoint_kind(source_uri), endpoint_kind(sink_uri), taps)


def _block_for_kinds(source_kind: str, sink_kind: str, taps: int) -> int:
    if source_kind == "file" and sink_kind in ("file", "null"):
        # 65536 taps: one FFT block per call, 1.4x as fast as 16384.
        return min(max(FILE_BLOCK, 1 << max(taps - 1, 0).bit_length()), MAX_FILE_BLOCK)
    return LIVE_BLOCK


@dataclasses.dataclass(frozen=True)
class Endpoint:
    """One end of a run: a stream locator and what raw streams need.

    Attributes
    ----------
    uri : str
        ``-``, a path, ``device[:NAME|:N]``, ``pyaudio:N``, ``udp://HOST:PORT``, ``null``.
    format : str, optional
        Raw PCM format (``s16le``, ``s32le``, ``f32le``, ``f64le``); of a sink audio file, the
        sample type to store (``s16le`` -> ``PCM_16``, ...).
    rate : float, optional
        Sample rate where the stream does not carry it (raw, csv, udp, devices).
    channels : int, optional
        Channels where the stream does not carry them.
    subtype : str, optional
        A sink audio file's libsndfile subtype (``PCM_16``, ``PCM_24``, ``FLOAT``, ...).
    columns : str, optional
        A source ``.csv`` file's data columns (``filter --columns``).
    float_format : str, optional
        A sink ``.csv`` file's printf format for numbers (``filter --float-format``).
    file_type : str, optional
        What ``-`` carries: ``raw`` PCM or an audio file type (``wav``, ``flac``, ...;
        `streamconv.io.audiopipes`). None: raw PCM when a raw ``format`` is given, else a
        source looks at the stream's header and a sink carries the source's audio type.
    """

    uri: str
    format: str | None = None
    rate: float | None = None
    channels: int | None = None
    subtype: str | None = None
    columns: str | None = None
    float_format: str | None = None
    file_type: str | None = None

    @property
    def audio_pipe(self) -> bool:
        """An audio file on ``-`` (not raw PCM)."""
        return self.kind == "pipe" and self.file_type not in (None, "raw")

    @property
    def kind(self) -> str:
        return endpoint_kind(self.uri)


def _endpoint(value: Endpoint | str) -> Endpoint:
    return value if isinstance(value, Endpoint) else Endpoint(str(value))


def source_subtype(source: Source, endpoint: Endpoint) -> str | None:
    """The source's sample format as a libsndfile subtype, or None if it has none to keep."""
    kind = endpoint.kind
    if kind == "device":
        return "FLOAT"
    subtype = getattr(source, "subtype", None)
    if subtype is not None:  # audio files, also on a pipe
        return subtype
    if kind in ("pipe", "udp") or (kind == "file" and file_kind(endpoint.uri) == "raw"):
        return files.pcm_subtype(endpoint.format)
    if kind == "file" and file_kind(endpoint.uri) == "csv":
        return "DOUBLE"
    return getattr(source, "subtype", None)


def sink_subtype(sink: Endpoint, source_subtype: str | None) -> str | None:
    """The libsndfile subtype an audio-file sink gets (None for other sinks, or the type's
    default): ``sink.subtype``, else the one of ``sink.format``, else the source's when the
    file type can hold it."""
    if sink.audio_pipe:  # the pipe's writer takes the type's default where it must
        return sink.subtype or source_subtype
    if sink.kind != "file" or file_kind(sink.uri) != "audio":
        return None
    if sink.subtype is not None:
        return sink.subtype
    if sink.format is not None:
        return files.pcm_subtype(sink.format)
    if source_subtype is None:
        return None
    import soundfile as sf

    return source_subtype if sf.check_format(files.audio_format(sink.uri), source_subtype) else None


def work_dtype(source_dtype, sink: Endpoint, subtype: str | None) -> np.dtype:
    """float32 when the source is float32 and the sink keeps at most float32 precision."""
    if np.dtype(source_dtype) != np.float32:
        return np.dtype(np.float64)
    kind = sink.kind
    if kind in ("device", "null"):
        return np.dtype(np.float32)
    if sink.audio_pipe:
        return np.dtype(np.float64 if subtype in _WIDE_SUBTYPES else np.float32)
    if kind == "file" and file_kind(sink.uri) == "csv":
        return np.dtype(np.float32)  # text with as many digits as the samples carry
    if kind == "file" and file_kind(sink.uri) == "audio":
        if subtype is None:
            import soundfile as sf

            subtype = sf.default_subtype(files.audio_format(sink.uri))
        wide = subtype in _WIDE_SUBTYPES
    else:
        wide = sink.format in _WIDE_PCM
    return np.dtype(np.float64 if wide else np.float32)


def clip_warning(sink: str, clipped: int) -> str | None:
    """The warning line both commands print at the end when samples were clipped."""
    if not clipped:
        return None
    return f"warning: {sink}: {clipped} samples clipped"
