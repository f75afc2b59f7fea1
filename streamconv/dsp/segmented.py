"""The streaming front of the matchers: blocks in, fixed segments run, detections out in order.

:class:`streamconv.dsp.matcher.Matcher` and :class:`streamconv.dsp.spectro_matcher.SpectroMatcher`
both score the stream in fixed segments counted from its start: a buffer of ``_seg_len`` samples
is filled from the blocks `process` is given, scored when full, then moved on by ``block_size``
samples (the rest, the context the next segment's first scores need, is kept). Because the
segments do not depend on the blocks, neither do the scores nor the detections.
:class:`SegmentedDetector` is that shared loop; a matcher supplies how a segment is scored.
"""

from __future__ import annotations

import numpy as np

from streamconv.dsp.detection import Detection

__all__ = ["SegmentedDetector"]


class SegmentedDetector:
    """Mixin: `process` and `flush` over fixed segments of the stream.

    The class using it sets ``channels`` (None until the first block), ``block_size`` (samples a
    full segment moves on by), ``_seg_len``, ``names`` and, in ``_setup``/``_begin``, ``_buf``
    (``(_seg_len, channels)``), ``_fill`` and ``_pending``; and defines ``_setup(channels)``,
    ``_run_segment(m, final)`` (score the buffer's first ``m`` samples, add detections to
    ``_pending``), ``_advance_segment()`` (the next segment's position), ``decided`` and
    ``reset``.
    """

    channels: int | None
    block_size: int
    names: list[str]
    _seg_len: int
    _buf: np.ndarray
    _fill: int
    _pending: list[Detection]
    _rules: list
    _mad_window: int
    _mad_hop: int

    # -- hooks of the matcher ------------------------------------------------------------------

    def _setup(self, channels: int) -> None:
        raise NotImplementedError

    def _run_segment(self, m: int, final: bool) -> None:
        raise NotImplementedError

    def _advance_segment(self) -> None:
        raise NotImplementedError

    @property
    def decided(self) -> int:
        raise NotImplementedError

    def reset(self) -> None:
        raise NotImplementedError

    def _context(self) -> tuple[int, int, int]:
        """(peak reach, MAD window, MAD hop) in score steps; ``(reach, 0, 1)`` without MAD."""
        reach = max(d for _, _, d in self._rules) - 1
        if any(k is not None for _, k, _ in self._rules):
            return reach, self._mad_window, self._mad_hop
        return reach, 0, 1

    # -- streaming ---------------------------------------------------------------------------

    def _check_block(self, x) -> np.ndarray:
        x = np.asarray(x)
        if x.ndim == 1:
            x = x[:, None]
        if x.ndim != 2:
            raise ValueError(f"a block must be (frames,) or (frames, channels), got {x.shape}")
        if self.channels is None:
            self._setup(x.shape[1])
        elif x.shape[1] != self.channels:
            raise ValueError(f"block has {x.shape[1]} channels, the stream has {self.channels}")
        if not np.all(np.isfinite(x)):
            raise ValueError("block contains NaN or Inf samples")
        return x

    def process(self, x) -> list[Detection]:
        """Feed a block of the stream; return the detections that became final.

        Parameters
        ----------
        x : array_like
            ``(frames, channels)``, or ``(frames,)`` for mono; finite. Any length, also 0.

        Returns
        -------
        list of Detection
            In stream order (sample, then template, then channel).
        """
        x = self._check_block(x)
        pos, n = 0, len(x)
        while pos < n:
            take = min(n - pos, self._seg_len - self._fill)
            self._buf[self._fill : self._fill + take] = x[pos : pos + take]
            self._fill += take
            pos += take
            if self._fill == self._seg_len:
                self._run_segment(self._seg_len, final=False)
                # The next segment starts block_size samples on; what follows is its context.
                keep = self._seg_len - self.block_size
                self._buf[:keep] = self._buf[self.block_size :].copy()
                self._fill = keep
                self._advance_segment()
        return self._release(final=False)

    def flush(self) -> list[Detection]:
        """End of stream: decide everything left, return it, and reset.

        Returns
        -------
        list of Detection
            In stream order.
        """
        if self.channels is None:
            return []
        self._run_segment(self._fill, final=True)
        out = self._release(final=True)
        self.reset()
        return out

    def _release(self, final: bool) -> list[Detection]:
        if final:
            ready, self._pending = self._pending, []
        else:
            # Hold a detection back until every trace has decided up to it: stream order.
            upto = self.decided
            ready = [d for d in self._pending if d.sample < upto]
            self._pending = [d for d in self._pending if d.sample >= upto]
        order = {n: i for i, n in enumerate(self.names)}
        ready.sort(
            key=lambda d: (d.sample, order[d.template], -1 if d.channel is None else d.channel)
        )
        return ready
