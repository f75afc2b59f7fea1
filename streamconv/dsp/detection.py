"""The detection record: what every detector of streamconv reports (docs/contract.md, "Scores
and detections").

A module of its own, without scipy, so that code which only passes detections along (the
pipeline of a filter-only run) does not pay for the detectors' imports when it starts.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

__all__ = ["Detection"]


@dataclass(frozen=True)
class Detection:
    """One final detection of a template (docs/contract.md, "Scores and detections").

    Attributes
    ----------
    template : str
        The template's name.
    sample : int
        Index of the first frame of the matched window (sample 0 is the first frame streamed).
    time : float
        ``sample / sample_rate`` in seconds.
    score : float
        Normalized correlation in [-1, 1].
    channel : int or None
        The channel scored, or None where channels are combined.
    threshold : float
        The threshold the score reached.
    timeline : {None, "input", "filtered"}
        Set by a filter chain in front of the detector (the service): "input" when ``sample``
        was moved back by the chain's delay onto the input's timeline, "filtered" when the chain
        has no single delay and ``sample`` counts the filtered stream's frames.
    chain_delay : float or None
        With ``timeline="input"``: the chain's delay in samples (subtracted, rounded half up).
    """

    template: str
    sample: int
    time: float
    score: float
    channel: int | None
    threshold: float
    timeline: str | None = field(default=None, kw_only=True)
    chain_delay: float | None = field(default=None, kw_only=True)

    def to_dict(self) -> dict:
        """The fields as a plain dict (JSON-ready); the timeline fields only when set."""
        out = asdict(self)
        if self.timeline is None:
            del out["timeline"], out["chain_delay"]
        return out
