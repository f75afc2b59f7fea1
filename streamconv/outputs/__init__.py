"""Detection outputs beyond the log file: an MQTT broker, a webhook.

Each output has a bounded queue and a thread of its own: the processing loop calls
``send(record)`` (a deque append under a lock) and never waits for a broker or a server.
``open_output`` builds one from a config's ``[[outputs]]`` entry.
"""

from __future__ import annotations

from streamconv.outputs.base import QueuedOutput
from streamconv.outputs.mqtt import MqttOutput
from streamconv.outputs.webhook import WebhookOutput

__all__ = ["MqttOutput", "QueuedOutput", "WebhookOutput", "open_output"]


def open_output(spec, log=None) -> QueuedOutput:
    """The output an ``[[outputs]]`` entry (`streamconv.config.models.MqttOutputConfig` or
    ``WebhookOutputConfig``) describes; not started."""
    if spec.type == "mqtt":
        return MqttOutput(
            spec.url,
            topic=spec.topic,
            qos=spec.qos,
            retain=spec.retain,
            client_id=spec.client_id,
            queue_size=spec.queue,
            log=log,
        )
    if spec.type == "webhook":
        return WebhookOutput(
            spec.url,
            headers=dict(spec.headers),
            timeout_s=spec.timeout_s,
            queue_size=spec.queue,
            log=log,
        )
    raise ValueError(f"unknown output type {spec.type!r}")
