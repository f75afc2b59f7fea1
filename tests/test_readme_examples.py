"""The shell examples of README.md and of every `streamconv CMD --help` run as written.

Each `streamconv ...` command line in the README's code blocks (pipelines with sox and ffmpeg
included) and each line under `examples:` in the commands' help runs in bash, in a directory
that holds the files they name (`in.wav`, `lowpass.txt`, `imu.csv`, `configs/`, ...), with this
tree's streamconv. It must exit 0 with no `error:` and no traceback, and a `# prints `X``
comment must be what it prints. The lines that cannot run here (a sound device, a capture card,
a cluster, a user's archive) are left out by the fragments in `NOT_RUN`, each with its reason;
a new example that matches none of them runs, so an example that breaks fails this test.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

ROOT = Path(__file__).resolve().parent.parent

# A fragment of the line -> why it is not run here (the tests that cover it).
NOT_RUN = {
    "device:": "needs sound devices (tests/test_io_devices.py, test_device_reopen.py)",
    "configs/live.toml": "the default sound devices (tests/test_service_device.py)",
    "arecord": "needs a capture card and a player (arecord, aplay)",
    "tcp://head": "needs a dask cluster (tests/test_archive.py runs a local one)",
    "/data/": "a user's archive",
}


def _shell_lines(text: str) -> list[str]:
    """The command lines of `text`'s code blocks that run streamconv, continuations joined and
    trailing comments kept (they may say what the command prints)."""
    lines = []
    for lang, body in re.findall(r"```(\w*)\n(.*?)```", text, re.S):
        if lang not in ("", "sh", "console"):
            continue
        for line in body.replace("\\\n", " ").splitlines():
            line = re.sub(r"\s+", " ", line.strip())
            if re.match(r"(python -m )?streamconv |\S.* \| streamconv ", line):
                lines.append(line)
    return lines


def _epilog_lines() -> list[str]:
    from streamconv.cli import EXAMPLES

    return [
        line
        for command in sorted(EXAMPLES)
        for line in _shell_lines(f"```\n{EXAMPLES[command].split('examples:', 1)[1]}\n```")
    ]


README_LINES = _shell_lines((ROOT / "README.md").read_text())


def _split_comment(line: str) -> tuple[str, str]:
    """`cmd  # comment` -> (cmd, comment); a `#` inside quotes is not a comment."""
    quote = None
    for i, ch in enumerate(line):
        if quote:
            quote = None if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch == "#" and (i == 0 or line[i - 1] == " "):
            return line[:i].strip(), line[i + 1 :].strip()
    return line, ""


def _not_run(line: str) -> str | None:
    return next((why for frag, why in NOT_RUN.items() if frag in line), None)


def _needs(line: str) -> list[str]:
    return [p for p in ("sox", "ffmpeg") if re.search(rf"(^|\| ){p} ", line)]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """The files the examples name, made small."""
    d = tmp_path_factory.mktemp("examples")
    rng = np.random.default_rng(7)
    rate = 48000
    x = 0.1 * rng.standard_normal((rate // 2, 2))
    sf.write(d / "in.wav", x, rate, subtype="PCM_16")
    sf.write(d / "in.flac", x, rate, subtype="PCM_16")
    taps = np.hanning(33) / np.hanning(33).sum()
    for name in ("lowpass.txt", "lp.txt", "moving_avg.txt", "ma.txt"):
        np.savetxt(d / name, taps if "lp" in name or "low" in name else np.full(5, 0.2))
    rows = ["time,ax,ay,az"] + [
        f"{n / 100:.2f},{np.sin(n / 10):.4f},{np.cos(n / 10):.4f},9.81" for n in range(300)
    ]
    for name in ("imu.csv", "sensors.csv"):
        (d / name).write_text("\n".join(rows) + "\n")
    # The repository's layout for `configs/default.toml` (which reads the `make run` recording).
    shutil.copytree(ROOT / "configs", d / "configs")
    sys.path.insert(0, str(ROOT / "examples"))
    try:
        import make_example
    finally:
        sys.path.remove(str(ROOT / "examples"))
    (d / "examples" / "data").mkdir(parents=True)
    recording = make_example.example_signal()
    sf.write(d / "examples" / "data" / "example.wav", recording, make_example.SAMPLE_RATE)
    sf.write(d / "recording.wav", recording, make_example.SAMPLE_RATE)
    sf.write(d / "bell.wav", make_example.bell(), make_example.SAMPLE_RATE)
    # examples/find_sound.py's template (docs/matching.md's examples use it).
    bell = make_example.bell()
    sf.write(d / "examples" / "data" / "bell.wav", bell, make_example.SAMPLE_RATE, subtype="FLOAT")
    (d / "archive").mkdir()
    shutil.copy(d / "recording.wav", d / "archive" / "a.wav")
    return d


def _run(line: str, cwd: Path) -> subprocess.CompletedProcess:
    """`line` in bash with pipefail, its `streamconv` (and `python -m streamconv`) this tree's."""
    me = f"{sys.executable} -m streamconv"
    cmd = re.sub(r"(^|\| |&& )(python -m )?streamconv ", lambda m: f"{m.group(1)}{me} ", line)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    env["STREAMCONV_FFTW_WISDOM"] = str(cwd / "cache" / "fftw-wisdom.json")  # not the user's
    return subprocess.run(
        ["bash", "-o", "pipefail", "-c", cmd], cwd=cwd, capture_output=True, text=True,
        env=env, timeout=120,
    )  # fmt: skip


def _check(line: str, workdir: Path):
    cmd, comment = _split_comment(line)
    missing = [p for p in _needs(cmd) if shutil.which(p) is None]
    if missing:
        message = f"{', '.join(missing)} not installed (make deps installs it)"
        if os.environ.get("CI"):
            pytest.fail(message)  # in CI every runnable example must run
        pytest.skip(message)
    run = _run(cmd, workdir)
    assert run.returncode == 0, f"{cmd}\nexit {run.returncode}\n{run.stderr}"
    assert "Traceback" not in run.stderr and "error:" not in run.stderr, run.stderr
    said = re.match(r"prints `([^`]*)`", comment)
    if said:
        assert run.stdout.strip() == said.group(1)


def _runnable(lines: list[str]) -> list[str]:
    return [line for line in lines if not _not_run(_split_comment(line)[0])]


def test_the_readme_has_examples_and_each_line_not_run_has_its_reason():
    lines = README_LINES + _epilog_lines()
    assert len(README_LINES) >= 15, README_LINES
    assert any(line.startswith("sox ") for line in README_LINES)
    assert len(_runnable(README_LINES)) >= 10  # most of them run here
    # Every reason still names a line (a stale one would hide nothing, but mislead).
    for fragment in NOT_RUN:
        assert any(fragment in _split_comment(line)[0] for line in lines), fragment


def _id(line: str) -> str:
    return re.sub(r"[^\w.,:=/ -]", "_", _split_comment(line)[0])[:80]


@pytest.mark.parametrize("line", _runnable(README_LINES), ids=_id)
def test_readme_example(line, workdir):
    _check(line, workdir)


@pytest.mark.parametrize("line", _runnable(_epilog_lines()), ids=_id)
def test_help_example(line, workdir):
    _check(line, workdir)


def test_readme_python_example():
    """The engine's example runs and gives what its comment says: np.convolve's output."""
    (block,) = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), re.S)
    scope: dict = {}
    exec(compile(block, "README.md", "exec"), scope)
    x = scope["x"]
    assert np.array_equal(scope["y"], np.convolve(x, [1, 2, 3, 2, 1]))
    assert scope["y"].tolist() == [0, 0, 0, 1, 4, 10, 16, 19, 16, 10, 4, 1, 0, 0]


def _matching_examples() -> list[tuple[str, list[str]]]:
    """docs/matching.md's `$ streamconv match` blocks that show all they print (no `...`)."""
    text = (ROOT / "docs" / "matching.md").read_text()
    out = []
    for body in re.findall(r"```console\n(.*?)```", text, re.S):
        lines = body.replace("\\\n", " ").splitlines()
        if lines and lines[0].startswith("$ streamconv match") and "..." not in lines:
            out.append((re.sub(r"\s+", " ", lines[0][2:]), [ln for ln in lines[1:] if ln]))
    return out


def _rounded(line: str) -> dict:
    record = json.loads(line)
    return {k: round(v, 3) if isinstance(v, float) else v for k, v in record.items()}


def test_matching_doc_examples_print_what_they_show(workdir):
    """Each complete `streamconv match` example of docs/matching.md prints the lines it shows
    (the doc rounds times and scores to 3 decimals): the spectrogram one's count included."""
    examples = _matching_examples()
    assert any("--domain spectrogram" in cmd for cmd, _ in examples), examples
    for cmd, shown in examples:
        run = _run(cmd + " -q", workdir)
        assert run.returncode == 0, f"{cmd}\n{run.stderr}"
        printed = [_rounded(line) for line in run.stdout.splitlines()]
        assert printed == [json.loads(line) for line in shown], cmd
