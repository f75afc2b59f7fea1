"""Audio files written to pipes: ``-o -`` as WAV, FLAC, Ogg or AU, as sox writes them.

``-o -`` writes an audio file when ``--out-type`` (or ``--type``) names one, or when it is not
given and the input is an audio file or stream (the same type). A pipe cannot be rewound to fill
in the length at the end, so:

- **wav** is written as sox writes it to a pipe: the RIFF and data sizes say ``0x7ffff000``
  bytes of audio (the most a reader takes as "until the end"), the samples follow at once;
  PCM 16/24/32-bit or IEEE float 32/64 (``WAVE_FORMAT_IEEE_FLOAT`` with a ``fact`` chunk).
- **flac**, **ogg** and **au** stream as they are; FLAC's STREAMINFO says "length unknown"
  (as ``flac -`` writes it) since the rewrite at the end is dropped.
- Formats whose header must hold the length (aiff, caf, w64, rf64) are refused on a pipe.
"""

from __future__ import annotations

import struct

import numpy as np
import soundfile as sf

from streamconv.errors import CommandLineError, RuntimeFailure, UsageError
from streamconv.io import pcm
from streamconv.io.audiopipes import _SOX_UNKNOWN, PIPE_WRITABLE, TYPES
from streamconv.io.base import Sink
from streamconv.io.files import _INT_SUBTYPES, SoundFileSink


class _PipeWriter:
    """A pipe as libsndfile's virtual file for writing: seeks are taken, but what would be
    written anywhere but at the end (a header rewritten at close) is dropped."""

    def __init__(self, stream):
        self._stream = stream
        self._written = 0
        self._pos = 0
        self.reader_gone = False  # the reading end was closed (EPIPE)

    def write(self, data) -> int:
        # libsndfile calls this through a cffi callback: an exception raised here would only be
        # printed as a traceback ("Exception ignored from cffi callback") and libsndfile would
        # report some error of its own, so a closed pipe is noted and said by the sink.
        n = len(data)
        if self.reader_gone:
            return 0
        if self._pos == self._written:
            try:
                self._stream.write(bytes(data))
            except BrokenPipeError:
                self.reader_gone = True
                return 0
            self._written += n
        self._pos += n
        return n

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = 0) -> int:
        base = (0, self._pos, self._written)[whence]
        self._pos = base + offset
        return self._pos

    def read(self, n: int) -> bytes:
        return b""


class PipeSoundFileSink(SoundFileSink):
    """FLAC, Ogg or AU written to a pipe through libsndfile (integers quantized as for files)."""

    def __init__(self, stream, kind: str, sample_rate, channels, subtype=None, name="-"):
        self.name = name
        self.sample_rate = float(sample_rate)
        self.channels = int(channels)
        self.clipped = 0
        self._stream = stream
        fmt = TYPES[kind]
        if subtype is not None and not sf.check_format(fmt, subtype):
            subtype = None  # the input's sample type does not fit: the format's default
        if kind == "opus":
            subtype = "OPUS"
        self._pipe = _PipeWriter(stream)
        try:
            self._file = sf.SoundFile(
                self._pipe, "w", samplerate=round(sample_rate),
                channels=self.channels, format=fmt, subtype=subtype,
            )  # fmt: skip
        except (sf.LibsndfileError, RuntimeError, ValueError) as exc:
            if self._pipe.reader_gone:
                raise self._reader_gone_error() from None
            raise UsageError(f"{name}: cannot write a {kind} stream: {exc}") from None
        self.subtype = self._file.subtype
        self._int_bits = _INT_SUBTYPES.get(self.subtype)

    def _reader_gone_error(self) -> RuntimeFailure:
        return RuntimeFailure(f"{self.name}: the reading end of the pipe was closed")

    def _write(self, block):
        try:
            super()._write(block)
        except BrokenPipeError:
            raise self._reader_gone_error() from None
        except Exception:  # libsndfile's words for the short write, or soundfile's assert
            if self._pipe.reader_gone:
                raise self._reader_gone_error() from None
            raise
        if self._pipe.reader_gone:  # libsndfile may take a short write without an error
            raise self._reader_gone_error()

    def _commit(self) -> None:
        try:
            self._file.close()
            self._stream.flush()
        except BrokenPipeError:
            raise self._reader_gone_error() from None
        if self._pipe.reader_gone:
            raise self._reader_gone_error()

    def _discard(self) -> None:
        try:
            self._file.close()
        except Exception:  # the job already failed: keep its error
            pass


#: WAV sample types on a pipe: subtype -> (format tag, bits, raw PCM format or None for 24).
_WAV_SUBTYPES = {
    "PCM_16": (1, 16, "s16le"),
    "PCM_24": (1, 24, None),
    "PCM_32": (1, 32, "s32le"),
    "FLOAT": (3, 32, "f32le"),
    "DOUBLE": (3, 64, "f64le"),
}


def wav_header(sample_rate: int, channels: int, subtype: str) -> bytes:
    """A WAV header for a stream of unknown length, as sox writes one to a pipe."""
    tag, bits, _ = _WAV_SUBTYPES[subtype]
    align = channels * bits // 8
    fmt = struct.pack("<HHIIHH", tag, channels, sample_rate, sample_rate * align, align, bits)
    if tag == 3:  # IEEE float: an 18-byte fmt (cbSize 0) and a fact chunk, as sox writes
        fmt += b"\0\0"
        frames = _SOX_UNKNOWN // align
        chunks = b"fmt " + struct.pack("<I", len(fmt)) + fmt
        chunks += b"fact" + struct.pack("<II", 4, frames)
    else:
        chunks = b"fmt " + struct.pack("<I", len(fmt)) + fmt
    data = b"data" + struct.pack("<I", _SOX_UNKNOWN)
    riff_size = 4 + len(chunks) + len(data) + _SOX_UNKNOWN
    return b"RIFF" + struct.pack("<I", riff_size) + b"WAVE" + chunks + data


class PipeWavSink(Sink):
    """WAV written to a pipe as sox writes it: a header of unknown length, then the samples.

    Parameters
    ----------
    stream : binary file object
        ``sys.stdout.buffer``.
    sample_rate : float
    channels : int
    subtype : str, optional
        ``PCM_16``, ``PCM_24``, ``PCM_32``, ``FLOAT`` or ``DOUBLE`` (default ``FLOAT``).
    """

    def __init__(self, stream, sample_rate, channels, subtype=None, name="-"):
        subtype = subtype if subtype in _WAV_SUBTYPES else "FLOAT"
        self._stream = stream
        self.name = name
        self.sample_rate = float(sample_rate)
        self.channels = int(channels)
        self.subtype = subtype
        self.clipped = 0
        raw = _WAV_SUBTYPES[subtype][2]  # None: 24-bit, packed by hand in _write
        self._dtype = None if raw is None else pcm.pcm_dtype(raw)
        self._header = wav_header(round(sample_rate), self.channels, subtype)

    def _put(self, data: bytes) -> None:
        try:
            if self._header:
                self._stream.write(self._header)
                self._header = b""
            self._stream.write(data)
            self._stream.flush()
        except BrokenPipeError:
            raise RuntimeFailure(f"{self.name}: the reading end of the pipe was closed") from None

    def _write(self, block: np.ndarray) -> None:
        if self._dtype is None:  # 24-bit: the low three bytes of each little-endian int32
            samples, clipped = pcm.quantize_bits(block, 24)
            data = samples.astype("<i4").view(np.uint8).reshape(-1, 4)[:, :3].tobytes()
        else:
            data, clipped = pcm.encode(block, self._dtype)
        self.clipped += clipped
        self._put(data)

    def _commit(self) -> None:
        self._put(b"")  # an empty job still writes its header

    def _discard(self) -> None:
        pass


def open_pipe_sink(stream, kind: str, sample_rate, channels, subtype=None, name="-") -> Sink:
    """``-o -`` as an audio file of type `kind` (see the module docstring)."""
    if kind not in PIPE_WRITABLE:  # asked for by --out-type (or --type): the input's goes as wav
        raise CommandLineError(
            f"{name}: {'an' if kind[0] in 'aeiou' else 'a'} {kind} file cannot be written to a "
            f"pipe (its header must hold the length); on a pipe: {', '.join(PIPE_WRITABLE)}"
        )
    if kind == "wav":
        return PipeWavSink(stream, sample_rate, channels, subtype=subtype, name=name)
    return PipeSoundFileSink(stream, kind, sample_rate, channels, subtype=subtype, name=name)
