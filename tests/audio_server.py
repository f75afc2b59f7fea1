"""A private virtual sound server for the device tests: JACK with its dummy driver.

JACK's dummy driver runs in real time without a sound card, and ``-L 2`` adds a ``loopback``
client: what is played into the PortAudio device ``loopback`` comes back on its input one or
two periods later. The server gets a unique name, is started once per test session, and only
its own PID is stopped. PortAudio only sees the JACK host API when it is initialised while the
server runs, so `JackServer.start` reinitialises sounddevice.

Used by ``tests/conftest.py`` (fixture ``audio_server``) and by ``benchmarks/bench_io.py``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time

import pytest

DEVICE = "loopback"


class JackServer:
    """Start ``jackd -d dummy`` under a unique server name; `stop` ends that process only."""

    def __init__(self, sample_rate: int = 48000, period: int = 1024):
        self.sample_rate = sample_rate
        self.period = period
        self.name = f"sc_test_{os.getpid()}"
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
        os.environ.update(self.env())
        self._log = tempfile.NamedTemporaryFile(prefix="jackd-", suffix=".log", delete=False)
        self.proc = subprocess.Popen(
            ["jackd", "-n", self.name, "--no-realtime", "-L", "2", "-d", "dummy",
             "-r", str(self.sample_rate), "-p", str(self.period)],
            stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"jackd exited with {self.proc.returncode}: {self.log()}")
            ready = subprocess.run(
                ["jack_lsp", "-s", self.name], capture_output=True, env={**os.environ}
            )
            if ready.returncode == 0 and b"loopback" in ready.stdout:
                break
            time.sleep(0.05)
        else:
            self.stop()
            raise RuntimeError(f"jackd did not come up in {timeout} s: {self.log()}")
        _reinit_portaudio()
        return self

    def log(self) -> str:
        with open(self._log.name, errors="replace") as f:
            return f.read()[-2000:]

    def stop(self) -> None:
        # PortAudio must let go of JACK before the server goes: terminating it afterwards
        # aborts the process (an assertion in pa_jack.c).
        _terminate_portaudio()
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None
        _initialize_portaudio()


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


@pytest.fixture(scope="session")
def audio_server():
    """A running JACK dummy server with a ``loopback`` device, for the whole test session."""
    missing = _missing()
    if missing:
        message = f"DEVICE TESTS NOT RUN: {missing}; `make test` installs it as root"
        if os.environ.get("CI"):
            pytest.fail(message)  # in CI the server must be there: never pass by skipping
        pytest.skip(message)
    server = JackServer().start()
    yield server
    server.stop()
