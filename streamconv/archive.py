"""``streamconv match --jobs N / --scheduler ADDRESS``: match an archive on dask.distributed.

The archive (files, directories, globs) is cut into tasks: a file is one task, and a long
audio file is cut into chunks of ``--chunk`` seconds. Only paths and sample ranges travel to
the workers (they must see the same files); the templates are sent once to every worker.

Exactness. A chunk ``[start, stop)`` reports the detections whose sample lies in it, and they
are the single-process run's, bit for bit: the file's detectors (`match.Detectors`: the
`Matcher` of the templates, `Periodicity`) say which frames they need for that
(``chunk_bounds``: the matcher starts on one of its segment boundaries, with a peak's reach and
a MAD window of history before ``start``, and reads past ``stop`` until every score a peak
there depends on is in), are told where they start (``start_at``), and merge their detections
into stream order the same way in a chunk as in the whole file. Audio files that can seek and
raw PCM files are chunked; ``.csv`` files (no seeking to a frame) run whole. A file that is
not chunked runs the single-process code itself.

Resume: every finished task's detections are written to ``STATE_DIR`` under a name that hashes
the file (path, size, mtime), the range, the templates and the options, atomically (temporary
name, then rename); a rerun reuses them and runs the rest.
"""

from __future__ import annotations

import argparse
import glob
import hashlib
import json
import os
import sys
import time
from dataclasses import dataclass, field

import numpy as np

from streamconv.commands import match
from streamconv.errors import StreamconvError, UsageError
from streamconv.io import files, open_source, pcm
from streamconv.io.pipes import RawSource

#: Options a worker needs (a copy of these travels with every task, not the command line).
WORKER_OPTIONS = (
    "threshold", "mad", "mad_window", "mad_hop", "min_distance", "combine", "periodicity",
    "periodicity_threshold", "block", "rate", "channels", "format",
)  # fmt: skip
GLOB_CHARS = "*?["
#: dask settings of the ``--jobs`` cluster. The workers' statistical profiler (for a dashboard
#: nobody looks at here) samples the running task's stack every 10 ms, a few % of a worker's
#: CPU; the event loops' health ticks (20 ms) and memory checks (100 ms) keep the cores busy
#: between tasks. Measured idle: 2 workers and the scheduler 9% of a core by default, 3% so.
LOCAL_CONFIG = {
    "distributed.worker.profile.enabled": False,
    "distributed.admin.tick.interval": "1s",
    "distributed.worker.memory.monitor-interval": "1s",
}


# -- the archive ----------------------------------------------------------------------------


def _is_recording(path: str) -> bool:
    kind = files.file_kind(path)
    if kind != "audio":
        return True
    try:
        files.audio_format(path)
    except UsageError:
        return False
    return True


def expand(items: list[str]) -> list[str]:
    """Files, directories (recursively, recordings by extension) and globs -> sorted paths.

    The order is the order of `items`, each directory and glob sorted. A plain path is kept
    as given even if it does not exist (it fails as a file).
    """
    out: list[str] = []
    for item in items:
        if os.path.isdir(item):
            found = []
            for root, dirs, names in os.walk(item):
                dirs.sort()
                found += [os.path.join(root, n) for n in names if not n.startswith(".")]
            found = sorted(p for p in found if _is_recording(p))
            if not found:
                raise UsageError(f"{item}: directory holds no recordings")
        elif any(c in item for c in GLOB_CHARS) and not os.path.exists(item):
            found = sorted(p for p in glob.glob(item, recursive=True) if os.path.isfile(p))
            if not found:
                raise UsageError(f"{item}: no file matches")
        else:
            found = [item]
        out += found
    return out


def worker_options(args) -> argparse.Namespace:
    """The options of `args` a worker needs (quiet: workers print nothing)."""
    opts = {k: getattr(args, k, None) for k in WORKER_OPTIONS}
    return argparse.Namespace(**opts, quiet=True, plot=None)


# -- worker side ----------------------------------------------------------------------------


@dataclass
class Task:
    """One file, or a chunk ``[start, stop)`` of one (``stop`` None: the whole file)."""

    path: str
    start: int = 0
    stop: int | None = None


def plan_file(path: str, templates, opts, chunk_s: float) -> dict:
    """Inspect a file: its frames, rate, and the tasks it is cut into (or its error).

    A seekable audio file and a raw PCM file longer than `chunk_s` are cut into chunks; a
    ``.csv`` file (lines of any length: no seeking to a frame) and a file of unknown length
    run whole.
    """
    try:
        with open_source(
            path, sample_rate=opts.rate, channels=opts.channels, fmt=opts.format
        ) as src:
            rate, channels = src.sample_rate, src.channels
            arrays = {t.name: t.for_file(rate, channels, path, _silent) for t in templates}
            frames = _frames(src, path, opts)
            if frames is not None:
                detectors = match.build_detectors(opts, arrays, rate, channels)
                match.Detectors(detectors).check_length(path, frames, templates, arrays)
            chunk = max(round(chunk_s * rate), 1)
    except StreamconvError as exc:
        return {"path": path, "error": str(exc)}
    tasks = [Task(path)]
    if frames is not None and frames > chunk:
        tasks = [Task(path, s, min(s + chunk, frames)) for s in range(0, frames, chunk)]
    return {"path": path, "rate": rate, "frames": frames, "tasks": tasks, "error": None}


def _frames(src, path: str, opts) -> int | None:
    """The frames of a file that can be read from any frame on, else None."""
    if isinstance(src, files.SoundFileSource):
        return src.frames if src.seekable else None
    if files.file_kind(path) == "raw":
        size, frame_bytes = os.path.getsize(path), _frame_bytes(opts)
        # A stray partial frame at the end is the single-process run's error: run it whole.
        return size // frame_bytes if size % frame_bytes == 0 else None
    return None


def _frame_bytes(opts) -> int:
    return pcm.pcm_dtype(opts.format).itemsize * opts.channels


def _silent(message: str) -> None:
    pass


class _ListWriter:
    def __init__(self):
        self.records: list[dict] = []

    def write(self, record: dict) -> None:
        self.records.append(record)


def run_task(task: Task, templates, opts) -> dict:
    """Detections of one task as records (``{"file": path, **detection}``), or its error."""
    try:
        if task.stop is None:
            out = _ListWriter()
            match.match_file(task.path, templates, opts, out)
            return {"records": out.records, "error": None}
        return {"records": match_range(task, templates, opts), "error": None}
    except StreamconvError as exc:
        return {"records": [], "error": str(exc)}


def match_range(task: Task, templates, opts) -> list[dict]:
    """The whole-file run's records with a sample in ``[task.start, task.stop)``.

    The file's detectors (`match.Detectors`) say which frames they need for that
    (`Matcher.chunk_bounds`); only those are read.
    """
    path, start, stop = task.path, task.start, task.stop
    src = open_source(path, sample_rate=opts.rate, channels=opts.channels, fmt=opts.format)
    try:
        rate, channels = src.sample_rate, src.channels
        frames = _frames(src, path, opts)
        arrays = {t.name: t.for_file(rate, channels, path, _silent) for t in templates}
        detectors = match.Detectors(match.build_detectors(opts, arrays, rate, channels))
        first, end = detectors.start_chunk(start, stop, frames)
        src = _seek(src, path, opts, first)
        found, pos = [], first
        while pos < end:
            block = src.read(min(opts.block, end - pos))
            if not len(block):
                break
            found += detectors.process(block)
            pos += len(block)
        if end == frames:
            found += detectors.flush()
    except ValueError as exc:
        raise UsageError(f"{path}: {exc}") from None
    finally:
        src.close()
    return [match.to_record(path, d) for d in found if start <= d.sample < stop]


def _seek(src, path: str, opts, frame: int):
    """`src`, reading from `frame` on (raw PCM: a new source over the file at that byte)."""
    if isinstance(src, files.SoundFileSource):
        if frame:
            src.seek(frame)
        return src
    src.close()
    stream = open(path, "rb")
    stream.seek(frame * _frame_bytes(opts))
    return RawSource(stream, opts.format, opts.rate, opts.channels, name=path, close_stream=True)


# -- client side ----------------------------------------------------------------------------


def check_state_dir(directory: str) -> None:
    """Create the ``--resume`` directory, or raise `UsageError` naming it."""
    if os.path.exists(directory) and not os.path.isdir(directory):
        raise UsageError(f"--resume {directory}: not a directory")
    try:
        os.makedirs(directory, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"--resume {directory}: cannot create: {exc.strerror}") from None


class State:
    """Finished tasks' records in a directory, one JSON file per task, written atomically."""

    def __init__(self, directory: str | None, templates, opts):
        self.directory = directory
        if directory is None:
            return
        check_state_dir(directory)
        h = hashlib.sha256(json.dumps(vars(opts), sort_keys=True, default=str).encode())
        for t in templates:
            h.update(t.name.encode() + b"\0" + np.ascontiguousarray(t.samples).tobytes())
            h.update(repr((t.rate, t.samples.shape)).encode())
        self.job = h.hexdigest()

    def _file(self, task: Task) -> str:
        st = os.stat(task.path)
        key = (self.job, os.path.abspath(task.path), st.st_size, st.st_mtime_ns, task.start,
               task.stop)  # fmt: skip
        return os.path.join(self.directory, hashlib.sha256(repr(key).encode()).hexdigest()[:32])

    def load(self, task: Task) -> list[dict] | None:
        if self.directory is None:
            return None
        try:
            with open(self._file(task) + ".json", encoding="utf-8") as f:
                return json.load(f)["records"]
        except (OSError, ValueError, KeyError):
            return None

    def save(self, task: Task, records: list[dict]) -> None:
        if self.directory is None:
            return
        path = self._file(task) + ".json"
        tmp = f"{path}.{os.getpid()}.part"
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump({"path": task.path, "start": task.start, "stop": task.stop,
                       "records": records}, f)  # fmt: skip
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)


def make_client(args):
    """A dask client: on ``--scheduler ADDRESS``, or on a LocalCluster of ``--jobs`` processes."""
    try:
        import dask
        from dask.distributed import Client, LocalCluster
    except ImportError:
        raise UsageError("--jobs/--scheduler need dask: pip install 'streamconv[dask]'") from None
    if args.scheduler:
        try:
            return Client(args.scheduler, timeout="10s")
        except (OSError, TimeoutError, ValueError) as exc:
            raise UsageError(f"--scheduler {args.scheduler}: cannot connect: {exc}") from None
    # Worker processes of one thread each (the nanny also sets OMP/MKL/OpenBLAS threads to 1):
    # much of a task is Python between numpy calls, under the GIL, so threads would not scale.
    with dask.config.set(LOCAL_CONFIG):  # the nannies hand it on to their workers
        cluster = LocalCluster(
            n_workers=args.jobs or 1, processes=True, threads_per_worker=1,
            dashboard_address=":0", silence_logs=40,
        )  # fmt: skip
    client = Client(cluster)
    client.close_cluster = cluster.close
    return client


@dataclass
class _File:
    path: str
    plan: dict | None = None
    results: dict = field(default_factory=dict)  # task index -> records
    error: str | None = None

    @property
    def done(self) -> bool:
        if self.error is not None:
            return True
        return self.plan is not None and len(self.results) == len(self.plan["tasks"])


def run_archive(args, templates, writer, client, chunk_s: float = 600.0) -> int:
    """Match every file of the archive on `client`; write the records in archive order.

    Returns 0, or 2 when some files failed (each is reported on stderr as it fails).
    """
    from dask.distributed import as_completed

    paths = expand(args.files)
    opts = worker_options(args)
    state = State(getattr(args, "resume", None), templates, opts)
    report = _Report(len(paths), args.quiet)
    [remote] = client.scatter([templates], broadcast=True, hash=False)
    todo = [_File(p) for p in paths]
    futures, info = as_completed(), {}
    for i, p in enumerate(paths):
        fut = client.submit(plan_file, p, remote, opts, chunk_s, pure=False)
        info[fut.key] = ("plan", i, None)
        futures.add(fut)
    emitted = 0
    for fut in futures:
        kind, i, j = info.pop(fut.key)
        f = todo[i]
        try:
            result = fut.result()
        except Exception as exc:  # a worker died or the cluster is gone: this file fails
            result = {"error": f"{f.path}: worker failed: {exc!r}", "records": []}
        if result["error"] is not None:
            if f.error is None:
                f.error = result["error"]
                report.failed(f.error)
        elif kind == "plan":
            f.plan = result
            for j2, task in enumerate(result["tasks"]):
                cached = state.load(task)
                if cached is not None:
                    f.results[j2] = cached
                    report.resumed += 1
                    continue
                sub = client.submit(run_task, task, remote, opts, pure=False)
                info[sub.key] = ("task", i, j2)
                futures.add(sub)
        else:
            f.results[j] = result["records"]
            state.save(f.plan["tasks"][j], result["records"])
        while emitted < len(todo) and todo[emitted].done:
            report.file_done(todo[emitted])
            if todo[emitted].error is None:
                for j2 in range(len(todo[emitted].results)):
                    for record in todo[emitted].results[j2]:
                        writer.write(record)
            todo[emitted].results = {}
            emitted += 1
    report.summary()
    return 2 if report.failures else 0


class _Report:
    """Progress on stderr (a terminal only) and the summary at the end."""

    def __init__(self, total: int, quiet: bool):
        self.total, self.quiet = total, quiet
        self.tty = not quiet and sys.stderr.isatty()
        self.files = self.seconds = self.resumed = 0
        self.failures: list[str] = []
        self.counts: dict[str, int] = {}
        self.t0 = time.monotonic()

    def failed(self, message: str) -> None:
        self._clear()
        self.failures.append(message)
        print(f"error: {message}", file=sys.stderr)

    def file_done(self, f: _File) -> None:
        self.files += 1
        if f.error is None:
            frames = f.plan["frames"]
            if frames is None:
                frames = 0
            self.seconds += frames / f.plan["rate"]
            for records in f.results.values():
                for r in records:
                    self.counts[r["template"]] = self.counts.get(r["template"], 0) + 1
        if self.tty:
            print(f"\r\033[Kfiles {self.files}/{self.total}, {self.seconds / 3600:.2f} h of "
                  f"audio, {sum(self.counts.values())} detections", end="", file=sys.stderr,
                  flush=True)  # fmt: skip

    def _clear(self) -> None:
        if self.tty:
            print("\r\033[K", end="", file=sys.stderr, flush=True)

    def summary(self) -> None:
        self._clear()
        if self.quiet:
            if self.failures:
                print(f"error: {len(self.failures)} of {self.total} files failed", file=sys.stderr)
            return
        wall = time.monotonic() - self.t0
        speed = f", {self.seconds / wall:.0f}x real time" if wall > 0 else ""
        dets = ", ".join(f"{n} {c}" for n, c in sorted(self.counts.items())) or "none"
        print(f"matched {self.files - len(self.failures)} of {self.total} files, "
              f"{self.seconds / 3600:.3f} h of audio in {wall:.1f} s{speed}; detections: {dets}",
              file=sys.stderr)  # fmt: skip
        if self.resumed:
            print(f"note: {self.resumed} tasks taken from the resume state", file=sys.stderr)
        if self.failures:
            print(f"error: {len(self.failures)} of {self.total} files failed", file=sys.stderr)
