"""Audio files through pipes with real sox on both ends: WAV, FLAC, Ogg, AIFF, AU on stdin and
stdout, by ``--type`` or by the stream's header, exact to the sample."""

from __future__ import annotations

import io
import shutil
import struct
import subprocess

import numpy as np
import pytest
import soundfile as sf
from pipe_tools import STREAMCONV, TAPS_8THS, oracle16, shell

from streamconv.errors import UsageError
from streamconv.io.audiopipes import sniff
from streamconv.io.pipesinks import wav_header

SOX = shutil.which("sox")
needs_sox = pytest.mark.skipif(SOX is None, reason="sox is not installed (make deps installs it)")


@pytest.fixture
def song(tmp_path, rng):
    """in.flac: 16-bit stereo, 0.5 s at 48 kHz, and its samples as integers."""
    x = rng.integers(-20000, 20000, (24000, 2)).astype(np.int16)
    sf.write(tmp_path / "in.flac", x, 48000, subtype="PCM_16")
    np.savetxt(tmp_path / "taps.txt", TAPS_8THS / 8)
    return x


@needs_sox
@pytest.mark.parametrize("block", ["1024", "7", "4099"])
def test_readme_pipe_sox_wav_in_wav_out_exact(tmp_path, song, block):
    """The README's line: sox in.flac -t wav - | streamconv ... -o - | sox -t wav - out.flac."""
    run = shell(
        "sox in.flac -t wav - | streamconv filter -i - --type wav --fir taps.txt --method direct"
        f" --block {block} -o - | sox -t wav - out.flac",
        tmp_path,
    )
    assert run.returncode == 0, run.stderr.decode()
    assert b"sox WARN" not in run.stderr and b"sox FAIL" not in run.stderr
    y, rate = sf.read(tmp_path / "out.flac", dtype="int16")
    assert rate == 48000 and sf.info(tmp_path / "out.flac").subtype == "PCM_16"
    np.testing.assert_array_equal(y, oracle16(song))


@needs_sox
@pytest.mark.parametrize(
    ("producer", "out_type", "reader"),
    [
        ("cat in.flac", "--out-type flac", "-t flac -"),  # FLAC in (by its header), FLAC out
        ("sox in.flac -t aiff -", "--out-type au", "-t au -"),
        ("sox in.flac -t au -", "", "-t au -"),  # the input's type goes out
        ("sox -t raw -r 48000 -e signed -b 16 -c 2 in.raw -t wav -", "", "-t wav -"),
    ],
)
def test_types_found_by_header_exact(tmp_path, song, producer, out_type, reader):
    """No --type: the header says what comes; sox's unknown-length WAV (from a raw input)
    is read to its real end."""
    (tmp_path / "in.raw").write_bytes(song.astype("<i2").tobytes())
    run = shell(
        f"{producer} | streamconv filter -i - --fir taps.txt --method direct {out_type} -o - "
        f"| sox {reader} -b 16 out.wav",
        tmp_path,
    )
    assert run.returncode == 0, run.stderr.decode()
    y = sf.read(tmp_path / "out.wav", dtype="int16")[0]
    np.testing.assert_array_equal(y, oracle16(song))


@needs_sox
def test_ogg_through_pipes(tmp_path, song):
    """Ogg Vorbis is lossy: the frame count and the level come through."""
    run = shell(
        "sox in.flac -t ogg - | streamconv filter -i - --fir taps.txt -o - | sox -t ogg - o.wav",
        tmp_path,
    )
    assert run.returncode == 0, run.stderr.decode()
    y = sf.read(tmp_path / "o.wav")[0]
    assert abs(len(y) - len(song)) < 2048 and 0.2 < np.std(y) / np.std(song / 32768) < 1.0


@needs_sox
def test_float_wav_on_a_pipe_matches_the_file_job_exactly(tmp_path, rng):
    """(sox itself is not lossless on float samples: it works in 32-bit integers.)"""
    x = rng.uniform(-0.9, 0.9, (9001, 2)).astype(np.float32)
    sf.write(tmp_path / "in.wav", x, 44100, subtype="FLOAT")
    np.savetxt(tmp_path / "taps.txt", rng.normal(size=300) / 200)  # no sample reaches 1.0
    common = "--fir taps.txt --block 1024"
    run = shell(
        f"streamconv filter -i in.wav -o file.wav {common} && "
        f"cat in.wav | streamconv filter -i - {common} -o - | cat > pipe.wav",
        tmp_path,
    )
    assert run.returncode == 0, run.stderr.decode()
    a = sf.read(tmp_path / "file.wav", dtype="float32")[0]
    b = sf.read(tmp_path / "pipe.wav", dtype="float32")[0]
    assert sf.info(tmp_path / "pipe.wav").subtype == "FLOAT" and np.abs(a).max() < 0.99
    np.testing.assert_array_equal(a, b)


@needs_sox
@pytest.mark.parametrize(
    ("encoding", "subtype"), [("-e signed -b 16", "PCM_16"), ("-e floating-point -b 32", "FLOAT")]
)
def test_wav_header_on_a_pipe_is_the_one_sox_writes(tmp_path, encoding, subtype):
    """Unknown length: sox's own header for the same stream, byte for byte."""
    (tmp_path / "z.raw").write_bytes(bytes(400))
    sox = subprocess.run(
        f"cat z.raw | sox -t raw -r 48000 -e signed -b 16 -c 2 - {encoding} -t wav - | cat",
        shell=True, cwd=tmp_path, capture_output=True, check=True,
    ).stdout  # fmt: skip
    ours = wav_header(48000, 2, subtype)
    assert sox[: len(ours)] == ours


def test_sniff_table():
    assert sniff(b"RIFF\0\0\0\0WAVEfmt ") == "wav"
    assert sniff(b"RIFX\0\0\0\0WAVE") == "wav"
    assert sniff(b"RF64\xff\xff\xff\xffWAVE") == "rf64"
    assert sniff(b"fLaC\0\0\0\x22\0\0\0\0") == "flac"
    assert sniff(b"OggS\0\x02" + bytes(6)) == "ogg"
    assert sniff(b"FORM\0\0\0\0AIFF") == "aiff" and sniff(b"FORM\0\0\0\0AIFC") == "aiff"
    assert sniff(b".snd\0\0\0\x18\0\0\0\0") == "au"
    assert sniff(b"riff\x2e\x91\xcf\x11\xa5\xd6\x28\xdb") == "w64"
    assert sniff(b"caff\0\x01\0\0\0\0\0\0") == "caf"
    assert sniff(b"RIFF\0\0\0\0AVI ") is None  # not audio
    assert sniff(np.arange(6, dtype="<i2").tobytes()) is None  # raw PCM
    assert sniff(b"") is None


def test_raw_pcm_on_stdin_still_raw(tmp_path, rng):
    """A raw stream that starts with no known header is raw PCM, as before (bytes not lost)."""
    x = rng.uniform(-0.5, 0.5, (1001, 1)).astype("<f4")
    run = subprocess.run(
        [*STREAMCONV, "filter", "-i", "-", "-o", "-", "--fir", str(_taps(tmp_path, [1.0])),
         "--format", "f32le", "--rate", "8000", "--channels", "1"],
        input=x.tobytes(), capture_output=True,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    np.testing.assert_array_equal(np.frombuffer(run.stdout, "<f4"), x[:, 0])


def _taps(tmp_path, taps):
    path = tmp_path / "t.txt"
    np.savetxt(path, taps)
    return path


@pytest.mark.parametrize(
    ("stdin", "args", "message"),
    [
        (b"fLaC" + bytes(60), ["--type", "wav"], "-: cannot read a wav stream"),
        (b"", ["--type", "wav"], "-: cannot read a wav stream: the stream is empty"),
        (None, ["--type", "mp9"], "--type: unknown type 'mp9'"),
        (None, ["--out-type", "aiff"], "-: an aiff file cannot be written to a pipe"),
    ],
)
def test_pipe_type_errors_are_one_line(tmp_path, stdin, args, message):
    if stdin is None:
        sf.write(tmp_path / "in.wav", np.zeros((10, 1)), 8000)
        stdin = (tmp_path / "in.wav").read_bytes()
    run = subprocess.run(
        [*STREAMCONV, "filter", "-i", "-", "-o", "-", "--fir", str(_taps(tmp_path, [1.0])),
         *args], input=stdin, capture_output=True,
    )  # fmt: skip
    err = run.stderr.decode()
    assert run.returncode == 2 and err.startswith("error: ") and message in err, err
    assert run.stdout == b""
    # A type the command line asks for and cannot have is its mistake: a hint to --help; a
    # stream that is not what --type says is one line.
    hint = "hint: streamconv filter --help shows the options and examples"
    assert err.splitlines()[1:] == ([hint] if "cannot read" not in message else []), err


@needs_sox
def test_a_type_that_cannot_stream_goes_to_stdout_as_wav(tmp_path, song):
    """An AIFF input and `-o -` without --out-type: WAV comes out (AIFF needs its length in
    the header), with the input's 16-bit samples."""
    run = shell(
        "sox in.flac in.aiff && streamconv filter -i in.aiff --fir taps.txt --method direct "
        "-o - | sox -t wav - out.wav",
        tmp_path,
    )
    assert run.returncode == 0, run.stderr.decode()
    assert sf.info(tmp_path / "out.wav").subtype == "PCM_16"
    np.testing.assert_array_equal(sf.read(tmp_path / "out.wav", dtype="int16")[0], oracle16(song))


@pytest.fixture
def long_song(tmp_path, rng):
    """8 s of 16-bit stereo at 48 kHz (1.5 MB as WAV: more than the pipe reader keeps of a
    stream's start to seek back into), as in.flac and in.raw, and its samples."""
    x = rng.integers(-20000, 20000, (384000, 2)).astype(np.int16)
    sf.write(tmp_path / "in.flac", x, 48000, subtype="PCM_16")
    (tmp_path / "in.raw").write_bytes(x.astype("<i2").tobytes())
    np.savetxt(tmp_path / "taps.txt", TAPS_8THS / 8)
    np.savetxt(tmp_path / "one.txt", [1.0])
    return x


RAW_IN = "cat in.raw | sox -t raw -r 48000 -e signed -b 16 -c 2 -"


@needs_sox
@pytest.mark.parametrize(
    "producer",
    [
        "sox in.flac -t wav -",  # the length in the header
        f"{RAW_IN} -t wav -",  # length unknown: 0x7ffff000
        f"{RAW_IN} -t flac -",  # length unknown: 0 in STREAMINFO
        "streamconv filter -i in.flac --fir one.txt --out-type flac -o -",  # ours, the same
    ],
)
def test_long_streams_on_pipes_exact(tmp_path, long_song, producer):
    """Longer than the reader keeps of a stream's start: libsndfile's WAV reader skips the data
    chunk to look past it (the skip is only noted while it parses the header), and a FLAC stream
    of unknown length is read to its end (once the xfail of test_io_contract)."""
    run = shell(
        f"{producer} | streamconv filter -i - --fir taps.txt --method direct --out-type wav "
        "-o - | sox -t wav - out.flac",
        tmp_path,
    )
    assert run.returncode == 0, run.stderr.decode()
    y = sf.read(tmp_path / "out.flac", dtype="int16")[0]
    np.testing.assert_array_equal(y, oracle16(long_song))


def test_a_live_wav_stream_is_not_read_to_its_end_before_the_first_block(tmp_path, long_song):
    """A WAV stream whose writer keeps the pipe open (a recorder): the header is parsed and
    the samples come out without waiting for the end of the stream."""
    wav = tmp_path / "in.wav"
    sf.write(wav, long_song, 48000, subtype="PCM_16")
    proc = subprocess.Popen(
        [*STREAMCONV, "filter", "-i", "-", "--fir", str(tmp_path / "one.txt"), "--duration", "1",
         "-o", str(tmp_path / "out.wav")],
        stdin=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        try:
            proc.stdin.write(wav.read_bytes())
            proc.stdin.flush()  # and not closed
        except BrokenPipeError:
            pass  # it took its second and stopped reading, as it should
        assert proc.wait(timeout=15) == 0, proc.stderr.read().decode()
    finally:
        proc.kill()
        proc.stdin.close()
        proc.stderr.close()
    y = sf.read(tmp_path / "out.wav", dtype="int16")[0]
    np.testing.assert_array_equal(y, long_song[:48000])


class _Dribble:
    """An unbuffered pipe as the runner reads stdin: each read returns at most what a writer
    put in at a time (here 1 to 1000 bytes, often cutting a sample in two)."""

    def __init__(self, data: bytes, seed: int):
        self._data, self._pos = data, 0
        self._sizes = np.random.default_rng(seed).integers(1, 1000, 1 << 16)

    def read(self, n: int) -> bytes:
        size = min(n, int(self._sizes[self._pos % len(self._sizes)]))
        out = self._data[self._pos : self._pos + size]
        self._pos += len(out)
        return out


@pytest.mark.parametrize(("kind", "subtype"), [("WAV", "PCM_24"), ("WAV", "PCM_16"),
                                               ("FLAC", "PCM_24"), ("WAV", "DOUBLE")])  # fmt: skip
def test_short_reads_from_the_pipe_lose_nothing(tmp_path, rng, kind, subtype):
    """libsndfile takes a short read as whole samples: the reader gives it whole reads."""
    from streamconv.io.locators import open_source

    x = rng.integers(-(2**23), 2**23, (300000, 2)) / 2**23  # past the first MiB, kept
    path = tmp_path / f"in.{kind.lower()}"
    sf.write(path, x, 48000, format=kind, subtype=subtype)
    expected = sf.read(path)[0]
    src = open_source("-", stdin=_Dribble(path.read_bytes(), 5), file_type=None)
    blocks = []
    while len(block := src.read(4096)):
        blocks.append(block)
    src.close()
    np.testing.assert_array_equal(np.concatenate(blocks), expected)


class _LongZeros:
    """A WAV stream of `header` and `size` bytes of silence ending in `tail`, made as read."""

    def __init__(self, header: bytes, size: int, tail: bytes):
        self._head, self._left, self._tail = header, size - len(tail), tail
        self._zeros = bytes(1 << 22)

    def read(self, n: int) -> bytes:
        if self._head:
            out, self._head = self._head[:n], self._head[n:]
            return out
        if self._left:
            out = self._zeros[: min(n, self._left)]
            self._left -= len(out)
            return out
        out, self._tail = self._tail[:n], self._tail[n:]
        return out


def test_a_wav_stream_of_unknown_length_is_read_past_2_gib():
    """sox's header says 0x7ffff000 bytes: libsndfile stopped there (1 h 33 min of 48 kHz stereo
    float); the reader hands it an RF64 header instead, and every frame comes through."""
    from streamconv.io.locators import open_source

    tail = np.arange(1, 1001, dtype="<i2").tobytes()
    size = 0x7FFFF000 + (1 << 20)  # 1 MiB past where libsndfile stopped
    stream = _LongZeros(wav_header(48000, 1, "PCM_16"), size, tail)
    src = open_source("-", stdin=stream, file_type=None, dtype=np.float32)
    frames, last = 0, None
    while len(block := src.read(1 << 22)):
        frames, last = frames + len(block), block
    src.close()
    assert frames == size // 2
    np.testing.assert_array_equal(last[-1000:, 0] * 32768, np.arange(1, 1001))


def test_an_empty_wav_on_a_pipe_is_empty(tmp_path):
    """A data size of 0 in a RIFF that gives its size is a real 0, not flac's "unknown"."""
    sf.write(tmp_path / "e.wav", np.zeros((0, 1)), 8000, subtype="PCM_16")
    np.savetxt(tmp_path / "taps.txt", [1.0])
    run = shell("cat e.wav | streamconv filter -i - --fir taps.txt -o out.wav", tmp_path)
    assert run.returncode == 0, run.stderr.decode()
    assert sf.info(tmp_path / "out.wav").frames == 0


@pytest.mark.parametrize("kind", ["wav", "flac", "ogg", "au"])
def test_a_reader_that_closes_the_pipe_gets_one_error_line(tmp_path, rng, kind):
    """`streamconv filter ... -o - | head -c 4`: exit 1 and one line saying the reader went,
    for libsndfile's types too, whose writes go through a cffi callback (a closed pipe there
    printed "Exception ignored from cffi callback" with a traceback, then libsndfile's "problem
    with initialization of the flac decoder" or soundfile's AssertionError)."""
    sf.write(tmp_path / "in.wav", 0.1 * rng.standard_normal((96000, 2)), 48000, "PCM_16")
    np.savetxt(tmp_path / "h.txt", [1.0])
    proc = subprocess.Popen(
        [*STREAMCONV, "filter", "-i", "in.wav", "--fir", "h.txt", "-o", "-", "--out-type", kind],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    assert len(proc.stdout.read(4)) == 4
    proc.stdout.close()
    err = proc.stderr.read().decode()
    assert proc.wait(60) == 1, err
    assert err == "error: -: the reading end of the pipe was closed\n"


@pytest.mark.parametrize("data_size", ["as written", 0x7FFFF000])
def test_a_chunk_before_the_data_too_big_to_keep_is_passed_over(data_size):
    """2 MiB of ``junk`` before the data (a padding or picture chunk), more than the pipe reader
    keeps of a stream's start: libsndfile seeked past it, where the reader opening a stream
    answers "end of file" ("No 'data' chunk marker"). The chunk is dropped instead."""
    from streamconv.io.locators import open_source

    x = (np.arange(2000) % 1000).astype("<i2")
    fmt = struct.pack("<HHIIHH", 1, 2, 8000, 8000 * 4, 4, 16)
    size = x.nbytes if data_size == "as written" else data_size
    body = (b"WAVEfmt " + struct.pack("<I", 16) + fmt + b"junk" + struct.pack("<I", 2 << 20)
            + bytes(2 << 20) + b"data" + struct.pack("<I", size) + x.tobytes())  # fmt: skip
    stream = io.BytesIO(b"RIFF" + struct.pack("<I", len(body)) + body)
    src = open_source("-", stdin=stream, file_type=None, dtype=np.float64)
    y = np.concatenate([src.read(777) for _ in range(3)])
    src.close()
    np.testing.assert_array_equal(y * 32768, x.reshape(-1, 2).astype(float))


@pytest.mark.parametrize(
    ("riff_tail", "rf64"),
    [(0, True), (8 + 26, False), (0xFFFFFFFF, True)],  # sox's, a real file's, ffmpeg's sizes
)
def test_a_data_size_above_2_gib_is_unknown_only_when_the_riff_ends_with_the_data(riff_tail, rf64):
    """sox says 0x7ffff000 bytes and a RIFF size that ends with them, ffmpeg 0xffffffff for
    both: read to the stream's end (an RF64 header). A real 2-4 GiB recording with a LIST chunk
    after its data (a RIFF size past the data) is read as its header says, or the chunk's bytes
    would come out as samples at its end."""
    from streamconv.io.audiopipes import _unbounded_wav

    size = 0x80000000
    fmt = b"fmt " + struct.pack("<IHHIIHH", 16, 1, 2, 48000, 48000 * 4, 4, 16)
    riff = 0xFFFFFFFF if riff_tail == 0xFFFFFFFF else 4 + len(fmt) + 8 + size + riff_tail
    header = b"RIFF" + struct.pack("<I", riff) + b"WAVE" + fmt + b"data" + struct.pack("<I", size)
    front = _unbounded_wav(header[:12], io.BytesIO(header[12:] + bytes(64)))
    assert front.startswith(b"RF64") if rf64 else front == header


@pytest.mark.parametrize("cut", [12, 16, 20, 30, 36, 40, 44])
def test_a_wav_stream_ending_inside_its_header(cut):
    """The stream ends inside sox's header (a writer killed at its start): one UsageError naming
    the stream and libsndfile's reason while a chunk is missing, no samples once only the
    data's size is cut or nothing follows the header; never a hang or a traceback."""
    from streamconv.io.locators import open_source

    header = wav_header(8000, 2, "PCM_16")
    assert len(header) == 44
    stream = io.BytesIO(header[:cut])
    if cut < 40:
        with pytest.raises(UsageError, match=r"^-: cannot read a wav stream: "):
            open_source("-", stdin=stream, file_type=None)
        return
    src = open_source("-", stdin=stream, file_type=None)
    assert len(src.read(100)) == 0
    src.close()
