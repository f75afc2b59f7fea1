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
