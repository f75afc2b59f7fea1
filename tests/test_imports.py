"""Every module of the package imports without the optional dependencies.

`make test` collects the docstring examples of every module (``--doctest-modules``), and a user
who installed streamconv without extras imports the modules too: the extras (sounddevice,
PyAudio, matplotlib, dask, pedalboard) are imported where they are used, never at module level.
"""

import subprocess
import sys

# The top-level names of the optional dependencies in pyproject.toml's extras.
OPTIONAL = ["sounddevice", "pyaudio", "matplotlib", "dask", "distributed", "pedalboard"]

IMPORT_ALL = """
import importlib, importlib.abc, pkgutil, sys

class Missing(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {name!r} (blocked)", name=name)
        return None

sys.meta_path.insert(0, Missing())
import streamconv
failed = []
for info in pkgutil.walk_packages(streamconv.__path__, "streamconv."):
    try:
        importlib.import_module(info.name)
    except Exception as exc:
        failed.append(f"{info.name}: {type(exc).__name__}: {exc}")
print("\\n".join(failed) or "ok")
"""


def test_every_module_imports_without_the_optional_dependencies():
    code = f"BLOCKED = {OPTIONAL!r}\n" + IMPORT_ALL
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "ok", out.stdout


def test_the_blocker_blocks():
    """The check above can fail: a blocked module that is imported is reported."""
    code = "BLOCKED = ['numpy']\n" + IMPORT_ALL
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert "blocked" in out.stdout + out.stderr
