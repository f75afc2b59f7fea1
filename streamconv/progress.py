"""A progress bar for long jobs on a terminal (tqdm), on stderr only.

It is shown when stderr is a terminal and the user did not say ``-q``: never in a pipe, a log
file or a service, and never on stdout, where the data goes. When stdout is the same terminal
(``match`` printing detections), `Progress.write_above` clears the bar, lets the caller print
its line, and draws the bar again below it, so a result never shares a line with the bar.
"""

from __future__ import annotations

import contextlib
import os
import sys
from typing import TYPE_CHECKING

from streamconv.runner import Observer

if TYPE_CHECKING:
    from tqdm import tqdm


def wanted(quiet: bool, stream=None) -> bool:
    """Whether a progress bar belongs on `stream` (default stderr)."""
    stream = sys.stderr if stream is None else stream
    try:
        return not quiet and stream.isatty()
    except (AttributeError, ValueError):  # closed or replaced by something without isatty
        return False


def _size() -> tuple[int, int]:
    try:
        size = os.get_terminal_size(sys.stderr.fileno())
    except (OSError, ValueError, AttributeError):
        return 0, 0
    return size.columns, size.lines


class Progress:
    """Frames done of a job, as a bar (total known) or a counter (total unknown).

    Parameters
    ----------
    label : str
        What is being done (a file name).
    total : int or None
        Frames in all; None or 0 for a stream of unknown length.
    sample_rate : float, optional
        To show the position in seconds of audio (else in frames).
    quiet : bool
        ``-q``: no bar.
    """

    def __init__(
        self, label: str, total: int | None, sample_rate: float | None = None, quiet=False
    ):
        self._bar: tqdm | None = None
        self._label = label
        self._rate = float(sample_rate) if sample_rate else 1.0
        self._seconds = bool(sample_rate)
        self._done = 0
        self._on = wanted(quiet)
        if self._on and total:
            self._start(total)

    def _start(self, total: int | None) -> tqdm:
        """Draw the bar (at the first update when the total comes with it)."""
        from tqdm import tqdm

        what = "s of audio" if self._seconds else "frames"
        digits = ".1f" if self._seconds else ".0f"
        cols, rows = _size()
        self._bar = tqdm(
            total=(total / self._rate) if total else None,
            desc=self._label,
            bar_format=(
                f"{{desc}}: {{percentage:3.0f}}%|{{bar}}| {{n:{digits}}}/{{total:{digits}}} "
                f"{what} [{{elapsed}}<{{remaining}}]"
                if total
                else f"{{desc}}: {{n:{digits}}} {what} [{{elapsed}}]"
            ),
            file=sys.stderr,
            leave=False,
            # A terminal that reports no size (a fresh pty, `script`) is taken as 80 x 24:
            # tqdm draws nothing at all on a terminal of 0 rows.
            dynamic_ncols=cols > 0,
            ncols=None if cols > 0 else 80,
            nrows=None if rows > 0 else 24,
            mininterval=0.2,
        )
        return self._bar

    @property
    def shown(self) -> bool:
        """Whether a bar is on the terminal."""
        return self._bar is not None

    def update(self, frames: int, total: int | None = None) -> None:
        """The job has done `frames` frames in all (not: since the last call)."""
        if not self._on:
            return
        bar = self._bar if self._bar is not None else self._start(total)
        step = frames - self._done
        if step > 0:
            self._done = frames
            # The position is set, not summed: a sum of step / rate drifts past the total
            # (28.8M frames in 16384-frame steps at 48 kHz: 600.000000000002 s of 600) and
            # tqdm then prints a TqdmWarning ("clamping frac") on the user's terminal.
            bar.update(frames / self._rate - bar.n)
            bar.n = frames / self._rate

    @contextlib.contextmanager
    def write_above(self):
        """Print (to stdout or stderr) inside this block without mixing with the bar."""
        if self._bar is None:
            yield
            return
        with self._bar.external_write_mode(file=sys.stdout, nolock=False):
            yield
            sys.stdout.flush()

    def close(self) -> None:
        """Take the bar off the terminal."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        self._on = False

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class RunProgress(Observer):
    """A `streamconv.runner.Runner` observer that draws a `Progress` for its input.

    For a file or a pipe (a device runs until stopped: no bar). The total is the file's frame
    count (or ``--duration``'s), unknown on a pipe.
    """

    def __init__(self, quiet: bool = False):
        self._quiet = quiet
        self._bar: Progress | None = None

    def on_tick(self, runner) -> None:
        if self._bar is None:
            src = runner.source
            total = getattr(src, "frames", 0) or None
            if total is not None and total >= 2**62:  # libsndfile's "unknown"
                total = None
            if runner.duration_s is not None:
                limit = round(runner.duration_s * src.sample_rate)
                total = min(total, limit) if total else limit
            self._bar = Progress(src.name, total, src.sample_rate, self._quiet)
        self._bar.update(runner.frames_in)

    def on_block(self, event) -> None:
        pass

    def on_detection(self, detection) -> None:
        pass

    def on_state(self, runner, state: str) -> None:
        if state in ("stopping", "stopped"):
            self.close()

    def close(self) -> None:
        """Take the bar off the terminal."""
        if self._bar is not None:
            self._bar.close()
