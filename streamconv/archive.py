"""``streamconv match --jobs N / --scheduler ADDRESS``: match an archive on dask.distributed.

The archive (files, directories, globs) is cut into tasks: a file is one task, and a long
audio file is cut into chunks of ``--chunk`` seconds. Only paths and sample ranges travel to
the workers (they must see the same files); the templates are sent once to every worker.

Exactness. A chunk ``[start, stop)`` reports the detections whose sample lies in it, and they
are the single-process run's, bit for bit: the file's detectors (`streamconv.detect.Detectors`: the
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

import dataclasses
import hashlib
import json
import logging
import os
import sys
import time
from dataclasses import dataclass, field

import numpy as np

from streamconv.detect import PERIODICITY, MatchOptions, Template
from streamconv.errors import StreamconvError, UsageError
from streamconv.io import open_source
from streamconv.recordings import expand, file_frames, match_file, match_range

__all__ = ["State", "Task", "check_state_dir", "expand", "make_client", "plan_file",
           "run_archive", "run_task"]  # fmt: skip

#: dask settings of the ``--jobs`` cluster. The workers' statistical profiler (for a dashboard
#: nobody looks at here) samples the running task's stack every 10 ms, a few % of a worker's
#: CPU; the event loops' health ticks (20 ms) and memory checks (100 ms) keep the cores busy
#: between tasks. Measured idle: 2 workers and the scheduler 9% of a core by default, 3% so.
LOCAL_CONFIG = {
    "distributed.worker.profile.enabled": False,
    "distributed.admin.tick.interval": "1s",
    "distributed.worker.memory.monitor-interval": "1s",
}


# -- worker side ----------------------------------------------------------------------------


@dataclass
class Task:
    """One file, or a chunk ``[start, stop)`` of one (``stop`` None: the whole file)."""

    path: str
    start: int = 0
    stop: int | None = None


def plan_file(path: str, templates: list[Template], options: MatchOptions, chunk_s: float) -> dict:
    """Inspect a file: its frames, rate, and the tasks it is cut into (or its error).

    A seekable audio file and a raw PCM file longer than `chunk_s` are cut into chunks; a
    ``.csv`` file (lines of any length: no seeking to a frame) and a file of unknown length
    run whole.
    """
    try:
        with open_source(
            path, sample_rate=options.rate, channels=options.channels, fmt=options.fmt
        ) as src:
            rate, channels = src.sample_rate, src.channels
            arrays = {
                t.name: t.for_stream(rate, channels, path, downmix=options.downmix)
                for t in templates
            }
            frames = file_frames(src, path, options)
            if frames is not None:
                detectors = options.detectors(arrays, rate, channels, where=path)
                detectors.check_length(path, frames, templates, arrays)
            chunk = max(round(chunk_s * rate), 1)
    except StreamconvError as exc:
        return {"path": path, "error": str(exc)}
    tasks = [Task(path)]
    if frames is not None and frames > chunk:
        tasks = [Task(path, s, min(s + chunk, frames)) for s in range(0, frames, chunk)]
    return {"path": path, "rate": rate, "frames": frames, "tasks": tasks, "error": None}


def run_task(task: Task, templates: list[Template], options: MatchOptions) -> dict:
    """Detections of one task as records (``{"file": path, **detection}``), or its error."""
    try:
        if task.stop is None:
            records: list[dict] = []
            match_file(task.path, templates, options, records.append)
            return {"records": records, "error": None}
        records = match_range(task.path, task.start, task.stop, templates, options)
        return {"records": records, "error": None}
    except StreamconvError as exc:
        return {"records": [], "error": str(exc)}


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

    def __init__(self, directory: str | None, templates: list[Template], options: MatchOptions):
        self.directory = directory
        if directory is None:
            return
        check_state_dir(directory)
        opts = json.dumps(dataclasses.asdict(options), sort_keys=True, default=str)
        h = hashlib.sha256(opts.encode())
        for t in templates:
            h.update(t.name.encode() + b"\0" + np.ascontiguousarray(t.samples).tobytes())
            h.update(repr((t.rate, t.samples.shape)).encode())
        self.job = h.hexdigest()

    def _file(self, task: Task) -> str:
        assert self.directory is not None  # load and save return first without one
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


def make_client(jobs: int | None = None, scheduler: str | None = None):
    """A dask client: on the `scheduler` address, or on a LocalCluster of `jobs` processes.

    The LocalCluster's client has ``close_cluster()``; call it after ``close()``.
    """
    try:
        import dask
        from dask.distributed import Client, LocalCluster
    except ImportError:
        raise UsageError("--jobs/--scheduler need dask: pip install 'streamconv[dask]'") from None
    if scheduler:
        try:
            return Client(scheduler, timeout="10s")
        except (OSError, TimeoutError, ValueError) as exc:
            raise UsageError(f"--scheduler {scheduler}: cannot connect: {exc}") from None
    # Worker processes of one thread each (the nanny also sets OMP/MKL/OpenBLAS threads to 1):
    # much of a task is Python between numpy calls, under the GIL, so threads would not scale.
    # Logs below CRITICAL stay off the user's terminal: a task's failure comes back to the
    # command as an exception (one `error: FILE:` line), and the rest is dask's own shutdown
    # noise (a worker's heartbeat that meets the closing scheduler logs a 30-line traceback
    # at ERROR, after the summary).
    with dask.config.set(LOCAL_CONFIG):  # the nannies hand it on to their workers
        cluster = LocalCluster(
            n_workers=jobs or 1, processes=True, threads_per_worker=1,
            dashboard_address=":0", silence_logs=logging.CRITICAL,
        )  # fmt: skip
    client = Client(cluster)
    setattr(client, "close_cluster", cluster.close)  # noqa: B010 (not a Client attribute)
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


def run_archive(
    items: list[str],
    templates: list[Template],
    options: MatchOptions,
    write,
    client,
    chunk_s: float = 600.0,
    resume: str | None = None,
    quiet: bool = False,
) -> int:
    """Match every file of an archive on `client`; write the records in archive order.

    Parameters
    ----------
    items : list of str
        Files, directories and globs (`expand`).
    templates : list of Template
        Sent once to every worker.
    options : MatchOptions
        Travel with every task (workers print nothing).
    write : callable
        Gets every record, file after file, each file's in stream order: the records of
        `streamconv.recordings.match_file` on each file, in that order.
    client : dask.distributed.Client
    chunk_s : float
        Seconds per chunk of a long file.
    resume : str, optional
        A state directory: finished tasks are kept there, and taken from it on a rerun.
    quiet : bool
        No progress or summary on stderr (failures are still reported).

    Returns
    -------
    int
        0, or 2 when some files failed (each is reported on stderr as it fails).
    """
    from dask.distributed import as_completed

    paths = expand(items)
    opts = options
    state = State(resume, templates, opts)
    names = [t.name for t in templates] + ([PERIODICITY] if options.periodicity else [])
    report = Report(len(paths), quiet, names)
    [remote] = client.scatter([templates], broadcast=True, hash=False)
    todo = [_File(p) for p in paths]
    futures = as_completed()
    info: dict[str, tuple[str, int, int | None]] = {}  # future key -> (kind, file, task)
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
            assert f.plan is not None and j is not None  # a task comes after its file's plan
            f.results[j] = result["records"]
            state.save(f.plan["tasks"][j], result["records"])
        while emitted < len(todo) and todo[emitted].done:
            f = todo[emitted]
            if f.error is None and f.plan is not None:  # done without an error: planned
                seconds = (f.plan["frames"] or 0) / f.plan["rate"]
                report.file_done(seconds, [r for rs in f.results.values() for r in rs])
            else:
                report.file_done(None, [])
            if todo[emitted].error is None:
                for j2 in range(len(todo[emitted].results)):
                    for record in todo[emitted].results[j2]:
                        write(record)
            todo[emitted].results = {}
            emitted += 1
    report.summary()
    return 2 if report.failures else 0


class Report:
    """Progress of a run over many files on stderr and the summary at the end (a terminal only).

    Parameters
    ----------
    total : int
        Files in the run.
    quiet : bool
        No progress, notes or summary (failures are still reported).
    names : sequence of str
        The detectors' names: the summary counts each one's detections, 0 included.
    line : bool
        Draw the files-done line (``match`` without ``--jobs`` draws a bar per file instead).
    """

    def __init__(self, total: int, quiet: bool, names=(), line: bool = True):
        self.total, self.quiet = total, quiet
        self.tty = not quiet and sys.stderr.isatty()
        self.line = line
        self.files = self.resumed = 0
        self.seconds = 0.0
        self.failures: list[str] = []
        self.counts: dict[str, int] = dict.fromkeys(names, 0)
        self.t0 = time.monotonic()

    def failed(self, message: str) -> None:
        self._clear()
        self.failures.append(message)
        print(f"error: {message}", file=sys.stderr)

    def file_done(self, seconds: float | None, records) -> None:
        """A file is done: `seconds` of audio (None: it failed) and its records."""
        self.files += 1
        if seconds is not None:
            self.seconds += seconds
            for r in records:
                self.counts[r["template"]] = self.counts.get(r["template"], 0) + 1
        if self.tty and self.line:
            print(f"\r\033[Kfiles {self.files}/{self.total}, {self.seconds / 3600:.2f} h of "
                  f"audio, {sum(self.counts.values())} detections", end="", file=sys.stderr,
                  flush=True)  # fmt: skip

    def clear(self) -> None:
        """Take the progress line off the terminal (before other output)."""
        self._clear()

    def _clear(self) -> None:
        if self.tty:
            print("\r\033[K", end="", file=sys.stderr, flush=True)

    def summary(self) -> None:
        """The end of every run, with or without ``--jobs``: the summary line (files, hours,
        detections per template, 0 included) on a terminal only, like the progress, and not
        with -q; the resume note unless -q; how many files failed, when more than one ran."""
        self._clear()
        if self.tty:
            wall = time.monotonic() - self.t0
            speed = f", {self.seconds / wall:.0f}x real time" if wall > 0 else ""
            dets = ", ".join(f"{n} {c}" for n, c in self.counts.items()) or "none"
            print(f"matched {self.files - len(self.failures)} of {self.total} files, "
                  f"{self.seconds / 3600:.3f} h of audio in {wall:.1f} s{speed}; detections: "
                  f"{dets}", file=sys.stderr)  # fmt: skip
        if self.resumed and not self.quiet:
            print(f"note: {self.resumed} tasks taken from the resume state", file=sys.stderr)
        if self.failures and self.total > 1:  # one file's own error line says it all
            print(f"error: {len(self.failures)} of {self.total} files failed", file=sys.stderr)
