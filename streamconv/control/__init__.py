"""The service's live control plane: HTTP API, event stream, dashboard, and what feeds them.

- `server`: the aiohttp server in a thread of its own (``/health``, ``/status``, ``/metrics``,
  ``/detections``, ``/events``, ``/snippets/NAME``, the dashboard at ``/``);
- `events`: the hub that fans events out to ``/events`` readers with bounded queues;
- `metrics`: Prometheus text made from ``/status``.
"""

from streamconv.control.events import EventHub
from streamconv.control.server import ControlServer

__all__ = ["ControlServer", "EventHub"]
