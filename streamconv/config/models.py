"""The config schema: pydantic models, strict, with bounds and units on the fields.

This is stage one of validation (shape, types, bounds, per-item consistency). Stage two, the
cross-checks that need the sample rate, the channel counts or the files, is in
:mod:`streamconv.config.resolve`. Units are in the names: ``*_hz``, ``*_db``, ``*_s``; counts of
samples are plain (``taps``, ``samples``, ``block_size``).
"""

from __future__ import annotations

import re
import typing
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from streamconv.dsp.matcher import DEFAULT_THRESHOLD as _DEFAULT_THRESHOLD

PositiveFloat = Annotated[float, Field(gt=0, allow_inf_nan=False)]
PositiveInt = Annotated[int, Field(ge=1)]
ChannelIndex = Annotated[int, Field(ge=0)]
Name = Annotated[str, Field(min_length=1, max_length=200)]
Window = Literal["hamming", "hann", "blackman", "boxcar"]
PcmFormat = Literal["s16le", "s32le", "f32le", "f64le"]
Finite = Annotated[float, Field(allow_inf_nan=False)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class Stream(_Model):
    """A ``[source]`` or ``[sink]``: a locator (docs/contract.md, "Stream locators") and what
    raw streams need."""

    uri: Annotated[str, Field(min_length=1)] = Field(
        description="`-` (stdin/stdout), a file path (relative to the config), `device`, "
        "`device:NAME`, `device:INDEX`, `pyaudio:INDEX`, `udp://HOST:PORT`, or `null` (sink)."
    )
    format: PcmFormat | None = Field(
        None, description="Raw PCM sample format; needed by `-`, `.raw`/`.pcm` and `udp://`."
    )
    rate: PositiveFloat | None = Field(
        None,
        description="Sample rate in Hz. Needed where the locator does not carry it (raw, csv, "
        "udp, devices); for audio files it must match the file when given.",
    )
    channels: PositiveInt | None = Field(
        None, description="Channel count; needed by raw, udp and devices; checked elsewhere."
    )
    subtype: str | None = Field(
        None,
        description="Sink audio file only: the sample type stored, a libsndfile subtype "
        "(`PCM_16`, `PCM_24`, `PCM_32`, `FLOAT`, `DOUBLE`, ...). Default: the source's sample "
        "format when the file type can hold it, else the type's default.",
    )

    @field_validator("subtype")
    @classmethod
    def _known_subtype(cls, value: str | None) -> str | None:
        if value is None:
            return value
        import soundfile as sf

        known = sf.available_subtypes()
        if value not in known:
            raise ValueError(f"unknown subtype {value!r} (libsndfile's: {', '.join(known)})")
        return value


class Processing(_Model):
    """``[processing]``: how the engine runs."""

    block_size: Annotated[int, Field(ge=1, le=1 << 20)] | None = Field(
        None,
        description="Frames per block read from the source and written to the sink. Default: "
        "16384 (or the filter's length rounded up to a power of two, up to 262144) from a file "
        "to a file or null; 1024 when an end is live (pipe, device, udp).",
    )
    method: Literal["auto", "direct", "ola", "partitioned"] = Field(
        "auto", description="Convolution engine (see `streamconv.Convolver`)."
    )


class _FilterBase(_Model):
    name: Name | None = Field(None, description="Optional unique name, used in messages.")


class _ChannelFilter(_FilterBase):
    channels: list[ChannelIndex] | None = Field(
        None,
        description="0-based channels (at this point of the chain) to filter; default all. "
        "The others pass unchanged.",
    )

    def design_params(self) -> dict:
        """The keyword arguments of the designer in `streamconv.dsp.design`."""
        return self.model_dump(exclude={"type", "name", "channels"}, exclude_none=True)


class _CutoffFilter(_ChannelFilter):
    taps: PositiveInt | None = Field(None, description="Number of taps (window design).")
    window: Window = Field("hamming", description="Window of the window design.")
    transition_hz: PositiveFloat | None = Field(
        None, description="Kaiser design: width of each transition band in Hz."
    )
    attenuation_db: PositiveFloat | None = Field(
        None, description="Kaiser design: stopband attenuation in dB (guaranteed)."
    )

    @model_validator(mode="after")
    def _one_method(self):
        kaiser = (self.transition_hz, self.attenuation_db)
        if self.taps is not None and any(v is not None for v in kaiser):
            raise ValueError(
                "give taps (window design) or transition_hz + attenuation_db, not both"
            )
        if self.taps is None and any(v is None for v in kaiser):
            raise ValueError("give taps (window design) or both transition_hz and attenuation_db")
        return self


class LowpassFilter(_CutoffFilter):
    type: Literal["lowpass"]
    cutoff_hz: PositiveFloat = Field(description="Cutoff in Hz (-6 dB).")


class HighpassFilter(_CutoffFilter):
    type: Literal["highpass"]
    cutoff_hz: PositiveFloat = Field(description="Cutoff in Hz (-6 dB).")


class BandpassFilter(_CutoffFilter):
    type: Literal["bandpass"]
    low_hz: PositiveFloat = Field(description="Lower band edge in Hz (-6 dB).")
    high_hz: PositiveFloat = Field(description="Upper band edge in Hz (-6 dB).")


class BandstopFilter(_CutoffFilter):
    type: Literal["bandstop"]
    low_hz: PositiveFloat = Field(description="Lower edge of the rejected band in Hz.")
    high_hz: PositiveFloat = Field(description="Upper edge of the rejected band in Hz.")


class _BandsFilter(_ChannelFilter):
    taps: PositiveInt = Field(description="Number of taps.")
    bands_hz: list[Annotated[list[Finite], Field(min_length=2, max_length=2)]] = Field(
        min_length=1, description="Bands as [low, high] pairs in Hz, increasing."
    )
    gains: list[Finite] = Field(min_length=1, description="Linear gain wanted in each band.")
    weights: list[PositiveFloat] | None = Field(None, description="Error weight of each band.")


class RemezFilter(_BandsFilter):
    type: Literal["remez"]


class FirlsFilter(_BandsFilter):
    type: Literal["firls"]


class HilbertFilter(_ChannelFilter):
    type: Literal["hilbert"]
    taps: PositiveInt = Field(description="Number of taps (odd).")
    window: Window = "blackman"


class DifferentiatorFilter(_ChannelFilter):
    type: Literal["differentiator"]
    taps: PositiveInt = Field(description="Number of taps (odd). Output is d/dn, per sample.")
    window: Window = "blackman"


class MovingAverageFilter(_ChannelFilter):
    type: Literal["moving_average"]
    taps: PositiveInt = Field(description="Number of samples averaged.")


class GaussianFilter(_ChannelFilter):
    type: Literal["gaussian"]
    sigma_samples: PositiveFloat = Field(description="Standard deviation in samples.")
    taps: PositiveInt | None = Field(None, description="Length; default 2*ceil(4 sigma)+1.")


class GainFilter(_ChannelFilter):
    type: Literal["gain"]
    gain_db: Finite = Field(description="Gain in dB.")


class DelayFilter(_ChannelFilter):
    type: Literal["delay"]
    samples: ChannelIndex | None = Field(None, description="Delay in samples.")
    seconds: Annotated[float, Field(ge=0, allow_inf_nan=False)] | None = Field(
        None, description="Delay in seconds (a whole number of samples)."
    )

    @model_validator(mode="after")
    def _one_unit(self):
        if (self.samples is None) == (self.seconds is None):
            raise ValueError("give exactly one of samples and seconds")
        return self


class TapsFilter(_ChannelFilter):
    type: Literal["taps"]
    values: list[Finite] = Field(min_length=1, description="The taps, inline.")


class FileFilter(_ChannelFilter):
    type: Literal["file"]
    path: Annotated[str, Field(min_length=1)] = Field(
        description="Taps file relative to the config: .txt/.csv (one tap a line, one column "
        "per channel), .npy (L,) or (L, C), or an audio file holding an impulse response."
    )
    column: ChannelIndex | None = Field(
        None,
        description="Use only this column (channel) of the file; default: a one-column file "
        "for every channel, or one column per filtered channel.",
    )


class MixFilter(_FilterBase):
    type: Literal["mix"]
    matrix: list[list[Finite]] = Field(
        min_length=1,
        description="Channel routing: one row per channel in, one column per channel out, "
        "linear gains. Output j = sum_i matrix[i][j] * input i.",
    )


Filter = Annotated[
    LowpassFilter
    | HighpassFilter
    | BandpassFilter
    | BandstopFilter
    | RemezFilter
    | FirlsFilter
    | HilbertFilter
    | DifferentiatorFilter
    | MovingAverageFilter
    | GaussianFilter
    | GainFilter
    | DelayFilter
    | TapsFilter
    | FileFilter
    | MixFilter,
    Field(discriminator="type"),
]

FILTER_TYPES = (
    "lowpass",
    "highpass",
    "bandpass",
    "bandstop",
    "remez",
    "firls",
    "hilbert",
    "differentiator",
    "moving_average",
    "gaussian",
    "gain",
    "delay",
    "taps",
    "file",
    "mix",
)

#: The one default score threshold, `streamconv.dsp.matcher`'s (re-exported for the models).
DEFAULT_THRESHOLD = _DEFAULT_THRESHOLD


class Spectrogram(_Model):
    """``spectrogram = {...}`` of a template with ``domain = "spectrogram"``.

    The defaults are `streamconv.dsp.spectrogram.SpectrogramParams`'s.
    """

    frame_s: PositiveFloat = Field(0.032, description="Frame length in seconds.")
    hop_s: PositiveFloat = Field(0.008, description="Hop in seconds (the time resolution).")
    window: Window = Field("hann", description="Frame window.")
    scale: Literal["db", "linear"] = Field("db", description="Magnitude scale.")
    floor_db: PositiveFloat = Field(
        50.0, description="dB scale: floor this many dB below the template's peak."
    )
    low_hz: Annotated[float, Field(ge=0, allow_inf_nan=False)] | None = Field(
        None, description="Lower band edge in Hz; default the template's own band."
    )
    high_hz: PositiveFloat | None = Field(
        None, description="Upper band edge in Hz; default the template's own band."
    )
    band_db: PositiveFloat = Field(
        30.0, description="Default band: bins within this many dB of the template's strongest."
    )
    band_margin: Annotated[float, Field(ge=0, le=4, allow_inf_nan=False)] = Field(
        0.5, description="Default band: edges moved out by this relative frequency."
    )
    tolerance: Annotated[float, Field(ge=0, le=0.2, allow_inf_nan=False)] = Field(
        0.03, description="Relative pitch tolerance (max-filter +-r in frequency, +-1 frame)."
    )

    @model_validator(mode="after")
    def _band(self):
        if self.low_hz is not None and self.high_hz is not None and self.low_hz >= self.high_hz:
            raise ValueError(f"low_hz ({self.low_hz:g} Hz) must be below high_hz "
                             f"({self.high_hz:g} Hz)")  # fmt: skip
        if self.hop_s > self.frame_s:
            raise ValueError(f"hop_s ({self.hop_s:g} s) must not exceed frame_s "
                             f"({self.frame_s:g} s)")  # fmt: skip
        return self


class Template(_Model):
    """A ``[[templates]]`` entry: a pattern to find in the filtered stream."""

    name: Name = Field(description="Unique name, reported in every detection.")
    path: Annotated[str, Field(min_length=1)] = Field(
        description="Template samples relative to the config: audio file, .npy, .txt or .csv."
    )
    threshold: Annotated[float, Field(ge=-1, le=1, allow_inf_nan=False)] | None = Field(
        None, description=f"Absolute score threshold in [-1, 1]; default {DEFAULT_THRESHOLD}."
    )
    mad: PositiveFloat | None = Field(
        None, description="Adaptive threshold: this many median absolute deviations."
    )
    min_distance: PositiveInt | None = Field(
        None, description="Samples between detections; default the template length."
    )
    combine: Literal["per_channel", "mean"] = Field(
        "per_channel", description="Score each channel, or the mean over channels."
    )
    resample: bool = Field(
        False, description="Resample a template recorded at another sample rate."
    )
    mad_window_s: PositiveFloat = Field(
        10.0, description="MAD threshold: trailing window of scores, in seconds."
    )
    mad_hop_s: PositiveFloat = Field(
        1.0, description="MAD threshold: how often it is updated, in seconds."
    )
    domain: Literal["waveform", "spectrogram"] = Field(
        "waveform", description="Correlate samples, or spectrogram patches."
    )
    spectrogram: Spectrogram | None = Field(
        None, description='Spectrogram parameters (domain = "spectrogram" only).'
    )

    @model_validator(mode="after")
    def _one_threshold(self):
        if self.threshold is not None and self.mad is not None:
            raise ValueError("give threshold or mad, not both")
        if self.spectrogram is not None and self.domain != "spectrogram":
            raise ValueError('spectrogram parameters need domain = "spectrogram"')
        return self


class Periodicity(_Model):
    """A ``[[periodicity]]`` entry: an autocorrelation periodicity detector."""

    name: Name = Field(description="Unique name, reported in every detection.")
    min_period_s: PositiveFloat = Field(description="Shortest period searched, in seconds.")
    max_period_s: PositiveFloat = Field(description="Longest period searched, in seconds.")
    threshold: Annotated[float, Field(gt=0, le=1)] = Field(
        0.5, description="Normalized autocorrelation a peak must reach."
    )
    window_s: PositiveFloat | None = Field(
        None, description="Analysis window in seconds; default 3 * max_period_s."
    )
    hop_s: PositiveFloat | None = Field(None, description="Hop in seconds; default window_s / 4.")

    @model_validator(mode="after")
    def _range(self):
        if self.min_period_s >= self.max_period_s:
            raise ValueError("min_period_s must be below max_period_s")
        if self.window_s is not None and self.window_s < self.max_period_s:
            raise ValueError("window_s must be at least max_period_s")
        return self


class Snippets(_Model):
    """``[detections] snippets``: the audio around each detection, saved as WAV files."""

    dir: Annotated[str, Field(min_length=1)] = Field(
        description="Directory of the snippet files, relative to the config; created if missing."
    )
    pre_s: Annotated[float, Field(ge=0, le=60, allow_inf_nan=False)] = Field(
        1.0, description="Seconds of audio before the detection's sample."
    )
    post_s: Annotated[float, Field(ge=0, le=60, allow_inf_nan=False)] = Field(
        2.0, description="Seconds of audio from the detection's sample on."
    )
    max_mb: PositiveFloat = Field(
        100.0, description="Disk budget of the directory's snippets in MB; oldest removed first."
    )
    filtered: bool = Field(False, description="Also save the filtered stream around each one.")


class Detections(_Model):
    """``[detections]``: where detections are appended as JSON lines, and their snippets."""

    path: Annotated[str, Field(min_length=1)] | None = Field(
        None, description="Detection log, relative to the config; its directory must exist."
    )
    snippets: Snippets | None = Field(
        None, description="Save the audio around each detection as WAV (see docs/snippets.md)."
    )


class Control(_Model):
    """``[control]``: the HTTP control API."""

    listen: Annotated[str, Field(min_length=1)] = Field(
        description="`HOST:PORT` (loopback unless allow_remote) or `unix:PATH`."
    )
    allow_remote: bool = Field(False, description="Allow a non-loopback listen address.")
    socket_group: str | None = Field(
        None,
        description="unix: listen only: the group the socket is given (mode 0660), so its "
        "members may use the API; the service must be in it (the shipped unit's "
        "`SupplementaryGroups=streamconv-control`).",
    )
    idle_timeout_s: Annotated[float, Field(gt=0, le=3600, allow_inf_nan=False)] = Field(
        15.0,
        description="Close a connection that has not sent a whole request within this time "
        "(on connect, or after its last answer): idle and half-sent requests.",
    )


class MqttOutputConfig(_Model):
    """An ``[[outputs]]`` entry with ``type = "mqtt"``: detections published to a broker."""

    type: Literal["mqtt"]
    url: Annotated[str, Field(min_length=1)] = Field(
        description="Broker: `mqtt://[USER[:PASSWORD]@]HOST[:PORT]` (1883) or `mqtts://` (TLS, "
        "8883)."
    )
    topic: Annotated[str, Field(min_length=1)] = Field(
        "streamconv/{template}",
        description="Topic template; `{template}`, `{channel}` and `{sample}` are filled in.",
    )
    qos: Literal[0, 1, 2] = Field(1, description="MQTT quality of service (1: at least once).")
    retain: bool = Field(False, description="Ask the broker to keep each topic's last message.")
    client_id: Name | None = Field(None, description="MQTT client id; default streamconv-PID.")
    queue: Annotated[int, Field(ge=1, le=1_000_000)] = Field(
        10000, description="Detections kept while the broker is away; then the oldest go."
    )

    # One validator per field, so an error names its key and line (outputs[0].topic), not
    # only the entry (outputs[0]).
    @field_validator("url")
    @classmethod
    def _url(cls, url: str) -> str:
        from streamconv.outputs.mqtt import check_url

        check_url(url)
        return url

    @field_validator("topic")
    @classmethod
    def _topic(cls, topic: str) -> str:
        from streamconv.outputs.mqtt import check_topic

        return check_topic(topic)


class WebhookOutputConfig(_Model):
    """An ``[[outputs]]`` entry with ``type = "webhook"``: detections POSTed as JSON."""

    type: Literal["webhook"]
    url: Annotated[str, Field(min_length=1)] = Field(
        description="`http://` or `https://` URL each detection is POSTed to."
    )
    headers: dict[str, str] = Field(
        default_factory=dict, description="Extra request headers, e.g. Authorization."
    )
    timeout_s: PositiveFloat = Field(5.0, description="Per request, in seconds.")
    queue: Annotated[int, Field(ge=1, le=1_000_000)] = Field(
        10000, description="Detections kept while the receiver is away; then the oldest go."
    )

    @field_validator("url")
    @classmethod
    def _http(cls, url: str) -> str:
        if not re.match(r"^https?://[^/\s]+", url):
            raise ValueError("the webhook URL must start with http:// or https:// and a host")
        return url


Output = Annotated[MqttOutputConfig | WebhookOutputConfig, Field(discriminator="type")]
OUTPUT_TYPES = ("mqtt", "webhook")


class Config(_Model):
    """A whole service config (docs/contract.md, "The service")."""

    source: Stream
    sink: Stream
    processing: Processing = Processing()
    filters: list[Filter] = Field(default_factory=list)
    templates: list[Template] = Field(default_factory=list)
    periodicity: list[Periodicity] = Field(default_factory=list)
    detections: Detections | None = None
    control: Control | None = None
    outputs: list[Output] = Field(default_factory=list)


def keys_of_type(tag) -> set[str]:
    """The keys of the filter or output model whose ``type`` is `tag` (empty if none), for a
    "did you mean" or the list of the keys a type takes."""
    for obj in list(globals().values()):
        if isinstance(obj, type) and issubclass(obj, BaseModel) and "type" in obj.model_fields:
            if tag in typing.get_args(obj.model_fields["type"].annotation):
                return set(obj.model_fields)
    return set()
