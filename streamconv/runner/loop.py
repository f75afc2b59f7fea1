"""The loop of `streamconv.runner`: `Runner` opens the two ends and pumps the blocks to them
and to its `Observer` objects."""

from __future__ import annotations

import contextlib
import dataclasses
import signal
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import numpy as np

from streamconv.errors import UsageError
from streamconv.io import open_sink, open_source
from streamconv.io.background import ReadAhead, WriteBehind
from streamconv.io.base import Sink, Source
from streamconv.io.taps import taps_channels
from streamconv.pipeline import Pipeline
from streamconv.runner.events import BlockEvent, RunResult
from streamconv.runner.rules import (
    FILE_BLOCK,
    READ_AHEAD_FRAMES,
    TICK_S,
    Endpoint,
    _block_for_kinds,
    _endpoint,
    sink_subtype,
    source_subtype,
    work_dtype,
)


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
                # 16384-frame passes, not 65536: the same few passes per second, and the
                # engines' temporaries stay in cache (10 min of 16-bit stereo, 255 taps, numpy
                # engine: 1.07 s of CPU instead of 1.3 s, a third of it page faults).
                block = max(block, FILE_BLOCK)
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
