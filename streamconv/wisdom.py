"""FFTW wisdom kept between runs, so FFT plans are measured once per machine, not per run.

A measured FFTW plan runs 25-35% faster than an estimated one but takes seconds to find (see
:mod:`streamconv.dsp.fftw`). ``streamconv filter --fft-measure`` measures the sizes its job
needs and saves FFTW's wisdom here; every later run loads it, and its plans of those sizes are
the measured ones at no cost. The file is a cache: deleting it only makes runs slower.

Location: ``$STREAMCONV_FFTW_WISDOM``, else ``$CACHE_DIRECTORY/fftw-wisdom.json`` (the
directory systemd's ``CacheDirectory=`` gives a service: ``/var/cache/streamconv`` for the
shipped unit, whose dynamic user has no home), else
``$XDG_CACHE_HOME/streamconv/fftw-wisdom.json`` (``~/.cache/...`` when ``XDG_CACHE_HOME`` is
unset).

Beside it, ``cost-model.json`` keeps the planner's cost model as measured on this machine by
``streamconv check --calibrate`` (:mod:`streamconv.dsp.costmodel`); :func:`load` loads both.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from streamconv.dsp import costmodel, fftw
from streamconv.errors import UsageError
from streamconv.io.files import AtomicFile

_PARTS = ("double", "single", "long double")


def wisdom_path() -> Path:
    """Where the wisdom is kept (see the module docstring)."""
    explicit = os.environ.get("STREAMCONV_FFTW_WISDOM")
    if explicit:
        return Path(explicit)
    service_cache = os.environ.get("CACHE_DIRECTORY", "").split(":")[0]
    if service_cache:
        return Path(service_cache) / "fftw-wisdom.json"
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(Path.home(), ".cache")
    return Path(cache) / "streamconv" / "fftw-wisdom.json"


def costs_path() -> Path:
    """Where the calibrated cost model is kept: beside the wisdom."""
    return wisdom_path().with_name("cost-model.json")


def load_costs() -> bool:
    """Make the saved cost model current for the planner; True if there was a valid one."""
    try:
        saved = json.loads(costs_path().read_text(encoding="ascii"))
        models = {name: costmodel.CostModel.from_json(saved[name]) for name in saved}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return False
    costmodel.use(models)
    return bool(models)


def save_costs(models: dict) -> Path | None:
    """Save ``models`` (backend -> CostModel) beside the wisdom, keeping other backends' saved
    models; a one-line warning and None if it cannot be written."""
    kept = {}
    try:
        kept = json.loads(costs_path().read_text(encoding="ascii"))
        if not isinstance(kept, dict):
            kept = {}
    except (OSError, ValueError):
        pass
    kept.update({name: model.to_json() for name, model in models.items()})
    return _write(costs_path(), json.dumps(kept, indent=1), "cost model")


def load() -> bool:
    """Load the saved wisdom if there is any; True if it was loaded. The saved cost model, if
    any, is loaded too (:func:`load_costs`).

    A missing, unreadable or foreign file is ignored (it is only a cache).
    """
    load_costs()
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
    wisdom = [part.decode("ascii") for part in fftw.export_wisdom()]
    text = json.dumps(dict(zip(_PARTS, wisdom, strict=True)))
    return _write(wisdom_path(), text, "FFTW wisdom")


def _write(path: Path, text: str, what: str) -> Path | None:
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
        print(f"warning: {path}: cannot save {what}: {reason}", file=sys.stderr)
        return None
    return path
