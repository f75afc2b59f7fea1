"""``GET /metrics``: Prometheus metrics made from the service's ``/status`` document."""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

PROMETHEUS_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def registry_for(status: Callable[[], dict]) -> CollectorRegistry:
    """A registry whose only collector reads one `status()` snapshot per scrape."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(StatusCollector(status))
    return registry


def render(registry: CollectorRegistry) -> bytes:
    """The Prometheus text exposition of `registry`."""
    return generate_latest(registry)


class StatusCollector:
    """Prometheus metrics made from one `status()` snapshot at scrape time."""

    def __init__(self, status: Callable[[], dict]):
        self._status = status

    def collect(self):
        s = self._status()
        counters = {
            "frames_in": "Frames read from the source",
            "frames_out": "Frames written to the sink",
            "overflows": "Source overflows (frames the capture side had to drop)",
            "underflows": "Sink underflows",
            "dropped_frames": "Source frames lost (overflowed, or estimated while a device was "
            "away)",
            "reloads_failed": "SIGHUP reloads rejected (the old config kept running)",
        }
        for key, text in counters.items():
            yield CounterMetricFamily(f"streamconv_{key}", text, value=s.get(key, 0))
        # A unit in the name, as Prometheus has it; the /status key is "clipped".
        yield CounterMetricFamily(
            "streamconv_clipped_samples",
            "Samples the sink clipped on the way to an integer format",
            value=s.get("clipped", 0),
        )
        reopens = CounterMetricFamily(
            "streamconv_device_reopens", "Times a lost sound device was opened again",
            labels=["stream"],
        )  # fmt: skip
        up = GaugeMetricFamily(
            "streamconv_device_up", "1 while a sound device runs, 0 while it is being reopened",
            labels=["stream"],
        )  # fmt: skip
        for stream in ("source", "sink"):
            if "state" in s[stream]:  # a live device
                reopens.add_metric([stream], s[stream]["reopens"])
                up.add_metric([stream], 1 if s[stream]["state"] == "running" else 0)
        yield reopens
        yield up
        det = CounterMetricFamily(
            "streamconv_detections", "Detections reported", labels=["template"]
        )
        for name, count in s["detections"].items():
            det.add_metric([name], count)
        yield det
        gauges = {
            "load": ("Processing time as a fraction of real time", s["load"]),
            "uptime_seconds": ("Seconds since the service started", s["uptime_s"]),
            "config_generation": ("Config generation (1 at start, +1 per reload)",
                                  s["config_generation"]),
            "sample_rate_hz": ("Sample rate of the stream", s["sample_rate"]),
        }  # fmt: skip
        for key, (text, value) in gauges.items():
            yield GaugeMetricFamily(f"streamconv_{key}", text, value=value)
