"""`streamconv match`: the same detections as the Python API, outputs, and bad input."""

import csv
import json
import sys

import numpy as np
import pytest
import soundfile as sf

from streamconv import Matcher
from streamconv.cli import main

RATE = 8000
#: The line after the error of every mistake on match's command line (not a file's).
HINT = "hint: streamconv match --help shows the options and examples\n"


def chirp(n=400):
    k = np.arange(n)
    return np.sin(2 * np.pi * (0.02 + 0.15 * k / n) * k) * np.hanning(n)


@pytest.fixture
def recording(tmp_path):
    rng = np.random.default_rng(0)
    x = 0.2 * rng.normal(size=(RATE * 3, 2))
    t = chirp()
    for start, ch in [(1000, 0), (9000, 1), (17777, 0)]:
        x[start : start + len(t), ch] += t
    path = tmp_path / "rec.wav"
    sf.write(path, x, RATE, subtype="DOUBLE")
    tpath = tmp_path / "chirp.wav"
    sf.write(tpath, t, RATE, subtype="DOUBLE")
    return path, tpath, x, t


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, [json.loads(line) for line in out.splitlines()], err


@pytest.mark.parametrize(
    ("flags", "kwargs"),
    [
        ([], {}),
        (
            ["--threshold", "0.5", "--min-distance", "0.00625"],  # seconds: 50 samples
            {"threshold": 0.5, "min_distance": 50},
        ),
        (
            ["--mad", "6", "--mad-window", "0.5", "--mad-hop", "0.1"],
            {"mad": 6.0, "mad_window_s": 0.5, "mad_hop_s": 0.1},
        ),
        (["--combine", "--threshold", "0.3"], {"combine": "mean", "threshold": 0.3}),
    ],
)
def test_same_detections_as_the_python_api(capsys, recording, flags, kwargs):
    path, tpath, x, t = recording
    code, lines, _ = run(capsys, "match", path, "-t", tpath, "--block", 1237, *flags)
    assert code == 0
    m = Matcher({"chirp": t}, RATE, **kwargs)
    expected = [d.to_dict() for d in m.process(x) + m.flush()]
    assert expected
    assert [{k: v for k, v in line.items() if k != "file"} for line in lines] == expected
    assert {line["file"] for line in lines} == {str(path)}


def test_finds_the_planted_chirps(capsys, recording):
    path, tpath, _, _ = recording
    code, lines, _ = run(capsys, "match", path, "-t", f"bell={tpath}")
    assert code == 0
    assert [(d["template"], d["sample"], d["channel"]) for d in lines] == [
        ("bell", 1000, 0),
        ("bell", 9000, 1),
        ("bell", 17777, 0),
    ]
    assert lines[0]["time"] == pytest.approx(1000 / RATE)


def test_several_templates_and_files_in_stream_order(capsys, recording, tmp_path):
    path, tpath, x, _ = recording
    other = tmp_path / "piece.npy"
    np.save(other, x[5000:5300, 1])
    code, lines, _ = run(capsys, "match", path, path, "-t", tpath, "-t", other)
    assert code == 0
    samples = [d["sample"] for d in lines]
    half = len(lines) // 2
    assert lines[:half] == lines[half:]
    assert samples[:half] == sorted(samples[:half])
    assert ("piece", 5000, 1) in [(d["template"], d["sample"], d["channel"]) for d in lines]


@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
def test_output_file(capsys, recording, tmp_path, suffix):
    path, tpath, _, _ = recording
    out = tmp_path / f"dets{suffix}"
    code, lines, _ = run(capsys, "match", path, "-t", tpath, "-o", out)
    assert code == 0 and lines == []
    if suffix == ".csv":
        with open(out, newline="") as f:
            rows = list(csv.DictReader(f))
        assert [int(r["sample"]) for r in rows] == [1000, 9000, 17777]
        assert rows[0]["template"] == "chirp" and rows[0]["period"] == ""
    else:
        rows = [json.loads(line) for line in out.read_text().splitlines()]
        assert [r["sample"] for r in rows] == [1000, 9000, 17777]
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_stdin_is_refused_in_one_line(capsys, recording, monkeypatch):
    """`cat rec.wav | streamconv match - ...` said "-: 0 frames, shorter than template": each
    file is opened more than once, and stdin was spent by the first."""
    path, tpath, _, _ = recording
    monkeypatch.setattr(sys, "stdin", open(path, "rb"))
    code, records, err = run(capsys, "match", "-", "-t", tpath)
    assert (code, records) == (2, [])
    assert err == (
        "error: -: match reads recorded files, not stdin (save the stream to a file, or run "
        "the templates on a live stream with streamconv run)\n" + HINT
    )


def test_a_bad_file_is_reported_and_skipped_exit_2(capsys, recording, tmp_path):
    path, tpath, _, _ = recording
    out = tmp_path / "dets.jsonl"
    bad = tmp_path / "missing.wav"
    code, _, err = run(capsys, "match", bad, path, bad, "-t", tpath, "-o", out)
    assert code == 2
    assert err.splitlines() == [
        f"error: {bad}: no such file",
        f"error: {bad}: no such file",
        "error: 2 of 3 files failed",
    ]
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert [(r["file"], r["sample"]) for r in records] == [
        (str(path), s) for s in (1000, 9000, 17777)
    ]


def test_a_file_failing_midway_gives_no_records(capsys, recording, tmp_path):
    path, tpath, x, _ = recording
    broken = tmp_path / "broken.csv"
    y = x.copy()
    y[20000] = np.nan  # after the first two chirps
    np.savetxt(broken, y, delimiter=",")
    code, lines, err = run(capsys, "match", broken, path, "-t", tpath, "--rate", RATE)
    assert code == 2
    assert err.splitlines() == [
        f"error: {broken}: NaN or Inf sample at frame 20000",
        "error: 1 of 2 files failed",
    ]
    assert {r["file"] for r in lines} == {str(path)} and len(lines) == 3


def test_template_at_another_rate_is_resampled(capsys, recording, tmp_path):
    path, _, _, _ = recording
    k = np.arange(800)  # the same chirp recorded at twice the rate
    t2 = np.sin(2 * np.pi * (0.02 + 0.15 * (k / 2) / 400) * (k / 2)) * np.hanning(800)
    tpath = tmp_path / "chirp16k.wav"
    sf.write(tpath, t2, 2 * RATE, subtype="DOUBLE")
    code, lines, err = run(capsys, "match", path, "-t", tpath, "--threshold", "0.6")
    assert code == 0
    assert "resampled from 16000 Hz to 8000 Hz" in err
    assert [d["sample"] for d in lines] == [1000, 9000, 17777]
    assert min(d["score"] for d in lines) > 0.8


def test_plot_writes_a_png(capsys, recording, tmp_path):
    pytest.importorskip("matplotlib")
    path, tpath, _, _ = recording
    code, lines, _ = run(capsys, "match", path, "-t", tpath, "--plot", tmp_path / "plots")
    assert code == 0 and len(lines) == 3
    assert (tmp_path / "plots" / "rec.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_periodicity_on_a_csv_sensor_file(capsys, tmp_path):
    rate = 100
    t = np.arange(30 * rate) / rate
    x = 3.0 + np.exp(-(((t % 0.8) - 0.2) ** 2) / 0.002) + 0.05 * np.cos(t)
    path = tmp_path / "sensor.csv"
    np.savetxt(path, x[:, None], delimiter=",")
    code, lines, _ = run(capsys, "match", path, "--rate", rate, "--periodicity", "0.3:2")
    assert code == 0 and len(lines) > 10
    assert {d["template"] for d in lines} == {"periodicity"}
    assert all(d["period"] == pytest.approx(0.8, abs=0.01) for d in lines)


@pytest.mark.parametrize(
    ("make", "args", "message"),
    [
        (lambda d: np.savetxt(d / "flat.txt", np.ones(50)), ["-t", "{d}/flat.txt"], "constant"),
        (lambda d: (d / "empty.txt").write_text(""), ["-t", "{d}/empty.txt"], "holds no samples"),
        (lambda d: np.save(d / "one.npy", np.ones(1)), ["-t", "{d}/one.npy"], "L >= 2"),
        (
            lambda d: np.save(d / "long.npy", np.random.default_rng(0).normal(size=30000)),
            ["-t", "{d}/long.npy"],
            "shorter than template",
        ),
        (
            lambda d: np.save(d / "st.npy", np.random.default_rng(0).normal(size=(50, 3))),
            ["-t", "{d}/st.npy"],
            "has 3: give --downmix",
        ),
        (None, ["-t", "{d}/nope.wav"], "no such file"),
        (None, [], "at least one template"),
        (None, ["-t", "{d}/chirp.wav", "-t", "{d}/chirp.wav"], "given twice"),
        (None, ["--periodicity", "1:3"], "analysis window"),
    ],
)
def test_bad_input_is_one_clear_line(capsys, recording, make, args, message):
    path, tpath, _, _ = recording
    d = tpath.parent
    if make:
        make(d)
    code, lines, err = run(capsys, "match", path, *[a.format(d=d) for a in args])
    assert code == 2
    assert lines == []
    first, _, rest = err.partition("\n")
    assert first.startswith("error: ") and message in first
    # The command line's mistakes end with the hint to --help; a file's do not.
    assert rest == (HINT if message in ("at least one template", "given twice") else ""), err


def test_bad_arguments_exit_2(capsys, recording):
    path, tpath, _, _ = recording
    with pytest.raises(SystemExit) as exc:
        main(["match", str(path), "-t", str(tpath), "--threshold", "0.5", "--mad", "3"])
    assert exc.value.code == 2
    with pytest.raises(SystemExit):
        main(["match", str(path), "--periodicity", "3:1"])


def test_progress_only_on_a_terminal(capsys, recording, monkeypatch):
    path, tpath, _, _ = recording
    code, lines, err = run(capsys, "match", path, "-t", tpath, "--block", 4096)
    assert code == 0 and "%" not in err
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    code, lines2, err = run(capsys, "match", path, "-t", tpath, "--block", 4096)
    assert code == 0 and lines2 == lines
    assert f"\r{path}:   0%|" in err and "%|" in err  # the tqdm bar (streamconv.progress)
    assert "template" not in err  # the data went to stdout
    # The bar is cleared and a summary ends the run: files, hours, detections per template.
    assert "\r\033[Kmatched 1 of 1 files, 0.001 h of audio" in err
    assert err.endswith("; detections: chirp 3\n")


def test_spectrogram_domain_from_the_command_line(capsys, recording):
    path, tpath, x, t = recording
    flags = ["--domain", "spectrogram", "--tolerance", "0.03", "--threshold", "0.5"]
    code, lines, _ = run(capsys, "match", path, "-t", tpath, *flags)
    assert code == 0
    m = Matcher({"chirp": t}, RATE, threshold=0.5, domain="spectrogram",
                spectrogram={"tolerance": 0.03})  # fmt: skip
    assert [{k: v for k, v in r.items() if k != "file"} for r in lines] == [
        d.to_dict() for d in m.process(x) + m.flush()
    ]
    assert [(r["sample"], r["channel"]) for r in lines] == [
        (pytest.approx(s, abs=32), c) for s, c in [(1000, 0), (9000, 1), (17777, 0)]
    ]


def test_every_spectrogram_parameter_from_the_command_line(capsys, recording):
    """`--spectrogram KEY=VALUE` takes the keys of a config's `spectrogram = {...}`, with the
    same values and checks: the detections are the API's with those parameters."""
    path, tpath, x, t = recording
    params = {"frame_s": 0.04, "hop_s": 0.004, "window": "hamming", "scale": "db",
              "floor_db": 40.0, "low_hz": 200.0, "high_hz": 1500.0, "band_db": 20.0,
              "band_margin": 0.2, "tolerance": 0.05}  # fmt: skip
    flags = [f"--spectrogram={k}={v}" if k != "window" else f"--spectrogram={k}='{v}'"
             for k, v in params.items()]  # fmt: skip
    code, lines, err = run(capsys, "match", path, "-t", tpath, "--domain", "spectrogram",
                           "--threshold", "0.4", *flags)  # fmt: skip
    assert code == 0, err
    m = Matcher({"chirp": t}, RATE, threshold=0.4, domain="spectrogram", spectrogram=params)
    want = [d.to_dict() for d in m.process(x) + m.flush()]
    assert [{k: v for k, v in r.items() if k != "file"} for r in lines] == want
    default = Matcher({"chirp": t}, RATE, threshold=0.4, domain="spectrogram")
    assert want != [d.to_dict() for d in default.process(x) + default.flush()]
    assert len(want) >= 3


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--threshold", "1.5"], "a score threshold is in [-1, 1]"),
        (["--threshold", "-2"], "a score threshold is in [-1, 1]"),
        (["--tolerance", "0.05"], "--tolerance needs --domain spectrogram"),
        (["--min-distance", "0"], "must be positive"),
        (
            ["--periodicity", "0.1:0.2", "--periodicity-threshold", "5"],
            "argument --periodicity-threshold: a periodicity score is in [0, 1], got '5'",
        ),
        (["--spectrogram", "tolerance=0.05"], "--spectrogram needs --domain spectrogram"),
        (
            ["--domain", "spectrogram", "--spectrogram", "hop=0.01"],
            "error: --spectrogram hop: unknown key (did you mean 'hop_s'?)\n",
        ),
        (
            ["--domain", "spectrogram", "--spectrogram", "floor_db=-3"],
            "error: --spectrogram floor_db: Input should be greater than 0, got -3\n",
        ),
        (
            ["--domain", "spectrogram", "--spectrogram", "window=kaiser"],
            "error: --spectrogram window: Input should be 'hamming', 'hann', 'blackman' or "
            "'boxcar', got 'kaiser'\n",
        ),
        (
            ["--domain", "spectrogram", "--spectrogram", "hop_s=0.05"],
            "error: --spectrogram: hop_s (0.05 s) must not exceed frame_s (0.032 s)\n",
        ),
        (
            ["--domain", "spectrogram", "--spectrogram", "frame_s"],
            "error: --spectrogram 'frame_s': expected KEY=VALUE\n",
        ),
        (
            [
                "--domain",
                "spectrogram",
                "--spectrogram",
                "frame_s=0.05",
                "--spectrogram",
                "frame_s=0.06",
            ],
            "error: --spectrogram frame_s: given twice\n",
        ),
        (
            ["--domain", "spectrogram", "--tolerance", "0", "--spectrogram", "tolerance=0.1"],
            "error: --tolerance and --spectrogram tolerance=: give one\n",
        ),
    ],
)
def test_refused_options(capsys, recording, args, message):
    path, tpath, _, _ = recording
    try:
        code = main(["match", str(path), "-t", str(tpath), *args])
    except SystemExit as exc:  # argparse refuses it
        code = exc.code
    err = capsys.readouterr().err
    assert code == 2 and message in err and "Traceback" not in err
    # Every one is a mistake on the command line: the error, then the hint (argparse's own
    # errors had it; the command's, such as --tolerance without --domain, had none).
    assert len(err.splitlines()) == 2 and err.endswith(HINT), err
    if message.startswith("error: "):  # the whole of stderr
        assert err == message + HINT


def test_stereo_template_on_a_mono_recording_needs_downmix(capsys, tmp_path):
    t = chirp()
    x = 0.05 * np.random.default_rng(1).normal(size=RATE)
    x[3000 : 3000 + len(t)] += t
    sf.write(tmp_path / "mono.wav", x, RATE, subtype="DOUBLE")
    sf.write(tmp_path / "st.wav", np.stack([t, 0.5 * t], axis=1), RATE, subtype="DOUBLE")
    argv = ["match", tmp_path / "mono.wav", "-t", tmp_path / "st.wav"]
    code, lines, err = run(capsys, *argv)
    assert code == 2 and lines == []
    assert err == (
        f"error: {tmp_path / 'mono.wav'}: 1 channel(s), but template 'st' ({tmp_path / 'st.wav'}) "
        "has 2: give --downmix to average the template's channels, or a template of 1 channel "
        "or one per channel of the recording\n"
    )
    code, lines, err = run(capsys, *argv, "--downmix")
    assert code == 0 and [(r["sample"], r["channel"]) for r in lines] == [(3000, 0)]


def test_plot_of_a_csv_of_unknown_length(capsys, recording, tmp_path):
    pytest.importorskip("matplotlib")
    _, tpath, x, _ = recording
    np.savetxt(tmp_path / "rec.csv", x, delimiter=",")
    for domain in ("waveform", "spectrogram"):
        out = tmp_path / domain
        code, lines, _ = run(capsys, "match", tmp_path / "rec.csv", "-t", tpath, "--rate", RATE,
                             "--domain", domain, "--threshold", "0.5", "--plot", out)  # fmt: skip
        assert code == 0 and len(lines) == 3
        assert (out / "rec.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_plot_envelope_bins_any_trace_and_stays_small():
    from streamconv.commands import match_plot

    rng = np.random.default_rng(2)
    scores = rng.uniform(-1, 1, size=50_000)
    env = match_plot._Envelope(7)
    for a, b in [(0, 1), (1, 13_000), (13_000, 50_000)]:
        env.add(a * 3, 3, scores[a:b], scores[a:b] + 1)  # one score every 3 samples
    assert len(env.idx) <= 2 * match_plot.BINS and env.bin > 7  # rebinned as it grew
    per = env.bin / 3
    for k in (0, 1, len(env.idx) // 2, len(env.idx) - 1):
        i = env.idx[k]
        members = scores[int(np.ceil(i * per)) : int(np.ceil((i + 1) * per))]
        assert env.lo[k] == members.min() and env.hi[k] == members.max()
        assert env.thr[k] == members.max() + 1
    assert env.idx[-1] * env.bin <= 3 * 50_000 < (env.idx[-1] + 1) * env.bin


def test_a_template_the_spectrogram_refuses_is_reported_with_the_recording(
    capsys, recording, tmp_path
):
    """Too short for one frame at the recording's rate (25 ms against 32 ms): each file's
    error names the file, as every other file error does, and the others go on."""
    path, _, _, t = recording
    short = tmp_path / "short.wav"
    sf.write(short, t[:200], RATE, subtype="DOUBLE")
    code, lines, err = run(capsys, "match", path, path, "-t", short, "--domain", "spectrogram")
    assert code == 2 and lines == []
    why = "template 'short' has 200 samples, shorter than one spectrogram frame"
    assert err.splitlines() == [
        f"error: {path}: {why} (256 samples = 0.032 s)",
        f"error: {path}: {why} (256 samples = 0.032 s)",
        "error: 2 of 2 files failed",
    ]


@pytest.fixture
def in_process_cluster(monkeypatch):
    """``--jobs`` on threads of this process: the run's own path through
    `streamconv.archive`, without starting worker processes."""
    import distributed

    from streamconv import archive

    def make_client(jobs=None, scheduler=None):
        cluster = distributed.LocalCluster(
            n_workers=1, threads_per_worker=1, processes=False, dashboard_address=":0"
        )
        client = distributed.Client(cluster)
        client.close_cluster = cluster.close
        return client

    monkeypatch.setattr(archive, "make_client", make_client)


@pytest.mark.parametrize("jobs", [[], ["--jobs", "1"]])
def test_the_summary_ends_a_run_on_a_terminal_only(
    capsys, recording, monkeypatch, in_process_cluster, jobs
):
    """One rule with and without --jobs: the summary (files, hours, detections per template)
    on a terminal, not in a pipe or log (--jobs printed it there too) and not with -q."""
    path, tpath, _, _ = recording
    code, lines, err = run(capsys, "match", path, "-t", tpath, *jobs)
    assert code == 0 and len(lines) == 3
    assert "matched" not in err and "detections:" not in err, err
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    code, lines, err = run(capsys, "match", path, "-t", tpath, *jobs)
    assert code == 0 and len(lines) == 3
    assert "matched 1 of 1 files, 0.001 h of audio" in err
    assert err.endswith("; detections: chirp 3\n")
    code, lines, err = run(capsys, "match", path, "-t", tpath, "-q", *jobs)
    assert code == 0 and len(lines) == 3 and err == ""


@pytest.fixture
def kinds(recording, tmp_path):
    """The recording (8 kHz stereo WAV, float64), and the same samples as raw f64 and CSV."""
    path, tpath, x, _ = recording
    x.astype("<f8").tofile(tmp_path / "rec.raw")
    np.savetxt(tmp_path / "rec.csv", x, delimiter=",")
    return path, tpath, tmp_path / "rec.raw", tmp_path / "rec.csv"


@pytest.mark.parametrize(
    ("files", "args", "message"),
    [
        # Options that act only beside another were ignored without it.
        (["wav"], ["--snippet-pre", "0.5"], "--snippet-pre needs --snippets"),
        (["wav"], ["--snippet-post", "0.5"], "--snippet-post needs --snippets"),
        (["wav"], ["--mad-window", "5"], "--mad-window needs --mad"),
        (["wav"], ["--threshold", "0.5", "--mad-hop", "0.5"], "--mad-hop needs --mad"),
        (["wav"], ["--periodicity-threshold", "0.3"],
         "--periodicity-threshold needs --periodicity"),
        (["wav"], ["--chunk", "60"], "--chunk needs --jobs, --scheduler or --resume"),
        # A stream option that no recording takes and that contradicts one (as filter does).
        (["wav"], ["--rate", "16000"], "--rate 16000 contradicts the input ({wav}: the file's "
         "header says 8000 Hz; streamconv does not resample)"),
        (["wav", "wav"], ["--channels", "1"],
         "--channels 1 contradicts the input ({wav}: the file's header says 2)"),
        (["wav"], ["--format", "s16le"],
         "--format s16le contradicts the input ({wav}: the file's header says DOUBLE)"),
        (["csv"], ["--rate", str(RATE), "--format", "f64le"],
         "--format does not apply: {csv} holds numbers as text"),
        (["csv"], ["--rate", str(RATE), "--channels", "3"],
         "--channels 3 contradicts the input ({csv} has 2 data columns)"),
        (["csv", "wav"], ["--rate", str(RATE), "--channels", "1"],
         "--channels 1 contradicts the input ({csv} has 2 data columns)"),
    ],
)  # fmt: skip
def test_options_that_do_not_apply_are_refused(capsys, kinds, tmp_path, files, args, message):
    """As filter: one error line and the hint, exit 2, before any detection is printed."""
    wav, tpath, raw, csv_ = kinds
    named = {"wav": wav, "raw": raw, "csv": csv_}
    out = tmp_path / "dets.jsonl"
    code, lines, err = run(capsys, "match", *[named[f] for f in files], "-t", tpath,
                           "-o", out, *args)  # fmt: skip
    assert (code, lines) == (2, [])
    assert err == f"error: {message.format(wav=wav, csv=csv_)}\n{HINT}", err
    assert not out.exists()


@pytest.mark.parametrize(
    ("files", "args"),
    [
        (["wav"], ["--rate", str(RATE), "--channels", "2", "--format", "f64le"]),  # agree
        (["csv"], ["--rate", str(RATE), "--channels", "2"]),
        # Beside a raw (or CSV) recording they are its: a WAV keeps its header.
        (["raw", "wav"], ["--rate", str(RATE), "--channels", "2", "--format", "f64le"]),
        (["wav", "csv"], ["--rate", "16000"]),  # the CSV's rate; the WAV says 8000
        (["wav"], ["--snippets", "SNIPS", "--snippet-pre", "0.1", "--snippet-post", "0.1"]),
        (["wav"], ["--mad", "6", "--mad-window", "0.5", "--mad-hop", "0.1"]),
        (["wav"], ["--periodicity", "0.3:1", "--periodicity-threshold", "0.9"]),
    ],
)
def test_options_that_apply_are_taken(capsys, kinds, tmp_path, files, args):
    wav, tpath, raw, csv_ = kinds
    named = {"wav": wav, "raw": raw, "csv": csv_}
    args = [a.replace("SNIPS", str(tmp_path / "snips")) for a in args]
    code, lines, err = run(capsys, "match", *[named[f] for f in files], "-t", tpath, *args)
    assert code == 0, err
    chirps = [r for r in lines if r["template"] == "chirp"]
    matched = files if "16000" not in args else ["wav"]  # a CSV at 16 kHz has no chirp
    if "--mad" not in args:
        assert {(r["file"], r["sample"]) for r in chirps} == {
            (str(named[f]), s) for f in matched for s in (1000, 9000, 17777)
        }
