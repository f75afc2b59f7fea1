"""`streamconv match` on a dask cluster: the single-process detections, resume, bad files."""

import json
import os

import numpy as np
import pytest
import soundfile as sf

from streamconv import archive
from streamconv.cli import build_parser, main
from streamconv.commands import match
from streamconv.detect import load_templates
from streamconv.recordings import match_file

distributed = pytest.importorskip("dask.distributed")
dask = pytest.importorskip("dask")

RATE = 8000
CHUNK_S = 4.0  # the long file is 21 s: six chunks


def chirp(n=300):
    k = np.arange(n)
    return np.sin(2 * np.pi * (0.02 + 0.2 * k / n) * k) * np.hanning(n)


@pytest.fixture(scope="module")
def client():
    cluster = distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=False, dashboard_address=":0"
    )
    with distributed.Client(cluster) as c:
        yield c
    cluster.close()


@pytest.fixture(scope="module")
def recordings(tmp_path_factory):
    """Four short stereo files and one long one with a chirp planted across a chunk border."""
    root = tmp_path_factory.mktemp("archive")
    rng = np.random.default_rng(7)
    t = chirp()
    sf.write(root / "chirp.wav", t, RATE, subtype="DOUBLE")
    (root / "sub").mkdir()
    for i, seconds in enumerate([2, 3, 1.5, 21]):
        x = 0.3 * rng.normal(size=(int(seconds * RATE), 2))
        for start in rng.integers(0, len(x) - len(t), size=int(seconds * 2)):
            x[start : start + len(t), rng.integers(2)] += t
        if seconds == 21:
            border = int(CHUNK_S * RATE)
            x[border - 120 : border - 120 + len(t), 0] += t  # across the first border
            x[2 * border - 1 : 2 * border - 1 + len(t), 1] += t  # one sample before the second
        sf.write(root / "sub" / f"rec{i}.wav", x, RATE, subtype="FLOAT")
    return root


def parse(*argv):
    return build_parser("match").parse_args(["match", *map(str, argv)])


def single_process(argv):
    """The records of the plain `match` command, one process, file after file."""
    args = parse(*argv)
    records = []
    for path in archive.expand(args.files):
        match_file(path, load_templates(args.template), match.options(args), records.append)
    return records


def on_cluster(client, argv, chunk_s=CHUNK_S):
    args = parse(*argv, "-q")
    records = []
    code = archive.run_archive(args.files, load_templates(args.template), match.options(args),
                               records.append, client, chunk_s, resume=args.resume,
                               quiet=True)  # fmt: skip
    return code, records


FLAGS = [
    ["--threshold", "0.1"],  # many detections, some at every border
    ["--threshold", "0.15", "--min-distance", "0.25"],  # seconds: 2000 samples
    ["--mad", "4", "--mad-window", "1.3", "--mad-hop", "0.37"],
    ["--combine", "--mad", "3", "--mad-window", "0.5", "--mad-hop", "0.5"],
    # the spectrogram domain: frame-rate traces, chunks start on its segment boundaries
    ["--domain", "spectrogram", "--tolerance", "0.03", "--mad", "5", "--mad-window", "1.3"],
    # periodicity estimates interleaved with the detections, both across chunk borders
    ["--threshold", "0.2", "--periodicity", "0.02:0.15", "--periodicity-threshold", "0.01"],
]


@pytest.mark.parametrize("flags", FLAGS)
def test_cluster_gives_the_single_process_detections(client, recordings, flags):
    argv = [recordings / "sub", "-t", recordings / "chirp.wav", *flags]
    expected = single_process(argv)
    code, got = on_cluster(client, argv)
    assert code == 0
    assert len({r["file"] for r in got}) == 4
    long_file = [r["sample"] for r in expected if r["file"].endswith("rec3.wav")]
    assert any(abs(s - k * CHUNK_S * RATE) < 300 for s in long_file for k in (1, 2, 3))
    assert got == expected


@pytest.mark.parametrize("flags", [[], ["--periodicity", "0.1:0.3"]])
def test_long_file_is_cut_into_chunks(recordings, flags):
    args = parse(recordings / "sub" / "rec3.wav", "-t", recordings / "chirp.wav", *flags)
    plan = archive.plan_file(str(args.files[0]), load_templates(args.template), match.options(args),
                             CHUNK_S)  # fmt: skip
    assert plan["error"] is None
    bounds = [(t.start, t.stop) for t in plan["tasks"]]
    assert bounds == [(s, min(s + 32000, 21 * RATE)) for s in range(0, 21 * RATE, 32000)]


def test_periodicity_alone_on_chunks(client, recordings):
    argv = [recordings / "sub", "--periodicity", "0.02:0.15", "--periodicity-threshold", "0.01"]
    expected = single_process(argv)
    code, got = on_cluster(client, argv)
    assert code == 0
    border = int(CHUNK_S * RATE)
    long_file = [r["sample"] for r in expected if r["file"].endswith("rec3.wav")]
    assert any(abs(s - k * border) < 1500 for s in long_file for k in (1, 2, 3))
    assert got == expected


@pytest.fixture(scope="module")
def sensor_files(recordings, tmp_path_factory):
    """The long recording as raw f32le PCM, and its first 6 s as CSV."""
    root = tmp_path_factory.mktemp("sensors")
    x, _ = sf.read(recordings / "sub" / "rec3.wav")
    x.astype("<f4").tofile(root / "long.raw")
    np.savetxt(root / "first.csv", x[: 6 * RATE], delimiter=",", fmt="%.9g")
    return root


SENSOR_FLAGS = ["--rate", RATE, "--channels", "2", "--format", "f32le", "--threshold", "0.15"]


def test_raw_files_are_chunked_csv_files_run_whole(sensor_files, recordings):
    args = parse(sensor_files / "long.raw", sensor_files / "first.csv", "-t",
                 recordings / "chirp.wav", *SENSOR_FLAGS)  # fmt: skip
    templates, opts = load_templates(args.template), match.options(args)
    raw, csv = (archive.plan_file(str(p), templates, opts, CHUNK_S) for p in args.files)
    assert (raw["error"], csv["error"]) == (None, None)
    assert [(t.start, t.stop) for t in raw["tasks"]][-2:] == [(128000, 160000), (160000, 168000)]
    assert [(t.start, t.stop) for t in csv["tasks"]] == [(0, None)]


@pytest.mark.parametrize("flags", [[], ["--periodicity", "0.02:0.15", "--mad", "4"]])
def test_raw_and_csv_files_give_the_single_process_detections(
    client, sensor_files, recordings, flags
):
    argv = [sensor_files / "long.raw", sensor_files / "first.csv", "-t", recordings / "chirp.wav",
            *SENSOR_FLAGS, *flags]  # fmt: skip
    if "--mad" in flags:
        argv.remove("--threshold")
        argv.remove("0.15")
    expected = single_process(argv)
    code, got = on_cluster(client, argv)
    assert code == 0
    assert {r["file"] for r in got} == {str(sensor_files / "long.raw"),
                                        str(sensor_files / "first.csv")}  # fmt: skip
    assert got == expected


def test_raw_file_with_a_partial_frame_runs_whole_and_fails_as_it_would(
    client, sensor_files, recordings, tmp_path
):
    bad = tmp_path / "odd.raw"
    bad.write_bytes((sensor_files / "long.raw").read_bytes()[:-3])
    args = parse(bad, "-t", recordings / "chirp.wav", *SENSOR_FLAGS)
    plan = archive.plan_file(str(bad), load_templates(args.template), match.options(args), CHUNK_S)
    assert [(t.start, t.stop) for t in plan["tasks"]] == [(0, None)]
    with pytest.raises(archive.UsageError) as single:
        single_process([bad, "-t", recordings / "chirp.wav", *SENSOR_FLAGS])
    code, got = on_cluster(client, [bad, "-t", recordings / "chirp.wav", *SENSOR_FLAGS])
    assert (code, got) == (2, [])
    assert "middle of a frame" in str(single.value)


def test_planted_chirps_across_borders_are_found(client, recordings):
    argv = [recordings / "sub" / "rec3.wav", "-t", recordings / "chirp.wav"]
    _, got = on_cluster(client, argv)
    samples = {(r["sample"], r["channel"]) for r in got}
    border = int(CHUNK_S * RATE)
    assert {(border - 120, 0), (2 * border - 1, 1)} <= samples


def test_resume_after_a_crash_finishes_the_rest(client, recordings, tmp_path, monkeypatch):
    state = tmp_path / "state"
    argv = [recordings / "sub", "-t", recordings / "chirp.wav", "--threshold", "0.1"]
    argv += ["--resume", state]
    expected = single_process(argv[:5])
    save = archive.State.save
    saved = []

    def crash_after_three(self, task, records):
        if len(saved) == 3:
            raise KeyboardInterrupt  # the run is killed here
        save(self, task, records)
        saved.append(task)

    monkeypatch.setattr(archive.State, "save", crash_after_three)
    with pytest.raises(KeyboardInterrupt):
        on_cluster(client, argv)
    monkeypatch.setattr(archive.State, "save", save)
    assert len(list(state.glob("*.json"))) == 3
    assert not list(state.glob("*.part"))

    kept = {p: p.stat().st_mtime_ns for p in state.glob("*.json")}
    code, got = on_cluster(client, argv)
    assert code == 0
    assert got == expected
    # Three short files and six chunks; the three kept were not run (nor rewritten) again.
    assert len(list(state.glob("*.json"))) == 9
    assert {p: p.stat().st_mtime_ns for p in kept} == kept


def test_bad_file_is_reported_and_skipped(client, recordings, tmp_path, capsys):
    bad = tmp_path / "broken.wav"
    bad.write_bytes(b"RIFF not really a wave file")
    good = recordings / "sub" / "rec0.wav"
    argv = [good, bad, recordings / "sub" / "rec2.wav", "-t", recordings / "chirp.wav"]
    code, got = on_cluster(client, argv)
    err = capsys.readouterr().err
    assert code == 2
    assert f"error: {bad}: cannot read audio" in err
    assert "1 of 3 files failed" in err
    assert got == single_process([good, recordings / "sub" / "rec2.wav", *argv[3:]])


def test_cli_with_two_worker_processes(recordings, tmp_path, capsys):
    out = tmp_path / "dets.jsonl"
    files = [recordings / "sub" / "rec0.wav", recordings / "sub" / "rec1.wav"]
    argv = [*files, "-t", recordings / "chirp.wav", "--threshold", "0.2"]
    code = main(["match", *map(str, argv), "--jobs", "2", "-o", str(out)])
    err = capsys.readouterr().err
    assert code == 0
    assert "matched" not in err  # the summary is for a terminal (test_cli_match.py)
    assert [json.loads(line) for line in out.read_text().splitlines()] == single_process(argv)


def test_jobs_are_worker_processes_of_one_thread(recordings):
    client = archive.make_client(jobs=2)
    try:
        assert list(client.nthreads().values()) == [1, 1]
        pids = set(client.run(os.getpid).values())
        assert len(pids) == 2 and os.getpid() not in pids
        env = client.run(lambda: os.environ.get("OMP_NUM_THREADS"))
        assert set(env.values()) == {"1"}
        profiling = client.run(lambda: dask.config.get("distributed.worker.profile.enabled"))
        assert set(profiling.values()) == {False}
    finally:
        client.close()
        client.close_cluster()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--jobs", "2", "--plot", "DIR"], "--plot works on one process only"),
        (["--resume", "FILE"], "not a directory"),
    ],
)
def test_usage_errors(recordings, tmp_path, capsys, argv, message):
    (tmp_path / "FILE").write_text("x")
    argv = [a.replace("DIR", str(tmp_path / "p")).replace("FILE", str(tmp_path / "FILE"))
            for a in argv]  # fmt: skip
    code = main(["match", str(recordings / "sub"), "-t", str(recordings / "chirp.wav"), *argv])
    assert code == 2
    assert message in capsys.readouterr().err


def test_expand_directories_and_globs(recordings):
    sub = recordings / "sub"
    names = [f"rec{i}.wav" for i in range(4)]
    assert archive.expand([str(sub)]) == [str(sub / n) for n in names]
    assert archive.expand([str(sub / "rec[12].wav"), "x.wav"]) == [
        str(sub / "rec1.wav"),
        str(sub / "rec2.wav"),
        "x.wav",
    ]
    with pytest.raises(archive.UsageError, match="no file matches"):
        archive.expand([str(sub / "*.flac")])


def test_local_workers_keep_dask_errors_off_stderr():
    """A worker's dask log at ERROR (the heartbeat that finds the scheduler closed while
    `--jobs` shuts its cluster down printed a 30-line traceback after the summary) stays off
    the command's stderr; task failures still reach the command, which reports them."""
    import subprocess
    import sys

    code = (
        "import logging\n"
        "from streamconv import archive\n"
        "c = archive.make_client(jobs=1)\n"
        "c.run(lambda: logging.getLogger('distributed.worker').error('heartbeat-xyz'))\n"
        "c.close(); c.close_cluster()\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "heartbeat-xyz" not in proc.stderr


def test_a_template_the_spectrogram_refuses_names_the_recording(recordings, tmp_path, capsys):
    rec = recordings / "sub" / "rec0.wav"
    sf.write(tmp_path / "short.wav", chirp(100), sf.info(rec).samplerate)
    code = main(["match", str(rec), "-t", str(tmp_path / "short.wav"), "--domain",
                 "spectrogram", "--jobs", "1"])  # fmt: skip
    assert code == 2
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith(f"error: {rec}: template 'short' has 100 samples, shorter than")
