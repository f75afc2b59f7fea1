"""Streaming FIR convolution: :class:`Convolver`."""

from __future__ import annotations

import numbers
from collections.abc import Callable

import numpy as np

from streamconv.dsp import compiled, costmodel
from streamconv.dsp.engines import (
    DirectEngine,
    Kernel,
    PartitionedEngine,
    Segment,
    direct_cost,
    nonuniform_plan,
    ola_plan,
    plan_cost,
)

#: What `Convolver` runs: a numpy or compiled engine, direct or partitioned.
_Engine = (
    DirectEngine
    | PartitionedEngine
    | compiled.CompiledDirectEngine
    | compiled.CompiledPartitionedEngine
)

METHODS = ("auto", "direct", "ola", "partitioned")
MODES = ("convolve", "correlate")
# FFT engines never use blocks smaller than this: a tinier FFT costs more in call overhead
# than the direct form of the same filter.
MIN_FFT_BLOCK = 16


class Convolver:
    """A streaming FIR filter (or correlator) with zero latency.

    Parameters
    ----------
    taps : array_like
        ``(L,)`` one filter for every channel; ``(L, C)`` one filter per channel;
        ``(L, Cin, Cout)`` a MIMO matrix where output ``j = sum_i taps[:, i, j] * input i``.
        float32 taps run in float32, anything else in float64.
    block_size : int
        The block length you expect to pass to :meth:`process`; it sizes the FFT blocks (for
        a filter much shorter than it, ``ola`` may run on halvings of it that divide it, when
        the cost model finds them cheaper). Any other length works too.
    method : {"auto", "direct", "ola", "partitioned"}
        The engine (see :mod:`streamconv.dsp.engines`). ``"auto"`` picks the cheapest under
        the cost model written down there; :attr:`method` tells which one runs.
    down : int
        Decimation factor ``D``: only every ``D``-th output is computed and returned.
    mode : {"convolve", "correlate"}
        ``"correlate"`` slides the kernel without flipping it (deep-learning convolution).
    channels : int, optional
        Channel count for ``(L,)`` taps, to allocate at construction instead of at the first
        :meth:`process` call.

    Notes
    -----
    The output is the causal convolution ``y[n] = sum_k h[k] x[n - k]``, with ``x[n] = 0``
    before the first frame; in correlate mode ``h`` is reversed first, so ``y[n]`` is the dot
    product of the kernel with ``x[n - L + 1 : n + 1]``. With ``down=D`` the output is
    ``y[m * D]``, which is computed as soon as frame ``m * D`` has arrived: the decimator is run
    as a polyphase filter, ``D`` sub-filters ``h[p::D]`` on the sub-streams ``x[m * D - p]``
    at the low rate, summed, so no discarded output is ever computed.

    Concatenating :meth:`process` outputs for any split of the input plus :meth:`flush` equals
    ``scipy.signal.convolve(x, h)`` along axis 0 (``scipy.signal.upfirdn(h, x, down=D)``).

    Examples
    --------
    >>> conv = Convolver([1, 2, 3, 2, 1], block_size=4, method="direct")
    >>> x = np.array([0, 0, 0, 1, 2, 3, 2, 1, 0, 0], dtype=float)
    >>> y = np.concatenate([conv.process(x[:3]), conv.process(x[3:]), conv.flush()])
    >>> y.tolist()
    [0.0, 0.0, 0.0, 1.0, 4.0, 10.0, 16.0, 19.0, 16.0, 10.0, 4.0, 1.0, 0.0, 0.0]
    """

    def __init__(
        self,
        taps,
        block_size: int = 256,
        method: str = "auto",
        down: int = 1,
        mode: str = "convolve",
        channels: int | None = None,
    ):
        self.taps = _checked_taps(taps)
        self.dtype = self.taps.dtype
        self.block_size = _positive_int("block_size", block_size)
        self.down = _positive_int("down", down)
        if method not in METHODS:
            raise ValueError(f"method must be one of {', '.join(METHODS)}; got {method!r}")
        if mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}; got {mode!r}")
        self.requested_method = method
        self.mode = mode
        self.length = self.taps.shape[0]
        h = self.taps[::-1] if mode == "correlate" else self.taps
        self._h = np.ascontiguousarray(h)
        if self.taps.ndim == 3:
            self.in_channels, self.out_channels = self.taps.shape[1:]
        elif self.taps.ndim == 2:
            self.in_channels = self.out_channels = self.taps.shape[1]
        else:
            self.in_channels = self.out_channels = None  # set by `channels` or the first block
        if channels is not None:
            channels = _positive_int("channels", channels)
            if self.in_channels not in (None, channels):
                raise ValueError(
                    f"channels={channels} does not match taps of shape {self.taps.shape}"
                )
            if self.in_channels is None:
                self.in_channels = self.out_channels = channels
        self._engine: _Engine | None = None  # built once the channel count is known
        # the compiled engine's process, when no conversion is needed
        self._fast: Callable[[np.ndarray], np.ndarray] | None = None
        self._pending: np.ndarray  # polyphase: input samples of the next low-rate frame
        self._mono = False
        if self.in_channels is not None:
            self._build()

    # -- public API ---------------------------------------------------------------------

    @property
    def latency(self) -> int:
        """Frames of delay this object adds: always 0, every call returns its output at once."""
        return 0

    @property
    def method(self) -> str | None:
        """The engine actually running (``None`` until the channel count is known)."""
        return self._engine.name if self._engine else None

    @property
    def backend(self) -> str | None:
        """``"compiled"`` (the C loops of :mod:`streamconv.dsp.compiled`) or ``"numpy"`` (the
        fallback when the extension is not built), ``None`` until the channel count is known."""
        return getattr(self._engine, "backend", "numpy") if self._engine else None

    @property
    def plan(self):
        """The partition plan of an FFT engine (tuple of ``Segment``), else ``()``."""
        return getattr(self._engine, "plan", ())

    @property
    def cost_per_frame(self) -> float | None:
        """Estimated CPU seconds per input frame of the running engine, by the cost model of
        :mod:`streamconv.dsp.engines` (``None`` until the channel count is known)."""
        return self._cost if self._engine else None

    def process(self, x) -> np.ndarray:
        """Filter the next frames of the stream.

        Parameters
        ----------
        x : array_like
            ``(n, Cin)`` frames, any ``n >= 0``; 1-D for mono.

        Returns
        -------
        numpy.ndarray
            ``(n, Cout)`` output frames (``down=D``: the outputs ``y[m]`` whose input frame
            ``m * D`` arrived in this call), 1-D when ``x`` was 1-D and ``Cout == 1``.
        """
        # The common case, a 2-D block of the right dtype and width, goes straight to the
        # compiled engine, which checks the array itself (at 32-frame blocks every Python
        # statement here is a few percent of the call); anything else it refuses, unchanged,
        # and the general path below converts it or says what is wrong.
        fast = self._fast
        if fast is not None and type(x) is np.ndarray:
            try:
                y = fast(x)
            except ValueError:
                pass
            else:
                self._mono = False  # (the frame counters matter only for down > 1)
                return y
        x = np.asarray(x)
        if x.ndim not in (1, 2):
            raise ValueError(f"x must be (frames, channels) or 1-D mono; got shape {x.shape}")
        if x.dtype.kind not in "fiub":
            raise TypeError(f"x must hold real numbers; got dtype {x.dtype}")
        self._mono = x.ndim == 1
        frames = x if x.ndim == 2 else x[:, None]
        if self.in_channels is None:
            self.in_channels = self.out_channels = frames.shape[1]
            self._build()
        if frames.shape[1] != self.in_channels:
            raise ValueError(
                f"expected {self.in_channels} channel(s) per frame, got {frames.shape[1]} "
                f"(x has shape {x.shape})"
            )
        frames = frames.astype(self.dtype, copy=False)
        self._frames_in += frames.shape[0]
        if self.down > 1:
            frames = self._polyphase_frames(frames)
        y = self._built().process(frames)
        self._frames_out += y.shape[0]
        return self._shaped(y)

    def flush(self) -> np.ndarray:
        """Return the rest of the full convolution (the ``L - 1`` tail) and reset.

        With ``down=D``, the remaining ``ceil((n + L - 1) / D)`` minus the outputs already
        returned, as ``upfirdn`` counts them.
        """
        if self.in_channels is None:
            self.in_channels = self.out_channels = 1
            self._build()
        engine = self._built()
        if self.down == 1:
            tail = engine.process(np.zeros((self.length - 1, self.in_channels), self.dtype))
        else:
            # Complete the frames that still hold real samples, then the polyphase tail.
            total = -(-(self._frames_in + self.length - 1) // self.down)
            zeros = np.zeros((self.down - 1, self.in_channels), self.dtype)
            last = engine.process(self._polyphase_frames(zeros))
            inner_tail = engine.kernel.length - 1
            rest = engine.process(np.zeros((inner_tail, engine.kernel.in_channels), self.dtype))
            tail = np.concatenate([last, rest])[: total - self._frames_out]
        result = self._shaped(tail)
        self.reset()
        return result

    def reset(self) -> None:
        """Forget the stream: the next frame is sample 0 again."""
        if self._engine is not None:
            self._engine.reset()
            self._pending = np.zeros((self.down - 1, self.in_channels), self.dtype)
        self._frames_in = 0
        self._frames_out = 0

    def __repr__(self) -> str:
        return (
            f"Convolver(taps={self.taps.shape}, dtype={self.dtype}, block_size={self.block_size}, "
            f"method={self.method!r}, down={self.down}, mode={self.mode!r})"
        )

    # -- internals ----------------------------------------------------------------------

    def _build(self) -> None:
        kernel = _kernel(self._h, self.in_channels, self.down)
        block = max(-(-self.block_size // self.down), 1)
        fft_block = max(block, MIN_FFT_BLOCK)
        fast = compiled.available()
        model = costmodel.current("compiled" if fast else "numpy")
        # engine name -> (cost per frame, partition plan or None)
        options: dict[str, tuple[float, tuple[Segment, ...] | None]] = {}
        if self.requested_method in ("auto", "direct"):
            options["direct"] = direct_cost(kernel, block, model), None
        if self.requested_method in ("auto", "ola"):
            plans = [ola_plan(kernel.length, b) for b in _whole_divisions(fft_block)]
            costs = [plan_cost(p, kernel, model) for p in plans]
            best = costs.index(min(costs))
            options["ola"] = costs[best], plans[best]
        if self.requested_method in ("auto", "partitioned"):
            plan = nonuniform_plan(kernel, fft_block, model=model)
            options["partitioned"] = plan_cost(plan, kernel, model), plan
        name = min(options, key=lambda k: options[k][0])
        self._cost, chosen = options[name]
        engine: _Engine
        if fast:
            if chosen is None:
                engine = compiled.CompiledDirectEngine(kernel, self.dtype)
            else:
                engine = compiled.CompiledPartitionedEngine(kernel, chosen, self.dtype, name)
        elif chosen is None:
            engine = DirectEngine(kernel, self.dtype)
        else:
            engine = PartitionedEngine(kernel, chosen, self.dtype, name)
        self._engine = engine
        if fast and self.down == 1:
            self._fast = engine.process
        self.reset()

    def _built(self) -> _Engine:
        """The engine, which exists once the channel count is known (`_build`)."""
        if self._engine is None:
            raise RuntimeError("Convolver: no engine before the channel count is known")
        return self._engine

    def _polyphase_frames(self, x: np.ndarray) -> np.ndarray:
        """Low-rate frames ``[x[mD], x[mD-1], ..., x[mD-D+1]]`` for every ``mD`` now arrived."""
        d = self.down
        buf = np.concatenate([self._pending, x])  # starts at sample next_m * D - (D - 1)
        count = buf.shape[0] // d  # frame k is buf[k * D : (k + 1) * D], reversed
        frames = (
            buf[: count * d]
            .reshape(count, d, x.shape[1])[:, ::-1, :]
            .reshape(count, d * x.shape[1])
        )
        self._pending = buf[count * d :]
        return frames

    def _shaped(self, y: np.ndarray) -> np.ndarray:
        return y[:, 0] if self._mono and y.shape[1] == 1 else y


def _whole_divisions(block: int) -> list[int]:
    """The FFT blocks the ``ola`` engine may cut a ``block``-frame call into: the block and its
    halvings down to `MIN_FFT_BLOCK` while they divide it, so whole calls never end inside one.

    A filter much shorter than the block runs cheaper on smaller FFTs: at 255 taps a 16384-frame
    file block takes one 17280-point FFT per channel each way, eight 2048-frame pieces take
    2304-point ones, 15% less CPU for the whole engine (the cost model's ``F log F`` per frame
    says as much). The output differs from the one big FFT's by float rounding only.
    """
    sizes = [block]
    while block % 2 == 0 and block // 2 >= MIN_FFT_BLOCK:
        block //= 2
        sizes.append(block)
    return sizes


def _checked_taps(taps) -> np.ndarray:
    arr = np.asarray(taps)
    if arr.dtype.kind not in "fiub":
        raise TypeError(f"taps must be real numbers; got dtype {arr.dtype}")
    if arr.ndim not in (1, 2, 3):
        raise ValueError(
            f"taps must have shape (L,), (L, C) or (L, Cin, Cout); got {arr.ndim}-D {arr.shape}"
        )
    if arr.size == 0:
        raise ValueError(f"taps must hold at least one tap per path; got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError("taps must be finite; got NaN or Inf")
    dtype = np.float32 if arr.dtype == np.float32 else np.float64
    return np.array(arr, dtype=dtype)  # a private copy


def _positive_int(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer >= 1; got {value!r}")
    if value < 1:
        raise ValueError(f"{name} must be an integer >= 1; got {value}")
    return int(value)


def _kernel(h: np.ndarray, channels: int, down: int) -> Kernel:
    """Engine layout of taps ``h``; with ``down > 1``, its polyphase components.

    Component ``p`` of a decimator holds ``h[p::D]`` and reads the sub-stream ``x[mD - p]``, so
    ``(L,)``/``(L, C)`` taps become a diagonal kernel with ``D`` groups and ``(L, Cin, Cout)``
    taps a MIMO kernel with ``D * Cin`` inputs.
    """
    length = h.shape[0]
    low = -(-length // down)
    padded = np.zeros((low * down, *h.shape[1:]), h.dtype)
    padded[:length] = h
    phases = padded.reshape(low, down, *h.shape[1:])  # phases[q, p] = h[q * D + p]
    if h.ndim == 3:
        cin, cout = h.shape[1:]
        return Kernel(phases.reshape(low, down * cin, cout), "mimo", down * cin, cout)
    taps = phases if h.ndim == 2 else phases[:, :, None]
    return Kernel(taps, "diagonal", down * channels, channels)
