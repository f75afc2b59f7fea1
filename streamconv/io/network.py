"""``udp://HOST:PORT``: raw PCM datagrams, as sensor streams send them.

Each datagram is an 8-byte header, the little-endian unsigned index of its first frame, then
whole interleaved frames in the stream's format. The index is what makes loss and reordering
visible: a gap is filled with silence (so time stays right) and counted as lost frames; a
datagram older than what was already delivered is dropped and counted as reordered; a gap
longer than `max_gap_s` (a sender restart) resynchronises instead of filling. A datagram with a
header and no frames marks the end of the stream.

The source binds HOST:PORT (port 0: any free port, see `UdpSource.port`); the sink sends to it.
"""

from __future__ import annotations

import errno
import socket
import struct

import numpy as np

from streamconv.errors import RuntimeFailure, UsageError
from streamconv.io import pcm
from streamconv.io.base import Sink, Source, float_type
from streamconv.io.rechunk import FrameBuffer
from streamconv.locator import parse_locator

HEADER = struct.Struct("<Q")
#: Payload bytes per datagram the sink sends (fits an Ethernet MTU with IP/UDP headers).
MAX_PAYLOAD = 1400


def parse_udp(locator: str) -> tuple[str, int]:
    """Split ``udp://HOST:PORT`` into (host, port) (`streamconv.locator`), or raise
    `UsageError` naming it."""
    loc = parse_locator(locator)
    if loc.kind != "udp" or loc.host is None or loc.port is None:
        raise UsageError(f"{locator}: expected udp://HOST:PORT with a port 0..65535")
    return loc.host, loc.port


class UdpSource(Source):
    """Receive raw PCM datagrams on HOST:PORT.

    Parameters
    ----------
    locator : str
        ``udp://HOST:PORT`` to bind.
    fmt : str
        ``s16le``, ``s32le``, ``f32le`` or ``f64le``.
    sample_rate : float
        Frames per second.
    channels : int
        Samples per frame.
    timeout_s : float, optional
        End the stream when nothing arrives for this long (default: wait forever).
    max_gap_s : float
        The longest gap filled with silence; a longer one resynchronises.
    dtype : numpy dtype or "auto"
        float32 or float64; ``"auto"``: float32 where it is exact.

    Attributes
    ----------
    lost_frames, reordered, malformed : int
        Frames never received; datagrams dropped as late; datagrams that were not whole frames.
    """

    def __init__(
        self,
        locator: str,
        fmt: str,
        sample_rate: float,
        channels: int,
        timeout_s: float | None = None,
        max_gap_s: float = 1.0,
        dtype=np.float64,
    ):
        host, port = parse_udp(locator)
        self._sample_dtype = pcm.pcm_dtype(fmt)
        self.name = locator
        self.sample_rate = float(sample_rate)
        self.channels = int(channels)
        self.dtype = float_type(dtype, fmt in ("s16le", "f32le"))
        self.frames_read = 0
        self.lost_frames = self.reordered = self.malformed = 0
        self._frame_bytes = self._sample_dtype.itemsize * self.channels
        self._max_gap = round(max_gap_s * self.sample_rate)
        self._next: int | None = None  # stream index of the next frame to deliver
        self._pending = FrameBuffer(self.channels, self.dtype)
        self._ended = False
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            self._sock.bind((host, port))
        except OSError as exc:
            self._sock.close()
            # A port another program holds, or an address not (yet) on this machine, may be
            # free or there on the next try: exit 1 (systemd restarts), not 2 (bad config).
            transient = exc.errno in (errno.EADDRINUSE, errno.EADDRNOTAVAIL)
            error = RuntimeFailure if transient else UsageError
            raise error(f"{locator}: cannot listen: {exc.strerror}") from None
        self._sock.settimeout(timeout_s)
        self.port = self._sock.getsockname()[1]

    def _receive(self) -> None:
        try:
            data = self._sock.recv(65536)
        except TimeoutError:
            self._ended = True
            return
        if len(data) < HEADER.size or (len(data) - HEADER.size) % self._frame_bytes:
            self.malformed += 1
            return
        (index,) = HEADER.unpack_from(data)
        frames = (len(data) - HEADER.size) // self._frame_bytes
        if frames == 0:
            self._ended = True
            return
        if self._next is None:
            self._next = index
        if index < self._next:
            if self._next - index <= self._max_gap:
                self.reordered += 1
                return
            self._next = index  # the sender restarted
        elif index > self._next:
            gap = index - self._next
            self.lost_frames += gap
            if gap <= self._max_gap:
                self._pending.push(np.zeros((gap, self.channels), self.dtype))
            self._next = index
        block = pcm.decode(
            memoryview(data)[HEADER.size :], self._sample_dtype, self.channels, self.dtype
        )
        self._pending.push(block)
        self._next += frames

    #: True: a read returns once a datagram brought frames, up to `frames` (see
    #: `streamconv.io.pipes.RawSource.partial`); False: it waits for `frames` frames.
    partial = False

    def _read(self, frames: int) -> np.ndarray:
        while len(self._pending) < frames and not self._ended:
            self._receive()
            if self.partial and len(self._pending):
                break
        return self._pending.pop(min(frames, len(self._pending)))

    def stats(self) -> dict[str, int]:
        return {
            "lost_frames": self.lost_frames,
            "reordered": self.reordered,
            "malformed": self.malformed,
        }

    def close(self) -> None:
        self._sock.close()


class UdpSink(Sink):
    """Send raw PCM datagrams (see the module docstring) to HOST:PORT.

    Parameters
    ----------
    locator : str
        ``udp://HOST:PORT`` to send to.
    fmt : str
        ``s16le``, ``s32le``, ``f32le`` or ``f64le``; integers are clipped and counted.
    sample_rate : float
        Frames per second.
    channels : int
        Samples per frame.
    """

    def __init__(self, locator: str, fmt: str, sample_rate: float, channels: int):
        host, port = parse_udp(locator)
        self._sample_dtype = pcm.pcm_dtype(fmt)
        self.name = locator
        self.sample_rate = float(sample_rate)
        self.channels = int(channels)
        self.clipped = 0
        frame_bytes = self._sample_dtype.itemsize * self.channels
        self._frames_per_datagram = max(1, MAX_PAYLOAD // frame_bytes)
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            self._sock.connect((host, port))
        except OSError as exc:
            self._sock.close()
            raise UsageError(f"{locator}: cannot send: {exc.strerror}") from None

    def _send(self, index: int, payload: bytes) -> None:
        try:
            self._sock.send(HEADER.pack(index) + payload)
        except ConnectionRefusedError:
            pass  # nobody listening yet: datagrams are allowed to be lost
        except OSError as exc:
            raise RuntimeFailure(f"{self.name}: send failed: {exc.strerror}") from None

    def _write(self, block: np.ndarray) -> None:
        data, clipped = pcm.encode(block, self._sample_dtype)
        self.clipped += clipped
        step = self._frames_per_datagram
        frame_bytes = len(data) // len(block)
        for start in range(0, len(block), step):
            payload = data[start * frame_bytes : (start + step) * frame_bytes]
            self._send(self.frames_written + start, payload)

    def _commit(self) -> None:
        self._send(self.frames_written, b"")
        self._sock.close()

    def _discard(self) -> None:
        self._commit()
