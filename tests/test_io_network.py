"""udp://: datagrams with a frame index; loss and reordering counted, never glued."""

import socket

import numpy as np
import pytest

from streamconv.errors import UsageError
from streamconv.io import open_sink, open_source
from streamconv.io.network import HEADER, UdpSource


def _source(fmt="s16le"):
    return UdpSource("udp://127.0.0.1:0", fmt, 1000, 2, timeout_s=2.0)


@pytest.mark.parametrize("fmt", ["s16le", "f32le", "f64le"])
def test_sink_to_source_round_trip(rng, fmt):
    x = rng.integers(-1000, 1000, (3000, 2)) / 32768
    with _source(fmt) as src:
        locator = f"udp://127.0.0.1:{src.port}"
        with open_sink(locator, sample_rate=1000, channels=2, fmt=fmt) as sink:
            for start in range(0, 3000, 700):
                sink.write(x[start : start + 700])
        got = np.concatenate(list(src.blocks(256)))
    np.testing.assert_array_equal(got, x)
    assert src.stats() == {"lost_frames": 0, "reordered": 0, "malformed": 0}


def _datagram(index, values):
    return HEADER.pack(index) + np.asarray(values, "<i2").repeat(2).tobytes()


def test_lost_and_reordered_datagrams_are_counted_not_glued():
    with _source() as src:
        tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        target = ("127.0.0.1", src.port)
        for index in (0, 20, 10, 30):  # 10..19 comes late: a gap, then a stale datagram
            tx.sendto(_datagram(index, np.full(10, index + 1)), target)
        tx.sendto(b"\x00" * 5, target)  # not even a header
        tx.sendto(HEADER.pack(40), target)  # end of stream
        tx.close()
        got = np.concatenate(list(src.blocks(7)))[:, 0] * 32768
    expected = np.repeat([1, 0, 21, 31], 10)  # the gap is silence, in its place
    np.testing.assert_array_equal(got, expected)
    assert src.stats() == {"lost_frames": 10, "reordered": 1, "malformed": 1}


def test_timeout_ends_the_stream():
    with UdpSource("udp://127.0.0.1:0", "s16le", 1000, 1, timeout_s=0.05) as src:
        assert len(src.read(10)) == 0


@pytest.mark.parametrize("locator", ["udp://nohostport", "udp://:12", "udp://h:notaport"])
def test_bad_udp_locators(locator):
    with pytest.raises(UsageError, match="expected udp://HOST:PORT"):
        open_source(locator, fmt="s16le", sample_rate=10, channels=1)


def test_udp_needs_a_format():
    with pytest.raises(UsageError, match=r"udp://127\.0\.0\.1:0: raw PCM needs --format"):
        open_source("udp://127.0.0.1:0", sample_rate=10, channels=1)
