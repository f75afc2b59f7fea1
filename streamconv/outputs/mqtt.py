"""``type = "mqtt"``: each detection published to an MQTT broker (paho-mqtt), QoS 1 by default.

paho's network thread keeps the connection: it reconnects with backoff (0.25 s doubling to
30 s) and, after a reconnect, sends again every QoS 1/2 message the broker had not acknowledged,
and the messages published while it was away. So while the broker restarts nothing is lost:
the records wait in paho's queue and in this output's, both bounded by ``queue``.
"""

from __future__ import annotations

import json
import os
import re
import ssl
import string
import sys
import threading
import time
import urllib.parse
from collections.abc import Callable

from streamconv.outputs.base import MAX_BACKOFF_S, QueuedOutput

TOPIC_FIELDS = frozenset({"template", "channel", "sample"})
DEFAULT_PORTS = {"mqtt": 1883, "mqtts": 8883}


def check_url(url: str) -> tuple[str, str, int, str | None, str | None]:
    """``mqtt://[USER[:PASSWORD]@]HOST[:PORT]`` (or ``mqtts://``) -> scheme, host, port, user,
    password; ValueError naming what is wrong."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in DEFAULT_PORTS:
        raise ValueError(f"{url!r}: the broker URL must start with mqtt:// or mqtts://")
    if not parts.hostname:
        raise ValueError(f"{url!r}: no broker host")
    if parts.path not in ("", "/"):
        raise ValueError(f"{url!r}: a broker URL has no path (the topic is its own key)")
    try:
        port = parts.port or DEFAULT_PORTS[parts.scheme]
    except ValueError:
        raise ValueError(f"{url!r}: bad port") from None
    user = urllib.parse.unquote(parts.username) if parts.username else None
    password = urllib.parse.unquote(parts.password) if parts.password else None
    return parts.scheme, parts.hostname, port, user, password


def check_topic(topic: str) -> str:
    """A topic template may use ``{template}``, ``{channel}`` and ``{sample}``."""
    try:
        fields = {name for _, name, _, _ in string.Formatter().parse(topic) if name is not None}
    except ValueError as exc:
        raise ValueError(f"{topic!r}: {exc}") from None
    unknown = fields - TOPIC_FIELDS
    if unknown:
        raise ValueError(
            f"{topic!r}: unknown field {{{sorted(unknown)[0]}}}; "
            f"use {', '.join('{' + f + '}' for f in sorted(TOPIC_FIELDS))}"
        )
    if "+" in topic or "#" in topic:
        raise ValueError(f"{topic!r}: + and # are for subscriptions, not a topic to publish to")
    return topic


def _topic_part(value) -> str:
    """A field as one topic level: no ``/``, ``+``, ``#`` (they would change the topic)."""
    return re.sub(r"[/+#\x00]", "_", "" if value is None else str(value))


class MqttOutput(QueuedOutput):
    """Publish each detection record as JSON to ``topic.format(template=..., ...)``.

    Parameters
    ----------
    url : str
        ``mqtt://[USER[:PASSWORD]@]HOST[:PORT]`` (default port 1883) or ``mqtts://`` (TLS with
        the system's CAs, port 8883).
    topic : str
        Topic template; ``{template}``, ``{channel}`` (empty when channels are combined) and
        ``{sample}`` are filled in from the record.
    qos : int
        0, 1 (at least once; default) or 2.
    retain : bool
        Ask the broker to keep the last message of each topic.
    client_id : str, optional
        MQTT client id; default ``streamconv-PID``.
    queue_size : int
        Records kept while the broker is away (this output's queue and paho's each).
    """

    def __init__(
        self,
        url: str,
        topic: str = "streamconv/{template}",
        qos: int = 1,
        retain: bool = False,
        client_id: str | None = None,
        queue_size: int = 10000,
        log: Callable[[str], None] | None = None,
    ):

        from paho.mqtt import client as mqtt

        scheme, host, port, user, password = check_url(url)
        shown = f"{scheme}://{host}:{port}"
        super().__init__(shown, queue_size, log)
        self.topic = check_topic(topic)
        self.qos = int(qos)
        self.retain = bool(retain)
        self._host, self._port = host, port
        self._mqtt = mqtt
        self._client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2,
            client_id=client_id or f"streamconv-{os.getpid()}",
            clean_session=True,
        )
        # paho's own logging stays off: our log says connected / lost / reconnected. (Its
        # enable_logger(None) would turn it ON, and its ERROR lines while the broker is away,
        # "Client is not connected. Socket: None). ...", reached stderr through Python's
        # last-resort handler.)
        self._client.disable_logger()
        if user is not None:
            self._client.username_pw_set(user, password)
        if scheme == "mqtts":
            self._client.tls_set()
        # paho annotates the delays as int, but it only multiplies and sleeps them: a quarter
        # second first is what keeps a broker restart short.
        self._client.reconnect_delay_set(min_delay=0.25, max_delay=MAX_BACKOFF_S)  # type: ignore[arg-type]
        self._client.max_queued_messages_set(self.queue_size)
        self._client.on_connect = self._on_connect
        self._client.on_connect_fail = self._on_connect_fail
        self._client.on_disconnect = self._on_disconnect
        self._client.on_publish = self._on_publish
        self._lock = threading.Lock()
        self.connected = threading.Event()
        self.published = 0  # handed to paho
        self.acked = 0  # acknowledged by the broker (QoS 1/2) or written (QoS 0)
        self._ever_connected = False
        self._closing = False  # set by _finish before it disconnects
        self._refused: str | None = None  # the broker's reason, while it refuses us
        self._unreachable = False  # said so since the last connection

    # -- paho's network thread -------------------------------------------------------------

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            # paho tries again with backoff, and the broker refuses each time (a wrong
            # password): one line for the run of refusals, another if the reason changes.
            if str(reason_code) != self._refused:
                self._refused = str(reason_code)
                self.log(
                    f"output {self.name}: broker refused the connection: {reason_code}"
                    "; trying again with backoff"
                )
            return
        self._refused = None
        self._unreachable = False
        self.connected.set()
        self.log(f"output {self.name}: {'re' if self._ever_connected else ''}connected")
        self._ever_connected = True

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        # Our own disconnect at stop is no loss: paho reports it here as "Normal disconnection".
        if self.connected.is_set() and not self._closing:
            self.log(f"output {self.name}: connection lost ({reason_code}); reconnecting")
            self._unreachable = True  # the failed attempts that follow are this outage
        self.connected.clear()

    def _on_connect_fail(self, client, userdata) -> None:
        # paho calls this inside its `except OSError`, which is the reason: a broker down at
        # start, a TLS handshake with a plain port. Said once per outage, not per attempt.
        if self._unreachable or self._closing:
            return
        self._unreachable = True
        exc = sys.exc_info()[1]
        reason = (
            os.strerror(exc.errno)
            if isinstance(exc, OSError) and exc.errno and not isinstance(exc, ssl.SSLError)
            else str(exc or "no answer")
        )
        self.log(f"output {self.name}: cannot connect ({reason}); trying again with backoff")

    def _on_publish(self, client, userdata, mid, reason_code, properties) -> None:
        with self._lock:
            self.acked += 1

    # -- the output's thread ---------------------------------------------------------------

    def start(self) -> MqttOutput:
        # connect_async + loop_start: paho's thread connects, and reconnects with backoff,
        # also when the broker is not up yet at start.
        self._client.connect_async(self._host, self._port, keepalive=30)
        self._client.loop_start()
        super().start()
        return self

    def _deliver(self, record: dict) -> bool | None:
        topic = self.topic.format(
            template=_topic_part(record.get("template")),
            channel=_topic_part(record.get("channel")),
            sample=_topic_part(record.get("sample")),
        )
        payload = json.dumps(record)
        while True:
            info = self._client.publish(topic, payload, qos=self.qos, retain=self.retain)
            if info.rc != self._mqtt.MQTT_ERR_QUEUE_SIZE:
                with self._lock:
                    self.published += 1
                return True  # sent, or queued by paho until the broker is back
            if not self._wait(0.1):  # paho's queue is full: the broker is away for long
                return None

    def _finish(self) -> None:
        """Wait (within the close deadline) for the broker to acknowledge what was published."""

        def unacked() -> int:
            with self._lock:
                return self.published - self.acked

        while unacked() > 0 and time.monotonic() < self._deadline:
            time.sleep(0.02)
        if unacked() > 0:
            self.log(
                f"output {self.name}: {unacked()} detections not delivered at stop "
                "(not acknowledged by the broker)"
            )
        self._closing = True
        self._client.disconnect()
        self._client.loop_stop()
