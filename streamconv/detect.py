"""Detection: templates, detector construction, the stream-order merge and detection records.

One library for the three places that find things in a stream: ``streamconv match`` (files),
archives on dask (`streamconv.archive`, chunks of files) and the service (`streamconv.pipeline`).

- Templates (`streamconv.templates`, re-exported): `template_name` names a ``PATH`` or
  ``NAME=PATH`` argument, `Template` loads one (the one array reader, `streamconv.io.arrays`)
  and `resample` brings samples to the stream rate (`resample_ratio` says with what precision).
- Construction from explicit parameters: `TemplateSpec` and `PeriodicitySpec` describe one
  detector each (the config's ``[[templates]]`` / ``[[periodicity]]`` entries have the same
  fields); `build_detectors` turns them into `Matcher` and `NamedPeriodicity` objects.
  `MatchOptions` are the ``match`` command's options, the same for every template.
- `Detectors` runs them side by side and returns their detections in stream order.
- `to_record` and `RecordWriter` (`streamconv.records`, re-exported): the record of a
  detection, as JSON lines or CSV.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from streamconv.dsp.matcher import DEFAULT_THRESHOLD, Detection, Matcher
from streamconv.dsp.periodicity import Periodicity
from streamconv.errors import UsageError
from streamconv.records import FIELDS, RecordWriter, to_record
from streamconv.templates import (
    MAX_RESAMPLE_DENOMINATOR,
    Template,
    load_templates,
    resample,
    resample_ratio,
    template_name,
)

__all__ = [
    "DEFAULT_THRESHOLD",
    "FIELDS",
    "MAX_RESAMPLE_DENOMINATOR",
    "PERIODICITY",
    "Detectors",
    "MatchOptions",
    "NamedPeriodicity",
    "PeriodDetection",
    "PeriodicitySpec",
    "RecordWriter",
    "Template",
    "TemplateSpec",
    "build_detectors",
    "load_templates",
    "resample",
    "resample_ratio",
    "template_name",
    "to_record",
]

#: The template name of the ``match --periodicity`` detector's detections.
PERIODICITY = "periodicity"


# -- construction ---------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class TemplateSpec:
    """One template detector, with its samples at the stream rate.

    Attributes
    ----------
    name : str
    samples : numpy.ndarray
        ``(L,)`` or ``(L, C)``; a ``(L, 1)`` template is matched on every channel.
    threshold, mad : float, optional
        An absolute score threshold, or ``mad`` times the score's MAD; neither: the threshold
        `DEFAULT_THRESHOLD`.
    min_distance : int, optional
        Samples between two detections; default the template's length.
    combine : str, optional
        ``"mean"`` scores the mean over channels; anything else each channel on its own.
    mad_window_s, mad_hop_s : float
        The MAD threshold's trailing window and hop in seconds (the hop is cut to the window).
    domain : {"waveform", "spectrogram"}
        What is correlated (see `Matcher`); ``spectrogram`` its parameters (spectrogram only).
    """

    name: str
    samples: np.ndarray
    threshold: float | None = None
    mad: float | None = None
    min_distance: int | None = None
    combine: str | None = None
    mad_window_s: float = 10.0
    mad_hop_s: float = 1.0
    domain: str = "waveform"
    spectrogram: object = None


@dataclasses.dataclass(frozen=True)
class PeriodicitySpec:
    """One periodicity detector (the fields of a config's ``[[periodicity]]`` entry).

    ``window_s`` and ``hop_s`` None take `Periodicity`'s defaults; ``combine`` is as for
    `TemplateSpec`.
    """

    name: str
    min_period_s: float
    max_period_s: float
    threshold: float = 0.5
    window_s: float | None = None
    hop_s: float | None = None
    combine: str | None = None


@dataclasses.dataclass(frozen=True)
class PeriodDetection(Detection):
    """A periodicity detection: a `Detection` whose score is the normalized autocorrelation at
    the strongest lag, plus ``period``, that lag in seconds (refined between samples).

    Its record has the fields ``streamconv match --periodicity`` prints, so the service's
    detection log and ``/detections`` say the period as ``match`` does.
    """

    period: float | None = None


class NamedPeriodicity:
    """A `Periodicity` detector whose detections are `PeriodDetection` named `name`.

    Estimates below the threshold are dropped; ``decided``, ``chunk_bounds``, ``start_at`` and
    ``window`` are the detector's.
    """

    def __init__(self, name: str, detector: Periodicity):
        self.name, self.detector = name, detector

    @property
    def window(self) -> int:
        return self.detector.window

    @property
    def decided(self) -> int:
        return self.detector.decided

    def chunk_bounds(self, start: int, stop: int, frames: int | None = None) -> tuple[int, int]:
        return self.detector.chunk_bounds(start, stop, frames)

    def start_at(self, frame: int) -> None:
        self.detector.start_at(frame)

    def process(self, x) -> list[PeriodDetection]:
        return self._named(self.detector.process(x))

    def flush(self) -> list[PeriodDetection]:
        return self._named(self.detector.flush())

    def _named(self, estimates) -> list[PeriodDetection]:
        return [
            PeriodDetection(self.name, e.sample, e.time, e.score, e.channel, e.threshold, e.period)
            for e in estimates
            if e.detected
        ]


def _squeeze(samples) -> np.ndarray:
    """A one-column template is matched on every channel, so it is passed as ``(L,)``."""
    samples = np.asarray(samples)
    return samples[:, 0] if samples.ndim == 2 and samples.shape[1] == 1 else samples


def build_detectors(
    templates: Sequence = (),
    periodicity: Sequence = (),
    *,
    sample_rate: float,
    channels: int,
    on_scores=None,
) -> list:
    """The detectors of a stream: `Matcher` objects for the templates, then periodicity.

    Parameters
    ----------
    templates : sequence
        Objects with the fields of `TemplateSpec` (the config's ``TemplateInfo`` has them;
        ``domain`` and ``spectrogram`` may be missing). One `Matcher` takes every template that
        shares ``combine``, ``mad_window_s``, ``mad_hop_s``, ``domain`` and ``spectrogram``
        (what a Matcher takes once, not per name).
    periodicity : sequence
        Objects with the fields of `PeriodicitySpec` (``combine`` may be missing).
    sample_rate : float
        Of the stream, in Hz.
    channels : int
        Of the stream.
    on_scores : callable, optional
        Given to every `Matcher` (score traces for plots).

    Returns
    -------
    list
        `Matcher` and `NamedPeriodicity` objects, in that order: the order `Detectors`
        breaks ties of equal samples in.

    Raises
    ------
    ValueError
        Parameters a detector refuses.
    """
    groups: dict[tuple, list] = {}
    for t in templates:
        combine = "mean" if t.combine == "mean" else None
        domain = getattr(t, "domain", "waveform")
        spectrogram = getattr(t, "spectrogram", None)
        key = (combine, t.mad_window_s, t.mad_hop_s, domain, id(spectrogram))
        groups.setdefault(key, []).append(t)
    out: list = []
    for (combine, window_s, hop_s, domain, _), group in groups.items():
        extra = {}
        if domain != "waveform":
            extra = {"domain": domain, "spectrogram": getattr(group[0], "spectrogram", None)}
        out.append(
            Matcher(
                {t.name: _squeeze(t.samples) for t in group},
                sample_rate,
                threshold={t.name: t.threshold for t in group if t.threshold is not None},
                mad={t.name: t.mad for t in group if t.mad is not None},
                min_distance={t.name: t.min_distance for t in group if t.min_distance},
                combine=combine,
                channels=channels,
                mad_window_s=window_s,
                mad_hop_s=min(hop_s, window_s),
                on_scores=on_scores,
                **extra,
            )
        )
    for p in periodicity:
        detector = Periodicity(
            sample_rate,
            p.min_period_s,
            p.max_period_s,
            p.threshold,
            window_s=p.window_s,
            hop_s=p.hop_s,
            combine="mean" if getattr(p, "combine", None) == "mean" else None,
            channels=channels,
        )
        out.append(NamedPeriodicity(p.name, detector))
    return out


@dataclasses.dataclass(frozen=True)
class MatchOptions:
    """What ``streamconv match`` is asked for, the same for every template and file.

    Attributes
    ----------
    threshold, mad : float, optional
        As in `TemplateSpec` (``mad`` wins).
    mad_window_s, mad_hop_s : float
        MAD window and hop in seconds.
    min_distance : int, optional
        Samples between detections of a template; default its length.
    min_distance_s : float, optional
        The same in seconds (``--min-distance``), rounded to samples of each file's rate.
    combine : bool
        Score the mean over channels.
    domain : {"waveform", "spectrogram"}
        What is correlated; ``spectrogram`` the spectrogram parameters (a dict).
    downmix : bool
        A template with more channels than a file is averaged to one channel for it.
    periodicity : (float, float), optional
        Also run a periodicity detector named `PERIODICITY` over this period range, seconds.
    periodicity_threshold : float
        Its threshold.
    rate, channels, fmt : optional
        How to read raw PCM and csv files (``--rate``, ``--channels``, ``--format``).
    block : int
        Frames read at a time.
    """

    threshold: float | None = None
    mad: float | None = None
    mad_window_s: float = 10.0
    mad_hop_s: float = 1.0
    min_distance: int | None = None
    min_distance_s: float | None = None
    combine: bool = False
    domain: str = "waveform"
    spectrogram: dict | None = None
    downmix: bool = False
    periodicity: tuple[float, float] | None = None
    periodicity_threshold: float = 0.5
    rate: float | None = None
    channels: int | None = None
    fmt: str | None = None
    block: int = 65536

    def specs(
        self, arrays: dict, sample_rate: float | None = None
    ) -> tuple[list[TemplateSpec], list[PeriodicitySpec]]:
        """The detectors these options ask for, given the templates' samples by name (at
        `sample_rate`, needed for ``min_distance_s``)."""
        combine = "mean" if self.combine else None
        distance = self.min_distance
        if self.min_distance_s is not None:
            if sample_rate is None:
                raise ValueError("min_distance_s needs the stream's sample_rate")
            distance = max(1, round(self.min_distance_s * sample_rate))
        templates = [
            TemplateSpec(
                name,
                samples,
                threshold=None if self.mad else self.threshold,
                mad=self.mad,
                min_distance=distance,
                combine=combine,
                mad_window_s=self.mad_window_s,
                mad_hop_s=self.mad_hop_s,
                domain=self.domain,
                spectrogram=self.spectrogram,
            )
            for name, samples in arrays.items()
        ]
        periodic = []
        if self.periodicity:
            lo, hi = self.periodicity
            periodic.append(
                PeriodicitySpec(PERIODICITY, lo, hi, self.periodicity_threshold, combine=combine)
            )
        return templates, periodic

    def detectors(
        self, arrays: dict, sample_rate: float, channels: int, on_scores=None, where=None
    ):
        """`Detectors` for one stream; `UsageError` names a periodicity range it refuses.

        `where` (the recording) starts the message of a `UsageError`: whether a template or a
        period range fits depends on the recording's rate (a spectrogram frame, a period of
        at least one sample), so the error is that file's, as its other errors are.
        """
        at = f"{where}: " if where else ""
        templates, periodic = self.specs(arrays, sample_rate)
        try:
            built = build_detectors(templates, (), sample_rate=sample_rate, channels=channels,
                                    on_scores=on_scores)  # fmt: skip
        except ValueError as exc:
            raise UsageError(f"{at}{exc}") from None
        try:
            built += build_detectors((), periodic, sample_rate=sample_rate, channels=channels)
        except ValueError as exc:
            lo, hi = periodic[0].min_period_s, periodic[0].max_period_s
            raise UsageError(f"{at}--periodicity {lo:g}:{hi:g}: {exc}") from None
        return Detectors(built)


# -- the stream-order merge -----------------------------------------------------------------


class Detectors:
    """Detectors side by side on one stream; their detections come out in stream order.

    A detection is held back until every detector has decided up to its sample (their
    ``decided``); detections of the same sample come in detector order, each detector's in its
    own order (stable). So the output depends neither on the block sizes nor on how the stream
    is cut into chunks, and ``match``, archives and the service give the same list.

    Parameters
    ----------
    detectors : list
        `Matcher` and `NamedPeriodicity` objects (anything with ``process``, ``flush``,
        ``decided``, ``chunk_bounds`` and ``start_at``), as `build_detectors` gives.
    """

    def __init__(self, detectors: list):
        self.detectors = list(detectors)
        self._from = [0] * len(self.detectors)  # stream frame each detector starts at
        self._pos = 0  # stream frame of the next block
        self._pending: list[tuple[int, Detection]] = []  # (detector index, detection)

    @property
    def decided(self) -> int:
        """Stream sample before which every detection has been returned."""
        if not self.detectors:
            return self._pos
        return min(d.decided for d in self.detectors)

    def check_length(self, where: str, frames: int, templates: Sequence[Template], arrays: dict):
        """Raise `UsageError` if a template or a periodicity window is longer than the stream.

        Parameters
        ----------
        where : str
            The stream (a file), for the message.
        frames : int
            The stream's length.
        templates : sequence of Template
            The templates, and `arrays` their samples at the stream's rate by name.
        """
        for t in templates:
            if len(arrays[t.name]) > frames:
                raise UsageError(
                    f"{where}: {frames} frames, shorter than template '{t.name}' ({t.path}, "
                    f"{len(arrays[t.name])} frames)"
                )
        for d in self.detectors:
            if isinstance(d, NamedPeriodicity) and d.window > frames:
                raise UsageError(
                    f"--periodicity: the analysis window ({d.window} frames, three times the "
                    f"longest period) is longer than {where} ({frames} frames)"
                )

    def start_chunk(self, start: int, stop: int, frames: int | None) -> tuple[int, int]:
        """Set every detector up for the detections in ``[start, stop)`` of a stream.

        Returns
        -------
        first, end : int
            Feed frames ``[first, end)`` of the stream to `process` (then `flush` if ``end`` is
            ``frames``) and keep the detections in ``[start, stop)``: they are the whole
            stream's (see `Matcher.chunk_bounds`).
        """
        bounds = [d.chunk_bounds(start, stop, frames) for d in self.detectors]
        for d, (first, _) in zip(self.detectors, bounds, strict=True):
            d.start_at(first)
        self._from = [first for first, _ in bounds]
        self._pos = min(self._from)
        self._pending = []
        return self._pos, max(end for _, end in bounds)

    def process(self, block: np.ndarray) -> list[Detection]:
        """Feed the next block; return the detections now final, in stream order."""
        for i, d in enumerate(self.detectors):
            skip = self._from[i] - self._pos  # this detector starts later in the chunk
            if skip < len(block):
                self._add(i, d.process(block[max(skip, 0) :]))
        self._pos += len(block)
        return self._release(self.decided)

    def flush(self) -> list[Detection]:
        """End of the stream: the detections left, in stream order."""
        for i, d in enumerate(self.detectors):
            self._add(i, d.flush())
        return self._release(None)

    def _add(self, i: int, found: list) -> None:
        self._pending += [(i, d) for d in found]

    def _release(self, upto: int | None) -> list[Detection]:
        if upto is None:
            ready, self._pending = self._pending, []
        else:
            ready = [p for p in self._pending if p[1].sample < upto]
            self._pending = [p for p in self._pending if p[1].sample >= upto]
        # Stable: one detector's detections of a sample keep that detector's own order.
        ready.sort(key=lambda p: (p[1].sample, p[0]))
        return [d for _, d in ready]
