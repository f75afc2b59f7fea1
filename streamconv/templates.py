"""Templates: naming (``PATH`` / ``NAME=PATH``), reading, and resampling to a stream's rate.

Used by ``streamconv match``, archives and the config (one reader, `streamconv.io.arrays`; one
resampling precision, `MAX_RESAMPLE_DENOMINATOR`). `streamconv.detect` re-exports every name.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from fractions import Fraction

import numpy as np
from scipy import signal

from streamconv.dsp.matcher import Matcher
from streamconv.errors import CommandLineError, UsageError
from streamconv.io.arrays import read_array

__all__ = [
    "MAX_RESAMPLE_DENOMINATOR",
    "Template",
    "load_templates",
    "resample",
    "resample_ratio",
    "template_name",
]

#: Largest denominator of the resampling ratio ``up / down``. Every pair of integer rates whose
#: reduced ratio has ``down <= 10000`` is resampled exactly: all the usual audio and sensor
#: rates (8 k, 11.025 k, 16 k, 22.05 k, 44.1 k, 48 k, 96 k, 192 k... reduce to at most 147 or
#: 160) and odd pairs such as 48000 -> 44056 (5507/6000), which a limit of 1000 would bend.
#: Where the ratio is not exact it is off by less than ``1 / (down * 10000)``, a relative rate
#: error below 1e-8. The cost is bounded too: `scipy.signal.resample_poly` designs a filter of
#: ``20 * max(up, down) + 1`` taps, at most about 200 000, once per template and rate.
MAX_RESAMPLE_DENOMINATOR = 10_000


def template_name(text: str) -> tuple[str, str]:
    """Split a template argument: ``NAME=PATH`` or ``PATH`` -> ``(name, path)``.

    A bare path is named by its file stem. Text holding ``=`` is a path when the part before
    ``=`` holds a path separator or the whole text names an existing file.

    Raises
    ------
    UsageError
        An empty name or path.

    Examples
    --------
    >>> template_name("knock=data/knock.csv")
    ('knock', 'data/knock.csv')
    >>> template_name("data/bell.wav")
    ('bell', 'data/bell.wav')
    """
    name, sep, path = text.partition("=")
    if not sep or os.sep in name or os.path.exists(text):
        path = text
        name = os.path.splitext(os.path.basename(text))[0]
    if not name or not path:
        raise UsageError(f"template {text!r}: expected PATH or NAME=PATH")
    return name, path


def resample_ratio(to_rate: float, from_rate: float) -> Fraction:
    """The ratio ``up / down`` that resamples from `from_rate` to `to_rate`.

    Exact where the reduced ratio has a denominator of at most `MAX_RESAMPLE_DENOMINATOR`, the
    closest such fraction otherwise.
    """
    exact = Fraction(to_rate) / Fraction(from_rate)
    return exact.limit_denominator(MAX_RESAMPLE_DENOMINATOR)


def resample(samples: np.ndarray, from_rate: float, to_rate: float) -> np.ndarray:
    """`samples` (frames on axis 0) taken from `from_rate` to `to_rate` (polyphase FIR).

    Returns the array itself when the rates are equal.
    """
    if from_rate == to_rate:
        return samples
    ratio = resample_ratio(to_rate, from_rate)
    return signal.resample_poly(samples, ratio.numerator, ratio.denominator, axis=0)


class Template:
    """A template file, read once and resampled to each stream rate on demand.

    Parameters
    ----------
    name : str
        Reported in its detections.
    path : str
        Audio file (it carries a sample rate), ``.txt``/``.csv``/``.dat`` or ``.npy`` (taken
        at the stream's rate).

    Attributes
    ----------
    samples : numpy.ndarray
        ``(L,)`` (one column: matched on every channel) or ``(L, C)``, float64.
    rate : float or None
        The file's sample rate, None where the format has none.

    Raises
    ------
    UsageError
        An unreadable file, or samples that cannot be a template (the message names the file).
    """

    def __init__(self, name: str, path: str):
        self.name, self.path = name, path
        data, self.rate = read_array(path)
        self.samples = data[:, 0] if data.shape[1] == 1 else data
        try:
            Matcher({name: self.samples}, 1.0)
        except ValueError as exc:
            raise UsageError(f"{path}: {exc}") from None
        self._cache: dict[float, np.ndarray] = {}

    def at(self, rate: float, note: Callable[[str], None] | None = None) -> np.ndarray:
        """The samples at `rate` (resampled once per rate; `note` is told when)."""
        if self.rate is None or self.rate == rate:
            return self.samples
        if rate not in self._cache:
            self._cache[rate] = resample(self.samples, self.rate, rate)
            if note is not None:
                note(f"template '{self.name}' resampled from {self.rate:g} Hz to {rate:g} Hz")
        return self._cache[rate]

    def for_stream(
        self,
        rate: float,
        channels: int,
        where: str,
        note: Callable[[str], None] | None = None,
        downmix: bool = False,
    ) -> np.ndarray:
        """The samples for a stream of `rate` and `channels`.

        Parameters
        ----------
        rate : float
            The stream's sample rate (the template is resampled to it).
        channels : int
            The stream's channels: a ``(L, C)`` template needs ``C == channels``.
        where : str
            The stream (a file path), for messages.
        note : callable, optional
            Called with a message when the template is resampled.
        downmix : bool
            A template with other channels than the stream is averaged to one channel (then
            matched on every channel of the stream).

        Raises
        ------
        UsageError
            The template's channels do not fit the stream (the message names the stream).
        """
        a = self.at(rate, None if note is None else (lambda m: note(f"{m} for {where}")))
        if a.ndim == 2 and a.shape[1] != channels:
            if downmix:
                return a.mean(axis=1)
            raise UsageError(
                f"{where}: {channels} channel(s), but template '{self.name}' ({self.path}) has "
                f"{a.shape[1]}: give --downmix to average the template's channels, or a template "
                "of 1 channel or one per channel of the recording"
            )
        return a


def load_templates(arguments: Iterable[str]) -> list[Template]:
    """Read the templates of ``PATH`` / ``NAME=PATH`` arguments; a name may come once only."""
    out, seen = [], set()
    for text in arguments:
        name, path = template_name(text)
        if name in seen:
            raise CommandLineError(f"template name {name!r} given twice (use NAME=PATH)")
        seen.add(name)
        out.append(Template(name, path))
    return out
