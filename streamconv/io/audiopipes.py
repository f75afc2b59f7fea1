"""Audio files on pipes: WAV, FLAC, Ogg, AIFF, AU ... on stdin, as sox passes them.

``-i -`` carries an audio file when ``--type`` names one, or when the stream starts with one
of these headers (the first 12 bytes are read before anything else; `sniff`):

==========================  ===========  ==========================  ===========
first bytes                 type         first bytes                 type
==========================  ===========  ==========================  ===========
``RIFF`` .... ``WAVE``      wav          ``fLaC``                    flac
``RIFX`` .... ``WAVE``      wav (BE)     ``OggS``                    ogg
``RF64`` .... ``WAVE``      rf64         ``FORM`` .... ``AIFF/AIFC`` aiff
``riff`` (Sony Wave64)      w64          ``.snd``                    au
``caff``                    caf
==========================  ===========  ==========================  ===========

Anything else is raw PCM, as before (``--format/--rate/--channels``); ``--type raw`` skips the
look. libsndfile decodes the stream. It is given the pipe through a reader that keeps the first
MiB, because libsndfile reads a header, then seeks back to its start; a seek past what was read
is only noted while the header is parsed (libsndfile's WAV reader skips the data chunk to look
for chunks after it, then seeks back to the data), so a long or live stream is not read to its
end first. A WAV whose data size is a placeholder for "unknown" is read to the stream's end,
past 2 and 4 GiB (`_unbounded_wav`), and so is a FLAC stream of unknown length (``flac -``,
sox, ffmpeg and streamconv write one to a pipe). Ogg, whose reader seeks to the end of a file
it believes seekable, is given a real pipe instead (libsndfile's own pipe mode, which cannot
decode FLAC).

``-o -`` writes one through `streamconv.io.pipesinks`.
"""

from __future__ import annotations

import os
import struct
import threading

import numpy as np
import soundfile as sf

from streamconv.errors import CommandLineError, UsageError
from streamconv.io.base import float_type
from streamconv.io.files import (
    _EXACT_IN_FLOAT64_ONLY,
    _INT_SUBTYPES,
    SoundFileSource,
)

#: ``--type`` names -> libsndfile major formats.
TYPES = {
    "wav": "WAV",
    "rf64": "RF64",
    "w64": "W64",
    "flac": "FLAC",
    "ogg": "OGG",
    "opus": "OGG",
    "aiff": "AIFF",
    "au": "AU",
    "caf": "CAF",
}
#: Types that can be written to a pipe.
PIPE_WRITABLE = ("wav", "flac", "ogg", "opus", "au")
HEAD_BYTES = 12
_KEEP = 1 << 20  # bytes of the stream's start kept for libsndfile to seek back into
_SOX_UNKNOWN = 0x7FFFF000  # the data size sox writes when it cannot know it
_RF64_UNKNOWN = 1 << 62  # an RF64 size that no stream reaches


def sniff(head: bytes) -> str | None:
    """The ``--type`` of a stream that starts with `head` (12 bytes), or None for raw PCM."""
    tag, kind = head[:4], head[8:12]
    if tag in (b"RIFF", b"RIFX") and kind == b"WAVE":
        return "wav"
    if tag == b"RF64" and kind == b"WAVE":
        return "rf64"
    if tag == b"FORM" and kind in (b"AIFF", b"AIFC"):
        return "aiff"
    if head[:16].startswith(b"riff\x2e\x91\xcf\x11"):
        return "w64"
    return {b"fLaC": "flac", b"OggS": "ogg", b".snd": "au", b"caff": "caf"}.get(tag)


def check_type(name: str | None, option: str = "--type") -> str | None:
    """A ``--type`` value (``raw`` or one of `TYPES`), lower-cased, or `CommandLineError`."""
    if name is None:
        return None
    name = name.lower()
    if name != "raw" and name not in TYPES:
        raise CommandLineError(f"{option}: unknown type {name!r} (raw, {', '.join(TYPES)})")
    return name


def _read_head(stream, n: int) -> bytes:
    """`n` bytes of `stream`, fewer only at its end."""
    parts, have = [], 0
    while have < n:
        chunk = stream.read(n - have)
        if not chunk:
            break
        parts.append(chunk)
        have += len(chunk)
    return b"".join(parts)


def _skip(stream, n: int) -> int:
    """Read and drop `n` bytes of `stream`; how many there were (fewer only at its end)."""
    done = 0
    while done < n and (chunk := stream.read(min(1 << 16, n - done))):
        done += len(chunk)
    return done


class Prefixed:
    """A byte stream with bytes already read from it put back in front (for raw PCM)."""

    def __init__(self, head: bytes, stream):
        self._head, self._stream = head, stream

    def read(self, n: int) -> bytes:
        if self._head:
            out, self._head = self._head[:n], self._head[n:]
            return out
        return self._stream.read(n)

    def close(self) -> None:
        self._stream.close()


class _RewindableReader:
    """A pipe as libsndfile's virtual file: seeks inside the first `_KEEP` bytes and forward.

    The length it reports is "huge" (a pipe has none); libsndfile then reads until the stream
    ends, and a header's length field of a stream written as sox writes it is not taken as a
    promise.

    A seek forward past what was read is only noted: the bytes are skipped when a read comes
    there. While libsndfile parses the header (`opening`), such a read answers "end of file"
    instead: its WAV reader, believing the file seekable, skips the data chunk to look for
    chunks after it, and then seeks back to the data. Skipping for real would read the whole
    stream (and wait forever on a live one) and leave nothing to seek back to.
    """

    _HUGE = 1 << 62

    def __init__(self, head: bytes, stream):
        self._stream = stream
        self._kept = bytearray(head)
        self._taken = len(head)  # bytes taken from the stream, the kept ones included
        self._pos = 0
        self._at_end = False
        self.opening = True

    def _fill(self, upto: int) -> None:
        if upto > len(self._kept):
            self._kept += _read_head(self._stream, upto - len(self._kept))
        self._taken = max(self._taken, len(self._kept))

    def _skip_to_pos(self) -> bool:
        """Take the bytes up to `_pos` from the stream; False at its end."""
        self._taken += _skip(self._stream, self._pos - self._taken)
        return self._taken >= self._pos

    def read(self, n: int) -> bytes:
        out = b""
        if self._pos < _KEEP:
            self._fill(min(_KEEP, self._pos + n))
            out = bytes(self._kept[self._pos : self._pos + n])
            self._pos += len(out)
            n -= len(out)
            if not n or len(self._kept) < _KEEP:
                return out
        if self._pos > self._taken and (self.opening or not self._skip_to_pos()):
            return out  # a noted seek past the end of what was read (see the class)
        # Whole reads: libsndfile takes a short one as whole samples and drops the bytes of a
        # sample cut in two (the rest of the stream then misaligned), and the runner gives us
        # stdin unbuffered, where a read returns what the pipe holds at the moment.
        data = _read_head(self._stream, n) if n else b""
        self._pos += len(data)
        self._taken += len(data)
        return out + data

    def tell(self) -> int:
        return self._HUGE if self._at_end else self._pos

    def seek(self, offset: int, whence: int = 0) -> int:
        if whence == 2:  # the length, asked as seek-to-end then tell
            self._at_end = True
            return self._HUGE
        self._at_end = False
        target = offset if whence == 0 else self._pos + offset
        if target < self._taken and self._taken > _KEEP and target != self._pos:
            raise OSError("a pipe cannot be read again")  # only the first _KEEP bytes are kept
        if target <= _KEEP:
            self._fill(target)
            target = min(target, len(self._kept))
        self._pos = target
        return self._pos


def _unbounded_wav(head: bytes, stream) -> bytes:
    """What libsndfile is given in front of the rest of a WAV stream whose first bytes `head`
    (12) were read: the header as written, or an RF64 header of the same ``fmt`` whose data
    runs to the stream's end, when the WAV's data size is a placeholder for "unknown" (0 as
    ``flac -d`` writes it to a pipe, with a RIFF size of 0 too; ``0x7ffff000`` or more as sox
    and ffmpeg do, with a RIFF size that ends with the data or ``0xffffffff``). A data chunk
    of 2 to 4 GiB followed by other chunks (the RIFF size says so) is a real one: as written.

    libsndfile reads a WAV only as far as its 32-bit data size says (2 or 4 GiB: 1 h 33 min or
    3 h 6 min of 48 kHz stereo float, nothing for ``flac -d``'s), an RF64 to the end. Only the
    chunk headers up to the data are read here (and the chunks before it, at most `_KEEP`
    bytes): a live stream is not held up. A chunk before the data too big to keep is dropped:
    libsndfile would seek past it, beyond what the pipe reader can give while it opens.
    """
    if head[:4] != b"RIFF" or head[8:12] != b"WAVE":
        return head  # RIFX (big-endian), or not a WAV: libsndfile says what it is
    riff_size = struct.unpack("<I", head[4:8])[0]
    kept, fmt, at = bytearray(head), None, len(head)  # at: bytes taken from the stream
    while len(kept) < _KEEP:
        chunk = _read_head(stream, 8)
        kept += chunk
        at += len(chunk)
        if len(chunk) < 8:
            break
        tag, size = chunk[:4], struct.unpack("<I", chunk[4:])[0]
        if tag == b"data":
            # No chunk after the data: the RIFF ends with it, or its size is odd (a placeholder:
            # a RIFF is whole chunks of even size).
            ends_riff = riff_size + 8 <= at + size or riff_size & 1
            unknown = (size >= _SOX_UNKNOWN and ends_riff) or size == 0 == riff_size
            if fmt is None or not unknown:
                break  # a real length (0 in a RIFF that says its size: an empty file), as written
            fmt_chunk = b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"\0" * (len(fmt) & 1)
            ds64 = struct.pack("<4sIQQQI", b"ds64", 28, _RF64_UNKNOWN, _RF64_UNKNOWN, 0, 0)
            return b"RF64\xff\xff\xff\xffWAVE" + ds64 + fmt_chunk + b"data\xff\xff\xff\xff"
        if len(kept) + size > _KEEP:  # a picture, padding: more than libsndfile could seek past
            del kept[-8:]
            at += _skip(stream, size + (size & 1))
            continue
        body = _read_head(stream, size + (size & 1))
        kept += body
        at += len(body)
        if tag == b"fmt ":
            fmt = bytes(body[:size])
    return bytes(kept)


def _feed(head: bytes, stream, fd: int) -> None:
    """Copy `head` and then `stream` into the pipe `fd` (a thread), and close it."""
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(head)
            read = getattr(stream, "read1", stream.read)
            while chunk := read(1 << 16):
                out.write(chunk)
    except (BrokenPipeError, OSError):
        pass  # the reader stopped early (--duration, an error): nothing left to do


class AudioPipeSource(SoundFileSource):
    """An audio file read from a pipe (stdin) through libsndfile.

    Parameters
    ----------
    stream : binary file object
        The pipe (``sys.stdin.buffer``), of which `head` was already read.
    head : bytes
        Its first bytes.
    kind : str
        The ``--type`` (`TYPES`).
    name : str
        For messages.
    dtype : numpy dtype or "auto"
    """

    def __init__(self, stream, head: bytes, kind: str, name: str = "-", dtype=np.float64):
        self.name = name
        self._feeder = None
        try:
            if kind in ("ogg", "opus"):
                read_fd, write_fd = os.pipe()
                self._feeder = threading.Thread(
                    target=_feed, args=(head, stream, write_fd), daemon=True
                )
                self._feeder.start()
                self._file = sf.SoundFile(read_fd, closefd=True)
            else:
                front = _unbounded_wav(head, stream) if kind == "wav" else head
                reader = _RewindableReader(front, stream)
                self._file = sf.SoundFile(reader)
                reader.opening = False
                # soundfile asks libsndfile where it is and seeks there again around each read
                # of a file it believes seekable (a virtual one is); at the end of a FLAC stream
                # of unknown length that seek fails (the decoder is at its end). A pipe is not.
                self._file._info.seekable = 0
        except (sf.LibsndfileError, RuntimeError) as exc:
            reason = getattr(exc, "error_string", None) or str(exc)
            if not head:
                reason = "the stream is empty"
            raise UsageError(f"{name}: cannot read a {kind} stream: {reason}") from None
        found = self._file.format
        if found != TYPES[kind] and not (kind == "wav" and found in ("WAV", "WAVEX", "RF64")):
            self._file.close()
            raise CommandLineError(f"{name}: --type {kind}, but the stream is {found.lower()}")
        self.kind = kind
        self.sample_rate = float(self._file.samplerate)
        self.channels = self._file.channels
        self.subtype = self._file.subtype
        self.dtype = float_type(dtype, self.subtype not in _EXACT_IN_FLOAT64_ONLY)
        self.frames_read = 0
        self.frames = 0  # unknown: a pipe ends when it ends
        self._int_bits = _INT_SUBTYPES.get(self.subtype)

    @property
    def seekable(self) -> bool:
        return False


def open_pipe_source(stream, kind: str | None, name: str = "-", dtype=np.float64):
    """``-i -``: an `AudioPipeSource` if `kind` names a type or the stream starts with a known
    header; else None and the bytes read, for raw PCM (`Prefixed`)."""
    if kind == "raw":
        return None, stream
    head = _read_head(stream, HEAD_BYTES)
    chosen = kind or sniff(head)
    if chosen is None:
        return None, Prefixed(head, stream)
    return AudioPipeSource(stream, head, chosen, name=name, dtype=dtype), None


def type_of(src) -> str | None:
    """The type ``-o -`` carries by default for a source: its own audio type (a pipe's
    `--type`, a file's extension), WAV where that type cannot go through a pipe, or None for a
    source without a header (raw PCM, csv, devices)."""
    kind = getattr(src, "kind", None)
    if not kind:
        path = getattr(src, "name", "")
        if getattr(src, "subtype", None) is None or not isinstance(path, str):
            return None
        ext = os.path.splitext(path)[1].lower().lstrip(".")
        kind = {"aif": "aiff", "aifc": "aiff", "oga": "ogg"}.get(ext, ext)
        if kind not in TYPES:
            return "wav"  # another libsndfile type (.sd2, .voc, ...)
    return kind if kind in PIPE_WRITABLE else "wav"
