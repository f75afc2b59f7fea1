"""The service behind ``streamconv run``: lifecycle, signals, reload, detection log, sd_notify.

The stream runs through a `streamconv.runner.Runner`, the loop ``streamconv filter`` and the
Python API use, in the caller's thread (which also takes the signals); the service is one of its
observers: it applies reloads in ``on_tick``, feeds the control plane in ``on_block``, logs
detections in ``on_detection`` and tells systemd in ``on_state``. Sources are read in a thread
of the runner's, devices copy into their own bounded queues in their callbacks
(`streamconv.io.devices`), the control API answers in a thread of its own.

=========  ===================================================================================
SIGTERM    stop reading, process what was read, flush sink and detection log, exit 0
SIGINT     the same
SIGHUP     reload the config through `load_config` (the path of ``streamconv check``); it takes
           effect at the next block boundary (within ``TICK_S`` on a silent source); a bad one
           is logged, reported in ``/status``, and the running pipeline goes on
=========  ===================================================================================

Under systemd (``Type=notify``, ``systemd/streamconv.service``): ``READY=1`` once the pipeline
is built, the source open and the control API up, with ``STATUS=waiting for input`` until the
first block (and again after `IDLE_STATUS_S` without any); ``WATCHDOG=1`` from the processing
loop's tick, so a hung loop is killed by systemd while an idle one stays healthy. Exit codes:
0 stopped or the source ended, 1 the machine failed (a busy port, a sound device not there, a
full disk: systemd retries), 2 a bad config or input (it does not).

A sound device that goes away is reopened with backoff by the source or sink itself
(`streamconv.io.reopen`): meanwhile a read waits (signals still stop it), ``/status`` says
``"state": "reopening"`` with the device's last error, and every attempt is a log line and a
systemd ``STATUS=``. The service never gives up on it (the runner's ``give_up_s=None``).

Samples an integer sink clipped are counted in ``/status`` (``clipped``) and ``/metrics``
(``streamconv_clipped_samples``), and said in a ``warning:`` line at the end, as
``streamconv filter`` says it.
"""

from __future__ import annotations

import collections
import contextlib
import grp
import json
import os
import signal
import socket
import sys
import threading
import time

from streamconv.config import LoadedConfig, load_config
from streamconv.control.plane import ControlPlane
from streamconv.errors import ConfigError, RuntimeFailure, UsageError
from streamconv.runner import Observer, Runner, block_size_for, clip_warning

RECENT_DETECTIONS = 1000
#: Seconds without input after which STATUS= says "waiting for input" again.
IDLE_STATUS_S = 2.0


def sd_notify(message: str) -> bool:
    """Send ``message`` (``READY=1``, ``STATUS=...``, ``WATCHDOG=1``) to systemd, if it listens.

    Speaks the notify protocol directly: one datagram to the unix socket named by
    ``$NOTIFY_SOCKET`` (``@`` at the start is the abstract namespace). False when not under
    systemd.
    """
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return False
    if address.startswith("@"):
        address = "\0" + address[1:]
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
        sock.connect(address)
        sock.sendall(message.encode())
    return True


_LOG_LOCK = threading.Lock()


def log_line(line: str) -> None:
    """The service log's default: one line to stderr (which journald keeps) in one write.

    The processing loop, the control server and each output log from threads of their own;
    ``print`` writes the text and its newline in two calls, so two lines could run together
    (``...: connectedcontrol: listening on ...``). One write under a lock keeps them whole.
    """
    with _LOG_LOCK:
        sys.stderr.write(line + "\n")
        sys.stderr.flush()


def _device_state(stream) -> dict:
    """A live device's ``device_state()`` (`streamconv.io.reopen`); empty for other streams."""
    state = getattr(stream, "device_state", None)
    return state() if state is not None else {}


class DetectionLog:
    """Append detections as JSON lines, flushed and fsynced one by one."""

    def __init__(self, path: str):
        self.path = path
        try:
            self._file = open(path, "a", encoding="utf-8")
        except OSError as exc:
            raise RuntimeFailure(
                f"{path}: cannot open the detection log ({exc.strerror})"
            ) from None

    def write(self, record: dict) -> None:
        try:
            self._file.write(json.dumps(record) + "\n")
            self._file.flush()
            os.fsync(self._file.fileno())
        except OSError as exc:
            self._failed = True
            raise RuntimeFailure(f"{self.path}: {exc.strerror}") from None

    def close(self) -> None:
        """Close; after a failed write (a full disk) the unwritten line is dropped quietly:
        the failure was reported once already."""
        try:
            self._file.close()
        except OSError as exc:
            if not getattr(self, "_failed", False):
                raise RuntimeFailure(f"{self.path}: {exc.strerror}") from None


def _same_streams(a: LoadedConfig, b: LoadedConfig) -> list[str]:
    """What a reload cannot change while running, as messages."""
    changed = []
    for key in ("source", "sink"):
        if getattr(a, key) != getattr(b, key):
            changed.append(f"[{key}] changed")
    if a.detections_path != b.detections_path:
        changed.append("[detections] path changed")
    if a.control_listen != b.control_listen:
        changed.append("[control] listen changed")
    elif a.config.control != b.config.control:
        # idle_timeout_s, allow_remote, socket_group: the server was set up with them at
        # start; a reload that took them would say "generation N" and change nothing.
        changed.append("[control] changed")
    snippets = [c.config.detections.snippets if c.config.detections else None for c in (a, b)]
    if snippets[0] != snippets[1]:
        changed.append("[detections] snippets changed")
    if a.config.outputs != b.config.outputs:
        changed.append("[[outputs]] changed")
    if a.channels_out != b.channels_out:
        changed.append(f"the chain now gives {b.channels_out} channels, not {a.channels_out}")
    return changed


class Service(Observer):
    """``streamconv run``: one config, run until the source ends or a stop signal.

    Parameters
    ----------
    config_path : str
        The config file; read again on SIGHUP.
    log : callable
        Takes one line of text for the service log (default: stderr, which journald keeps).
    quiet : bool
        ``run -q``: no notes in the log, as ``-q`` leaves them out of every command: no
        ``detection:`` lines (detections still go to the detection log, ``/events`` and the
        outputs), no ``ready:`` and ``running:`` lines and no summary at the end. The control
        API's address (with port 0 the log is the only place that says it), device losses
        and reopens, reloads, warnings and errors are logged as ever.
    """

    def __init__(self, config_path: str, log=None, quiet: bool = False):
        self.config_path = config_path
        self.log = log or log_line
        self.quiet = quiet
        self.loaded = load_config(config_path)
        self.generation = 1
        self.last_reload_error: str | None = None
        self.reloads_failed = 0
        self.state = "starting"
        self.started = time.monotonic()
        self.counts = {t.name: 0 for t in self.loaded.templates}
        self.counts.update({p.name: 0 for p in self.loaded.periodicity})
        self.recent: collections.deque = collections.deque(maxlen=RECENT_DETECTIONS)
        self.runner: Runner | None = None
        self._detlog: DetectionLog | None = None
        self._stop = False
        self._watchdog = _Watchdog()
        self._waiting = False  # STATUS= says "waiting for input"
        self._frames_seen = 0
        self._last_input = time.monotonic()
        self._reload = False
        self._lock = threading.Lock()
        self.plane: ControlPlane | None = None

    # -- signals ---------------------------------------------------------------------------

    def _on_stop(self, signum, frame) -> None:
        self._stop = True
        if self.runner is not None:
            self.runner.stop()

    def _on_reload(self, signum, frame) -> None:
        self._reload = True

    def _install_signals(self) -> None:
        signal.signal(signal.SIGTERM, self._on_stop)
        signal.signal(signal.SIGINT, self._on_stop)
        signal.signal(signal.SIGHUP, self._on_reload)

    # -- status ----------------------------------------------------------------------------

    def status(self) -> dict:
        """The ``/status`` document."""
        runner = self.runner
        src = runner.source if runner else None
        snk = runner.sink if runner else None
        frames_in = runner.frames_in if runner else 0
        busy_s = runner.busy_s if runner else 0.0
        rate = self.loaded.sample_rate
        source_stats = src.stats() if src else {}
        sink_stats = snk.stats() if snk else {}
        # Live devices say whether they run or are being reopened (streamconv.io.reopen).
        source_device = _device_state(src)
        sink_device = _device_state(snk)
        reopening = "reopening" in (source_device.get("state"), sink_device.get("state"))
        with self._lock:
            counts = dict(self.counts)
        return {
            "state": "reopening" if reopening and self.state == "running" else self.state,
            "uptime_s": time.monotonic() - self.started,
            "config": self.loaded.path,
            "config_generation": self.generation,
            "last_reload_error": self.last_reload_error,
            "reloads_failed": self.reloads_failed,
            "sample_rate": rate,
            "frames_in": frames_in,
            "frames_out": runner.frames_out if runner else 0,
            "clipped": runner.clipped if runner else 0,
            "detections": counts,
            "overflows": int(source_stats.get("overflows", 0)),
            "dropped_frames": int(source_stats.get("dropped_frames", 0)),
            "underflows": int(sink_stats.get("underflows", 0)),
            "reopens": int(source_stats.get("reopens", 0)) + int(sink_stats.get("reopens", 0)),
            "source": {"uri": self.loaded.source.uri, **source_stats, **source_device},
            "sink": {"uri": self.loaded.sink.uri, **sink_stats, **sink_device},
            "load": busy_s / (frames_in / rate) if frames_in else 0.0,
        }

    def detections(self) -> list[dict]:
        """The recent detections, oldest first."""
        with self._lock:
            return list(self.recent)

    # -- running ---------------------------------------------------------------------------

    def run(self) -> int:
        """Run to the end of the source or a stop signal; return the exit code (0)."""
        self._install_signals()
        cfg = self.loaded
        runner = Runner.from_config(
            cfg, give_up_s=None, log=self._device_log, observers=[self], on_scores=self._scores
        )  # a service never gives up on a device
        with _device_absence_is_transient(cfg):
            runner.open()
        self.runner = runner
        if self._stop:  # a stop signal while opening
            runner.stop()
        try:
            if cfg.detections_path:
                self._detlog = DetectionLog(cfg.detections_path)
            self.plane = ControlPlane.from_config(cfg, self.status, self.detections, self.log)
            if self.plane is not None:
                self.plane.start()
                if self.plane.address:
                    if cfg.control_socket_group:
                        _give_socket_to_group(self.plane.address, cfg.control_socket_group)
                    self.log(f"control: listening on {self.plane.address}")
            # Ready: the pipeline is built, the source open, the sink and the API up. Not at
            # the first block: a silent source would keep systemd waiting until
            # TimeoutStartSec= killed the service, and again after every restart.
            self._waiting = True
            sd_notify(f"READY=1\nSTATUS=waiting for input from {cfg.source.uri}")
            self._note(f"ready: waiting for input from {cfg.source.uri}")
            result = runner.run()
        finally:
            runner.abort()  # nothing if it ran
            if self._detlog is not None:
                self._detlog.close()
            if self.plane is not None:
                self.plane.finish()
                self.plane.stop()
        warning = clip_warning(result.sink, result.clipped)
        if warning:
            self.log(warning)
        self._note(
            f"streamconv run: {result.frames_in} frames in, {result.frames_out} frames out, "
            f"{result.detections} detections"
        )
        return 0

    def _note(self, line: str) -> None:
        """A line of the log that ``run -q`` leaves out (the start, the summary, detections)."""
        if not self.quiet:
            self.log(line)

    # -- the runner's hooks ------------------------------------------------------------------

    def on_tick(self, runner: Runner) -> None:
        # Called from the processing loop before every block and at least every TICK_S while
        # the source is silent: the watchdog is pinged from here, so a loop that hangs (a
        # block that never finishes, a sink that never takes one) stops the pings and systemd
        # restarts the service; a ping thread of its own would have kept a hung loop "healthy".
        self._watchdog.ping()
        if self._reload:  # between two blocks: the new config runs from the next one
            self._reload = False
            self._reload_config()
        self._tell_idle(runner)

    def _tell_idle(self, runner: Runner) -> None:
        """STATUS= says "waiting for input" while nothing comes, "running" when it does."""
        now = time.monotonic()
        if runner.frames_in != self._frames_seen:
            self._frames_seen, self._last_input = runner.frames_in, now
            if self._waiting and self.state == "running":
                self._waiting = False
                sd_notify(f"STATUS=running {self.loaded.path} (generation {self.generation})")
        elif not self._waiting and now - self._last_input > IDLE_STATUS_S:
            self._waiting = True
            sd_notify(
                f"STATUS=waiting for input from {self.loaded.source.uri} "
                f"(none for {IDLE_STATUS_S:g} s)"
            )

    def on_block(self, event) -> None:
        if self.plane is not None:
            self.plane.block(event.input, event.output)

    def on_detection(self, detection) -> None:
        self._report(detection)

    def on_state(self, runner: Runner, state: str) -> None:
        if state == "running" and self.state == "starting":
            self._set_state("running")
            self._waiting = False
            self._frames_seen, self._last_input = runner.frames_in, time.monotonic()
            sd_notify(f"STATUS=running {self.loaded.path}")
            self._note(f"running: {self.loaded.source.uri} -> {self.loaded.sink.uri}")
        elif state == "stopping":
            self._set_state("stopping")
            sd_notify("STOPPING=1")

    def _scores(self, template, channel, start, scores, thresholds) -> None:
        """The matchers' score traces, for the dashboard's score plot: placed on the
        detections' timeline (a spectrogram template scores once per hop)."""
        runner = self.runner
        if self.plane is not None and runner is not None and runner.pipeline is not None:
            offset, step = runner.pipeline.score_position(template)
            self.plane.scores(template, channel, offset + start, scores, thresholds, step)

    def _set_state(self, state: str) -> None:
        self.state = state
        if self.plane is not None:
            self.plane.event("state", {"state": state})

    def _device_log(self, line: str) -> None:
        """A device lost, an attempt to reopen it, or it back: the log and systemd's STATUS."""
        self.log(line)
        if self.plane is not None:
            self.plane.event("device", {"message": line})
        sd_notify(f"STATUS={line}")

    def _report(self, det) -> None:
        record = det.to_dict()
        if self.plane is not None:
            record = self.plane.detection(record)
        if self._detlog is not None:
            self._detlog.write(record)
        with self._lock:
            self.counts[det.template] = self.counts.get(det.template, 0) + 1
            self.recent.append(record)
        self._note(f"detection: {json.dumps(record)}")

    def _reload_config(self) -> None:
        self.log(f"reload: {self.config_path}")
        runner = self.runner
        if runner is None or runner.pipeline is None:
            self.log("reload: the stream is not open yet; the config is read when it opens")
            return
        try:
            new = load_config(self.config_path)
            changed = _same_streams(self.loaded, new)
            if changed:
                raise ConfigError("; ".join(changed) + " (restart the service for that)")
            taps = new.compact_taps()
            pipeline, left = runner.pipeline.successor(
                taps,
                new.templates,
                new.periodicity,
                block_size=new.block_size
                or block_size_for(new.source.uri, new.sink.uri, taps.shape[0]),
                method=new.method,
            )
        except (ConfigError, ValueError) as exc:
            errors = getattr(exc, "errors", None) or [str(exc)]
            self.last_reload_error = "; ".join(errors)
            self.reloads_failed += 1
            for line in errors:
                self.log(f"reload failed, the running config stays: {line}")
            sd_notify(f"STATUS=reload failed: {errors[0]}")
            if self.plane is not None:
                self.plane.event(
                    "reload", {"ok": False, "generation": self.generation, "errors": errors}
                )
            return
        runner.replace_pipeline(pipeline, left)
        self.loaded = new
        self.generation += 1
        self.last_reload_error = None
        with self._lock:
            for name in [t.name for t in new.templates] + [p.name for p in new.periodicity]:
                self.counts.setdefault(name, 0)
        self.log(f"reload: generation {self.generation} runs from frame {pipeline.frames}")
        sd_notify(f"STATUS=running {new.path} (generation {self.generation})")
        if self.plane is not None:
            self.plane.event(
                "reload", {"ok": True, "generation": self.generation, "frame": pipeline.frames}
            )


@contextlib.contextmanager
def _device_absence_is_transient(cfg: LoadedConfig):
    """A sound device that is not there (not plugged in yet, taken by another program) is a
    state of the machine, not a mistake in the config, which `load_config` has checked: the
    service exits 1 for it, and systemd's ``Restart=on-failure`` tries again."""
    devices = tuple(
        info.uri for info in (cfg.source, cfg.sink) if info.locator.kind in ("device", "pyaudio")
    )
    try:
        yield
    except UsageError as exc:
        if devices and str(exc).startswith(devices):
            raise RuntimeFailure(str(exc)) from None
        raise


def _give_socket_to_group(address: str, group: str) -> None:
    """``[control] socket_group``: the unix socket becomes ``root:GROUP``-readable, mode 0660
    (connecting needs write permission), so the members of GROUP may use the control API."""
    path = address[len("unix:") :]
    try:
        os.chown(path, -1, grp.getgrnam(group).gr_gid)
        os.chmod(path, 0o660)
    except KeyError:
        raise UsageError(f"[control] socket_group: no such group {group!r}") from None
    except PermissionError:
        raise UsageError(
            f"[control] socket_group: the service is not a member of {group!r} "
            "(the unit's SupplementaryGroups=)"
        ) from None


class _Watchdog:
    """systemd's watchdog (``WATCHDOG_USEC``): `ping` sends ``WATCHDOG=1`` at most every
    quarter period, so calling it for every block costs a clock read."""

    def __init__(self):
        usec = os.environ.get("WATCHDOG_USEC", "")
        pid = os.environ.get("WATCHDOG_PID")
        self._interval = None
        if usec.isdigit() and (not pid or pid == str(os.getpid())):
            self._interval = int(usec) / 4e6
        self._next = 0.0

    def ping(self) -> None:
        if self._interval is None:
            return
        now = time.monotonic()
        if now >= self._next:
            self._next = now + self._interval
            sd_notify("WATCHDOG=1")
