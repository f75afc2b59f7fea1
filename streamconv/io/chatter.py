"""Keep the messages C libraries print on stderr while they start out of the user's way.

PortAudio's start (``Pa_Initialize``, at ``import sounddevice`` and ``pyaudio.PyAudio()``) probes
every host API, and ALSA and JACK print what they do not find straight to file descriptor 2:
about 60 lines on a machine without a sound card or a JACK server, none of them about the job.
Python's ``sys.stderr`` cannot catch them, so `quiet_stderr` points descriptor 2 at a temporary
file for the duration and shows what was caught only when asked (``-v``, which sets
``STREAMCONV_VERBOSE=1``, inherited by worker processes) or when the call fails. The
descriptor is the process's: what another thread writes to stderr during those milliseconds
(PortAudio's start, once per process) is caught with it.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
import threading

#: Set to ``1`` by ``streamconv -v``: the libraries' messages are shown as they come.
VERBOSE_ENV = "STREAMCONV_VERBOSE"

_lock = threading.Lock()


def verbose() -> bool:
    """Whether the user asked to see the libraries' messages."""
    return os.environ.get(VERBOSE_ENV, "") not in ("", "0")


@contextlib.contextmanager
def quiet_stderr():
    """Catch what is written to file descriptor 2 inside the block.

    The caught text is dropped if the block succeeds, and written to stderr if it raises (the
    libraries' reasons may explain the error). With `verbose`, nothing is caught.
    """
    if verbose():
        yield
        return
    with _lock, tempfile.TemporaryFile() as caught:
        sys.stderr.flush()
        saved = os.dup(2)
        os.dup2(caught.fileno(), 2)
        try:
            yield
        except BaseException:
            _restore(saved)
            caught.seek(0)
            text = caught.read().decode(errors="replace")
            if text:
                sys.stderr.write(text)
                sys.stderr.flush()
            raise
        _restore(saved)


def _restore(saved: int) -> None:
    if saved >= 0:
        os.dup2(saved, 2)
        os.close(saved)
