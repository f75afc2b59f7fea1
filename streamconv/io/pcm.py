"""Raw PCM sample formats: bytes <-> float blocks, with clipping counted on the way out.

Integer formats are scaled by full scale: an ``s16le`` sample ``k`` is the float ``k / 32768``,
and a float ``x`` is written as ``round(x * 32768)``, so integer samples survive a round trip
through float exactly. A float whose scaled value does not fit the integer range is clipped to
the nearest end and counted.
"""

from __future__ import annotations

import numpy as np

from streamconv.errors import CommandLineError, UsageError

#: The raw PCM formats of the command line (``--format``), little-endian, interleaved.
PCM_FORMATS: dict[str, np.dtype] = {
    "s16le": np.dtype("<i2"),
    "s32le": np.dtype("<i4"),
    "f32le": np.dtype("<f4"),
    "f64le": np.dtype("<f8"),
}


def pcm_dtype(fmt: str | None, where: str = "--format") -> np.dtype:
    """Return the numpy dtype of a raw PCM format name, or raise `UsageError` naming it
    (`CommandLineError` when `where` is an option).

    Parameters
    ----------
    fmt : str or None
        One of ``s16le``, ``s32le``, ``f32le``, ``f64le``.
    where : str
        What to name in the error message (an option or a config field).

    Returns
    -------
    numpy.dtype
        The little-endian sample type.
    """
    # An option's mistake is the command line's (a hint to --help); a config field's is not.
    mistake = CommandLineError if where.startswith("--") else UsageError
    if fmt is None:
        raise mistake(f"raw PCM needs {where} (one of {', '.join(PCM_FORMATS)})")
    try:
        return PCM_FORMATS[fmt]
    except KeyError:
        raise mistake(
            f"{where}: unknown sample format {fmt!r} (expected one of {', '.join(PCM_FORMATS)})"
        ) from None


def full_scale(dtype: np.dtype) -> float:
    """Return the float value that maps to 1.0 for an integer dtype (1.0 for floats)."""
    dtype = np.dtype(dtype)
    if dtype.kind == "i":
        return float(2 ** (8 * dtype.itemsize - 1))
    return 1.0


def decode(
    data: bytes | bytearray | memoryview | np.ndarray, dtype: np.dtype, channels: int, out_dtype
):
    """Decode whole interleaved frames of raw PCM into a ``(frames, channels)`` float block.

    Parameters
    ----------
    data : bytes-like
        A whole number of frames.
    dtype : numpy.dtype
        The sample type of `data` (see `PCM_FORMATS`).
    channels : int
        Samples per frame.
    out_dtype : numpy dtype
        float32 or float64.

    Returns
    -------
    numpy.ndarray
        Shape ``(len(data) // (itemsize * channels), channels)``; integers divided by full scale.
    """
    samples = np.frombuffer(data, dtype=dtype)
    block = samples.astype(out_dtype).reshape(-1, channels)
    if dtype.kind == "i":
        block *= 1.0 / full_scale(dtype)
    return block


def quantize(block: np.ndarray, dtype: np.dtype) -> tuple[np.ndarray, int]:
    """Convert a float block to the sample type `dtype`, clipping integers at full scale.

    Parameters
    ----------
    block : numpy.ndarray
        Float samples, nominally in [-1, 1].
    dtype : numpy.dtype
        Target sample type; integer types are scaled by `full_scale`.

    Returns
    -------
    samples : numpy.ndarray
        `block` converted to `dtype`, same shape.
    clipped : int
        How many samples fell outside the integer range and were clipped.

    Notes
    -----
    For an integer type of ``b`` bits, ``q = clip(round(x * 2**(b-1)), -2**(b-1), 2**(b-1) - 1)``.
    """
    dtype = np.dtype(dtype)
    if dtype.kind != "i":
        return block.astype(dtype, copy=False), 0
    info = np.iinfo(dtype)
    scaled = np.rint(block * full_scale(dtype))
    clipped = int(np.count_nonzero((scaled > info.max) | (scaled < info.min)))
    if clipped:
        np.clip(scaled, info.min, info.max, out=scaled)
    return scaled.astype(dtype), clipped


def quantize_bits(block: np.ndarray, bits: int) -> tuple[np.ndarray, int]:
    """Round a float block to `bits`-bit integers (as int32 values), clipping at full scale.

    Returns
    -------
    samples : numpy.ndarray
        int32 values in ``[-2**(bits-1), 2**(bits-1) - 1]``.
    clipped : int
        How many samples were clipped.
    """
    top = 2.0 ** (bits - 1)
    scaled = np.rint(block * top)
    clipped = int(np.count_nonzero((scaled >= top) | (scaled < -top)))
    if clipped:
        np.clip(scaled, -top, top - 1, out=scaled)
    return scaled.astype(np.int32), clipped


def encode(block: np.ndarray, dtype: np.dtype) -> tuple[bytes, int]:
    """Encode a ``(frames, channels)`` float block as interleaved raw PCM.

    Returns
    -------
    data : bytes
        The interleaved samples.
    clipped : int
        How many samples were clipped (see `quantize`).
    """
    samples, clipped = quantize(block, dtype)
    return np.ascontiguousarray(samples).tobytes(), clipped
