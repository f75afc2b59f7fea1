"""A private virtual sound server for the device tests: JACK with its dummy driver.

JACK's dummy driver runs in real time without a sound card, and ``-L 2`` adds a ``loopback``
client: what is played into the PortAudio device ``loopback`` comes back on its input one or
two periods later. (A client that is late on a loaded machine may have a period replayed or
skipped on its way to another process's client, with no xrun reported: tests that record in
another process compare with a recording made in the player's own client.) The server gets a
unique name, is started once per test session, and only its own PID is stopped. PortAudio only sees
the JACK host API when it is initialised while the server runs, so `JackServer.start`
reinitialises sounddevice.

Used by ``tests/conftest.py`` (fixtures ``audio_server`` and ``private_jack``, a server of one
test's own that it may stop to make a device disappear) and by ``benchmarks/bench_io.py``.
"""

from __future__ import annotations

import ctypes
import itertools
import os
import shutil
import signal
import subprocess
import tempfile
import time

import pytest

DEVICE = "loopback"


class JackServer:
    """Start ``jackd -d dummy`` under a unique server name; `stop` ends that process only.

    Parameters
    ----------
    name : str, optional
        Server name; default ``sc_test_<pid>``. A second server needs a name of its own.
    make_default : bool
        Point this process at the server (``JACK_DEFAULT_SERVER``) and re-initialise its
        PortAudio. Not for a server a test ends under its clients: PortAudio aborts the
        process that knew it (see `disappear`); pass its `env` to the processes under test.
    """

    def __init__(self, sample_rate: int = 48000, period: int = 1024, name=None, make_default=True):
        self.sample_rate = sample_rate
        self.period = period
        self.name = name or f"sc_test_{os.getpid()}"
        self.make_default = make_default
        self.proc: subprocess.Popen | None = None
        self.device = DEVICE

    @staticmethod
    def available() -> bool:
        return shutil.which("jackd") is not None and shutil.which("jack_lsp") is not None

    def env(self) -> dict[str, str]:
        return {
            "JACK_NO_START_SERVER": "1",
            "JACK_NO_AUDIO_RESERVATION": "1",
            "JACK_DEFAULT_SERVER": self.name,
        }

    def start(self, timeout: float = 10.0) -> JackServer:
        """Start the server (again, after `disappear`: same name) and wait until it answers."""
        env = {**os.environ, **self.env()}
        if self.make_default:
            os.environ.update(self.env())
        self._log = tempfile.NamedTemporaryFile(prefix="jackd-", suffix=".log", delete=False)
        self.proc = subprocess.Popen(
            ["jackd", "-n", self.name, "--no-realtime", "-L", "2", "-d", "dummy",
             "-r", str(self.sample_rate), "-p", str(self.period)],
            stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
            preexec_fn=_end_with_parent,
        )  # fmt: skip
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"jackd exited with {self.proc.returncode}: {self.log()}")
            ready = subprocess.run(["jack_lsp", "-s", self.name], capture_output=True, env=env)
            if ready.returncode == 0 and b"loopback" in ready.stdout:
                break
            time.sleep(0.05)
        else:
            self.stop()
            raise RuntimeError(f"jackd did not come up in {timeout} s: {self.log()}")
        if self.make_default:
            _reinit_portaudio()
        return self

    def disappear(self) -> None:
        """End the server under its running clients: their device goes away mid-stream.

        Only for a server made with ``make_default=False`` (PortAudio would abort this process
        at exit). SIGTERM, not SIGKILL: a killed jackd keeps its slot in JACK's registry of at
        most 8 servers (in ``/dev/shm``) until a server of the same name starts, and a full
        registry stops every JACK server on the machine from starting.
        """
        assert not self.make_default, "PortAudio would abort this process at exit"
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.proc = None

    def log(self) -> str:
        with open(self._log.name, errors="replace") as f:
            return f.read()[-2000:]

    def stop(self) -> None:
        # PortAudio must let go of JACK before the server goes: terminating it afterwards
        # aborts the process (an assertion in pa_jack.c).
        if self.make_default:
            _terminate_portaudio()
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None
        if self.make_default:
            _initialize_portaudio()


_LIBC = ctypes.CDLL(None, use_errno=True)  # looked up here: the forked child only calls it
PR_SET_PDEATHSIG = 1


def _end_with_parent() -> None:
    """In the child before exec: SIGTERM when the test process dies, even by a crash, so the
    server leaves JACK's registry instead of lingering (see `JackServer.disappear`)."""
    _LIBC.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def _reinit_portaudio() -> None:
    _terminate_portaudio()
    _initialize_portaudio()


def _sounddevice():
    try:
        import sounddevice
    except (ImportError, OSError):
        return None
    return sounddevice


def _terminate_portaudio() -> None:
    sd = _sounddevice()
    if sd is not None:
        sd._terminate()


def _initialize_portaudio() -> None:
    sd = _sounddevice()
    if sd is not None:
        sd._initialize()


def _missing() -> str | None:
    if not JackServer.available():
        return "jackd/jack_lsp not found (Debian: jackd2)"
    try:
        import sounddevice  # noqa: F401
    except (ImportError, OSError) as exc:
        return f"sounddevice/PortAudio not usable: {exc} (Debian: libportaudio2)"
    return None


def _need_server() -> None:
    missing = _missing()
    if missing:
        message = f"DEVICE TESTS NOT RUN: {missing}; `make test` installs it as root"
        if os.environ.get("CI"):
            pytest.fail(message)  # in CI the server must be there: never pass by skipping
        pytest.skip(message)


@pytest.fixture
def private_jack():
    """A JACK dummy server of this test's own, that the test may end and start again.

    Its name is unique and this process never connects to it: the processes under test get
    ``private_jack.env()``. Whatever runs at the end is stopped (this server's PID only).
    """
    _need_server()
    name = f"sc_private_{os.getpid()}_{next(_private_names)}"
    server = JackServer(name=name, make_default=False).start()
    yield server
    server.stop()


_private_names = itertools.count()


@pytest.fixture(scope="session")
def audio_server():
    """A running JACK dummy server with a ``loopback`` device, for the whole test session."""
    _need_server()
    server = JackServer().start()
    yield server
    server.stop()
