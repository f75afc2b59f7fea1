"""The package surface: a curated, sorted ``__all__`` that really exists, and the CLI entry."""

import subprocess
import sys

import streamconv


def test_all_is_sorted_and_importable():
    assert streamconv.__all__ == sorted(streamconv.__all__)
    for name in streamconv.__all__:
        assert hasattr(streamconv, name), name


def test_cli_version_and_help():
    out = subprocess.run(
        [sys.executable, "-m", "streamconv.cli", "--version"], capture_output=True, text=True
    )
    assert out.returncode == 0 and streamconv.__version__ in out.stdout
    help_run = subprocess.run(
        [sys.executable, "-m", "streamconv.cli", "--help"], capture_output=True, text=True
    )
    assert help_run.returncode == 0 and "usage: streamconv" in help_run.stdout


def test_filtering_does_not_import_scipy_or_dask():
    """Start-up is part of every file job: the Convolver, the filter command and a run without
    detectors must load without scipy and dask (pyFFTW's optional interfaces pull in both,
    0.5 s; the detectors scipy, 0.25 s)."""
    code = (
        "import sys, streamconv, numpy as np\n"
        "import streamconv.commands.filter\n"
        "from streamconv.io import MemorySink, MemorySource\n"
        "from streamconv.runner import Runner\n"
        "conv = streamconv.Convolver(np.ones(3), block_size=4)\n"
        "Runner(MemorySource(np.ones(9), 8000), MemorySink(8000, 1), taps=[1, 2]).run()\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'scipy', 'dask'}))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_pyfftw_optional_modules_still_importable_afterwards():
    code = (
        "import streamconv.dsp.fftw, scipy.fftpack, dask.array.fft\n"
        "import pyfftw.interfaces.scipy_fft\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
