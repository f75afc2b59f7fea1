"""FFTW wisdom kept between runs, so FFT plans are measured once per machine, not per run.

A measured FFTW plan runs 25-35% faster than an estimated one but takes seconds to find (see
:mod:`streamconv.dsp.fftw`). ``streamconv filter --fft-measure`` measures the sizes its job
needs and saves FFTW's wisdom here; every later run loads it, and its plans of those sizes are
the measured ones at no cost. The file is a cache: deleting it only makes runs slower.

Location: ``$STREAMCONV_FFTW_WISDOM``, else ``$XDG_CACHE_HOME/streamconv/fftw-wisdom.json``
(``~/.cache/...`` when ``XDG_CACHE_HOME`` is unset).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from streamconv.dsp import fftw
from streamconv.errors import UsageError
from streamconv.io.files import AtomicFile

_PARTS = ("double", "single", "long double")


def wisdom_path() -> Path:
    """Where the wisdom is kept (see the module docstring)."""
    explicit = os.environ.get("STREAMCONV_FFTW_WISDOM")
    if explicit:
        return Path(explicit)
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(Path.home(), ".cache")
    return Path(cache) / "streamconv" / "fftw-wisdom.json"


def load() -> bool:
    """Load the saved wisdom if there is any; True if it was loaded.

    A missing, unreadable or foreign file is ignored (it is only a cache).
    """
    try:
        saved = json.loads(wisdom_path().read_text(encoding="ascii"))
        wisdom = tuple(saved[part].encode("ascii") for part in _PARTS)
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return False
    return fftw.import_wisdom(wisdom)


def save() -> Path | None:
    """Save FFTW's wisdom (what was loaded plus what this run measured), atomically.

    Returns the path, or None after a one-line warning on stderr if it could not be written:
    a run never fails for its cache.
    """
    path = wisdom_path()
    wisdom = [part.decode("ascii") for part in fftw.export_wisdom()]
    text = json.dumps(dict(zip(_PARTS, wisdom, strict=True)))
    atomic = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic = AtomicFile(str(path))  # written beside it, renamed into place when whole
        Path(atomic.tmp_path).write_text(text, encoding="ascii")
        atomic.commit()
    except (OSError, UsageError) as exc:
        if atomic is not None:
            atomic.discard()
        reason = exc.strerror if isinstance(exc, OSError) else exc
        print(f"warning: {path}: cannot save FFTW wisdom: {reason}", file=sys.stderr)
        return None
    return path
