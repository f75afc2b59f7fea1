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
    block, so each pass of the loop takes at least `FILE_BLOCK` frames whatever the block
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

from streamconv.runner.events import BlockEvent, RunResult
from streamconv.runner.loop import Observer, Runner, stop_on_signals
from streamconv.runner.rules import (
    FILE_BLOCK,
    LIVE_BLOCK,
    MAX_FILE_BLOCK,
    READ_AHEAD_FRAMES,
    TICK_S,
    Endpoint,
    block_size_for,
    clip_warning,
    endpoint_kind,
    sink_subtype,
    source_subtype,
    work_dtype,
)

__all__ = [
    "FILE_BLOCK",
    "LIVE_BLOCK",
    "MAX_FILE_BLOCK",
    "READ_AHEAD_FRAMES",
    "TICK_S",
    "BlockEvent",
    "Endpoint",
    "Observer",
    "RunResult",
    "Runner",
    "block_size_for",
    "clip_warning",
    "endpoint_kind",
    "sink_subtype",
    "source_subtype",
    "stop_on_signals",
    "work_dtype",
]
