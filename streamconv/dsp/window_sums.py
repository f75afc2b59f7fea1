"""Sliding-window sums that stay exact next to loud samples, shared by several window lengths.

A running (cumulative) sum gives a window sum as a difference of two prefix sums, and its
rounding error grows with everything summed before the window: after a loud event a quiet
window's sum of squares can lose every digit. Here the rows are cut into blocks of ``B``
samples (``B <= length``) and a window ``[s, s + length)`` is summed as::

    (suffix of s's block from s) + (totals of the whole blocks in between) + (prefix of the
    block holding s + length, up to it)

Every addend lies inside the window, so the error is relative to the window's own content.
One pair of block cumulative sums serves every window length ``>= B``.
"""

from __future__ import annotations

import numpy as np

__all__ = ["BlockSums", "block_size_for", "window_sums"]

#: A window length may be at most this many blocks (the whole-block sums are a Python loop).
MAX_BLOCKS_PER_WINDOW = 64


def block_size_for(length: int) -> int:
    """The largest power of two not above ``length``."""
    return 1 << (int(length).bit_length() - 1)


class BlockSums:
    """Block prefix and suffix sums of the rows of ``a``, for window sums of many lengths.

    Parameters
    ----------
    a : (K, n) float64 array
        Rows to sum along.
    block : int
        Block length ``B``; every window length asked for must be ``>= B``.
    reach : int
        Longest window start + length that will be asked for (rows are zero past ``n``).
    """

    def __init__(self, a: np.ndarray, block: int, reach: int):
        k, n = a.shape
        nblk = -(-(max(reach, n) + 1) // block) + 1
        rows = np.zeros((k, nblk * block))
        rows[:, :n] = a
        blocks = rows.reshape(k, nblk, block)
        # prefix_excl[q, r] = sum(block q [0 : r]); suffix[q, r] = sum(block q [r : B]).
        self.prefix = np.empty_like(blocks)
        self.prefix[:, :, 0] = 0.0
        np.cumsum(blocks[:, :, :-1], axis=2, out=self.prefix[:, :, 1:])
        self.suffix = np.empty_like(blocks)
        np.cumsum(blocks[:, :, ::-1], axis=2, out=self.suffix[:, :, ::-1])
        self.totals = self.suffix[:, :, 0]
        self.block = block
        self.k = k

    def sums(self, length: int, count: int) -> np.ndarray:
        """``out[:, s] = sum(a[:, s : s + length], axis=1)`` for ``s < count`` as ``(K, count)``."""
        b, k = self.block, self.k
        if length < b:
            raise ValueError(f"window length {length} is shorter than the block {b}")
        whole, part = divmod(length, b)  # length = whole * B + part
        nq = -(-count // b)
        # Whole blocks between s's block q and the block of s + length: whole - 1 of them
        # (q + 1 .. q + whole - 1), one more (q + whole) once s's offset r >= B - part.
        mid = np.zeros((k, nq))
        for j in range(1, whole):
            mid += self.totals[:, j : j + nq]
        grid = np.empty((k, nq, b))
        grid[:, :, : b - part] = mid[:, :, None]
        grid[:, :, b - part :] = (mid + self.totals[:, whole : whole + nq])[:, :, None]
        out = grid.reshape(k, -1)[:, :count]
        out += self.suffix.reshape(k, -1)[:, :count]
        out += self.prefix.reshape(k, -1)[:, length : length + count]
        return out


def window_sums(a: np.ndarray, length: int, count: int) -> np.ndarray:
    """``out[s] = sum(a[s : s + length], axis=0)`` for ``s < count``, summed stably.

    Parameters
    ----------
    a : (n, C) float array, ``n >= count + length - 1``
    length, count : int

    Returns
    -------
    (count, C) float64 array

    Examples
    --------
    >>> window_sums(np.arange(6.0)[:, None], 3, 4)[:, 0].tolist()
    [3.0, 6.0, 9.0, 12.0]
    """
    a = np.asarray(a, dtype=np.float64)
    return BlockSums(a.T, block_size_for(length), count + length).sums(length, count).T
