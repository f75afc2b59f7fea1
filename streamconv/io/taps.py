"""Load FIR taps for ``--fir`` and ``type = "file"`` filters.

=================  ======================================================================
``.txt`` ``.csv``  one tap per line; several columns = one per channel (`streamconv.io.arrays`)
``.npy``           an array ``(L,)``, ``(L, C)`` or a MIMO matrix ``(L, Cin, Cout)``
audio file         an impulse response through libsndfile; it carries its sample rate
=================  ======================================================================
"""

from __future__ import annotations

import numpy as np

from streamconv.io.arrays import read_array


def load_taps(path: str) -> tuple[np.ndarray, float | None]:
    """Read FIR taps from a file (`streamconv.io.arrays.read_array`, MIMO ``.npy`` allowed).

    Parameters
    ----------
    path : str
        A ``.txt``/``.csv``/``.dat``/``.npy`` file or an audio file holding an impulse response.

    Returns
    -------
    taps : numpy.ndarray
        float64, ``(L,)`` for one filter, ``(L, C)`` one per channel, ``(L, Cin, Cout)`` MIMO.
    sample_rate : float or None
        The impulse response's sample rate for audio files; None where the file does not say.

    Raises
    ------
    UsageError
        Missing, empty or unparsable file, or taps that are not finite; the message names it.

    Examples
    --------
    >>> taps, rate = load_taps("lowpass.txt")  # doctest: +SKIP
    """
    taps, rate = read_array(path, max_ndim=3)
    if taps.ndim == 2 and taps.shape[1] == 1:
        taps = taps[:, 0]
    return taps, rate


def taps_channels(taps: np.ndarray) -> tuple[int | None, int | None]:
    """Return (input channels, output channels) a taps array fixes; None = any (mono taps)."""
    if taps.ndim == 1:
        return None, None
    if taps.ndim == 2:
        return taps.shape[1], taps.shape[1]
    return taps.shape[1], taps.shape[2]
