"""What the service feeds the control plane, and what the control plane owns.

The service calls, from its processing loop:

========================  =========================================================
``block(x, y)``           after each block: input and filtered output
``scores(...)``           the matchers' score traces (``Matcher(on_scores=...)``)
``detection(record)``     each detection, before it is logged: adds snippet names
``event(kind, data)``     a reload, a device lost or back, a state change
``finish()``              end of stream: pending snippets are written as far as they go
========================  =========================================================

Each of them costs the loop a few numpy calls and a hand-over to another thread (the control
server's event loop, the snippet writer, each output's sender); none waits for a client.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable

from streamconv.control.events import EventHub
from streamconv.control.levels import LevelMeter, ScorePeaks
from streamconv.control.server import ControlServer
from streamconv.snippets import SnippetRecorder


def open_output(spec, log=None):
    """An ``[[outputs]]`` entry's sender (`streamconv.outputs`)."""
    from streamconv.outputs import open_output as open_

    return open_(spec, log=log)


LEVELS_INTERVAL_S = 1.0


class ControlPlane:
    """The control server, its event hub, level meters, snippets and detection outputs.

    Parameters
    ----------
    status, detections : callable
        The service's ``/status`` document and recent detections.
    channels_in, channels_out : int
        Channels of the input and of the filtered stream.
    listen : str, optional
        ``HOST:PORT`` or ``unix:PATH`` of the control server; None: no server (snippets and
        outputs still run).
    snippets : `streamconv.snippets.SnippetRecorder`, optional
        Saves the audio around each detection.
    outputs : sequence, optional
        Objects with ``send(record)`` and ``close()`` (`streamconv.outputs`).
    idle_timeout_s : float
        See `ControlServer`.
    interval_s : float
        Period of the ``levels``/``scores`` and ``status`` events.
    log : callable, optional
        One line of text for the service log.
    """

    def __init__(
        self,
        status: Callable[[], dict],
        detections: Callable[[], list],
        channels_in: int,
        channels_out: int,
        *,
        listen: str | None = None,
        snippets=None,
        outputs=(),
        idle_timeout_s: float = 15.0,
        interval_s: float = LEVELS_INTERVAL_S,
        log: Callable[[str], None] | None = None,
    ):
        self.log = log or (lambda line: None)
        self.hub = EventHub(log=self.log)
        self.snippets = snippets
        self.outputs = list(outputs)
        self.interval_s = float(interval_s)
        self.server = None
        if listen is not None:
            self.server = ControlServer(
                listen,
                status,
                detections,
                hub=self.hub,
                snippets_dir=snippets.directory if snippets is not None else None,
                idle_timeout_s=idle_timeout_s,
                status_interval_s=interval_s,
                log=self.log,
            )
        self._levels_in = LevelMeter(channels_in)
        self._levels_out = LevelMeter(channels_out)
        self._scores = ScorePeaks()
        self._frames = 0
        self._next_levels = time.monotonic() + self.interval_s

    @classmethod
    def from_config(cls, loaded, status, detections, log=None) -> ControlPlane | None:
        """The plane a `streamconv.config.LoadedConfig` asks for: ``[control]``, ``[detections]
        snippets``, ``[[outputs]]``; None when it asks for none of them."""
        cfg = loaded.config
        spec = cfg.detections.snippets if cfg.detections is not None else None
        outputs = list(cfg.outputs)
        if loaded.control_listen is None and spec is None and not outputs:
            return None
        snippets = None
        if spec is not None:
            base = os.path.dirname(os.path.abspath(loaded.path))
            snippets = SnippetRecorder(
                os.path.normpath(os.path.join(base, os.path.expanduser(spec.dir))),
                loaded.sample_rate,
                loaded.channels_in,
                loaded.channels_out,
                pre_s=spec.pre_s,
                post_s=spec.post_s,
                max_mb=spec.max_mb,
                filtered=spec.filtered,
                log=log,
            )
        return cls(
            status,
            detections,
            loaded.channels_in,
            loaded.channels_out,
            listen=loaded.control_listen,
            snippets=snippets,
            outputs=[open_output(o, log=log) for o in outputs],
            idle_timeout_s=cfg.control.idle_timeout_s if cfg.control is not None else 15.0,
            log=log,
        )

    @property
    def address(self) -> str | None:
        return self.server.address if self.server is not None else None

    def start(self) -> ControlPlane:
        if self.snippets is not None:
            self.snippets.start()
        for out in self.outputs:
            out.start()
        if self.server is not None:
            self.server.start()
        return self

    def stop(self) -> None:
        """Stop the server, then let the snippet writer and the outputs finish their queues."""
        if self.server is not None:
            self.server.stop()
        if self.snippets is not None:
            self.snippets.close()
        # Every output's stop begins at once: they share CLOSE_TIMEOUT_S, not one each in turn.
        for out in self.outputs:
            out.begin_close()
        for out in self.outputs:
            out.wait_closed()

    # -- the processing loop's thread ------------------------------------------------------

    def block(self, x, y) -> None:
        """One block in (``x``) and out (``y``), both ``(frames, channels)``."""
        self._frames += len(x)
        if self.snippets is not None:
            self.snippets.add(x, y)
        if not self.hub.has_clients:
            return
        self._levels_in.add(x)
        self._levels_out.add(y)
        now = time.monotonic()
        if now >= self._next_levels:
            self._next_levels = now + self.interval_s
            self.hub.publish(
                "levels",
                {
                    "sample": self._frames,
                    "input": self._levels_in.take(),
                    "output": self._levels_out.take(),
                },
            )
            self.hub.publish("scores", {"sample": self._frames, "templates": self._scores.take()})

    def scores(self, template: str, channel, start: int, scores, thresholds, step=1) -> None:
        """A stretch of one template's score trace (the arguments of ``Matcher.on_scores``,
        and the samples between two scores)."""
        if self.hub.has_clients:
            self._scores.add(template, channel, start, scores, thresholds, step)

    def detection(self, record: dict) -> dict:
        """A detection just decided: name its snippets in it, push it to /events and outputs."""
        if self.snippets is not None:
            record = {**record, **self.snippets.detection(record)}
        self.hub.publish("detection", record)
        for out in self.outputs:
            out.send(record)
        return record

    def event(self, kind: str, data: dict) -> None:
        """A ``reload``, ``device`` or ``state`` event for /events."""
        self.hub.publish(kind, {"time": time.time(), **data})

    def finish(self) -> None:
        """End of stream: the snippets still waiting for audio get what there is."""
        if self.snippets is not None:
            self.snippets.finish()
