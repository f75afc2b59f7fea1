"""One way through: open a source and a sink by one set of rules, pump blocks through a Pipeline.

``streamconv filter``, ``streamconv run`` (the service, `streamconv.daemon`) and the Python API
run every stream through a `Runner`::

    result = Runner("in.wav", "out.wav", taps=h).run()
    result = Runner.from_config(load_config("service.toml"), observers=[my_observer]).run()

They differ only where they must, in one parameter, ``give_up_s``: how long a lost sound device
is reopened with backoff before the run fails with `RuntimeFailure` (exit 1). ``filter`` gives
up after ``--reopen S`` seconds (30 by default); the service passes None and waits for the
device for ever. A stop request (`Runner.stop`, from a signal handler or another thread) is the
same for everyone: stop reading, process what was read, flush, commit the sink; ``filter``
reports it as exit 130 (it was interrupted), the service as exit 0 (SIGTERM is how it ends).

The rules
---------
block size
    ``block_size`` when given (``filter --block``, ``[processing] block_size``); else by the
    kinds of the two ends (`block_size_for`): from a file to a file or ``null``, `FILE_BLOCK`
    frames, or the filter's length rounded up to a power of two when longer (one FFT block per
    call), at most `MAX_FILE_BLOCK`; with a live end (a pipe, a device, udp), `LIVE_BLOCK`.
sample type
    Sources deliver float32 where that holds their samples exactly (16-bit integers, float32
    data, sound devices), else float64. The filter runs in float32 only when the source is
    float32 and the sink keeps no more than float32 precision (8/16-bit or float32 samples, a
    lossy codec, a sound device, ``null``, csv text of float32 samples); otherwise in float64
    (`work_dtype`).
sink sample format
    An audio-file sink keeps the source's sample format when its file type can hold it (float
    stays float, 24-bit stays 24-bit); a raw PCM, udp or sound-device source counts as its
    format (``f32le`` is ``FLOAT``, a device is ``FLOAT``), a csv source as ``DOUBLE``. An
    explicit ``subtype`` (libsndfile's names: ``PCM_16``, ``PCM_24``, ``FLOAT``, ...) or the
    sink's raw ``format`` overrides it; a type that cannot hold the source's format gets
    libsndfile's default for the type (`sink_subtype`).
threads
    A file source is read ahead in a thread (`READ_AHEAD_FRAMES` per read) and a file sink is
    written behind in one, so file I/O overlaps the filtering; a live source is read in a
    thread too, so the loop waits on a queue with a timeout, never inside the source
    (`streamconv.io.background`): a raw PCM pipe or udp in reads of whatever arrived (up to
    `READ_AHEAD_FRAMES`, one hand-over between the threads per read, not per block), a device
    one block at a time; the loop joins them into whole blocks, so the bits computed do not
    depend on how the reads arrived. From a file to a file (or ``null``) nobody waits for a
    block, so each pass of the loop takes up to `READ_AHEAD_FRAMES` frames whatever the block
    size: the filter still runs blocks of the block size over them (in one call of the
    compiled engine), and the per-pass work of reading, writing, counting and observing is paid
    once per chunk, not once per block (at 64-frame blocks it cost three times the filtering).
FFTW wisdom
    Loaded before the filter is planned; with ``fft_measure`` the plans are measured and the
    wisdom saved (`streamconv.wisdom`).
clipping
    Every quantizing sink (integer samples in files, pipes, udp) counts the samples it clipped;
    `RunResult.clipped` has the count and `clip_warning` the one line both commands print.

Hooks for what builds on the loop
---------------------------------
Observers (`Observer`) are called from the loop's thread and must return quickly:

- ``on_tick(runner)`` before every block and, while the source is silent (an idle pipe, udp
  socket or device), at least every ``tick_s`` seconds (0.25 s): a service applies a SIGHUP
  reload there at a block boundary and pings systemd's watchdog from the processing loop, so
  a hung loop stops the pings;
- ``on_block(event)`` after each block went to the sink: a `BlockEvent` with the block's first
  frame, its input and output, the detections it made final, and per-channel peak and RMS of
  input and output, computed with numpy only when asked for (an event stream subscribes here
  without touching the loop);
- ``on_detection(detection)`` for each detection (after the ``on_block`` of the block that
  decided it), in stream order across all detectors (templates, then periodicity detectors,
  as ``streamconv match`` prints them);
- ``on_state(runner, state)`` when `Runner.state` changes: ``starting`` -> ``running`` (the
  first block went through) <-> ``reopening`` (a sound device is being reopened) ->
  ``stopping`` -> ``stopped``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import signal
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import numpy as np

from streamconv.errors import UsageError
from streamconv.io import files, open_sink, open_source
from streamconv.io.background import ReadAhead, WriteBehind
from streamconv.io.base import Sink, Source
from streamconv.io.taps import taps_channels
from streamconv.locator import parse_locator
from streamconv.pipeline import Pipeline

__all__ = [
    "FILE_BLOCK",
    "LIVE_BLOCK",
    "BlockEvent",
    "Endpoint",
    "Observer",
    "RunResult",
    "Runner",
    "block_size_for",
    "clip_warning",
    "endpoint_kind",
    "sink_subtype",
    "stop_on_signals",
    "work_dtype",
]

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
    if kind in ("pipe", "udp") or (kind == "file" and files.file_kind(endpoint.uri) == "raw"):
        return files.pcm_subtype(endpoint.format)
    if kind == "file" and files.file_kind(endpoint.uri) == "csv":
        return "DOUBLE"
    return getattr(source, "subtype", None)


def sink_subtype(sink: Endpoint, source_subtype: str | None) -> str | None:
    """The libsndfile subtype an audio-file sink gets (None for other sinks, or the type's
    default): ``sink.subtype``, else the one of ``sink.format``, else the source's when the
    file type can hold it."""
    if sink.audio_pipe:  # the pipe's writer takes the type's default where it must
        return sink.subtype or source_subtype
    if sink.kind != "file" or files.file_kind(sink.uri) != "audio":
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
    if kind == "file" and files.file_kind(sink.uri) == "csv":
        return np.dtype(np.float32)  # text with as many digits as the samples carry
    if kind == "file" and files.file_kind(sink.uri) == "audio":
        if subtype is None:
            import soundfile as sf

            subtype = sf.default_subtype(files.audio_format(sink.uri))
        wide = subtype in _WIDE_SUBTYPES
    else:
        wide = sink.format in _WIDE_PCM
    return np.dtype(np.float64 if wide else np.float32)


@dataclasses.dataclass
class BlockEvent:
    """What one block did; the levels are computed (numpy, per channel) on first access.

    Attributes
    ----------
    start : int
        Stream index of the block's first frame.
    input, output : numpy.ndarray
        ``(frames, channels)`` in and out (output: what the sink got). Do not modify them.
    detections : list of Detection
        The detections this block made final, in stream order.
    busy_s : float
        Seconds spent filtering, detecting and writing the block.
    """

    start: int
    input: np.ndarray
    output: np.ndarray
    detections: list
    busy_s: float

    @functools.cached_property
    def input_peak(self) -> np.ndarray:
        """Largest absolute sample per input channel."""
        return _peak(self.input)

    @functools.cached_property
    def input_rms(self) -> np.ndarray:
        """Root mean square per input channel."""
        return _rms(self.input)

    @functools.cached_property
    def output_peak(self) -> np.ndarray:
        """Largest absolute sample per output channel."""
        return _peak(self.output)

    @functools.cached_property
    def output_rms(self) -> np.ndarray:
        """Root mean square per output channel."""
        return _rms(self.output)


def _peak(x: np.ndarray) -> np.ndarray:
    if not len(x):
        return np.zeros(x.shape[1])
    return np.maximum(x.max(axis=0), -x.min(axis=0)).astype(np.float64)


def _rms(x: np.ndarray) -> np.ndarray:
    if not len(x):
        return np.zeros(x.shape[1])
    x64 = x.astype(np.float64, copy=False)
    return np.sqrt(np.einsum("ij,ij->j", x64, x64) / len(x))


class Observer:
    """Hooks of a `Runner` (module docstring); override the ones you need. All are called from
    the loop's thread and must return quickly."""

    def on_tick(self, runner: Runner) -> None:
        """Before every block, and at least every ``tick_s`` while the source is silent."""

    def on_block(self, event: BlockEvent) -> None:
        """After a block went to the sink."""

    def on_detection(self, detection) -> None:
        """A final detection, in stream order."""

    def on_state(self, runner: Runner, state: str) -> None:
        """`Runner.state` changed to `state`."""


@dataclasses.dataclass(frozen=True)
class RunResult:
    """What a run did.

    Attributes
    ----------
    frames_in, frames_out : int
        Frames read from the source and written to the sink (with ``tail``, out > in).
    clipped : int
        Samples the sink clipped on the way to an integer format.
    stopped : bool
        True if `Runner.stop` ended it before the source did.
    detections : int
        Detections reported.
    source, sink : str
        The locators, for messages.
    source_stats, sink_stats : dict
        The source's and sink's counters (overflows, lost datagrams, underflows, ...).
    """

    frames_in: int
    frames_out: int
    clipped: int
    stopped: bool
    detections: int
    source: str
    sink: str
    source_stats: dict
    sink_stats: dict


def clip_warning(sink: str, clipped: int) -> str | None:
    """The warning line both commands print at the end when samples were clipped."""
    if not clipped:
        return None
    return f"warning: {sink}: {clipped} samples clipped"


class Runner:
    """Run a source through a `Pipeline` into a sink, reporting to observers.

    Parameters
    ----------
    source, sink : Endpoint, str, Source or Sink
        The two ends: a str is a locator alone; a `Source` / `Sink` object (a
        `streamconv.io.MemorySource`, say) is used as it is and counts as a live end.
    taps : array_like, optional
        The filter: ``(L,)``, ``(L, C)`` or ``(L, Cin, Cout)`` (default: ``[1.0]``, the stream
        unchanged).
    templates, periodicity : sequence, optional
        Detectors, as `Pipeline` takes them.
    block_size : int, optional
        Frames per block; None: by the rule of the module docstring.
    method : str
        Convolution engine (`streamconv.Convolver`).
    give_up_s : float, optional
        A lost sound device is reopened with backoff; after this many seconds without it the
        run fails (`RuntimeFailure`). None: never give up (the service).
    duration_s : float, optional
        Stop after this many seconds of input.
    tail : bool
        Write the filter's ``L - 1`` frames of tail at the end (output frames then exceed
        input frames).
    fft_measure : bool
        Measure the FFT plans (slow, once per machine and size) and save FFTW's wisdom.
    observers : iterable of Observer
        Hooks (module docstring).
    tick_s : float
        The longest the loop waits for a silent source before it calls ``on_tick``.
    log : callable, optional
        Takes the one-line reports of a device being lost and reopened (default: stderr).
    taps_name : str, optional
        Where the taps came from (a file), to name in messages.
    taps_rate : float, optional
        The taps' sample rate (an impulse-response file's); the source must have it.
    on_scores : callable, optional
        Receives the template matchers' score traces (`Pipeline`'s ``on_scores``).
    stdin, stdout : binary file objects, optional
        What ``-`` reads and writes (default: the process's).

    Attributes
    ----------
    source, sink : Source, Sink
        The opened streams (after `open`).
    pipeline : Pipeline
        What runs; the service replaces it on reload (`replace_pipeline`).
    block_size : int
    dtype : numpy.dtype
        The precision the filter runs in.
    frames_in, frames_out : int
    busy_s : float
        Seconds spent filtering, detecting and writing.
    state : str
        ``starting``, ``running``, ``reopening``, ``stopping``, ``stopped``.
    wisdom_saved : path or None
        Where ``fft_measure`` saved the wisdom.
    """

    def __init__(
        self,
        source: Endpoint | str | Source,
        sink: Endpoint | str | Sink,
        *,
        taps=None,
        templates=(),
        periodicity=(),
        block_size: int | None = None,
        method: str = "auto",
        give_up_s: float | None = None,
        duration_s: float | None = None,
        tail: bool = False,
        fft_measure: bool = False,
        observers: Iterable[Observer] = (),
        tick_s: float = TICK_S,
        log: Callable[[str], None] | None = None,
        taps_name: str | None = None,
        taps_rate: float | None = None,
        on_scores=None,
        stdin=None,
        stdout=None,
    ):
        # Source and Sink objects (memory, your own) are used as they are, and count as live.
        self._given_source = source if isinstance(source, Source) else None
        self._given_sink = sink if isinstance(sink, Sink) else None
        self.source_endpoint = _endpoint(source.name if isinstance(source, Source) else source)
        self.sink_endpoint = _endpoint(sink.name if isinstance(sink, Sink) else sink)
        self.source_kind = "object" if self._given_source else self.source_endpoint.kind
        self.sink_kind = "object" if self._given_sink else self.sink_endpoint.kind
        self.taps = np.asarray([1.0] if taps is None else taps, dtype=np.float64)
        self.templates = list(templates)
        self.periodicity = list(periodicity)
        self.method = method
        self.give_up_s = give_up_s
        self.duration_s = duration_s
        self.tail = tail
        self.fft_measure = fft_measure
        self.observers = list(observers)
        self.tick_s = float(tick_s)
        self.log = log
        self.taps_name = taps_name or "taps"
        self.taps_rate = taps_rate
        self.on_scores = on_scores
        self._stdin, self._stdout = stdin, stdout
        self.block_size = block_size or _block_for_kinds(
            self.source_kind, self.sink_kind, len(self.taps)
        )
        self.source: Source | None = None
        self.sink: Sink | None = None
        self.pipeline: Pipeline | None = None
        self.dtype = np.dtype(np.float64)
        self.frames_in = self.frames_out = self.detections = 0
        self.busy_s = 0.0
        self.state = "starting"
        self.wisdom_saved: Path | None = None
        self._base_state = "starting"
        self._reader: ReadAhead | None = None
        self._writer: Sink | None = None
        self._stop = False
        self._done = False

    @classmethod
    def from_config(cls, loaded, **kwargs) -> Runner:
        """The run a `streamconv.config.LoadedConfig` describes: its source, sink (with its
        ``subtype``), filter chain, detectors and ``[processing]``; `kwargs` as for `Runner`
        (``give_up_s``, ``observers``, ``log``, ...) and may override ``block_size`` and
        ``method``."""

        def end(info, subtype=None) -> Endpoint:
            return Endpoint(info.uri, info.format, info.rate, info.channels, subtype)

        sink_subtype_ = getattr(loaded.config.sink, "subtype", None)
        kwargs.setdefault("block_size", loaded.block_size)
        kwargs.setdefault("method", loaded.method)
        kwargs.setdefault("taps_name", loaded.path)
        return cls(
            end(loaded.source),
            end(loaded.sink, sink_subtype_),
            taps=loaded.compact_taps(),
            templates=loaded.templates,
            periodicity=loaded.periodicity,
            **kwargs,
        )

    # -- opening -----------------------------------------------------------------------------

    def open(self) -> Runner:
        """Open the source, build the pipeline, open the sink (module docstring's rules).

        Raises
        ------
        UsageError
            A bad locator, file, device, or taps that do not fit the source.
        """
        from streamconv import wisdom
        from streamconv.dsp import fftw

        src_ep, snk_ep = self.source_endpoint, self.sink_endpoint
        wisdom.load()  # FFT plans measured by an earlier run, if any
        fftw.measure_plans(self.fft_measure)
        source = self._given_source or self._open_source()
        try:
            self._check_taps(source)
            if snk_ep.kind == "pipe" and snk_ep.file_type is None:
                # -o - carries the input's audio type, unless raw PCM was asked for.
                from streamconv.io.audiopipes import type_of

                kind = "raw" if snk_ep.format else (type_of(source) or "raw")
                snk_ep = self.sink_endpoint = dataclasses.replace(snk_ep, file_type=kind)
            if self._given_sink is not None:
                subtype, self.dtype = None, np.dtype(source.dtype)
            else:
                subtype = sink_subtype(snk_ep, source_subtype(source, src_ep))
                self.dtype = work_dtype(source.dtype, snk_ep, subtype)
            self.pipeline = self._build_pipeline(source)
            if self.fft_measure:
                self.wisdom_saved = wisdom.save()
            sink = self._given_sink or open_sink(
                snk_ep.uri,
                sample_rate=source.sample_rate,
                channels=self.pipeline.out_channels,
                fmt=snk_ep.format,
                subtype=subtype,
                block_size=self.block_size,
                stdout=self._stdout,
                give_up_s=self.give_up_s,
                log=self.log,
                like=source,  # a .csv sink writes in the form of a .csv source
                float_format=snk_ep.float_format,
                file_type=snk_ep.file_type,
            )
            if sink.channels != self.pipeline.out_channels:
                raise UsageError(
                    f"{sink.name}: takes {sink.channels} channels, the filter gives "
                    f"{self.pipeline.out_channels}"
                )
        except BaseException:
            source.close()
            raise
        self.source, self.sink = source, sink
        # A file sink is written behind in a thread: the disk overlaps the filtering.
        self._writer = WriteBehind(sink) if self.sink_kind == "file" else sink
        return self

    def _open_source(self) -> Source:
        ep = self.source_endpoint
        device_in = ep.kind == "device"
        in_channels = taps_channels(self.taps)[0]
        stdin = self._stdin
        if stdin is None and ep.kind == "pipe":
            stdin = _raw_stdin()
        return open_source(
            ep.uri,
            sample_rate=ep.rate or (self.taps_rate if device_in else None),
            channels=ep.channels or (in_channels if device_in else None),
            fmt=ep.format,
            block_size=self.block_size,
            dtype="auto",
            stdin=stdin,
            give_up_s=self.give_up_s,
            log=self.log,
            columns=ep.columns,
            # A raw format says what - carries: no waiting for a header to look at (the
            # service opens its control API only after its source).
            file_type=ep.file_type or ("raw" if ep.format and ep.kind == "pipe" else None),
        )

    def _check_taps(self, source: Source) -> None:
        if self.taps_rate is not None and self.taps_rate != source.sample_rate:
            raise UsageError(
                f"{self.taps_name}: the filters are for {self.taps_rate:g} Hz, "
                f"the input {source.name} at {source.sample_rate:g} Hz"
            )
        in_channels = taps_channels(self.taps)[0]
        if in_channels is not None and in_channels != source.channels:
            raise UsageError(
                f"{self.taps_name}: taps for {in_channels} channels, "
                f"the input {source.name} has {source.channels}"
            )

    def _build_pipeline(self, source: Source) -> Pipeline:
        try:
            return Pipeline(
                self.taps,
                source.sample_rate,
                source.channels,
                block_size=self.block_size,
                method=self.method,
                templates=self.templates,
                periodicity=self.periodicity,
                on_scores=self.on_scores,
                dtype=self.dtype,
            )
        except ValueError as exc:
            raise UsageError(f"{self.taps_name}: {exc}") from None

    # -- running -----------------------------------------------------------------------------

    def stop(self) -> None:
        """Ask the run to end at the next block boundary (safe from a signal handler or
        another thread): what was read is processed, the sink flushed and committed."""
        self._stop = True

    def replace_pipeline(self, pipeline: Pipeline, left: Iterable = ()) -> None:
        """Run `pipeline` from the next block on (a reload, from ``on_tick``); `left` are the
        detections the old one flushed (`Pipeline.successor`), reported now."""
        self.pipeline = pipeline
        for d in left:
            self._detection(d)

    def _opened(self) -> tuple[Source, Sink, Pipeline]:
        """The source, the sink as written to (files: through `WriteBehind`) and the pipeline
        of an opened run."""
        if self.source is None or self._writer is None or self.pipeline is None:
            raise RuntimeError("the Runner is not open")
        return self.source, self._writer, self.pipeline

    def abort(self) -> None:
        """Give up an opened run that will not `run`: close the source, discard the sink."""
        if self._done or self.source is None:
            return
        self._done = True
        source, writer, _ = self._opened()
        try:
            writer.abort()
        finally:
            source.close()

    def run(self) -> RunResult:
        """Open (if not yet), run to the end of the source, `duration_s` or `stop`, flush,
        commit the sink, close both; return what happened.

        Raises
        ------
        UsageError, RuntimeFailure
            Bad input (a NaN sample, a truncated file), a device lost for good, a full disk;
            the sink is then discarded, not committed.
        """
        if self.source is None:
            self.open()
        if self._done:
            raise RuntimeError("a Runner runs once")
        self._done = True
        source, sink, _ = self._opened()
        # The thread starts here, not at open: a device's capture starts at its first read.
        self._reader = ReadAhead(source, self._read_ahead(source))
        try:
            with sink:  # commits on success; an exception aborts (no half file)
                self._loop(self._reader, sink)
                self._set_state("stopping")
                pipeline = self._opened()[2]  # a reload may have replaced it
                if self.tail:
                    y, found = pipeline.tail()
                    sink.write(y)
                    self.frames_out += len(y)
                    for d in found:
                        self._detection(d)
                for d in pipeline.flush():
                    self._detection(d)
        finally:
            self._reader.close()  # closes the source
            self._set_state("stopped")
        return self.result()

    def _read_ahead(self, source: Source) -> int:
        """Frames per read of the reader thread. Files: large reads. Raw PCM pipes and udp:
        large partial reads (whatever one read of the pipe or one datagram brings), one
        hand-over between threads per read rather than per block, without waiting for a
        large read to fill. Devices, audio files on a pipe and Source objects: a block."""
        if self.source_kind == "file":
            return max(self.block_size, READ_AHEAD_FRAMES)
        if hasattr(source, "partial"):  # RawSource, UdpSource
            source.partial = True
            return max(self.block_size, READ_AHEAD_FRAMES)
        return self.block_size

    def result(self) -> RunResult:
        """The counters so far, as a `RunResult`."""
        return RunResult(
            frames_in=self.frames_in,
            frames_out=self.frames_out,
            clipped=self.clipped,
            stopped=self._stop,
            detections=self.detections,
            source=self.source_endpoint.uri,
            sink=self.sink_endpoint.uri,
            source_stats=self.source.stats() if self.source is not None else {},
            sink_stats=self.sink.stats() if self.sink is not None else {},
        )

    @property
    def clipped(self) -> int:
        """Samples the sink clipped so far."""
        return int(self.sink.clipped) if self.sink is not None else 0

    def _loop(self, reader: ReadAhead, sink: Sink) -> None:
        limit = None
        if self.duration_s is not None:
            limit = round(self.duration_s * reader.sample_rate)
        observers = self.observers
        next_poll = time.monotonic() + self.tick_s
        batch = self.source_kind == "file" and self.sink_kind in ("file", "null")
        while not self._stop:
            block = self._opened()[2].block_size  # a reload may change it
            if batch:  # see "threads" in the module docstring
                block = max(block, READ_AHEAD_FRAMES)
            want = block if limit is None else min(block, limit - self.frames_in)
            if want <= 0:
                break
            # Whole blocks however the source's reads arrived: the filter's rounding depends
            # on where the blocks are cut, and a run must give the same bits every time.
            x = reader.read_within(want, self.tick_s, fill=True)
            if time.monotonic() >= next_poll:
                next_poll = time.monotonic() + self.tick_s
                self._poll_devices()
            for o in observers:  # before the block: a reload applies to it
                o.on_tick(self)
            if x is None:  # the source is silent
                continue
            if not len(x):
                break
            t0 = time.perf_counter()
            pipeline = self._opened()[2]  # on_tick may have reloaded it: the block goes there
            start = pipeline.frames
            y, found = pipeline.process(x)
            sink.write(y)
            busy = time.perf_counter() - t0
            self.busy_s += busy
            self.frames_in += len(x)
            self.frames_out += len(y)
            if self._base_state == "starting":
                self._base_state = "running"
                self._set_state("running")
            if observers:  # the block first, then what it decided (snippets need the audio)
                event = BlockEvent(start, x, y, found, busy)
                for o in observers:
                    o.on_block(event)
            for d in found:
                self._detection(d)

    def _detection(self, det) -> None:
        self.detections += 1
        for o in self.observers:
            o.on_detection(det)

    def _poll_devices(self) -> None:
        """A sound device being reopened makes the run ``reopening`` until it is back."""
        if self._base_state != "running":
            return
        states = []
        for stream in (self.source, self.sink):
            device_state = getattr(stream, "device_state", None)
            if device_state is not None:
                states.append(device_state().get("state"))
        self._set_state("reopening" if "reopening" in states else "running")

    def _set_state(self, state: str) -> None:
        if state in ("stopping", "stopped"):
            self._base_state = state
        if state != self.state:
            self.state = state
            for o in self.observers:
                o.on_state(self, state)


def _raw_stdin():
    """Standard input without Python's buffer: the reader thread may be inside a read of it
    when the process ends, and a buffered stdin's lock held there aborts the interpreter's
    shutdown ("could not acquire lock for <stdin>"). None when it has no descriptor."""
    import os
    import sys

    try:
        return os.fdopen(sys.stdin.fileno(), "rb", buffering=0, closefd=False)
    except (AttributeError, OSError, ValueError):
        return None


@contextlib.contextmanager
def stop_on_signals(runner: Runner, signums=(signal.SIGINT,)) -> Iterator[Runner]:
    """While inside, the signals `signums` stop `runner` at a block boundary (`Runner.stop`)
    instead of raising; the previous handlers come back afterwards. Main thread only."""
    previous = {s: signal.signal(s, lambda signum, frame: runner.stop()) for s in signums}
    try:
        yield runner
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
