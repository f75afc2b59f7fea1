"""The wheel as a user gets it: built, installed alone in a clean venv, and run on a file.

The venv is made without system site-packages and without the test venv's packages, so the
wheel's declared dependencies are all it has: a missing dependency or a module left out of the
wheel fails here. The dependencies' wheels are kept in a wheelhouse beside the test venv
(``$STREAMCONV_WHEELHOUSE``, default ``<venv>/wheelhouse``) and installed with ``--no-index``,
so the test is offline once the wheelhouse is filled; a first run fills it with
``pip download`` (about 60 MB). About 10 s on a warm machine.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

import streamconv

REPO = Path(__file__).resolve().parent.parent
# The clean venv must not see the source tree (the tests run with it on PYTHONPATH).
CLEAN_ENV = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}


def _pip(*args: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pip", "--disable-pip-version-check", *args],
        capture_output=True,
        text=True,
        env=CLEAN_ENV,
        **kwargs,
    )


def _drop_own_wheels(house: Path) -> None:
    for old in house.glob("streamconv-*.whl"):
        old.unlink()


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """A clean venv with only the freshly built wheel and its dependencies; its bin/."""
    work = tmp_path_factory.mktemp("wheel")
    # Build from a copy of the sources: `build` leaves build/ and *.egg-info behind.
    src = work / "src"
    listed = subprocess.run(
        ["git", "-C", str(REPO), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        check=True,
        capture_output=True,
    ).stdout.split(b"\0")
    for name in filter(None, listed):
        path = REPO / os.fsdecode(name)
        if path.is_file():
            (src / path.relative_to(REPO)).parent.mkdir(parents=True, exist_ok=True)
            (src / path.relative_to(REPO)).write_bytes(path.read_bytes())
    dist = work / "dist"
    built = subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(dist)],
        cwd=src,
        capture_output=True,
        text=True,
    )
    assert built.returncode == 0, built.stdout[-2000:] + built.stderr[-2000:]
    (wheel,) = dist.glob("streamconv-*.whl")
    assert wheel.name.startswith(f"streamconv-{streamconv.__version__}-")

    venv = work / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    cfg = (venv / "pyvenv.cfg").read_text()
    assert "include-system-site-packages = false" in cfg

    house = Path(os.environ.get("STREAMCONV_WHEELHOUSE", Path(sys.prefix) / "wheelhouse"))
    target = ["--python", str(venv / "bin" / "python"), "install", "--quiet"]
    offline = [*target, "--no-index", "--find-links", str(house), str(wheel)]
    done = _pip(*offline)
    if done.returncode != 0:
        # First run, or a dependency changed: fetch the dependencies' wheels, then offline.
        # pip download also saves the wheel itself, and would take a stale copy found in the
        # wheelhouse for this one (same name), with its old dependencies: none is kept there.
        _drop_own_wheels(house)
        fetched = _pip("download", "--quiet", "--dest", str(house), str(wheel))
        _drop_own_wheels(house)
        assert fetched.returncode == 0, fetched.stderr[-2000:]
        done = _pip(*offline)
    assert done.returncode == 0, done.stderr[-2000:]
    return venv / "bin"


def test_wheel_installs_alone_and_filters_a_file(installed, tmp_path):
    version = subprocess.run(
        [installed / "streamconv", "--version"],
        capture_output=True, text=True, check=True, env=CLEAN_ENV,
    )  # fmt: skip
    assert version.stdout.strip() == f"streamconv {streamconv.__version__}"
    x = np.random.default_rng(1).uniform(-0.5, 0.5, (4801, 2)).astype(np.float32)
    sf.write(tmp_path / "in.wav", x, 48000, subtype="FLOAT")
    taps = np.array([0.25, 0.5, 0.25])
    np.savetxt(tmp_path / "lp.txt", taps)
    run = subprocess.run(
        [installed / "streamconv", "filter", "-i", "in.wav", "-o", "out.wav",
         "--fir", "lp.txt", "--tail"],
        cwd=tmp_path, capture_output=True, text=True, env=CLEAN_ENV,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    y, rate = sf.read(tmp_path / "out.wav", dtype="float64")
    want = np.stack([np.convolve(x[:, c].astype(np.float64), taps) for c in range(2)], axis=1)
    assert rate == 48000 and y.shape == want.shape
    np.testing.assert_allclose(y, want, atol=1e-6)


def test_wheel_has_the_compiled_engine(installed):
    """The C extension was built into the wheel and runs there (not the numpy fallback)."""
    run = subprocess.run(
        [installed / "python", "-I", "-c", "import numpy as np, streamconv as sc;"
         "print(sc.Convolver(np.ones(300), block_size=64, channels=2).backend);"
         "print(sc.__file__)"],
        capture_output=True, text=True, env=CLEAN_ENV,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    backend, where = run.stdout.split()
    assert backend == "compiled"
    assert Path(where).is_relative_to(installed.parent), where  # the wheel's, not the checkout's


@pytest.mark.skipif(shutil.which("gcc") is None, reason="no C compiler: the wheel has no engine")
def test_wheel_carries_the_compiled_engine(installed):
    """Built where a compiler is (make deps installs gcc), the wheel holds the extension and it
    loads in the clean venv (its header comes from the sdist/MANIFEST)."""
    run = subprocess.run(
        [installed / "python", "-I", "-c",
         "from streamconv.dsp import compiled; print(compiled.IMPORT_ERROR)"],
        capture_output=True, text=True, env=CLEAN_ENV,
    )  # fmt: skip
    assert run.returncode == 0 and run.stdout.strip() == "None", run.stdout + run.stderr


def test_wheel_gives_sound_devices_without_extras(installed):
    """sounddevice is a core dependency: `devices --json` runs in the bare install and prints
    a JSON list (empty on a machine without sound devices)."""
    run = subprocess.run(
        [installed / "streamconv", "devices", "--json"],
        capture_output=True, text=True, env=CLEAN_ENV,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert isinstance(json.loads(run.stdout), list)
    modules = subprocess.run(
        [installed / "python", "-I", "-c", "import sounddevice, importlib.util as u;"
         "print(u.find_spec('pyaudio') is None, u.find_spec('pytest') is None)"],
        capture_output=True, text=True, check=True, env=CLEAN_ENV,
    )  # fmt: skip
    assert modules.stdout.split() == ["True", "True"]


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_make_run_installs_only_what_running_needs(tmp_path):
    """`make run` on a fresh machine (a venv that does not exist yet, dry run): the package
    and its dependencies, not the test extra; `make test` adds it; the Debian packages of a
    run are a subset that leaves out JACK, sox and the browser."""
    venv = f"VENV={tmp_path / 'venv'}"
    run = subprocess.run(["make", "-n", "run", venv], cwd=REPO, capture_output=True, text=True)
    test = subprocess.run(["make", "-n", "test", venv], cwd=REPO, capture_output=True, text=True)
    assert run.returncode == 0 and test.returncode == 0, run.stderr + test.stderr
    installs = [line for line in run.stdout.splitlines() if "pip install" in line]
    assert any(line.rstrip().endswith("install --quiet -e .") for line in installs), installs
    assert "[test]" not in run.stdout and "'.[test]'" in test.stdout
    apt_run = " ".join(line for line in run.stdout.splitlines() if "PKGS=" in line)
    apt_test = " ".join(line for line in test.stdout.splitlines() if "PKGS=" in line)
    assert "libportaudio2" in apt_run and "sox" not in apt_run and "jackd2" not in apt_run
    assert "sox" in apt_test and "jackd2" in apt_test
