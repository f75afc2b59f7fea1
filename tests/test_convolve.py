"""Convolver against scipy's oracles, for every engine, layout, dtype, stride and chunking.

The tests taking the ``backend`` fixture run twice: on the compiled engines (the C extension)
and on the numpy fallback; each run makes the other backend raise, so it proves which one ran.
Where the extension is not built (a source tree without ``make``) the compiled runs are skipped
with that reason; ``make test`` sets ``STREAMCONV_REQUIRE_COMPILED=1``, which makes them fail.
"""

from __future__ import annotations

import os
import tracemalloc

import numpy as np
import pytest
import scipy.signal

import streamconv as sc
from streamconv.dsp import compiled, engines
from streamconv.dsp.engines import Kernel, PartitionedEngine, Segment, uniform_plan

TOLERANCE = {
    np.float32: 1e-5,
    np.float64: 1e-10,
}  # of the output's peak (docs/contract.md, "Python API")
SEED_X = [0, 0, 0, 1, 2, 3, 2, 1, 0, 0]
SEED_TAPS = [1, 2, 3, 2, 1]
SEED_Y = [0, 0, 0, 1, 4, 10, 16, 19, 16, 10, 4, 1, 0, 0]


@pytest.fixture(params=["compiled", "numpy"])
def backend(request, monkeypatch):
    """Run the test on one backend, the other made to fail if it is ever called."""

    def refuse(self, x):
        raise AssertionError(f"{type(self).__name__} ran in a {request.param!r} test")

    if request.param == "compiled":
        monkeypatch.delenv("STREAMCONV_ENGINE", raising=False)
        if not compiled.available():
            reason = f"the compiled engine is not built ({compiled.IMPORT_ERROR}): run make"
            if os.environ.get("STREAMCONV_REQUIRE_COMPILED"):
                pytest.fail(reason)
            pytest.skip(reason)
        monkeypatch.setattr(engines.DirectEngine, "process", refuse)
        monkeypatch.setattr(engines.PartitionedEngine, "process", refuse)
    else:
        monkeypatch.setenv("STREAMCONV_ENGINE", "numpy")
        monkeypatch.setattr(compiled._Compiled, "_bind", refuse)  # no compiled engine is made
    return request.param


def reference(x: np.ndarray, taps: np.ndarray, down: int = 1) -> np.ndarray:
    """The full convolution, one obvious scipy call per filter path, kept every ``down``."""
    x = x.astype(np.float64)
    taps = taps.astype(np.float64)
    if taps.ndim == 1:
        taps = np.repeat(taps[:, None], x.shape[1], axis=1)
    if taps.ndim == 2:
        cols = [scipy.signal.upfirdn(taps[:, c], x[:, c], down=down) for c in range(x.shape[1])]
        return np.stack(cols, axis=1)
    outs = []
    for o in range(taps.shape[2]):
        outs.append(
            sum(scipy.signal.upfirdn(taps[:, i, o], x[:, i], down=down) for i in range(x.shape[1]))
        )
    return np.stack(outs, axis=1)


def chunk_sizes(total: int, rng: np.random.Generator, length: int) -> list[int]:
    """A chunking with 0-, 1-frame, prime, power-of-two +-1 and larger-than-filter pieces."""
    pool = [0, 1, 1, 2, 3, 7, 13, 31, 61, 63, 64, 65, 127, 257, length + 17, 2 * length + 3]
    sizes, left = [], total
    while left > 0:
        size = min(left, int(rng.choice(pool)))
        sizes.append(size)
        left -= size
    return sizes


def stream(conv: sc.Convolver, x: np.ndarray, sizes: list[int]) -> np.ndarray:
    outs, start = [], 0
    for size in sizes:
        outs.append(conv.process(x[start : start + size]))
        start += size
    outs.append(conv.flush())
    return np.concatenate(outs)


def assert_matches(y: np.ndarray, ref: np.ndarray, dtype) -> None:
    assert y.shape == ref.shape
    assert y.dtype == dtype
    scale = max(np.abs(ref).max(), 1e-30)
    err = np.abs(y.astype(np.float64) - ref).max() / scale
    assert err < TOLERANCE[dtype], f"relative error {err:.2e}"


def make_taps(shape, dtype, rng):
    taps = rng.standard_normal(shape) * np.exp(-np.arange(shape[0]) / (shape[0] / 3 + 1)).reshape(
        -1, *([1] * (len(shape) - 1))
    )
    return taps.astype(dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("down", [1, 3])
@pytest.mark.parametrize("layout", ["shared", "per_channel", "mimo"])
@pytest.mark.parametrize(
    ("method", "length"),
    [("direct", 37), ("ola", 37), ("ola", 300), ("partitioned", 300), ("partitioned", 2500)],
)
def test_streaming_equals_full_convolution(method, length, layout, down, dtype, backend):
    rng = np.random.default_rng([length, down, len(layout), len(method)])
    cin = 2
    shape = {"shared": (length,), "per_channel": (length, cin), "mimo": (length, cin, 3)}[layout]
    taps = make_taps(shape, dtype, rng)
    x = rng.standard_normal((3 * length + 501, cin)).astype(dtype)
    conv = sc.Convolver(taps, block_size=32, method=method, down=down)
    for _ in range(2):  # a second stream after flush() must start clean
        y = stream(conv, x, chunk_sizes(x.shape[0], rng, length))
        assert conv.method == method and conv.backend == backend
        assert_matches(y, reference(x, taps, down), dtype)


@pytest.mark.parametrize("method", ["direct", "ola", "partitioned"])
@pytest.mark.parametrize("block", [1, 5, 4])
def test_seed_example(method, block, backend):
    conv = sc.Convolver(SEED_TAPS, block_size=4, method=method)
    x = np.array(SEED_X, dtype=float)
    sizes = [block] * (len(SEED_X) // block) + [len(SEED_X) % block]
    y = stream(conv, x, sizes)
    assert y.ndim == 1
    np.testing.assert_allclose(y, SEED_Y, atol=1e-12)
    np.testing.assert_allclose(y, np.convolve(SEED_X, SEED_TAPS), atol=1e-12)


def test_correlate_mode_slides_without_flipping(backend):
    rng = np.random.default_rng(5)
    taps, x = rng.standard_normal(40), rng.standard_normal(500)
    conv = sc.Convolver(taps, block_size=16, mode="correlate")
    y = stream(conv, x, chunk_sizes(len(x), rng, 40))
    np.testing.assert_allclose(y, scipy.signal.correlate(x, taps, mode="full"), atol=1e-10)
    # Output n is the dot product of the kernel with the window ending at frame n.
    n = 123
    assert y[n] == pytest.approx(np.dot(taps, x[n - 39 : n + 1]))


def test_impulse_in_gives_the_taps_out(backend):
    taps = np.random.default_rng(1).standard_normal((700, 2)).astype(np.float32)
    impulse = np.zeros((700, 2), np.float32)
    impulse[0] = 1
    conv = sc.Convolver(taps, block_size=64, method="partitioned")
    np.testing.assert_allclose(conv.process(impulse), taps, atol=1e-6)


@pytest.mark.parametrize(
    ("length", "block", "method"),
    [
        (5, 256, "direct"),
        (255, 1024, "ola"),
        (4096, 64, "partitioned"),
        (65536, 256, "partitioned"),
    ],
)
def test_auto_picks_the_engine_the_cost_model_favours(length, block, method):
    conv = sc.Convolver(np.ones(length, np.float32), block_size=block, channels=2)
    assert conv.method == method


def test_long_filter_uses_growing_partitions():
    conv = sc.Convolver(np.ones(65536, np.float32), block_size=256, channels=2)
    blocks = [seg.block for seg in conv.plan]
    assert blocks[0] == 256 and max(blocks) >= 16 * 256, blocks
    assert all(seg.offset >= seg.block for seg in conv.plan[1:])
    assert sum(seg.count * seg.length for seg in conv.plan) >= 65536


def test_blocks_above_the_largest_partition_block_plan_and_run(backend):
    """A file job's block for a filter of 2^20 taps is 2^18 frames, above the planner's largest
    later-segment block (2^16): the planner divided by zero there (`streamconv filter` with
    such a filter failed with a traceback). Scaled down: 140000 taps in 2^17-frame blocks."""
    rng = np.random.default_rng(17)
    taps = rng.standard_normal(140000) * np.exp(-np.arange(140000) / 20000)
    x = rng.standard_normal((300000, 1))
    conv = sc.Convolver(taps, block_size=1 << 17)
    y = np.concatenate([conv.process(x[i : i + (1 << 17)]) for i in range(0, len(x), 1 << 17)])
    assert conv.backend == backend and conv.plan[0].block == 1 << 17
    ref = scipy.signal.fftconvolve(x[:, 0], taps)[: len(x), None]
    assert np.abs(y - ref).max() / np.abs(ref).max() < TOLERANCE[np.float64]


def test_fast_path_runs_and_the_direct_fallback_does_not(monkeypatch, backend):
    """A partitioned engine really runs its FFT path: make the direct form unusable."""

    def refuse(*args, **kwargs):
        raise AssertionError("np.convolve called on the partitioned path")

    monkeypatch.setattr(engines.np, "convolve", refuse)
    rng = np.random.default_rng(2)
    taps, x = rng.standard_normal(3000), rng.standard_normal((4000, 1))
    conv = sc.Convolver(taps, block_size=64, method="partitioned")
    y = stream(conv, x, chunk_sizes(len(x), rng, 3000))
    assert conv.method == "partitioned"
    assert_matches(y, reference(x, taps), np.float64)


ENGINE_CLASSES = {
    "numpy": PartitionedEngine,
    "compiled": compiled.CompiledPartitionedEngine,
}


@pytest.mark.parametrize("block", [16, 100])
def test_uniformly_partitioned_plan(block, backend):
    rng = np.random.default_rng(block)
    taps = rng.standard_normal((1000, 1, 1))
    plan = uniform_plan(1000, block)
    engine = ENGINE_CLASSES[backend](Kernel(taps, "diagonal", 1, 1), plan, np.float64, "uniform")
    x = rng.standard_normal((3000, 1))
    y = np.concatenate([engine.process(x[i : i + 7]) for i in range(0, 3000, 7)])
    assert_matches(y, reference(x, taps[:, 0, 0])[:3000], np.float64)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_short_filter_in_long_blocks_runs_on_whole_pieces_of_them(dtype, backend):
    """255 taps in 16384-frame blocks (a file job): the compiled ola engine cuts every block
    into pieces of 2048 frames, whose 2304-point FFTs cost less than one of 17280 points (the
    numpy engine's ~15 us per piece keeps it whole). Whole blocks and any other split of the
    stream still give the full convolution, on both engines."""
    rng = np.random.default_rng(255)
    taps = make_taps((255,), dtype, rng)
    x = rng.standard_normal((3 * 16384 + 1001, 2)).astype(dtype)
    conv = sc.Convolver(taps, block_size=16384, channels=2)
    assert conv.method == "ola" and 16384 % conv.plan[0].block == 0
    if backend == "compiled":
        assert [s.block for s in conv.plan] == [2048]
    for sizes in ([16384, 16384, 16384, 1001], chunk_sizes(x.shape[0], rng, 4000)):
        y = stream(conv, x, sizes)
        assert conv.backend == backend
        assert_matches(y, reference(x, taps), dtype)
    kernel = Kernel(taps.reshape(-1, 1, 1), "diagonal", 2, 2)
    engine = ENGINE_CLASSES[backend](kernel, engines.ola_plan(255, 2048), np.dtype(dtype), "ola")
    y = np.concatenate([engine.process(x[i : i + 16384]) for i in range(0, len(x), 16384)])
    assert_matches(y, reference(x, taps)[: len(x)], dtype)


def test_invalid_plan_is_refused(backend):
    taps = np.ones((100, 1, 1))
    late_start = (Segment(0, 16, 16, 1), Segment(16, 32, 32, 3))  # 32-block needs offset >= 32
    with pytest.raises(ValueError, match="offset >= block"):
        ENGINE_CLASSES[backend](Kernel(taps, "diagonal", 1, 1), late_start, np.float64, "bad")


@pytest.mark.parametrize("method", ["direct", "partitioned"])
@pytest.mark.parametrize("order", ["strided", "fortran", "reversed", "columns"])
@pytest.mark.parametrize("channels", [1, 2, 3])
def test_any_strides_in(method, order, channels, backend):
    """Views of a bigger array (every other frame, Fortran order, negative strides, some of its
    columns) work; 1 and 2 channels too, which have their own copy loops when contiguous."""
    rng = np.random.default_rng(11)
    taps = make_taps((200, channels), np.float32, rng)
    base = rng.standard_normal((2000, channels + 1)).astype(np.float32)
    x = {
        "strided": base[::2, :channels],
        "fortran": np.asfortranarray(base[:, :channels]),
        "reversed": base[::-1, :channels],
        "columns": base[:, 1:],
    }[order]
    conv = sc.Convolver(taps, block_size=32, method=method)
    y = stream(conv, x, chunk_sizes(x.shape[0], rng, 200))
    assert conv.backend == backend
    assert_matches(y, reference(np.ascontiguousarray(x), taps), np.float32)


def test_fallback_is_chosen_when_the_extension_is_missing(monkeypatch):
    """What a machine without a C compiler at install gets: the numpy engines, same output."""
    monkeypatch.delenv("STREAMCONV_ENGINE", raising=False)
    monkeypatch.setattr(compiled, "_fastconv", None)
    assert not compiled.available()
    conv = sc.Convolver(np.ones(300), block_size=32, channels=2)
    assert conv.backend == "numpy"
    x = np.random.default_rng(3).standard_normal((1000, 2))
    assert_matches(stream(conv, x, [1000]), reference(x, np.ones(300)), np.float64)


@pytest.mark.parametrize("method", ["direct", "ola", "partitioned"])
def test_memory_does_not_grow_per_call(method, backend):
    conv = sc.Convolver(np.ones(2000, np.float32), block_size=128, method=method, channels=2)
    x = np.ones((128, 2), np.float32)
    for _ in range(50):  # warm up: lazy buffers, FFTW plans, caches
        conv.process(x)
    tracemalloc.start()
    before = tracemalloc.take_snapshot()
    for _ in range(500):
        conv.process(x)
    after = tracemalloc.take_snapshot()
    tracemalloc.stop()
    grown = sum(stat.size_diff for stat in after.compare_to(before, "filename"))
    assert grown < 64 * 1024, f"{grown} bytes retained after 500 calls"


@pytest.mark.parametrize(
    ("shape", "channels", "out_shape"),
    [((5,), 3, (4, 3)), ((5, 2), 2, (4, 2)), ((5, 2, 3), 2, (4, 3))],
)
def test_channels_argument_allocates_up_front(shape, channels, out_shape):
    conv = sc.Convolver(np.ones(shape), channels=channels)
    assert conv.method is not None  # built at construction
    assert conv.process(np.ones((4, channels))).shape == out_shape


def test_dtypes_are_kept(backend):
    x = np.ones((10, 1))
    assert sc.Convolver(np.ones(3, np.float32)).process(x).dtype == np.float32
    assert sc.Convolver(np.ones(3)).process(x.astype(np.float32)).dtype == np.float64
    assert sc.Convolver([1, 2, 3]).process(x).dtype == np.float64


def test_latency_is_zero_and_zero_frames_are_fine(backend):
    conv = sc.Convolver(np.ones(10), channels=2)
    assert conv.latency == 0
    assert conv.process(np.zeros((0, 2))).shape == (0, 2)


def test_decimated_output_count_matches_upfirdn_for_every_remainder(backend):
    rng = np.random.default_rng(9)
    for n in range(1, 14):
        for length in (1, 2, 5, 6):
            x, taps = rng.standard_normal(n), rng.standard_normal(length)
            conv = sc.Convolver(taps, down=4, method="direct")
            y = np.concatenate([conv.process(x), conv.flush()])
            np.testing.assert_allclose(y, scipy.signal.upfirdn(taps, x, down=4), atol=1e-12)


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"taps": []}, ValueError, "at least one tap"),
        ({"taps": np.zeros((4, 0))}, ValueError, "at least one tap"),
        ({"taps": np.ones((2, 2, 2, 2))}, ValueError, r"\(L,\), \(L, C\) or \(L, Cin, Cout\)"),
        ({"taps": 3.0}, ValueError, r"\(L,\), \(L, C\) or \(L, Cin, Cout\)"),
        ({"taps": [1.0, np.nan]}, ValueError, "finite"),
        ({"taps": [1.0, np.inf]}, ValueError, "finite"),
        ({"taps": ["a", "b"]}, TypeError, "real numbers"),
        ({"taps": [1 + 1j]}, TypeError, "real numbers"),
        ({"taps": [1.0], "down": 0}, ValueError, "down must be an integer >= 1"),
        ({"taps": [1.0], "down": 1.5}, TypeError, "down must be an integer >= 1"),
        ({"taps": [1.0], "block_size": 0}, ValueError, "block_size must be an integer >= 1"),
        ({"taps": [1.0], "method": "fast"}, ValueError, "method must be one of"),
        ({"taps": [1.0], "mode": "same"}, ValueError, "mode must be one of"),
        ({"taps": np.ones((3, 2)), "channels": 3}, ValueError, "does not match taps"),
    ],
)
def test_bad_arguments_say_what_was_expected(kwargs, error, message):
    with pytest.raises(error, match=message):
        sc.Convolver(**kwargs)


def test_channel_mismatch_is_an_error(backend):
    conv = sc.Convolver(np.ones((5, 2)))
    with pytest.raises(ValueError, match="expected 2 channel"):
        conv.process(np.ones((4, 3)))
    shared = sc.Convolver(np.ones(5))
    shared.process(np.ones((4, 2)))
    with pytest.raises(ValueError, match="expected 2 channel"):
        shared.process(np.ones(4))
    with pytest.raises(ValueError, match="frames, channels"):
        shared.process(np.ones((2, 2, 2)))


@pytest.mark.parametrize("n", [1, 2, 3, 16, 17, 1279, 4352, 16639, 65790, 100001])
def test_fast_fft_size_is_the_smallest_even_5_smooth_size(n):
    from streamconv.dsp.fftw import fast_fft_size

    def ok(size):
        if size <= 16:
            return size & (size - 1) == 0
        if size % 16:
            return False
        for p in (2, 3, 5):
            while size % p == 0:
                size //= p
        return size == 1

    size = fast_fft_size(n)
    assert size >= n and ok(size)
    assert not any(ok(m) for m in range(n, size))


MDWE_SCRIPT = """
import ctypes, sys
libc = ctypes.CDLL(None, use_errno=True)
if libc.prctl(65, 1, 0, 0, 0) != 0:  # PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN (Linux >= 6.3)
    print("no-mdwe")
    sys.exit(0)
import numpy as np
import streamconv as sc
x = np.random.default_rng(0).standard_normal((5000, 2)).astype(np.float32)
for taps in (np.ones(5, np.float32), np.ones(3000, np.float32)):
    conv = sc.Convolver(taps, block_size=64, channels=2)
    y = np.concatenate([conv.process(x[i : i + 64]) for i in range(0, 5000, 64)])
    ref = np.stack([np.convolve(x[:, c], taps)[:5000] for c in range(2)], axis=1)
    assert np.abs(y - ref).max() < 1e-3, np.abs(y - ref).max()
    print(conv.backend, conv.method)
"""


def test_compiled_engine_runs_where_memory_cannot_be_made_executable(backend):
    """The service's unit has MemoryDenyWriteExecute=yes: the engine (unlike a JIT) must work
    in a process that may never map writable memory executable (the kernel's MDWE prctl, what
    systemd applies)."""
    import subprocess
    import sys

    env = {**os.environ, "STREAMCONV_ENGINE": "" if backend == "compiled" else "numpy"}
    run = subprocess.run(
        [sys.executable, "-c", MDWE_SCRIPT], capture_output=True, text=True, env=env
    )
    assert run.returncode == 0, run.stderr
    if run.stdout.strip() == "no-mdwe":
        pytest.skip("this kernel has no PR_SET_MDWE (Linux < 6.3)")
    assert run.stdout.split("\n")[:2] == [f"{backend} direct", f"{backend} partitioned"]
