"""Detection snippets: the audio around each detection saved as a WAV file.

The processing loop feeds every block (`SnippetRecorder.add`) into a ring buffer and tells the
recorder about each detection (`SnippetRecorder.detection`), which names the file at once (the
name goes into the detection record) and cuts it out of the ring when the audio after the
detection has arrived. A thread of its own writes the files, each to a temporary name renamed
when complete, and keeps the directory under its disk budget by removing the oldest snippets.

A snippet of a detection at sample ``s`` holds frames ``[s - pre, s + post)`` of the stream
(``pre = round(pre_s * rate)``, ``post = round(post_s * rate)``), fewer where the stream starts
later or ends earlier. Samples are written as 32-bit float WAV: the input's samples exactly
for 16-bit, 24-bit and float32 sources (float64 sources are rounded to float32).
"""

from __future__ import annotations

import contextlib
import os
import queue
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable

import numpy as np
import soundfile as sf

from streamconv.dsp.group_delay import whole_delay
from streamconv.errors import RuntimeFailure
from streamconv.io.files import AtomicFile

#: Snippet file names: what `SnippetRecorder` writes and ``GET /snippets/NAME`` serves.
NAME_PATTERN = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]*\.wav$")
WRITE_QUEUE = 64  # snippets cut and waiting for the writer thread
HISTORY_S = 30.0  # how late after its sample a detection may be decided and keep all of `pre`


def safe_name(text: str) -> str:
    """`text` with every character outside ``[A-Za-z0-9._-]`` replaced by ``_``."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", str(text)).lstrip(".") or "_"


class _Ring:
    """The last `capacity` frames of a stream, addressed by global frame index."""

    def __init__(self, capacity: int, channels: int):
        self.buf = np.zeros((capacity, channels), dtype=np.float32)
        self.capacity = capacity
        self.end = 0  # global index one past the newest frame

    def add(self, block: np.ndarray) -> None:
        block = block.reshape(len(block), -1)
        n = len(block)
        if n > self.capacity:  # only the newest `capacity` frames can be kept
            self.end += n - self.capacity
            block, n = block[-self.capacity :], self.capacity
        i = self.end % self.capacity
        first = min(n, self.capacity - i)
        self.buf[i : i + first] = block[:first]
        self.buf[: n - first] = block[first:]
        self.end += n

    def get(self, start: int, stop: int) -> np.ndarray:
        """Frames ``[start, stop)``, clipped to what the ring still holds."""
        start = max(start, self.end - self.capacity, 0)
        stop = min(stop, self.end)
        if stop <= start:
            return self.buf[:0].copy()
        idx = np.arange(start, stop) % self.capacity
        return self.buf[idx]


class SnippetRecorder:
    """Cut the audio around detections out of a stream and write it as WAV files.

    Parameters
    ----------
    directory : str
        Where the files go; created if missing.
    sample_rate : float
        Of the stream, in Hz.
    channels_in, channels_out : int
        Channels of the input and of the filtered stream.
    pre_s, post_s : float
        Seconds kept before and after the detection's sample.
    max_mb : float
        Disk budget of the directory's snippets in megabytes (10**6 bytes); the oldest are
        removed first.
    filtered : bool
        Also save the filtered stream (``NAME-filtered.wav``).
    history_s : float
        Extra seconds the ring keeps, for detections decided late (long templates, MAD).
    log : callable, optional
        One line of text per problem (a snippet skipped or not written).
    prefix : str, optional
        Starts every file name; default the start time (UTC, ``YYYYmmddTHHMMSS``).
    """

    def __init__(
        self,
        directory: str,
        sample_rate: float,
        channels_in: int,
        channels_out: int,
        pre_s: float = 1.0,
        post_s: float = 2.0,
        max_mb: float = 100.0,
        filtered: bool = False,
        history_s: float = HISTORY_S,
        log: Callable[[str], None] | None = None,
        prefix: str | None = None,
    ):
        self.directory = os.path.abspath(directory)
        self.sample_rate = float(sample_rate)
        self.pre = round(pre_s * sample_rate)
        self.post = round(post_s * sample_rate)
        self.max_bytes = int(max_mb * 1e6)
        self.filtered = filtered
        self.log = log or (lambda line: None)
        capacity = self.pre + self.post + round(history_s * sample_rate) + 1
        self._rings = [_Ring(capacity, channels_in)]
        if filtered:
            self._rings.append(_Ring(capacity, channels_out))
        # start, stop, [name], ring index (0 input, 1 filtered)
        self._pending: list[tuple[int, int, list[str], int]] = []
        self._queue: queue.Queue = queue.Queue(WRITE_QUEUE)
        self._files: OrderedDict[str, int] = OrderedDict()  # name -> bytes, oldest first
        self._stamp = safe_name(prefix) if prefix else time.strftime("%Y%m%dT%H%M%S", time.gmtime())
        self._thread = threading.Thread(target=self._write_all, name="streamconv-snippets")
        self.written = 0
        self.removed = 0
        self.skipped = 0

    # -- the caller's thread ---------------------------------------------------------------

    def start(self) -> SnippetRecorder:
        """Create the directory, take stock of the snippets already there, start writing."""
        try:
            os.makedirs(self.directory, exist_ok=True)
            entries = [e for e in os.scandir(self.directory) if e.is_file()]
        except OSError as exc:
            raise RuntimeFailure(f"{self.directory}: snippets: {exc.strerror}") from None
        for e in entries:
            if e.name.startswith(".") and ".wav." in e.name and e.name.endswith(".part"):
                with contextlib.suppress(OSError):
                    os.unlink(e.path)  # a snippet a killed run left half written
        known = [e for e in entries if NAME_PATTERN.match(e.name)]
        for e in sorted(known, key=lambda e: e.stat().st_mtime):
            self._files[e.name] = e.stat().st_size
        self._thread.start()
        return self

    def add(self, x: np.ndarray, y: np.ndarray | None = None) -> None:
        """The next block of the input (and of the filtered stream)."""
        self._rings[0].add(x)
        if self.filtered:
            if y is None:
                raise ValueError("filtered snippets need the filtered block too")
            self._rings[1].add(y)
        if self._pending and self._pending[0][1] <= self._rings[-1].end:
            self._cut(final=False)

    def detection(self, record: dict) -> dict:
        """Schedule the snippet of `record`; return the record fields that name its files."""
        sample = int(record["sample"])
        parts = [self._stamp, safe_name(record["template"]), str(sample)]
        if record.get("channel") is not None:
            parts.append(f"c{record['channel']}")
        base = "-".join(parts)
        names = [base + ".wav"]
        self._pending.append((sample - self.pre, sample + self.post, [base + ".wav"], 0))
        if self.filtered:
            # A record on the input's timeline (a linear-phase chain: the filtered stream is the
            # input delayed by chain_delay) has its filtered window that much later.
            shift = 0
            if record.get("timeline") == "input" and record.get("chain_delay") is not None:
                shift = whole_delay(record["chain_delay"])
            names.append(base + "-filtered.wav")
            self._pending.append((sample + shift - self.pre, sample + shift + self.post,
                                  [base + "-filtered.wav"], 1))  # fmt: skip
        self._pending.sort(key=lambda p: p[1])
        self._cut(final=False)
        fields = {"snippet": names[0]}
        if self.filtered:
            fields["snippet_filtered"] = names[1]
        return fields

    def finish(self) -> None:
        """End of stream: cut every pending snippet from what there is."""
        self._cut(final=True)

    def close(self) -> None:
        """Write what is queued, then stop the writer thread."""
        self.finish()
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join()

    def _cut(self, final: bool) -> None:
        end = self._rings[-1].end
        while self._pending and (final or self._pending[0][1] <= end):
            start, stop, names, ring = self._pending.pop(0)
            clips = [self._rings[ring].get(start, stop)]
            try:
                self._queue.put_nowait((names, clips))
            except queue.Full:
                self.skipped += 1
                self.log(f"snippets: {names[0]} skipped: {WRITE_QUEUE} snippets wait to be written")

    # -- the writer thread -----------------------------------------------------------------

    def _write_all(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            for name, clip in zip(*item, strict=True):
                self._write(name, clip)

    def _write(self, name: str, clip: np.ndarray) -> None:
        path = os.path.join(self.directory, name)
        try:
            out = AtomicFile(path)
            try:
                sf.write(out.tmp_path, clip, round(self.sample_rate), "FLOAT", format="WAV")
            except Exception:
                out.discard()
                raise
            out.commit()
            size = os.path.getsize(path)
        except Exception as exc:
            reason = getattr(exc, "strerror", None) or exc
            self.log(f"snippets: {path}: not written: {reason}")
            return
        self.written += 1
        self._files.pop(name, None)
        self._files[name] = size
        self._keep_budget()

    def _keep_budget(self) -> None:
        total = sum(self._files.values())
        while total > self.max_bytes and len(self._files) > 1:
            name, size = self._files.popitem(last=False)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(os.path.join(self.directory, name))
            total -= size
            self.removed += 1


def save_file_snippets(
    source, records: list[dict], directory: str, pre_s: float, post_s: float, prefix: str,
    block: int = 65536,
) -> list[dict]:  # fmt: skip
    """The snippets of `records` (detections in one recording), read from `source` (that
    recording, open at its start, a `streamconv.io` Source); returns the records with their
    ``snippet`` names. What ``streamconv match --snippets DIR`` does after matching a file.
    """
    piece = 4096  # frames added to the ring at a time: it must hold pre + post + a piece
    rec = SnippetRecorder(
        directory, source.sample_rate, source.channels, source.channels, pre_s, post_s,
        max_mb=float(1 << 40), history_s=2 * piece / source.sample_rate, prefix=prefix,
    ).start()  # fmt: skip
    order = sorted(range(len(records)), key=lambda i: records[i]["sample"])
    named: dict[int, dict] = {}
    k = 0
    try:
        for x in source.blocks(block):
            for i in range(0, len(x), piece):
                # A detection is scheduled before the piece holding its sample is added, so the
                # ring still has the `pre` frames before it.
                end = rec._rings[0].end + len(x[i : i + piece])
                while k < len(order) and records[order[k]]["sample"] < end:
                    named[order[k]] = rec.detection(records[order[k]])
                    k += 1
                rec.add(x[i : i + piece])
        for i in order[k:]:
            named[i] = rec.detection(records[i])
    finally:
        rec.close()
    return [{**record, **named.get(i, {})} for i, record in enumerate(records)]
