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
import json
import os
import signal
import socket
import sys
import threading
import time

from streamconv.config import LoadedConfig, load_config
from streamconv.control.plane import ControlPlane
from streamconv.errors import ConfigError, RuntimeFailure
from streamconv.runner import Observer, Runner, block_size_for, clip_warning

RECENT_DETECTIONS = 1000


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
            raise RuntimeFailure(f"{self.path}: {exc.strerror}") from None

    def close(self) -> None:
        self._file.close()


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
    """

    def __init__(self, config_path: str, log=None):
        self.config_path = config_path
        self.log = log or (lambda line: print(line, file=sys.stderr, flush=True))
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
        source_device = src.device_state() if hasattr(src, "device_state") else {}
        sink_device = snk.device_state() if hasattr(snk, "device_state") else {}
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
                    self.log(f"control: listening on {self.plane.address}")
            watchdog = _Watchdog(self)
            try:
                result = runner.run()
            finally:
                watchdog.stop()
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
        self.log(
            f"streamconv run: {result.frames_in} frames in, {result.frames_out} frames out, "
            f"{result.detections} detections"
        )
        return 0

    # -- the runner's hooks ------------------------------------------------------------------

    def on_tick(self, runner: Runner) -> None:
        if self._reload:  # between two blocks: the new config runs from the next one
            self._reload = False
            self._reload_config()

    def on_block(self, event) -> None:
        if self.plane is not None:
            self.plane.block(event.input, event.output)

    def on_detection(self, detection) -> None:
        self._report(detection)

    def on_state(self, runner: Runner, state: str) -> None:
        if state == "running" and self.state == "starting":
            self._set_state("running")
            sd_notify(f"READY=1\nSTATUS=running {self.loaded.path}")
            self.log(f"running: {self.loaded.source.uri} -> {self.loaded.sink.uri}")
        elif state == "stopping":
            self._set_state("stopping")
            sd_notify("STOPPING=1")

    def _scores(self, template, channel, start, scores, thresholds) -> None:
        """The matchers' score traces, for the dashboard's score plot."""
        if self.plane is not None:
            self.plane.scores(template, channel, start, scores, thresholds)

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
        self.log(f"detection: {json.dumps(record)}")

    def _reload_config(self) -> None:
        self.log(f"reload: {self.config_path}")
        try:
            new = load_config(self.config_path)
            changed = _same_streams(self.loaded, new)
            if changed:
                raise ConfigError("; ".join(changed) + " (restart the service for that)")
            taps = new.compact_taps()
            pipeline, left = self.runner.pipeline.successor(
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
        self.runner.replace_pipeline(pipeline, left)
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


class _Watchdog:
    """Ping systemd's watchdog (``WATCHDOG_USEC``) at half its period while the loop lives."""

    def __init__(self, service: Service):
        usec = os.environ.get("WATCHDOG_USEC", "")
        pid = os.environ.get("WATCHDOG_PID")
        self._done = threading.Event()
        self._thread = None
        if not usec.isdigit() or (pid and pid != str(os.getpid())):
            return
        self._interval = int(usec) / 2e6
        self._thread = threading.Thread(target=self._run, name="streamconv-watchdog", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._done.wait(self._interval):
            sd_notify("WATCHDOG=1")

    def stop(self) -> None:
        self._done.set()
