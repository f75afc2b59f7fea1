"""One way through: ``streamconv filter``, ``streamconv run`` (real processes) and the Python API
(`streamconv.runner.Runner`) give the same bytes for the same input and config; the service's
detection log is ``streamconv match``'s output line for line; both commands report clipping.
"""

import io
import json
import signal
import subprocess
import threading
import time

import numpy as np
import pytest
import soundfile as sf
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from service_proc import CLI

from streamconv.config import load_config
from streamconv.runner import Runner

RATE = 16000
CHAIN = (
    '[[filters]]\ntype = "lowpass"\ncutoff_hz = 3000\ntaps = 101\n\n'
    '[[filters]]\ntype = "gain"\ngain_db = -3\n\n'
    '[[filters]]\ntype = "delay"\nsamples = 7\n'
)


def _signal(rng, frames=3 * RATE, channels=2):
    return rng.uniform(-0.6, 0.6, (frames, channels))


def _config(path, source, sink, extra=""):
    path.write_text(f"[source]\n{source}\n[sink]\n{sink}\n{extra}\n{CHAIN}")
    return path


def _cli(*args, **kwargs):
    return subprocess.run([*CLI, *args], capture_output=True, timeout=120, **kwargs)


@pytest.mark.parametrize("block", [None, 97])
@pytest.mark.parametrize(("ext", "subtype"), [("wav", "FLOAT"), ("flac", "PCM_24")])
def test_filter_run_and_api_write_the_same_file(tmp_path, rng, ext, subtype, block):
    sf.write(tmp_path / f"in.{ext}", _signal(rng), RATE, subtype=subtype)
    processing = f"[processing]\nblock_size = {block}\n" if block else ""
    source = f'uri = "in.{ext}"'

    run_cfg = _config(tmp_path / "run.toml", source, f'uri = "run.{ext}"', processing)
    proc = _cli("run", "-c", str(run_cfg))
    assert proc.returncode == 0, proc.stderr
    api_cfg = _config(tmp_path / "api.toml", source, f'uri = "api.{ext}"', processing)
    result = Runner.from_config(load_config(str(api_cfg))).run()
    assert result.frames_in == result.frames_out == 3 * RATE
    proc = _cli("filter", "-c", str(run_cfg), "-i", str(tmp_path / f"in.{ext}"),
                "-o", str(tmp_path / f"filter.{ext}"))  # fmt: skip
    assert proc.returncode == 0, proc.stderr

    data = (tmp_path / f"run.{ext}").read_bytes()
    assert (tmp_path / f"api.{ext}").read_bytes() == data
    assert (tmp_path / f"filter.{ext}").read_bytes() == data
    assert sf.info(tmp_path / f"run.{ext}").subtype == subtype  # the source's format kept
    # And it is the filter chain, to the precision of the format.
    x = sf.read(tmp_path / f"in.{ext}")[0]
    taps = load_config(str(run_cfg)).compact_taps()
    expected = np.stack([np.convolve(x[:, c], taps)[: len(x)] for c in range(2)], axis=1)
    y = sf.read(tmp_path / f"run.{ext}")[0]
    np.testing.assert_allclose(y, expected, atol=1e-5 if subtype == "FLOAT" else 2e-7)


def test_raw_f32_pipe_gives_the_same_bytes_three_ways(tmp_path, rng):
    x = _signal(rng).astype("<f4")
    raw = 'uri = "-"\nformat = "f32le"'
    cfg = _config(tmp_path / "pipe.toml", f"{raw}\nrate = {RATE}\nchannels = 2", raw)
    run = _cli("run", "-c", str(cfg), input=x.tobytes())
    assert run.returncode == 0, run.stderr
    filt = _cli("filter", "-c", str(cfg), "-i", "-", "-o", "-", input=x.tobytes())
    assert filt.returncode == 0, filt.stderr
    out = io.BytesIO()
    loaded = load_config(str(cfg))
    Runner.from_config(loaded, stdin=io.BytesIO(x.tobytes()), stdout=out).run()
    assert len(run.stdout) == x.nbytes
    assert filt.stdout == run.stdout
    assert out.getvalue() == run.stdout


def test_a_pipe_written_in_odd_pieces_gives_the_same_bytes(tmp_path, rng):
    """A pipe is read in whatever pieces arrive (one hand-over per read, not per block), yet the
    filter sees the same whole blocks: the same bytes as when everything was there at once."""
    x = _signal(rng, frames=RATE).astype("<f4")
    h = rng.normal(size=300) / 10  # FFT engines: their rounding depends on the block cuts
    np.savetxt(tmp_path / "h.txt", h)
    argv = [*CLI, "filter", "-i", "-", "-o", "-", "--fir", str(tmp_path / "h.txt"), "--format",
            "f32le", "--rate", str(RATE), "--channels", "2", "--block", "97"]  # fmt: skip
    at_once = subprocess.run(argv, input=x.tobytes(), capture_output=True, timeout=60)
    assert at_once.returncode == 0, at_once.stderr
    proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    data, pos = x.tobytes(), 0
    out = []
    reader = threading.Thread(target=lambda: out.append(proc.stdout.read()))
    reader.start()
    for size in rng.integers(1, 20000, 10000):  # odd sizes, frames cut anywhere
        proc.stdin.write(data[pos : pos + size])
        proc.stdin.flush()
        pos += size
        if pos >= len(data):
            break
        if size % 7 == 0:
            time.sleep(0.002)
    proc.stdin.close()
    reader.join(60)
    assert proc.wait(60) == 0
    assert out[0] == at_once.stdout and len(out[0]) == x.nbytes


@pytest.mark.parametrize(("ext", "subtype"), [("wav", "FLOAT"), ("flac", "PCM_24")])
def test_run_with_no_filters_is_bit_identical(tmp_path, rng, ext, subtype):
    sf.write(tmp_path / f"in.{ext}", _signal(rng), RATE, subtype=subtype)
    (tmp_path / "id.toml").write_text(f'[source]\nuri = "in.{ext}"\n[sink]\nuri = "out.{ext}"\n')
    proc = _cli("run", "-c", str(tmp_path / "id.toml"))
    assert proc.returncode == 0, proc.stderr
    assert sf.info(tmp_path / f"out.{ext}").subtype == subtype
    kind = "float32" if subtype == "FLOAT" else "int32"  # the stored samples, unconverted
    a = sf.read(tmp_path / f"in.{ext}", dtype=kind)[0]
    b = sf.read(tmp_path / f"out.{ext}", dtype=kind)[0]
    assert a.shape == b.shape and a.tobytes() == b.tobytes()


def test_service_detection_log_is_match_output_line_for_line(tmp_path, rng):
    """A template and a periodicity detector: the service's log and `match` on the samples the
    sink got have the same records, fields in the same order, lines in the same order."""
    x = 0.05 * rng.normal(size=(6 * RATE, 2))
    bell = np.sin(2 * np.pi * 800 * np.arange(600) / RATE) * np.hanning(600)
    for start, ch in ((4000, 0), (30001, 1), (61234, 0), (80000, 1)):
        x[start : start + 600, ch] += bell
    x[np.arange(40000, 56000, 160), :] += 1.5  # a pulse train: 10 ms period
    sf.write(tmp_path / "in.wav", x, RATE, subtype="FLOAT")
    np.save(tmp_path / "bell.npy", bell)
    detectors = (
        '[[templates]]\nname = "bell"\npath = "bell.npy"\nthreshold = 0.6\n\n'
        '[[periodicity]]\nname = "periodicity"\nmin_period_s = 0.005\nmax_period_s = 0.02\n'
        "threshold = 0.5\n\n"
        '[detections]\npath = "det.jsonl"\n'
    )
    cfg = tmp_path / "det.toml"
    cfg.write_text(f'[source]\nuri = "in.wav"\n[sink]\nuri = "out.wav"\n{detectors}')
    proc = _cli("run", "-c", str(cfg))
    assert proc.returncode == 0, proc.stderr
    match = _cli("match", str(tmp_path / "out.wav"), "-t", f"bell={tmp_path / 'bell.npy'}",
                 "--threshold", "0.6", "--periodicity", "0.005:0.02",
                 "--periodicity-threshold", "0.5", "-q", text=True)  # fmt: skip
    assert match.returncode == 0, match.stderr
    logged = [json.loads(line) for line in (tmp_path / "det.jsonl").read_text().splitlines()]
    # The service also says which timeline its samples are on (no filters: the input's, delay
    # 0); match, reading a recording, has no chain to say anything about.
    assert all(d["timeline"] == "input" and d["chain_delay"] == 0 for d in logged)
    where = ("timeline", "chain_delay")
    logged = [{k: v for k, v in d.items() if k not in where} for d in logged]
    matched = [json.loads(line) for line in match.stdout.splitlines()]
    matched = [{k: v for k, v in d.items() if k != "file"} for d in matched]
    assert logged == matched
    assert [list(d) for d in logged] == [list(d) for d in matched]  # field order too
    kinds = {d["template"] for d in logged}
    assert kinds == {"bell", "periodicity"}
    # Both kinds interleave: the log is in stream order across detectors, not per detector.
    samples = [d["sample"] for d in logged]
    assert samples == sorted(samples)
    first_period = next(i for i, d in enumerate(logged) if d["template"] == "periodicity")
    assert any(d["template"] == "bell" for d in logged[first_period:])
    assert {d["sample"] for d in logged if d["template"] == "bell"} == {4000, 30001, 61234, 80000}


def test_both_commands_report_clipping_the_same_way(tmp_path, rng):
    x = _signal(rng, frames=RATE)
    sf.write(tmp_path / "in.wav", x, RATE, subtype="FLOAT")
    loud = '[[filters]]\ntype = "gain"\ngain_db = 12\n'
    cfg = tmp_path / "loud.toml"
    cfg.write_text(f'[source]\nuri = "in.wav"\n[sink]\nuri = "run.wav"\nsubtype = "PCM_16"\n{loud}')
    clipped = int(np.count_nonzero(np.rint(x * 10 ** (12 / 20) * 32768) >= 32768)) + int(
        np.count_nonzero(np.rint(x * 10 ** (12 / 20) * 32768) < -32768)
    )
    assert clipped > 1000
    run = _cli("run", "-c", str(cfg), text=True)
    assert run.returncode == 0, run.stderr
    filt = _cli("filter", "-c", str(cfg), "-i", str(tmp_path / "in.wav"),
                "-o", str(tmp_path / "filter.wav"), text=True)  # fmt: skip
    assert filt.returncode == 0, filt.stderr
    assert f"warning: {tmp_path / 'run.wav'}: {clipped} samples clipped" in run.stderr.splitlines()
    assert filt.stderr.splitlines() == [
        f"warning: {tmp_path / 'filter.wav'}: {clipped} samples clipped"
    ]
    assert sf.info(tmp_path / "filter.wav").subtype == "PCM_16"  # config's [sink] subtype
    assert (tmp_path / "filter.wav").read_bytes() == (tmp_path / "run.wav").read_bytes()


def test_service_status_and_metrics_count_clipped_samples(tmp_path, rng):
    from streamconv.control.metrics import StatusCollector
    from streamconv.daemon import Service

    x = np.full((1000, 1), 0.5)
    x[::2] = -0.5
    sf.write(tmp_path / "in.wav", x, RATE, subtype="FLOAT")
    cfg = tmp_path / "c.toml"
    cfg.write_text(
        '[source]\nuri = "in.wav"\n[sink]\nuri = "out.raw"\nformat = "s16le"\n'
        '[[filters]]\ntype = "gain"\ngain_db = 6.0206\n'
    )
    lines = []
    svc = Service(str(cfg), log=lines.append)
    previous = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)}
    try:
        assert svc.run() == 0
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    assert svc.status()["clipped"] == 500  # the +1.0 samples; -1.0 fits s16le
    assert "warning: " + str(tmp_path / "out.raw") + ": 500 samples clipped" in lines

    class Registry:
        def collect(self):
            return StatusCollector(svc.status).collect()

    families = {m.name: m for m in text_string_to_metric_families(
        generate_latest(Registry()).decode())}  # fmt: skip
    assert families["streamconv_clipped_samples"].samples[0].value == 500


def test_service_and_match_agree_in_the_spectrogram_domain_with_default_min_distance(tmp_path, rng):
    """Without `min_distance`, the service's template gets the matcher's default (the patch's
    frames), as `match` does: two chirps 36 hops apart, between the patch's 34 frames and the
    template's 4800 samples (38 hops), are both found by both commands."""
    t = np.arange(4800) / RATE
    chirp = np.sin(2 * np.pi * (500 * t + 3000 * t**2)) * np.hanning(4800)
    x = 0.05 * rng.normal(size=(3 * RATE, 1))
    x[8000:12800, 0] += chirp
    x[8000 + 36 * 128 : 8000 + 36 * 128 + 4800, 0] += 0.6 * chirp
    sf.write(tmp_path / "in.wav", x, RATE, subtype="FLOAT")
    np.save(tmp_path / "chirp.npy", chirp)
    cfg = tmp_path / "spec.toml"
    cfg.write_text(
        '[source]\nuri = "in.wav"\n[sink]\nuri = "null"\n'
        '[[templates]]\nname = "chirp"\npath = "chirp.npy"\nthreshold = 0.3\n'
        'domain = "spectrogram"\n[detections]\npath = "det.jsonl"\n'
    )
    proc = _cli("run", "-q", "-c", str(cfg))
    assert proc.returncode == 0, proc.stderr
    match = _cli("match", str(tmp_path / "in.wav"), "-t", str(tmp_path / "chirp.npy"),
                 "--threshold", "0.3", "--domain", "spectrogram", "-q", text=True)  # fmt: skip
    assert match.returncode == 0, match.stderr
    logged = [json.loads(line) for line in (tmp_path / "det.jsonl").read_text().splitlines()]
    matched = [json.loads(line) for line in match.stdout.splitlines()]
    assert [(d["sample"], d["score"]) for d in logged] == [
        (d["sample"], d["score"]) for d in matched
    ]
    assert len(matched) == 2
    check = _cli("check", str(cfg), text=True)
    assert "min_distance 4352," in check.stdout  # 34 frames of 128 samples, as the matcher
    # The same parameters in the config and on match's command line: the same detections.
    table = "{ frame_s = 0.016, hop_s = 0.004, window = 'hamming', low_hz = 400, tolerance = 0 }"
    domain = 'domain = "spectrogram"\n'
    cfg.write_text(cfg.read_text().replace(domain, f"{domain}spectrogram = {table}\n"))
    (tmp_path / "det.jsonl").unlink()
    proc = _cli("run", "-q", "-c", str(cfg))
    assert proc.returncode == 0, proc.stderr
    flags = ["--spectrogram=frame_s=0.016", "--spectrogram=hop_s=0.004", "--spectrogram",
             "window='hamming'", "--spectrogram", "low_hz=400", "--tolerance", "0"]  # fmt: skip
    flags += ["--threshold", "0.3", "--domain", "spectrogram", "-q"]
    match = _cli("match", str(tmp_path / "in.wav"), "-t", str(tmp_path / "chirp.npy"), *flags,
                 text=True)  # fmt: skip
    assert match.returncode == 0, match.stderr
    tuned = [json.loads(line) for line in (tmp_path / "det.jsonl").read_text().splitlines()]
    assert [(d["sample"], d["score"]) for d in tuned] == [
        (d["sample"], d["score"]) for d in map(json.loads, match.stdout.splitlines())
    ]
    assert tuned and [d["score"] for d in tuned] != [d["score"] for d in logged]
