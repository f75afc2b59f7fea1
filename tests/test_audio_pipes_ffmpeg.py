"""Audio files through pipes with real ffmpeg (and flac) on the other end, exact to the sample.

ffmpeg writes a WAV to a pipe with both sizes 0xFFFFFFFF, WAVE_FORMAT_EXTENSIBLE for more
than two channels or more than 16 bits, and a LIST chunk before the data; it reads our
unknown-length WAV (sizes 0x7ffff000, as sox writes it) to the stream's end, and says "Packet
corrupt" about its last short packet (it says the same of sox's and of its own pipe WAV; no
sample is lost, which the tests check)."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import soundfile as sf
from pipe_tools import TAPS_8THS, filtered, oracle16, shell

FFMPEG = "ffmpeg -nostdin -hide_banner -loglevel error"
needs_ffmpeg = pytest.mark.skipif(
    shutil.which("ffmpeg") is None, reason="ffmpeg is not installed (make deps installs it)"
)
needs_flac = pytest.mark.skipif(
    shutil.which("flac") is None, reason="flac is not installed (make deps installs it)"
)
RAW = "--force-raw-format --endian=little --sign=signed"
FLAC_OF_RAW = f"cat in.raw | flac -s -c {RAW} --channels=2 --bps=16 --sample-rate=48000 -"


@pytest.fixture
def song(tmp_path, rng):
    """6 s of 16-bit stereo at 48 kHz as in.flac and in.raw (1.15 MB as 16-bit WAV: longer than
    the pipe reader keeps of a stream's start), taps.txt, and the samples as integers."""
    x = rng.integers(-20000, 20000, (288000, 2)).astype(np.int16)
    sf.write(tmp_path / "in.flac", x, 48000, subtype="PCM_16")
    (tmp_path / "in.raw").write_bytes(x.astype("<i2").tobytes())
    np.savetxt(tmp_path / "taps.txt", TAPS_8THS / 8)
    return x


@needs_ffmpeg
@pytest.mark.parametrize(
    ("type_", "block"), [("--type wav", "1024"), ("", "4099"), ("--type wav", "7")]
)
def test_ffmpeg_wav_in_wav_out_exact(tmp_path, song, type_, block):
    """ffmpeg -i in.flac -f wav - | streamconv filter -i - ... -o - | ffmpeg -f wav -i - out.flac,
    with --type and without (the header says it)."""
    run = shell(
        f"{FFMPEG} -i in.flac -f wav - | streamconv filter -i - {type_} --fir taps.txt "
        f"--method direct --block {block} -o - | {FFMPEG} -f wav -i - out.flac",
        tmp_path,
    )
    assert run.returncode == 0, run.stderr.decode()
    assert run.stderr == b""
    y = sf.read(tmp_path / "out.flac", dtype="int16")[0]
    assert sf.info(tmp_path / "out.flac").subtype == "PCM_16"
    np.testing.assert_array_equal(y, oracle16(song))


# ffmpeg's codec -> the sample type we read, keep on the way out, and ffmpeg copies to out.wav.
CODECS = {
    "pcm_s16le": "PCM_16",
    "pcm_s24le": "PCM_24",
    "pcm_s32le": "PCM_32",
    "pcm_f32le": "FLOAT",
    "pcm_f64le": "DOUBLE",
    "pcm_u8": "FLOAT",  # 8-bit unsigned does not go out on a pipe: float does, exactly
}


@needs_ffmpeg
@pytest.mark.parametrize("codec", CODECS)
def test_ffmpeg_sample_types_both_ways_exact(tmp_path, song, codec):
    """What ffmpeg writes for each PCM codec (WAVE_FORMAT_EXTENSIBLE, 0xFFFFFFFF sizes) is read
    exactly, and ffmpeg reads back ours (float as WAVE_FORMAT_IEEE_FLOAT) exactly: the output
    equals the filter of what ffmpeg fed in (kept with tee), quantized to the output's type."""
    run = shell(
        f"{FFMPEG} -i in.flac -f wav -c:a {codec} - | tee fed.wav | streamconv filter -i - "
        f"--fir taps.txt --method direct -o - | {FFMPEG} -f wav -i - -c:a copy out.wav",
        tmp_path,
    )
    assert run.returncode == 0, run.stderr.decode()
    fed = sf.read(tmp_path / "fed.wav")[0]
    if codec != "pcm_u8":  # ffmpeg scaled the 16-bit samples exactly
        np.testing.assert_array_equal(fed * 32768, song)
        ints = song
    else:
        ints = np.rint(fed * 128).astype(np.int64)  # the 8-bit grid ffmpeg rounded to
    assert sf.info(tmp_path / "out.wav").subtype == CODECS[codec]
    y = sf.read(tmp_path / "out.wav")[0]
    scale = 128 if codec == "pcm_u8" else 32768
    expected = filtered(ints) / 8 / scale  # exact in every type but 16-bit
    if CODECS[codec] == "PCM_16":
        expected = oracle16(song) / 32768
    assert len(y) == len(song)
    np.testing.assert_array_equal(y, expected)


@needs_ffmpeg
def test_ffmpeg_flac_on_pipes_exact(tmp_path, song):
    """ffmpeg's FLAC on a pipe (it cannot go back to write the length: "unknown") in by its
    header, FLAC out (the input's type) of unknown length, decoded by ffmpeg from the pipe."""
    run = shell(
        f"{FFMPEG} -i in.flac -f flac - | streamconv filter -i - --fir taps.txt --method direct "
        f"-o - | {FFMPEG} -f flac -i - out.wav",
        tmp_path,
    )
    assert run.returncode == 0, run.stderr.decode()
    np.testing.assert_array_equal(sf.read(tmp_path / "out.wav", dtype="int16")[0], oracle16(song))


@needs_flac
def test_flac_tool_on_pipes_exact(tmp_path, song):
    """The reference encoder and decoder on both ends: `flac -` of a raw stream (length
    unknown) in, our FLAC out decoded by `flac -d` from the pipe."""
    run = shell(
        f"{FLAC_OF_RAW} | streamconv filter -i - --fir taps.txt --method direct -o - | "
        f"flac -s -d -c {RAW} - > out.raw",
        tmp_path,
    )
    assert run.returncode == 0, run.stderr.decode()
    y = np.frombuffer((tmp_path / "out.raw").read_bytes(), "<i2").reshape(-1, 2)
    np.testing.assert_array_equal(y, oracle16(song))


@needs_flac
def test_flac_decoder_wav_on_a_pipe_exact(tmp_path, song):
    """`flac -d -c` writes a WAV to a pipe saying 0 bytes of samples (RIFF size 0 too): it is
    read to the stream's end (sox reads it as empty; ffmpeg to its end, as here)."""
    run = shell(
        f"{FLAC_OF_RAW} | flac -d -c - | streamconv filter -i - --fir taps.txt --method direct "
        f"-o - | {FFMPEG} -f wav -i - out.flac",
        tmp_path,
    )
    assert run.returncode == 0, run.stderr.decode()
    assert b"data chunk size of 0" in run.stderr  # flac's own warning: the case at hand
    np.testing.assert_array_equal(sf.read(tmp_path / "out.flac", dtype="int16")[0], oracle16(song))
