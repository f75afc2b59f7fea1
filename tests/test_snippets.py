"""Detection snippets: sample-exact WAV files around each detection, for any chunking, with a
disk budget; and the service saving and serving them (``GET /snippets/NAME``)."""

import http.client
import io
import json
import os
import subprocess

import numpy as np
import pytest
import soundfile as sf
from service_proc import CLI, Service, get, poll, request

from streamconv.snippets import SnippetRecorder

RATE = 1000


def _chunks(n, sizes, rng):
    i = 0
    k = 0
    while i < n:
        size = sizes[k % len(sizes)] if sizes != "random" else int(rng.integers(1, 300))
        yield i, min(n, i + size)
        i += size
        k += 1


@pytest.mark.parametrize(
    ("delay", "shift"), [(3.0, 3), (2.5, 3)]
)  # 2.5: an even-length filter's, rounded up as the service's timeline rounds it
@pytest.mark.parametrize("sizes", [[1], [7], [64], [997], [1, 13, 256, 2], "random"])
def test_snippets_are_the_stream_around_each_detection_for_any_chunking(
    tmp_path, rng, sizes, delay, shift
):
    n = 12000
    x = rng.normal(size=(n, 2)).astype(np.float32)
    y = (x[:, :1] * 0.5).astype(np.float32)  # a "filtered" stream with one channel
    rec = SnippetRecorder(
        str(tmp_path / "snips"), RATE, 2, 1, pre_s=0.5, post_s=0.25, filtered=True,
        history_s=3.0,
    ).start()  # fmt: skip
    # (sample, decided at frame): at once, late (after sample + post), near the start and end
    plan = [(100, 200), (3000, 3100), (5000, 7900), (8000, 8000), (11900, n)]
    # The records are on the input's timeline; the filtered stream is `shift` frames late.
    names = {}
    todo = list(plan)

    def record(s):
        return {"template": "t/../x", "sample": s, "channel": 1, "timeline": "input",
                "chain_delay": float(delay)}  # fmt: skip

    for a, b in _chunks(n, sizes, rng):
        rec.add(x[a:b], y[a:b])
        while todo and todo[0][1] <= b:
            s, _ = todo.pop(0)
            names[s] = rec.detection(record(s))
    for s, _ in todo:
        names[s] = rec.detection(record(s))
    rec.close()
    assert rec.written == 2 * len(plan) and rec.skipped == 0
    for s, _ in plan:
        fields = names[s]
        assert fields["snippet"].endswith(f"-t_.._x-{s}-c1.wav")
        assert fields["snippet_filtered"] == fields["snippet"][:-4] + "-filtered.wav"
        got, rate = sf.read(tmp_path / "snips" / fields["snippet"], dtype="float32")
        assert rate == RATE and sf.info(tmp_path / "snips" / fields["snippet"]).subtype == "FLOAT"
        np.testing.assert_array_equal(got, x[max(0, s - 500) : min(n, s + 250)])
        got, _ = sf.read(tmp_path / "snips" / fields["snippet_filtered"], dtype="float32")
        f = s + shift
        np.testing.assert_array_equal(got.reshape(-1, 1), y[max(0, f - 500) : min(n, f + 250)])
    assert not [f for f in os.listdir(tmp_path / "snips") if f.endswith(".part")]


def test_a_detection_decided_later_than_the_ring_keeps_what_is_left(tmp_path, rng):
    x = rng.normal(size=(5000, 1)).astype(np.float32)
    rec = SnippetRecorder(str(tmp_path), RATE, 1, 1, pre_s=0.5, post_s=0.5, history_s=1.0)
    rec.start()
    rec.add(x[:3000])  # the ring holds 2001 frames: 999..2999
    name = rec.detection({"template": "t", "sample": 1200, "channel": None})["snippet"]
    rec.close()
    got, _ = sf.read(tmp_path / name, dtype="float32")
    np.testing.assert_array_equal(got.reshape(-1, 1), x[999:1700])


def test_disk_budget_removes_the_oldest_first_and_stale_parts_go(tmp_path, rng):
    (tmp_path / "keep.txt").write_text("not a snippet")
    (tmp_path / ".old.wav.abc123.part").write_bytes(b"half")
    x = rng.normal(size=(20000, 1)).astype(np.float32)
    # each snippet: 1000 frames * 4 bytes + a 58-byte header; a budget of 2.5 snippets
    rec = SnippetRecorder(str(tmp_path), RATE, 1, 1, pre_s=0.5, post_s=0.5, max_mb=0.0101)
    rec.start()
    assert not (tmp_path / ".old.wav.abc123.part").exists()
    names = []
    for k in range(6):
        rec.add(x[k * 3000 : (k + 1) * 3000])
        names.append(rec.detection({"template": "t", "sample": k * 3000 + 1000})["snippet"])
    rec.close()
    left = sorted(f for f in os.listdir(tmp_path) if f.endswith(".wav"))
    assert left == sorted(names[-2:])
    assert rec.removed == 4 and (tmp_path / "keep.txt").exists()
    # A new recorder counts the files already there against its budget.
    rec = SnippetRecorder(str(tmp_path), RATE, 1, 1, pre_s=0.5, post_s=0.5, max_mb=0.0101)
    rec.start()
    rec._stamp = "later"
    rec.add(x[:3000])
    new = rec.detection({"template": "t", "sample": 1000})["snippet"]
    rec.close()
    left = sorted(f for f in os.listdir(tmp_path) if f.endswith(".wav"))
    assert left == sorted([names[-1], new])


def _raw_request(url, path):
    conn = http.client.HTTPConnection(url.removeprefix("http://"), timeout=5)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def test_the_service_saves_serves_and_names_snippets(tmp_path, rng):
    rate = 8000
    bell = np.sin(2 * np.pi * 500 * np.arange(300) / rate) * np.hanning(300)
    x = 0.05 * rng.normal(size=(24000, 1))
    for start in (2000, 9000, 17777):
        x[start : start + 300, 0] += bell
    x = x.astype("<f4")
    h = np.array([0.5, 0.25])
    np.save(tmp_path / "bell.npy", np.convolve(bell, h)[:300])
    cfg = tmp_path / "run.toml"
    cfg.write_text(
        f'[source]\nuri = "-"\nformat = "f32le"\nrate = {rate}\nchannels = 1\n'
        '[sink]\nuri = "out.raw"\nformat = "f32le"\n[processing]\nblock_size = 64\n'
        f'[[filters]]\ntype = "taps"\nvalues = {h.tolist()}\n'
        '[[templates]]\nname = "bell"\npath = "bell.npy"\nthreshold = 0.8\n'
        '[detections]\npath = "det.jsonl"\n'
        'snippets = { dir = "snips", pre_s = 0.25, post_s = 0.5, filtered = true }\n'
        '[control]\nlisten = "127.0.0.1:0"\n'
    )
    svc = Service(cfg, stdin=subprocess.PIPE)
    try:
        url = svc.base_url()
        svc.proc.stdin.write(x.tobytes())
        svc.proc.stdin.flush()
        poll(url, lambda s: s["detections"]["bell"] == 3, service=svc)
        dets = get(url, "/detections")
        assert [d["sample"] for d in dets] == [2000, 9000, 17777]
        for d in dets:
            poll(url, lambda s, d=d: os.path.exists(tmp_path / "snips" / d["snippet"]))
            status, body = _raw_request(url, f"/snippets/{d['snippet']}")
            assert status == 200 and body == (tmp_path / "snips" / d["snippet"]).read_bytes()
            got, got_rate = sf.read(io.BytesIO(body), dtype="float32")
            assert got_rate == rate
            s = d["sample"]
            np.testing.assert_array_equal(got, x[s - 2000 : s + 4000, 0])
        bad_names = ("..%2Frun.toml", "../run.toml", ".x.wav", "%2e%2e%2fdet.jsonl", "run.toml",
                     "nope.wav", "%2Ftmp%2Fx.wav")  # fmt: skip
        for bad in (f"/snippets/{name}" for name in bad_names):
            assert request(url, bad)[0] == 404, bad
        svc.proc.stdin.close()
        assert svc.finish() == 0, svc.log
    finally:
        svc.kill()
    logged = [json.loads(line) for line in (tmp_path / "det.jsonl").read_text().splitlines()]
    assert logged == dets
    y = np.fromfile(tmp_path / "out.raw", dtype="<f4")
    for d in logged:
        s = d["sample"]
        got, _ = sf.read(tmp_path / "snips" / d["snippet"], dtype="float32")
        np.testing.assert_array_equal(got, x[s - 2000 : s + 4000, 0])
        got, _ = sf.read(tmp_path / "snips" / d["snippet_filtered"], dtype="float32")
        np.testing.assert_array_equal(got, y[s - 2000 : s + 4000])


@pytest.mark.parametrize("block", [1000, 65536])
def test_match_snippets_are_the_file_around_each_detection(tmp_path, rng, block):
    rate = 8000
    bell = np.sin(2 * np.pi * 500 * np.arange(300) / rate) * np.hanning(300)
    x = (0.05 * rng.normal(size=(30000, 2))).astype(np.float32)
    starts = (100, 9000, 17777, 29800)  # the first and last are cut by the file's ends
    for start in starts:
        x[start : start + 300, 1] += bell[: len(x) - start].astype(np.float32)
    sf.write(tmp_path / "rec.wav", x, rate, subtype="FLOAT")
    np.save(tmp_path / "bell.npy", bell[:200])
    out = subprocess.run(
        [*CLI, "match", str(tmp_path / "rec.wav"), "-t", f"bell={tmp_path / 'bell.npy'}",
         "--threshold", "0.9", "-q", "--snippets", str(tmp_path / "snips"),
         "--snippet-pre", "0.5", "--snippet-post", "0.25", "--block", str(block)],
        capture_output=True, text=True,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    records = [json.loads(line) for line in out.stdout.splitlines()]
    assert [r["sample"] for r in records] == list(starts)
    for r in records:
        s = r["sample"]
        assert r["snippet"] == f"rec-bell-{s}-c1.wav"
        got, got_rate = sf.read(tmp_path / "snips" / r["snippet"], dtype="float32")
        assert got_rate == rate
        np.testing.assert_array_equal(got, x[max(0, s - 4000) : s + 2000])
    bad = subprocess.run(
        [*CLI, "match", str(tmp_path / "rec.wav"), "-t", f"bell={tmp_path / 'bell.npy'}",
         "--snippets", str(tmp_path / "s2"), "--jobs", "2"], capture_output=True, text=True,
    )  # fmt: skip
    assert bad.returncode == 2 and bad.stderr.startswith("error: --snippets works on one")
